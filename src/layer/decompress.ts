/** The decompressor for a layer blob, strict about truncation, and clear errors for bad streams. */
import { pipeline, type Readable, type Transform } from 'node:stream';
import { DigestingStream } from '../base/digest.js';
import { BerthError, isBerthError } from '../base/errors.js';
import { decompressorForMediaType } from './compress.js';

/** A layer blob's descriptor fields that its bytes are checked against. */
export interface BlobDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/**
 * A Transform that decompresses a layer of `mediaType`; a truncated stream (missing data or
 * trailer) is an error, not a short tar (compress.ts finishes gzip without Z_SYNC_FLUSH).
 */
export function layerDecompressor(mediaType: string): Transform {
  return decompressorForMediaType(mediaType);
}

/**
 * The uncompressed tar of a layer blob: blob → digest and size check → decompressor (→ `after`,
 * e.g. a read-ahead buffer). A failure anywhere destroys the returned stream with the error, so
 * it surfaces where the tar is read; an unknown media type throws at once (the blob destroyed).
 */
export function verifiedTar(blob: Readable, layer: BlobDescriptor, after?: Transform): Readable {
  const verifier = new DigestingStream({ expectedDigest: layer.digest, expectedSize: layer.size });
  let decompressor: Transform;
  try {
    decompressor = layerDecompressor(layer.mediaType);
  } catch (err) {
    blob.destroy();
    throw err;
  }
  const done = () => {
    // failures reach the reader through the destroyed last stream
  };
  return (after ? pipeline(blob, verifier, decompressor, after, done) : pipeline(blob, verifier, decompressor, done)) as unknown as Readable;
}

/** Turns a zlib/zstd failure into LAYER_INVALID with what to do; other errors pass through. */
export function describeStreamError(err: unknown, what: string): unknown {
  if (isBerthError(err)) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && e.code.startsWith('Z_')) {
    return new BerthError(
      'LAYER_INVALID',
      `${what}: the compressed stream is ${e.code === 'Z_BUF_ERROR' ? 'truncated' : 'corrupt'} (${e.message}); fetch the blob again`,
      { cause: err },
    );
  }
  if (e instanceof Error && /zstd|ZSTD|frame|Unknown frame descriptor|corrupted/i.test(e.message) && !('errno' in e)) {
    return new BerthError('LAYER_INVALID', `${what}: the zstd stream is corrupt or truncated (${e.message}); fetch the blob again`, {
      cause: err,
    });
  }
  return err;
}
