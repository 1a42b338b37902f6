/** The decompressor for a layer blob, strict about truncation, and clear errors for bad streams. */
import type { Transform } from 'node:stream';
import { BerthError, isBerthError } from '../base/errors.js';
import { decompressorForMediaType } from './compress.js';

/**
 * A Transform that decompresses a layer of `mediaType`; a truncated stream (missing data or
 * trailer) is an error, not a short tar (compress.ts finishes gzip without Z_SYNC_FLUSH).
 */
export function layerDecompressor(mediaType: string): Transform {
  return decompressorForMediaType(mediaType);
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
