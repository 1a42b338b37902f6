/**
 * A container's root filesystem, made from an image in the local store: an overlay of the
 * image's shared snapshots (snapshots.ts, keyed by layer chain ID) with the container's own
 * upper dir, or a copy of the chain where overlayfs is refused. One module, so that the way a
 * root is made changes in one place.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { LoadedImage } from '../image/load-image.js';
import type { OciLayout } from '../image/layout.js';
import { SnapshotStore, unmount } from './snapshots.js';

export interface PreparedRootfs {
  /** The directory the container sees as `/`. */
  path: string;
}

export async function prepareRootfs(berthRoot: string, store: OciLayout, image: LoadedImage, containerDir: string): Promise<PreparedRootfs> {
  const snapshots = new SnapshotStore(berthRoot);
  const prepared = await snapshots.prepare({ layout: store, manifest: image.manifest, config: image.config });
  try {
    // mountRootfs records the chain in CONTAINER/rootfs.json: from then on the container's
    // record (being created) keeps prune away from these snapshots, so the lease can end.
    return { path: await snapshots.mountRootfs(prepared.dirs, containerDir) };
  } finally {
    await prepared.release();
  }
}

/** Undoes prepareRootfs: the mount goes, and the container's own layers (rootfs, upper, work). */
export async function releaseRootfs(berthRoot: string, containerDir: string): Promise<void> {
  await new SnapshotStore(berthRoot).unmountRootfs(containerDir).catch(() => detachRootfs(containerDir));
  for (const sub of ['rootfs', 'upper', 'work']) await rm(join(containerDir, sub), { recursive: true, force: true });
}

/** Whether path is a mount point here (/proc/self/mountinfo). */
function mounted(path: string): boolean {
  const want = resolve(path);
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === want);
  } catch {
    return false;
  }
}

/** Synchronous and lazy (MNT_DETACH): for sweeps of what a killed command left mounted. */
export function detachRootfs(containerDir: string): void {
  const rootfs = join(containerDir, 'rootfs');
  if (mounted(rootfs)) unmount(rootfs, true);
}

/**
 * The two trees a commit diffs: the image's root (unpacked afresh into a scratch directory)
 * and the container's root as it sees it.
 */
export async function commitTrees(berthRoot: string, store: OciLayout, image: LoadedImage, containerDir: string): Promise<{ lower: string; upper: string; cleanup(): Promise<void> }> {
  const scratch = join(containerDir, 'commit-lower');
  await rm(scratch, { recursive: true, force: true });
  const snapshots = new SnapshotStore(berthRoot);
  const prepared = await snapshots.prepare({ layout: store, manifest: image.manifest, config: image.config });
  try {
    const lower = await snapshots.mountRootfs(prepared.dirs, scratch, { driver: 'vfs' });
    return { lower, upper: join(containerDir, 'rootfs'), cleanup: () => rm(scratch, { recursive: true, force: true }) };
  } finally {
    await prepared.release();
  }
}
