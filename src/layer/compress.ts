/** Streaming compression for layers: gzip (node:zlib), zstd (zstd-napi), or none. */
import { PassThrough, type Transform } from 'node:stream';
import { lazyRequire } from '../base/lazy-require.js';
import type * as Zlib from 'node:zlib';
import { BerthError } from '../base/errors.js';
import { layerCompression, type LayerCompression } from '../base/media-types.js';

// (Lazy: a warm `run` reads no layer; node:zlib costs each start-up a few ms.)
const zlib = lazyRequire<typeof Zlib>('node:zlib');

export type { LayerCompression };

interface ZstdModule {
  CompressStream: new (params?: { compressionLevel?: number; checksumFlag?: boolean }) => Transform;
  DecompressStream: new () => Transform;
}

/** Loaded lazily: only zstd layers pay for the native addon. */
const loadZstd = lazyRequire<ZstdModule>('zstd-napi');

export interface CompressOptions {
  /** gzip 1-9 (default 6, what `gzip` uses); zstd 1-19 (default 3, what `zstd` uses). */
  level?: number;
}

/** A Transform that compresses what is written to it. */
export function compressStream(compression: LayerCompression, opts: CompressOptions = {}): Transform {
  switch (compression) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      // The gzip header carries no name or mtime (zlib writes none), so the output is deterministic.
      return zlib().createGzip({ level: opts.level ?? 6, chunkSize: 64 * 1024 });
    case 'zstd':
      return new (loadZstd().CompressStream)({ compressionLevel: opts.level ?? 3 });
  }
}

/** A Transform that decompresses what is written to it. */
export function decompressStream(compression: LayerCompression): Transform {
  switch (compression) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      // Concatenated gzip members decode as one stream; a truncated stream is an error
      // (no Z_SYNC_FLUSH finish, which would accept a cut-off layer silently).
      return zlib().createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd':
      return new (loadZstd().DecompressStream)();
  }
}

/** The decompressor for a layer media type; LAYER_INVALID for a type that is not a known layer. */
export function decompressorForMediaType(mediaType: string): Transform {
  const c = layerCompression(mediaType);
  if (c === undefined) {
    throw new BerthError(
      'MEDIA_TYPE_UNKNOWN',
      `cannot unpack a layer of media type ${JSON.stringify(mediaType)}: berth knows tar, tar+gzip and tar+zstd layers`,
    );
  }
  return decompressStream(c);
}

/** Sniffs the compression of a stream from its first bytes (for archives whose media type lies). */
export function sniffCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}
