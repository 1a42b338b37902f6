/**
 * The output side of layer creation: tar bytes → sha256 (diffID) → compressor → sha256
 * (digest) → the caller's stream, all streaming, plus the mapping from files on disk to
 * tar entries shared by full and changeset layers.
 */
import { createHash, type Hash } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { ociLayerMediaType } from '../base/media-types.js';
import { compressStream } from './compress.js';
import { TarWriter, type TarEntry } from './tar-writer.js';
import { deviceNumbers, type WalkEntry } from './walk.js';
import type { TreeXattrs } from './xattrs.js';

export interface LayerOptions {
  compression?: 'none' | 'gzip' | 'zstd';
  /** gzip 1-9 (default 6, as gzip(1), docker and containerd), zstd 1-19 (default 3). */
  level?: number;
  /** Clamp mtimes to this (SOURCE_DATE_EPOCH, seconds). */
  sourceDateEpoch?: number;
  /** Force every entry's owner, e.g. 0. */
  uid?: number;
  gid?: number;
  /** Put the tree under this directory in the layer (e.g. "app" → "app/bin/x"). */
  prefix?: string;
}

export interface LayerResult {
  /** sha256 of the compressed blob. */
  digest: string;
  /** Size of the compressed blob in bytes. */
  size: number;
  /** sha256 of the uncompressed tar (the image config's rootfs.diff_ids). */
  diffId: string;
  mediaType: string;
}

class HashingPassThrough extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

export function checkLayerOptions(opts: LayerOptions): void {
  const c = opts.compression ?? 'gzip';
  if (c !== 'none' && c !== 'gzip' && c !== 'zstd') {
    throw new BerthError('USAGE', `unknown layer compression ${JSON.stringify(c)}: use none, gzip or zstd`);
  }
  if (opts.level !== undefined) {
    const [lo, hi] = c === 'zstd' ? [1, 19] : [1, 9];
    if (!Number.isInteger(opts.level) || opts.level < lo || opts.level > hi) {
      throw new BerthError('USAGE', `compression level ${opts.level} is out of range for ${c}: use ${lo}-${hi}`);
    }
  }
  for (const k of ['sourceDateEpoch', 'uid', 'gid'] as const) {
    const v = opts[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
      throw new BerthError('USAGE', `${k} must be a non-negative integer, got ${v}`);
    }
  }
  if (opts.prefix !== undefined) normalizePrefix(opts.prefix);
}

/** "a/b/" or "/a/b" → "a/b"; refuses '..' and empty components. */
export function normalizePrefix(prefix: string): string {
  const parts = prefix.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..' || p.includes('\0')) {
      throw new BerthError('UNSAFE_PATH', `layer prefix ${JSON.stringify(prefix)} must be a plain relative directory path (no '..')`);
    }
  }
  return parts.join('/');
}

/**
 * Runs `produce` with a TarWriter whose bytes flow through hashing and compression into
 * `out` (which is ended). Returns the digests once everything has been written.
 */
export async function writeLayerStream(
  out: Writable,
  opts: LayerOptions,
  produce: (tar: TarWriter) => Promise<void>,
): Promise<LayerResult> {
  checkLayerOptions(opts);
  const compression = opts.compression ?? 'gzip';
  const uncompressed = new HashingPassThrough({ highWaterMark: 4 * 1024 * 1024 });
  const compressed = compression === 'none' ? undefined : new HashingPassThrough();
  const stages =
    compressed === undefined
      ? pipeline(uncompressed, out)
      : pipeline(uncompressed, compressStream(compression, { level: opts.level }), compressed, out);
  // Observed now so that an early failure is not an unhandled rejection; awaited below.
  stages.catch(() => undefined);
  const tar = new TarWriter(uncompressed);
  try {
    await produce(tar);
    await tar.finish();
  } catch (err) {
    uncompressed.destroy(err as Error);
    await stages.catch(() => undefined);
    throw err;
  }
  await stages;
  const diffId = `sha256:${uncompressed.hash.digest('hex')}`;
  const last = compressed ?? uncompressed;
  return {
    digest: compressed === undefined ? diffId : `sha256:${compressed.hash.digest('hex')}`,
    size: last.bytes,
    diffId,
    mediaType: ociLayerMediaType(compression),
  };
}

