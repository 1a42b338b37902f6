import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { compressStream, decompressStream, decompressorForMediaType, sniffCompression } from '../../src/layer/compress.js';
import { MediaType } from '../../src/base/media-types.js';
import { readAll } from '../../src/base/read.js';

async function through(data: Buffer, stage: NodeJS.ReadWriteStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([data]), stage, async (src: AsyncIterable<Buffer | string>) => {
    for await (const c of src) chunks.push(Buffer.from(c));
  });
  return Buffer.concat(chunks);
}

const payload = Buffer.concat([randomBytes(300_000), Buffer.alloc(700_000, 'berth ')]);

for (const c of ['none', 'gzip', 'zstd'] as const) {
  test(`${c}: compress then decompress gives the same bytes, and the format is recognisable`, async () => {
    const packed = await through(payload, compressStream(c));
    assert.equal(sniffCompression(packed.subarray(0, 4)), c);
    if (c !== 'none') assert.ok(packed.length < payload.length, 'compressed output is smaller');
    const unpacked = await through(packed, decompressStream(c));
    assert.ok(unpacked.equals(payload));
  });
}

test('gzip output is deterministic (no name or time in the header)', async () => {
  const a = await through(payload, compressStream('gzip'));
  const b = await through(payload, compressStream('gzip'));
  assert.ok(a.equals(b));
});

test('concatenated gzip members decode as one stream', async () => {
  const both = Buffer.concat([gzipSync('one '), gzipSync('two')]);
  assert.equal((await through(both, decompressStream('gzip'))).toString(), 'one two');
});

for (const c of ['gzip', 'zstd'] as const) {
  test(`${c}: a truncated stream is an error, never a silent short read`, async () => {
    const packed = await through(payload, compressStream(c));
    const cut = packed.subarray(0, Math.floor(packed.length / 2));
    await assert.rejects(through(cut, decompressStream(c)));
  });
}

test('decompressorForMediaType picks by media type and refuses unknown types', async () => {
  const packed = await through(payload, compressStream('zstd'));
  const out = await readAll(Readable.from([packed]).pipe(decompressorForMediaType(MediaType.layerTarZstd)), 10_000_000);
  assert.ok(out.equals(payload));
  assert.throws(() => decompressorForMediaType('application/vnd.example.layer+lz4'), /MEDIA_TYPE_UNKNOWN|cannot unpack/);
});
