/** Layers of a whole directory tree (layer.md "Creating"). */
import { createWriteStream, lstatSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import {
  HardlinkMap,
  checkLayerOptions,
  normalizePrefix,
  writeFsEntry,
  writeLayerStream,
  writePrefixDirs,
  type EntryContext,
  type LayerOptions,
  type LayerResult,
} from './layer-output.js';
import { kindOf, walkTree } from './walk.js';
import { readTreeXattrs } from './xattrs.js';

export type { LayerOptions, LayerResult };

/** layer.md "Whiteouts": such a name cannot exist in a file system that a layer describes. */
export function refuseWhiteoutName(rel: string, tree: string): void {
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  if (base.startsWith('.wh.')) {
    throw new BerthError(
      'LAYER_INVALID',
      `${join(tree, rel)}: names starting with ".wh." are whiteout markers in layers and cannot be archived; rename the file`,
    );
  }
}

/**
 * Streams a layer of the whole tree at `dir` (sorted entries; hardlinks detected by
 * dev+ino; xattrs where present) into `out`, which is ended, returning digests of the
 * compressed (digest) and uncompressed (diffId) streams. The root directory itself gets no
 * entry (as docker and containerd do) unless `prefix` is set, in which case the prefix
 * directory carries the root's attributes. Sockets are skipped: tar cannot hold them.
 */
export async function writeLayerFromDir(dir: string, out: Writable, opts: LayerOptions = {}): Promise<LayerResult> {
  checkLayerOptions(opts);
  const rootStat = lstatSync(dir);
  if (!rootStat.isDirectory()) {
    throw new BerthError('USAGE', `${dir} is not a directory: a layer is created from a directory tree`);
  }
  const ctx: EntryContext = {
    opts,
    prefix: normalizePrefix(opts.prefix ?? ''),
    xattrs: await readTreeXattrs(dir),
    links: new HardlinkMap(),
  };
  return writeLayerStream(out, opts, async (tar) => {
    await writePrefixDirs(tar, ctx, { rel: '', abs: dir, stat: rootStat, kind: kindOf(rootStat) });
    for (const w of walkTree(dir)) {
      refuseWhiteoutName(w.rel, dir);
      await writeFsEntry(tar, ctx, w);
    }
  });
}

/** Writes `produce`'s stream to `file` atomically: temp file, fsync, rename, fsync of the directory. */
export async function writeFileAtomically<T>(file: string, produce: (out: Writable) => Promise<T>): Promise<T> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${Date.now()}`);
  try {
    const result = await produce(createWriteStream(tmp, { flags: 'wx' }));
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    const dh = await open(dirname(file), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return result;
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Same as writeLayerFromDir, into a file (atomic: temp + fsync + rename). */
export async function createLayerFile(dir: string, file: string, opts: LayerOptions = {}): Promise<LayerResult> {
  checkLayerOptions(opts);
  return writeFileAtomically(file, (out) => writeLayerFromDir(dir, out, opts));
}