/** Tracks hardlinks (layer.md "Hardlinks"): the first path of an inode is its link target. */
export class HardlinkMap {
  private readonly first = new Map<string, string>();
  /** The earlier path this entry is a hardlink of, or undefined (and it is recorded). */
  linkTarget(w: WalkEntry, tarPath: string): string | undefined {
    if (w.kind === 'dir' || w.stat.nlink < 2) return undefined;
    const key = `${w.stat.dev}:${w.stat.ino}`;
    const seen = this.first.get(key);
    if (seen !== undefined) return seen;
    this.first.set(key, tarPath);
    return undefined;
  }
}

export interface EntryContext {
  opts: LayerOptions;
  /** Normalized prefix, '' for none. */
  prefix: string;
  xattrs: TreeXattrs;
  links: HardlinkMap;
}

export function tarPath(ctx: EntryContext, rel: string): string {
  return ctx.prefix === '' ? rel : `${ctx.prefix}/${rel}`;
}

export function clampMtime(ctx: EntryContext, mtime: number): number {
  const sde = ctx.opts.sourceDateEpoch;
  return sde !== undefined && mtime > sde ? sde : mtime;
}

/** The tar entry for a file on disk, or undefined for what tar cannot carry (sockets). */
export function tarEntryFor(ctx: EntryContext, w: WalkEntry): TarEntry | undefined {
  if (w.kind === 'socket') return undefined;
  const path = tarPath(ctx, w.rel);
  const e: TarEntry = {
    path,
    type: w.kind,
    mode: w.stat.mode & 0o7777,
    uid: ctx.opts.uid ?? w.stat.uid,
    gid: ctx.opts.gid ?? w.stat.gid,
    mtime: clampMtime(ctx, Math.floor(w.stat.mtimeMs / 1000)),
  };
  const xattrs = ctx.xattrs.get(w.rel);
  if (xattrs) e.xattrs = xattrs;
  const target = ctx.links.linkTarget(w, path);
  if (target !== undefined) {
    e.type = 'hardlink';
    e.linkname = target;
    return e;
  }
  switch (w.kind) {
    case 'file':
      e.size = w.stat.size;
      break;
    case 'symlink':
      e.linkname = readlinkSync(w.abs);
      break;
    case 'char':
    case 'block': {
      const { major, minor } = deviceNumbers(w.stat.rdev);
      e.devmajor = major;
      e.devminor = minor;
      break;
    }
    default:
      break;
  }
  return e;
}

/** Writes one file-system entry (file bodies read straight from disk). */
export async function writeFsEntry(tar: TarWriter, ctx: EntryContext, w: WalkEntry): Promise<boolean> {
  const e = tarEntryFor(ctx, w);
  if (e === undefined) return false;
  if (e.type === 'file') await tar.addFile(e, w.abs);
  else await tar.addEntry(e);
  return true;
}

/** Directory entries for the components of a prefix ("a/b" → "a/", "a/b/"). */
export async function writePrefixDirs(tar: TarWriter, ctx: EntryContext, root: WalkEntry): Promise<void> {
  if (ctx.prefix === '') return;
  const parts = ctx.prefix.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const last = i === parts.length;
    // The innermost prefix directory stands for the tree's root and takes its attributes.
    await tar.addEntry({
      path: parts.slice(0, i).join('/'),
      type: 'dir',
      mode: last ? root.stat.mode & 0o7777 : 0o755,
      uid: ctx.opts.uid ?? (last ? root.stat.uid : 0),
      gid: ctx.opts.gid ?? (last ? root.stat.gid : 0),
      mtime: clampMtime(ctx, Math.floor(root.stat.mtimeMs / 1000)),
    });
  }
}
