/**
 * Changesets between two trees (layer.md "Determining Changes", "Representing Changes",
 * "Whiteouts", "Opaque Whiteout").
 *
 * A file counts as modified when its type, mode, owner, size, mtime, device number,
 * symlink target, xattrs or link count differ. Contents are compared only where metadata cannot tell:
 * same size and an mtime in whole seconds (trees unpacked from tar lose sub-second
 * times, so equal mtimes there prove nothing); an equal nanosecond mtime is trusted, as
 * containerd does.
 */
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { refuseWhiteoutName } from './create.js';
import {
  HardlinkMap,
  checkLayerOptions,
  clampMtime,
  normalizePrefix,
  tarPath,
  writeFsEntry,
  writeLayerStream,
  type EntryContext,
  type LayerOptions,
  type LayerResult,
} from './layer-output.js';
import { kindOf, sortedNames, walkTree, type WalkEntry } from './walk.js';
import { readTreeXattrs, type TreeXattrs } from './xattrs.js';

export interface Change {
  /** Relative path, '/'-separated, no leading '/'. */
  path: string;
  kind: 'added' | 'modified' | 'deleted';
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_WHITEOUT = '.wh..wh..opq';

/** What a changeset layer holds, in archive order. */
type DiffOp =
  | { op: 'entry'; change: 'added' | 'modified'; w: WalkEntry }
  /** `rel` was deleted: a `.wh.<name>` entry in its parent. */
  | { op: 'whiteout'; rel: string; parent: Stats }
  /** Every child of `dir` in lower is gone: one `.wh..wh..opq` entry instead of a whiteout each. */
  | { op: 'opaque'; dir: string; parent: Stats; deleted: string[] };

interface Trees {
  lower: string;
  upper: string;
  lowerXattrs: TreeXattrs;
  upperXattrs: TreeXattrs;
}

function join2(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function sameXattrs(a: Record<string, Buffer> | undefined, b: Record<string, Buffer> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  if (ka.length !== kb.length) return false;
  return ka.every((k) => b?.[k] !== undefined && a![k]!.equals(b[k]!));
}

/** Metadata equality (everything but contents and link targets). */
function sameMetadata(t: Trees, rel: string, l: Stats, u: Stats): boolean {
  return (
    l.mode === u.mode &&
    l.uid === u.uid &&
    l.gid === u.gid &&
    // A changed link count on a file means its hardlinks changed (layer.md "Hardlinks").
    (l.isDirectory() || (l.size === u.size && l.nlink === u.nlink)) &&
    l.mtimeMs === u.mtimeMs &&
    l.rdev === u.rdev &&
    sameXattrs(t.lowerXattrs.get(rel), t.upperXattrs.get(rel))
  );
}

async function sameContents(a: string, b: string, size: number): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const chunk = Math.min(size, 1024 * 1024) || 1;
    const ba = Buffer.allocUnsafe(chunk);
    const bb = Buffer.allocUnsafe(chunk);
    for (let pos = 0; pos < size; ) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, chunk, pos), fb.read(bb, 0, chunk, pos)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      pos += ra.bytesRead;
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

async function sameEntry(t: Trees, rel: string, lw: WalkEntry, uw: WalkEntry): Promise<boolean> {
  if (!sameMetadata(t, rel, lw.stat, uw.stat)) return false;
  if (uw.kind === 'symlink') return readlinkSync(lw.abs) === readlinkSync(uw.abs);
  if (uw.kind === 'file' && uw.stat.mtimeMs % 1000 === 0) return sameContents(lw.abs, uw.abs, uw.stat.size);
  return true;
}

function entryAt(root: string, rel: string): WalkEntry {
  const abs = join(root, rel);
  const stat = lstatSync(abs);
  return { rel, abs, stat, kind: kindOf(stat) };
}

/** An entry that is new in upper, with its whole subtree. */
function* added(t: Trees, w: WalkEntry, change: 'added' | 'modified'): Generator<DiffOp> {
  refuseWhiteoutName(w.rel, t.upper);
  yield { op: 'entry', change, w };
  if (w.kind !== 'dir') return;
  for (const sub of walkTree(w.abs)) {
    const rel = join2(w.rel, sub.rel);
    refuseWhiteoutName(rel, t.upper);
    yield { op: 'entry', change: 'added', w: { ...sub, rel } };
  }
}

/**
 * Compares the directory `rel` present in both trees. `self` is the upper directory's
 * entry (undefined for the root, which gets no entry) and `selfChanged` whether its own
 * attributes differ.
 */
async function* diffDir(t: Trees, rel: string, self: WalkEntry | undefined, selfChanged: boolean): AsyncGenerator<DiffOp> {
  const lowerNames = sortedNames(join(t.lower, rel));
  const upperNames = sortedNames(join(t.upper, rel));
  const upperSet = new Set(upperNames);
  const lowerSet = new Set(lowerNames);
  const parent = self?.stat ?? lstatSync(join(t.upper, rel));
  // Nothing of the lower directory survives: one opaque whiteout hides all of it. layer.md
  // prefers explicit whiteouts, so a single deleted child keeps its `.wh.` entry (as in the
  // spec's etc/my-app-config example); from two on the opaque marker is the shorter layer.
  const opaque = lowerNames.length >= 2 && lowerNames.every((n) => !upperSet.has(n));
  if (self && (selfChanged || opaque)) yield { op: 'entry', change: 'modified', w: self };
  if (opaque) {
    yield { op: 'opaque', dir: rel, parent, deleted: lowerNames.map((n) => join2(rel, n)) };
    for (const n of upperNames) yield* added(t, entryAt(t.upper, join2(rel, n)), 'added');
    return;
  }
  // layer.md: whiteouts SHOULD come before sibling directory entries.
  for (const n of lowerNames) if (!upperSet.has(n)) yield { op: 'whiteout', rel: join2(rel, n), parent };
  for (const n of upperNames) {
    const childRel = join2(rel, n);
    const uw = entryAt(t.upper, childRel);
    if (!lowerSet.has(n)) {
      yield* added(t, uw, 'added');
      continue;
    }
    refuseWhiteoutName(childRel, t.upper);
    const lw = entryAt(t.lower, childRel);
    if (lw.kind !== uw.kind) {
      // Replaced by another type: applying the entry removes the old path first (layer.md
      // "Changeset over existing files"), a directory with all its contents.
      yield* added(t, uw, 'modified');
    } else if (uw.kind === 'dir') {
      yield* diffDir(t, childRel, uw, !sameMetadata(t, childRel, lw.stat, uw.stat));
    } else if (!(await sameEntry(t, childRel, lw, uw))) {
      yield { op: 'entry', change: 'modified', w: uw };
    }
  }
}

async function diffOps(lower: string, upper: string): Promise<{ trees: Trees; ops: AsyncGenerator<DiffOp> }> {
  for (const [what, dir] of [['lower', lower], ['upper', upper]] as const) {
    let isDir = false;
    try {
      isDir = lstatSync(dir).isDirectory();
    } catch (err) {
      throw new BerthError('USAGE', `${what} tree ${dir} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    if (!isDir) throw new BerthError('USAGE', `${what} tree ${dir} is not a directory`);
  }
  const [lowerXattrs, upperXattrs] = await Promise.all([readTreeXattrs(lower), readTreeXattrs(upper)]);
  const trees: Trees = { lower, upper, lowerXattrs, upperXattrs };
  return { trees, ops: diffDir(trees, '', undefined, false) };
}

/**
 * The changes that turn `lower` into `upper`. A deleted directory is one change (its
 * contents go with it); an added directory is followed by each of its descendants.
 */
export async function diffTrees(lower: string, upper: string): Promise<Change[]> {
  const { ops } = await diffOps(lower, upper);
  const changes: Change[] = [];
  for await (const op of ops) {
    if (op.op === 'entry') changes.push({ path: op.w.rel, kind: op.change });
    else if (op.op === 'whiteout') changes.push({ path: op.rel, kind: 'deleted' });
    else for (const path of op.deleted) changes.push({ path, kind: 'deleted' });
  }
  return changes;
}

function markerEntryPath(ctx: EntryContext, dir: string, name: string): string {
  return tarPath(ctx, join2(dir, name));
}

/**
 * A changeset layer (layer.md): added/modified entries, `.wh.NAME` for deleted,
 * `.wh..wh..opq` where a directory was replaced so that nothing of the lower one must
 * show through (none of its two or more lower children survives). Whiteout markers are empty regular files owned by root (or the forced
 * owner) with their directory's mtime, so the layer stays deterministic.
 */
export async function writeDiffLayer(lower: string, upper: string, out: Writable, opts: LayerOptions = {}): Promise<LayerResult> {
  checkLayerOptions(opts);
  const { trees, ops } = await diffOps(lower, upper);
  const ctx: EntryContext = {
    opts,
    prefix: normalizePrefix(opts.prefix ?? ''),
    xattrs: trees.upperXattrs,
    links: new HardlinkMap(),
  };
  return writeLayerStream(out, opts, async (tar) => {
    for await (const op of ops) {
      if (op.op === 'entry') {
        await writeFsEntry(tar, ctx, op.w);
        continue;
      }
      const rel = op.op === 'whiteout' ? op.rel : op.dir;
      const slash = rel.lastIndexOf('/');
      const path =
        op.op === 'whiteout'
          ? markerEntryPath(ctx, rel.slice(0, Math.max(slash, 0)), WHITEOUT_PREFIX + rel.slice(slash + 1))
          : markerEntryPath(ctx, op.dir, OPAQUE_WHITEOUT);
      await tar.addEntry({
        path,
        type: 'file',
        mode: 0,
        uid: opts.uid ?? 0,
        gid: opts.gid ?? 0,
        mtime: clampMtime(ctx, Math.floor(op.parent.mtimeMs / 1000)),
        size: 0,
      });
    }
  });
}
