/** Helpers for the layer-writing tests: temp dirs, running tools, tree snapshots, applying changesets. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTreeXattrs } from '../../src/layer/xattrs.js';

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `berth-${label}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs a command; throws with its stderr when it fails. Returns stdout. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer | string; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  }
  return r.stdout.toString();
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export const isRoot = process.getuid?.() === 0;

export interface NodeSnapshot {
  kind: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: number;
  xattrs?: Record<string, string>;
  /** For hardlinks: the first path (in sorted order) sharing the inode. */
  hardlinkOf?: string;
}

function kind(st: Stats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/**
 * Every entry under `root` (the root excluded) with what a layer must preserve:
 * type, permissions with setuid/setgid/sticky, owner, mtime in seconds, contents, link
 * targets, device numbers, xattrs, and hardlink groups.
 */
export async function snapshotTree(root: string, opts: { mtimes?: boolean } = {}): Promise<Record<string, NodeSnapshot>> {
  const xattrs = await readTreeXattrs(root);
  const out: Record<string, NodeSnapshot> = {};
  const inodes = new Map<string, string>();
  const visit = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = join(root, r);
      const st = lstatSync(abs);
      const k = kind(st);
      const node: NodeSnapshot = { kind: k, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: opts.mtimes === false ? 0 : Math.floor(st.mtimeMs / 1000) };
      if (k === 'file') {
        node.size = st.size;
        node.sha256 = createHash('sha256').update(readFileSync(abs)).digest('hex');
      }
      if (k === 'symlink') node.link = readlinkSync(abs);
      if (k === 'char' || k === 'block') node.rdev = st.rdev;
      const xa = xattrs.get(r);
      if (xa) node.xattrs = Object.fromEntries(Object.entries(xa).map(([n, v]) => [n, v.toString('hex')]));
      if (k !== 'dir' && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = inodes.get(key);
        if (first === undefined) inodes.set(key, r);
        else node.hardlinkOf = first;
      }
      out[r] = node;
      if (k === 'dir') visit(r);
    }
  };
  visit('');
  return out;
}

/** Lists a tar archive with GNU tar: one line per entry (`tar -tv`, UTC, numeric owners). */
export function gnuTarList(archive: string, extra: string[] = []): string[] {
  return run('tar', ['--numeric-owner', '--utc', '--full-time', ...extra, '-tvf', archive])
    .split('\n')
    .filter((l) => l !== '');
}

/** Entry names of a tar archive, in archive order (GNU tar). */
export function gnuTarNames(archive: string, extra: string[] = []): string[] {
  return run('tar', [...extra, '-tf', archive]).split('\n').filter((l) => l !== '');
}

/** Extracts with GNU tar keeping owners, modes, xattrs of every namespace. */
export function gnuTarExtract(archive: string, dest: string, extra: string[] = []): void {
  run('tar', ['--numeric-owner', '--same-owner', '-p', '--xattrs', '--xattrs-include=*', ...extra, '-xf', archive, '-C', dest]);
}

/**
 * Applies an uncompressed changeset layer onto `root` the way layer.md "Applying
 * Changesets" says, using GNU tar for the extraction: whiteouts (explicit and opaque)
 * remove lower paths first, an entry whose path exists with another type replaces it,
 * then the archive is extracted without its whiteout markers.
 */
export function applyChangesetWithGnuTar(archive: string, root: string): void {
  const entries = gnuTarList(archive);
  const names = gnuTarNames(archive);
  for (const name of names) {
    const base = name.replace(/\/$/, '').split('/').pop()!;
    const dir = name.includes('/') ? name.slice(0, name.replace(/\/$/, '').lastIndexOf('/')) : '';
    if (base === '.wh..wh..opq') {
      for (const child of readdirSync(join(root, dir))) rmSync(join(root, dir, child), { recursive: true, force: true });
    } else if (base.startsWith('.wh.')) {
      rmSync(join(root, dir, base.slice(4)), { recursive: true, force: true });
    }
  }
  names.forEach((name, i) => {
    if (name.split('/').some((p) => p.startsWith('.wh.'))) return;
    const path = join(root, name);
    let existing;
    try {
      existing = lstatSync(path);
    } catch {
      return;
    }
    const entryIsDir = entries[i]!.startsWith('d');
    if (existing.isDirectory() !== entryIsDir) rmSync(path, { recursive: true, force: true });
  });
  gnuTarExtract(archive, root, ['--overwrite', '--exclude=.wh.*']);
}
