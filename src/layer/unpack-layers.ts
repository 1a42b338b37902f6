/**
 * Applying an image's layers in order onto a root. Layer N+1.. are fetched, verified and
 * decompressed ahead (into a bounded buffer) while layer N is written, so decompression of the
 * next layers overlaps the file writes of the current one.
 */
import { PassThrough, type Readable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { validateDigest } from '../base/digest.js';
import { applyTarStream, type ApplyOptions, type ApplyResult } from './apply.js';
import { describeStreamError, verifiedTar } from './decompress.js';

export interface LayerSource {
  mediaType: string;
  digest: string;
  size: number;
  diffId?: string;
  open(): Promise<Readable>;
}

export interface UnpackOptions extends ApplyOptions {
  /** Layers being fetched/decompressed at once, the one being written included (default 2). */
  concurrency?: number;
  onLayer?: (i: number, r: ApplyResult) => void;
}

/** Decompressed bytes buffered per layer read ahead: bounds memory to about concurrency × this. */
const AHEAD_BUFFER = 16 * 1024 * 1024;

interface Prepared {
  tar: Readable;
}

function describe(i: number, layer: LayerSource): string {
  return `layer ${i} (${layer.digest})`;
}

/** Opens a layer: blob → digest/size check → decompressor → bounded buffer, started immediately. */
async function prepare(layer: LayerSource): Promise<Prepared> {
  return { tar: verifiedTar(await layer.open(), layer, new PassThrough({ highWaterMark: AHEAD_BUFFER })) };
}

/** Applies layers in order onto root. Decompresses ahead in parallel (layer N+1 decompressing while N is written, bounded memory), verifies each layer's blob digest/size AND its diffId against the config's rootfs.diff_ids; a mismatch is an error that leaves a clear message. */
export async function unpackLayers(root: string, layers: LayerSource[], opts: UnpackOptions = {}): Promise<ApplyResult[]> {
  layers.forEach((layer, i) => {
    try {
      validateDigest(layer.digest);
      if (layer.diffId !== undefined) validateDigest(layer.diffId);
      if (layer.diffId !== undefined && !layer.diffId.startsWith('sha256:')) {
        throw new BerthError('UNSUPPORTED_ALGORITHM', `diffId ${layer.diffId} is not sha256: berth verifies diff_ids with sha256`);
      }
    } catch (err) {
      throw new BerthError('DESCRIPTOR_INVALID', `${describe(i, layer)}: ${(err as Error).message}`, { cause: err });
    }
    if (!Number.isSafeInteger(layer.size) || layer.size < 0) {
      throw new BerthError('DESCRIPTOR_INVALID', `${describe(i, layer)} has an invalid size ${layer.size}`);
    }
  });
  const concurrency = Math.max(1, opts.concurrency ?? 2);
  const pending: Array<Promise<Prepared> | undefined> = [];
  const start = (i: number) => {
    if (i < layers.length && pending[i] === undefined) {
      pending[i] = prepare(layers[i]!);
      pending[i]!.catch(() => {}); // awaited in order below; avoid an unhandled rejection meanwhile
    }
  };
  const results: ApplyResult[] = [];
  try {
    for (let i = 0; i < layers.length; i++) {
      for (let j = i; j < i + concurrency; j++) start(j);
      const layer = layers[i]!;
      const { tar } = await pending[i]!;
      let result: ApplyResult;
      try {
        result = await applyTarStream(root, tar, opts);
      } catch (err) {
        const e = describeStreamError(err, `cannot unpack ${describe(i, layer)}`);
        if (e !== err || !(e instanceof BerthError)) throw e;
        // Name the layer in every layer error; a corrupt blob also says what to do.
        const refetch = e.code === 'DIGEST_MISMATCH' || e.code === 'SIZE_MISMATCH' ? '; fetch the blob again' : '';
        throw new BerthError(e.code, `${describe(i, layer)}: ${e.message}; the root was partly written and must be discarded${refetch}`, {
          cause: err,
          detail: e.detail,
        });
      }
      if (layer.diffId !== undefined && layer.diffId !== result.diffId) {
        throw new BerthError(
          'DIGEST_MISMATCH',
          `${describe(i, layer)}: its uncompressed content hashes to ${result.diffId} but the image config's rootfs.diff_ids[${i}] is ${layer.diffId}; the image is corrupt (the root was partly written and must be discarded)`,
        );
      }
      pending[i] = undefined;
      results.push(result);
      opts.onLayer?.(i, result);
    }
  } finally {
    // Release layers opened ahead if we stopped early.
    for (const p of pending) p?.then(({ tar }) => tar.destroy(), () => {});
  }
  return results;
}
