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
import { factsFileOf, ImageRoot, readFacts } from './image-root.js';
import { SnapshotStore, unmount, type OverlayMount } from './snapshots.js';

/**
 * The container's root, recorded (CONTAINER/rootfs.json) and mounted, or with deferMount and a
 * chain whose overlay mounted before, recorded only: its monitor mounts it (overlayMountOf).
 * Questions about the image's files go through the ImageRoot (image-root.ts), which mounts it
 * here after all when its cache cannot answer.
 */
export async function prepareRootfs(berthRoot: string, store: OciLayout, image: LoadedImage, containerDir: string, opts: { deferMount?: boolean } = {}): Promise<ImageRoot> {
  const snapshots = new SnapshotStore(berthRoot);
  const prepared = await snapshots.prepare({ layout: store, manifest: image.manifest, config: image.config });
  try {
    const top = prepared.dirs[prepared.dirs.length - 1];
    const factsFile = top === undefined ? undefined : factsFileOf(top);
    const facts = factsFile ? readFacts(factsFile) : undefined;
    // mountRootfs (and deferRootfs) record the chain in CONTAINER/rootfs.json: from then on the
    // container's record (being created) keeps prune away from these snapshots, so the lease can end.
    const mount = () => snapshots.mountRootfs(prepared.dirs, containerDir);
    if (opts.deferMount && facts?.overlay && (await snapshots.deferRootfs(prepared.dirs, containerDir))) {
      return new ImageRoot(snapshots.rootfsPath(containerDir), factsFile, facts, mount, false);
    }
    const path = await mount();
    const root = new ImageRoot(path, factsFile, facts, () => Promise.resolve(path), true);
    if (snapshots.rootfsDriver(containerDir) === 'overlay') root.noteOverlay();
    return root;
  } finally {
    await prepared.release();
  }
}

/**
 * The overlay mount a container's monitor makes at start (`-C DIR -O OPTIONS -T TARGET`; it
 * mounts only where nothing is mounted yet), or undefined when its root is a copy (vfs) or not
 * recorded.
 */
export function overlayMountOf(berthRoot: string, containerDir: string): OverlayMount | undefined {
  return new SnapshotStore(berthRoot).overlayMountOf(containerDir);
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
