/**
 * `berth diff`, as docker's: the paths a container added (A), changed (C) or deleted (D) on
 * top of its image, sorted. With an overlay root, read from its upper dir: a whiteout is a
 * deletion, an entry the image's layers also have is a change, any other an addition; where
 * the root is a copy (vfs), a diff against the image's root (as commit does).
 */
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { diffTrees } from '../../layer/diff.js';
import { loadImage } from '../../image/load-image.js';
import { commitTrees } from '../rootfs.js';
import { SnapshotStore } from '../snapshots.js';
import { openImageStore } from '../store.js';
import type { Engine } from './engine.js';
import type { Container } from './store.js';

export interface PathChange { kind: 'A' | 'C' | 'D'; path: string }

/** Mount points berth makes for the files it gives each container (hostfiles.ts): not the container's changes (docker's init layer). */
const MOUNT_STUBS = new Set(['/etc/hostname', '/etc/hosts', '/etc/resolv.conf']);

function walkUpper(upper: string, lowers: string[], rel: string, out: PathChange[]): void {
  for (const name of readdirSync(join(upper, rel)).sort()) {
    const r = `${rel}/${name}`;
    const st = lstatSync(join(upper, r));
    // overlayfs whiteout: a 0/0 character device.
    if (st.isCharacterDevice() && st.rdev === 0) { out.push({ kind: 'D', path: r }); continue; }
    if (MOUNT_STUBS.has(r)) continue;
    const kind = lowers.some((l) => existsSync(join(l, r)) || isLink(join(l, r))) ? 'C' : 'A';
    // A directory copied up only to hold berth's mount points (/etc) is no change of the container's.
    const children = st.isDirectory() ? readdirSync(join(upper, r)) : [];
    if (kind === 'C' && children.length && children.every((n) => MOUNT_STUBS.has(`${r}/${n}`))) continue;
    out.push({ kind, path: r });
    if (st.isDirectory()) walkUpper(upper, lowers, r, out);
  }
}

function isLink(path: string): boolean {
  try { return lstatSync(path).isSymbolicLink(); } catch { return false; }
}

/** docker's order: by path, as strings; without berth's own mount points. */
function byPath(changes: PathChange[]): PathChange[] {
  return changes.filter((ch) => !(ch.kind === 'A' && MOUNT_STUBS.has(ch.path))).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export async function containerChanges(engine: Engine, c: Container): Promise<PathChange[]> {
  const snapshots = new SnapshotStore(engine.root);
  const layout = await openImageStore({ root: engine.root });
  const upper = join(c.dir, 'upper');
  if (snapshots.rootfsDriver(c.dir) === 'overlay' && existsSync(upper)) {
    const image = await loadImage(layout, c.config.imageDigest);
    const prepared = await snapshots.prepare({ layout, manifest: image.manifest, config: image.config });
    try {
      const out: PathChange[] = [];
      walkUpper(upper, prepared.dirs, '', out);
      return byPath(out);
    } finally {
      await prepared.release();
    }
  }
  const trees = await commitTrees(engine.root, layout, await loadImage(layout, c.config.imageDigest), c.dir);
  try {
    const kinds = { added: 'A', modified: 'C', deleted: 'D' } as const;
    return byPath((await diffTrees(trees.lower, trees.upper)).map((ch) => ({ kind: kinds[ch.kind], path: `/${ch.path.replace(/^\/+/, '')}` })));
  } finally {
    await trees.cleanup();
  }
}
