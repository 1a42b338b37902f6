/**
 * applyBlob (src/layer/unpack-pool.ts): a layer blob applied in a worker thread gives what the
 * calling thread gives (tree, diffID, usage), and every failure crosses the thread boundary with
 * its code: a wrong digest or size, a corrupt stream, an unknown media type, an unsafe entry, a
 * failing source. The hostile archives of apply-security.test.ts also run through the worker.
 */
import { test, describe } from 'node:test';
import { scratchDir } from '../helpers/scratch.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { MediaType } from '../../src/base/media-types.js';
import { isBerthError } from '../../src/base/errors.js';
import { readAll } from '../../src/base/read.js';
import { compressStream, type LayerCompression } from '../../src/layer/compress.js';
import { describeStreamError } from '../../src/layer/decompress.js';
import { applyBlob, WORKER_MIN_BYTES } from '../../src/layer/unpack-pool.js';
import { diskUsage } from '../../src/layer/walk.js';
import { sha256, tarArchive, type FixtureEntry } from './tar-fixture.js';
import { root as asRoot, skipUnless } from '../helpers/requirements.js';

const MEDIA: Record<LayerCompression, string> = { none: MediaType.layerTar, gzip: MediaType.layerTarGzip, zstd: MediaType.layerTarZstd };

const ENTRIES: FixtureEntry[] = [
  { path: 'bin/', type: 'dir', mode: 0o755 },
  { path: 'bin/busybox', body: Buffer.alloc(300_000, 7), mode: 0o755 },
  { path: 'bin/sh', type: 'symlink', linkname: 'busybox' },
  { path: 'bin/ls', type: 'hardlink', linkname: 'bin/busybox' },
  { path: 'etc/', type: 'dir', mode: 0o755 },
  { path: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644, uid: 0, gid: 0 },
  { path: 'home/', type: 'dir', mode: 0o755 },
  { path: 'home/user/', type: 'dir', mode: 0o700, uid: 1000, gid: 1000 },
  { path: 'home/user/notes', body: 'hello', mode: 0o600, uid: 1000, gid: 1000 },
];

async function blobOf(entries: FixtureEntry[], c: LayerCompression) {
  const tar = tarArchive(entries);
  const blob = await readAll(Readable.from([tar]).pipe(compressStream(c)), 1 << 30);
  return { tar, blob, layer: { mediaType: MEDIA[c], digest: sha256(blob), size: blob.length } };
}

/** The blob in small chunks, as a download delivers it (several feed messages to the worker). */
function chunked(blob: Buffer, size = 16 * 1024): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < blob.length; i += size) parts.push(blob.subarray(i, i + size));
  return Readable.from(parts);
}

/** Every entry but the root (made by the test): type, mode, owner, size, links, target, mtime. */
function tree(dir: string): string {
  return execFileSync('find', ['.', '-mindepth', '1', '-printf', '%p %y %m %U:%G %s %n %l %T@\n'], { cwd: dir, encoding: 'utf8' }).split('\n').sort().join('\n');
}

