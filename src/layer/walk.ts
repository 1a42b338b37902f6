/**
 * A deterministic walk of a directory tree: pre-order, each directory's children sorted by
 * name, symlinks never followed. Synchronous readdir/lstat on purpose: they cost a few
 * microseconds each on a warm cache, where a promise per call would cost more than the
 * call itself; callers yield to the event loop between output chunks.
 */
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';

export type FileKind = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface WalkEntry {
  /** Path relative to the root, '/'-separated, no leading './' and no trailing '/'. */
  rel: string;
  abs: string;
  stat: Stats;
  kind: FileKind;
}

export function kindOf(stat: Stats): FileKind {
  if (stat.isFile()) return 'file';
  if (stat.isDirectory()) return 'dir';
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isCharacterDevice()) return 'char';
  if (stat.isBlockDevice()) return 'block';
  if (stat.isFIFO()) return 'fifo';
  return 'socket';
}

/** Byte-order-like comparison of names (what `tar --sort=name` gives for UTF-8 names). */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The names in a directory, sorted; refuses names that cannot be carried in a layer. */
export function sortedNames(dir: string): string[] {
  const names = readdirSync(dir);
  for (const n of names) {
    // readdir decodes names as UTF-8; U+FFFD means bytes that are not UTF-8, which tar
    // paths (PAX path records are UTF-8) would silently change.
    if (n.includes('\uFFFD')) {
      throw new BerthError('LAYER_INVALID', `${join(dir, n)}: the file name is not valid UTF-8; rename it before creating a layer`);
    }
  }
  return names.sort(compareNames);
}

/** Every entry under `root` (the root itself excluded), parents before children. */
export function* walkTree(root: string): Generator<WalkEntry> {
  const rootStat = lstatSync(root);
  if (!rootStat.isDirectory()) {
    throw new BerthError('USAGE', `${root} is not a directory: a layer is created from a directory tree`);
  }
  // A stack of directories still being listed, each with its sorted names and a cursor.
  const stack: { rel: string; abs: string; names: string[]; next: number }[] = [
    { rel: '', abs: root, names: sortedNames(root), next: 0 },
  ];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next === top.names.length) {
      stack.pop();
      continue;
    }
    const name = top.names[top.next++]!;
    const rel = top.rel === '' ? name : `${top.rel}/${name}`;
    const abs = join(top.abs, name);
    const stat = lstatSync(abs);
    const kind = kindOf(stat);
    yield { rel, abs, stat, kind };
    if (kind === 'dir') stack.push({ rel, abs, names: sortedNames(abs), next: 0 });
  }
}

/** Bytes allocated under `root`, each inode once. */
export function diskUsage(root: string): { bytes: number; entries: number } {
  const seen = new Set<string>();
  let bytes = 0;
  let entries = 0;
  for (const e of walkTree(root)) {
    entries++;
    if (e.stat.nlink > 1 && e.kind !== 'dir') {
      const key = `${e.stat.dev}:${e.stat.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    bytes += e.stat.blocks * 512;
  }
  return { bytes, entries };
}

/** Linux device numbers from st_rdev (glibc's major()/minor() encoding). */
export function deviceNumbers(rdev: number): { major: number; minor: number } {
  const lo = rdev % 2 ** 32;
  const hi = Math.floor(rdev / 2 ** 32);
  const major = ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0);
  const minor = (lo & 0xff) | ((lo >>> 12) & 0xfff00);
  return { major: major >>> 0, minor: minor >>> 0 };
}
