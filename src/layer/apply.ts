/**
 * Applying a layer changeset onto a root directory (image-spec layer.md "Applying Changesets"):
 * whiteouts and opaque whiteouts, replacement of existing paths, hardlinks, modes, ownership,
 * times, xattrs, devices. Every path is resolved inside the root by SafeRoot.
 */
import { createHash } from 'node:crypto';
import { realpathSync, statSync } from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { LayerApplier } from './layer-applier.js';
import { TarParser } from './tar-parser.js';
import { describeStreamError, layerDecompressor } from './decompress.js';

export interface ApplyOptions {
  /** Keep ownership from the archive (default: true when running as root). When false, files are owned by the caller and the archive's ownership is recorded in `ownership` of the result. */
  preserveOwnership?: boolean;
  /** Map archive uid/gid to host ids (rootless). */
  idMap?: { uid: (id: number) => number; gid: (id: number) => number };
  /** Create character and block devices (default: true when running as root). When false they are skipped and noted. */
  allowDevices?: boolean;
  /** Clear setuid/setgid bits on non-directories (default: false). */
  dropSetuid?: boolean;
  /**
   * How whiteouts are written (default 'apply'). 'apply' applies them to what the root holds
   * (layer.md "Whiteouts"): the root is the flattened image. 'overlay' unpacks ONE layer into an
   * empty directory in the overlayfs format, to be stacked as a lower dir: a whiteout becomes a
   * 0/0 character device and an opaque whiteout the `trusted.overlay.opaque=y` xattr (needs root);
   * `trusted.overlay.*` xattrs in the archive are dropped, since they would steer overlayfs.
   */
  whiteouts?: 'apply' | 'overlay';
}

export interface ApplyResult {
  diffId: string;
  entries: number;
  bytes: number;
  /** Ownership that could not be applied (not root): path → {uid,gid} */
  ownership?: Map<string, { uid: number; gid: number }>;
  /** What was not applied and why (skipped devices, xattrs that could not be set). */
  notes?: string[];
}

/** The root as an absolute real path; NOT_FOUND/LAYER_INVALID if it is missing or not a directory. */
export function realRoot(root: string): string {
  let real: string;
  try {
    real = realpathSync(root);
  } catch (err) {
    throw new BerthError('NOT_FOUND', `cannot unpack into ${root}: it does not exist; create the directory first`, {
      cause: err,
    });
  }
  if (!statSync(real).isDirectory()) {
    throw new BerthError('USAGE', `cannot unpack into ${root}: it is not a directory`);
  }
  return real;
}

/** Applies an uncompressed tar stream onto `root`; the diffId is the sha256 of the stream. */
export async function applyTarStream(root: string, tar: Readable, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const applier = new LayerApplier(realRoot(root), opts);
  const parser = new TarParser(applier);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of tar as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      parser.write(chunk);
    }
    parser.end();
    applier.finish();
  } catch (err) {
    applier.abort();
    tar.destroy();
    throw err;
  }
  const result: ApplyResult = { diffId: `sha256:${hash.digest('hex')}`, entries: parser.entries, bytes };
  if (applier.ownership.size > 0) result.ownership = applier.ownership;
  if (applier.notes.length > 0) result.notes = applier.notes;
  return result;
}

/** Applies one layer (the compressed blob stream + its media type) onto `root`, handling whiteouts and opaque dirs, dir↔file replacement, hardlinks; returns the diffId (sha256 of the uncompressed tar). */
export function applyLayer(root: string, blob: Readable, mediaType: string, opts?: ApplyOptions): Promise<ApplyResult> {
  let decompressor: Readable;
  try {
    decompressor = layerDecompressor(mediaType);
  } catch (err) {
    blob.destroy();
    return Promise.reject(err);
  }
  const tar = pipeline(blob, decompressor as NodeJS.WritableStream & Readable, () => {
    // Errors reach the consumer through the destroyed last stream.
  });
  return applyTarStream(root, tar as unknown as Readable, opts).catch((err: unknown) => {
    throw describeStreamError(err, 'cannot apply the layer');
  });
}
