/**
 * A container's root filesystem, made from an image in the local store. One function, so that
 * the way it is made (today: the layers unpacked into the container's directory; next: an
 * overlay of shared snapshots keyed by chain id) changes in one place.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoadedImage } from '../image/load-image.js';
import type { OciLayout } from '../image/layout.js';
import { unpackLayers } from '../layer/unpack-layers.js';

export interface PreparedRootfs {
  /** The directory the container sees as `/`. */
  path: string;
  /** Where the container's changes are (for commit): the rootfs itself when unpacked. */
  upper: string;
  /** The layers below (empty when unpacked): commit diffs upper against them. */
  lower: string[];
  /** Whether rootfs is a mount to detach at removal. */
  mounted: boolean;
}

export async function prepareRootfs(store: OciLayout, image: LoadedImage, containerDir: string): Promise<PreparedRootfs> {
  const rootfs = join(containerDir, 'rootfs');
  await mkdir(rootfs, { recursive: true, mode: 0o755 });
  const layers = image.manifest.layers;
  await unpackLayers(
    rootfs,
    layers.map((layer, i) => ({
      mediaType: layer.mediaType,
      digest: layer.digest,
      size: layer.size,
      diffId: image.config.rootfs.diff_ids[i],
      open: () => store.fetch(layer),
    })),
  );
  return { path: rootfs, upper: rootfs, lower: [], mounted: false };
}

/** Undoes prepareRootfs (the container directory itself is removed by the caller). */
export async function releaseRootfs(containerDir: string): Promise<void> {
  await rm(join(containerDir, 'rootfs'), { recursive: true, force: true });
}

/**
 * The two trees a commit diffs: the image's root (unpacked afresh into a scratch directory,
 * as the container's rootfs is a full copy) and the container's rootfs.
 */
export async function commitTrees(store: OciLayout, image: LoadedImage, containerDir: string): Promise<{ lower: string; upper: string; cleanup(): Promise<void> }> {
  const scratch = join(containerDir, 'commit-lower');
  await rm(scratch, { recursive: true, force: true });
  const lower = await prepareRootfs(store, image, scratch);
  return { lower: lower.path, upper: join(containerDir, 'rootfs'), cleanup: () => rm(scratch, { recursive: true, force: true }) };
}