describe('applyBlob in unpack worker threads', () => {
  const scratch = scratchDir('berth-unpack-pool-');
  const fresh = () => scratch.fresh();

  for (const c of ['gzip', 'zstd', 'none'] as const) {
    test(`a ${c} layer unpacks in a worker as on the calling thread: same tree, diffID and usage`, async () => {
      const { tar, blob, layer } = await blobOf(ENTRIES, c);
      const here = fresh();
      const there = fresh();
      const a = await applyBlob(here, chunked(blob), layer, { usage: true, thread: 'caller' });
      const b = await applyBlob(there, chunked(blob), layer, { usage: true, thread: 'worker' });
      assert.equal(a.inWorker, false);
      assert.equal(b.inWorker, true);
      assert.equal(b.result.diffId, sha256(tar));
      assert.equal(b.result.diffId, a.result.diffId);
      assert.equal(b.result.entries, a.result.entries);
      assert.equal(b.result.bytes, tar.length);
      assert.deepEqual(b.usage, diskUsage(there));
      assert.equal(tree(there), tree(here));
    });
  }

  test('more layers than threads: each waits for a free worker, all complete', async () => {
    const saved = process.env.BERTH_UNPACK_THREADS;
    process.env.BERTH_UNPACK_THREADS = '1';
    try {
      const layers = await Promise.all([0, 1, 2, 3].map((i) => blobOf([{ path: `d${i}/f`, body: `layer ${i}` }], 'gzip')));
      const roots = layers.map(() => fresh());
      const results = await Promise.all(layers.map((l, i) => applyBlob(roots[i]!, chunked(l.blob), l.layer, { thread: 'worker' })));
      assert.deepEqual(results.map((r) => r.result.diffId), layers.map((l) => sha256(l.tar)));
      assert.ok(results.every((r) => r.inWorker));
      roots.forEach((r, i) => assert.ok(lstatSync(join(r, `d${i}`, 'f')).isFile()));
    } finally {
      if (saved === undefined) delete process.env.BERTH_UNPACK_THREADS;
      else process.env.BERTH_UNPACK_THREADS = saved;
    }
  });

  test('big blobs by default: the calling thread takes one, a worker the next; BERTH_UNPACK_THREADS=0: all on the calling thread', async () => {
    const saved = process.env.BERTH_UNPACK_THREADS;
    try {
      const big = await Promise.all([0, 1, 2].map((i) => blobOf([{ path: `big${i}`, body: randomBytes(WORKER_MIN_BYTES + 1000) }], 'gzip')));
      const applyAll = () => Promise.all(big.map((b) => applyBlob(fresh(), chunked(b.blob), b.layer)));
      process.env.BERTH_UNPACK_THREADS = '1';
      const mixed = await applyAll();
      assert.deepEqual(mixed.map((r) => r.result.diffId), big.map((b) => sha256(b.tar)));
      assert.ok(mixed.some((r) => r.inWorker) && mixed.some((r) => !r.inWorker), 'both the caller and the worker applied some');
      process.env.BERTH_UNPACK_THREADS = '0';
      assert.ok((await applyAll()).every((r) => !r.inWorker));
    } finally {
      if (saved === undefined) delete process.env.BERTH_UNPACK_THREADS;
      else process.env.BERTH_UNPACK_THREADS = saved;
    }
  });

  test('a wrong digest or size fails with its code', async () => {
    const { blob, layer } = await blobOf(ENTRIES, 'gzip');
    await assert.rejects(applyBlob(fresh(), chunked(blob), { ...layer, digest: sha256(Buffer.from('x')) }, { thread: 'worker' }), (e) => isBerthError(e, 'DIGEST_MISMATCH'));
    await assert.rejects(applyBlob(fresh(), chunked(blob), { ...layer, size: layer.size + 1 }, { thread: 'worker' }), (e) => isBerthError(e, 'SIZE_MISMATCH'));
  });

  test('a corrupt gzip stream keeps its zlib code (describeStreamError makes it LAYER_INVALID)', async () => {
    const { blob } = await blobOf(ENTRIES, 'gzip');
    const bad = Buffer.from(blob);
    bad.fill(0xff, 20, 200);
    const layer = { mediaType: MediaType.layerTarGzip, digest: sha256(bad), size: bad.length };
    await assert.rejects(applyBlob(fresh(), chunked(bad), layer, { thread: 'worker' }), (e) => {
      assert.match((e as NodeJS.ErrnoException).code ?? '', /^Z_/);
      return isBerthError(describeStreamError(e, 'cannot unpack'), 'LAYER_INVALID');
    });
  });

  test('an unknown media type and an unsafe entry fail with their codes', async () => {
    const { blob, layer } = await blobOf(ENTRIES, 'none');
    await assert.rejects(applyBlob(fresh(), chunked(blob), { ...layer, mediaType: 'application/x-nope' }, { thread: 'worker' }), (e) => isBerthError(e) && /media type/.test(e.message));
    const hostile = await blobOf([{ path: '../escape', body: 'x' }], 'gzip');
    const r = fresh();
    await assert.rejects(applyBlob(r, chunked(hostile.blob), hostile.layer, { thread: 'worker' }), (e) => isBerthError(e, 'UNSAFE_PATH'));
    assert.equal(lstatSync(join(r, '..', 'escape'), { throwIfNoEntry: false }), undefined);
  });

  test('a source that fails midway rejects with its own error, and the worker takes the next job', async () => {
    const { blob, layer } = await blobOf(ENTRIES, 'gzip');
    const failing = new Readable({
      read() {
        this.push(blob.subarray(0, 1000));
        this.destroy(new Error('connection reset by the test'));
      },
    });
    await assert.rejects(applyBlob(fresh(), failing, layer, { thread: 'worker' }), /connection reset by the test/);
    const ok = await applyBlob(fresh(), chunked(blob), layer, { thread: 'worker' });
    assert.equal(ok.inWorker, true);
  });

  test('overlay whiteouts from a worker: a 0/0 character device', { skip: skipUnless(asRoot('whiteout devices need mknod')) }, async () => {
    const { blob, layer } = await blobOf([{ path: 'etc/', type: 'dir' }, { path: 'etc/.wh.old' }], 'gzip');
    const r = fresh();
    const res = await applyBlob(r, chunked(blob), layer, { apply: { whiteouts: 'overlay' }, thread: 'worker' });
    assert.equal(res.inWorker, true);
    const st = lstatSync(join(r, 'etc', 'old'));
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, 0);
  });
});
