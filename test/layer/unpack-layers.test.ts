import { test, describe, before } from 'node:test';
import { scratchDir } from '../helpers/scratch.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { unpackLayers, type LayerSource } from '../../src/layer/unpack-layers.js';
import { compressStream, type LayerCompression } from '../../src/layer/compress.js';
import { readAll } from '../../src/base/read.js';
import { MediaType } from '../../src/base/media-types.js';
import { isBerthError } from '../../src/base/errors.js';
import { sha256, tarArchive, type FixtureEntry } from './tar-fixture.js';
import { writeOciLayout } from './oci-fixture.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const MEDIA: Record<LayerCompression, string> = {
  none: MediaType.layerTar,
  gzip: MediaType.layerTarGzip,
  zstd: MediaType.layerTarZstd,
};

interface Built {
  source: LayerSource;
  blob: Buffer;
  tar: Buffer;
}

async function layer(entries: FixtureEntry[], c: LayerCompression, events?: string[], index?: number): Promise<Built> {
  const tar = tarArchive(entries);
  const blob = await readAll(Readable.from([tar]).pipe(compressStream(c)), 1 << 30);
  return {
    tar,
    blob,
    source: {
      mediaType: MEDIA[c],
      digest: sha256(blob),
      size: blob.length,
      diffId: sha256(tar),
      open: async () => {
        events?.push(`open ${index}`);
        return Readable.from([blob]);
      },
    },
  };
}

const LAYERS: FixtureEntry[][] = [
  [
    { path: 'etc/', type: 'dir' },
    { path: 'etc/os-release', body: 'ID=test\n' },
    { path: 'etc/old.conf', body: 'old' },
    { path: 'bin/', type: 'dir' },
    { path: 'bin/busybox', body: Buffer.alloc(200_000, 1), mode: 0o755 },
    { path: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { path: 'opt/app/lib/a.so', body: 'a' },
    { path: 'usr/bin/su', body: 'su', mode: 0o4755 },
  ],
  [
    { path: 'etc/.wh.old.conf' },
    { path: 'etc/new.conf', body: 'new' },
    { path: 'bin/ls', type: 'hardlink', linkname: 'bin/busybox' },
    { path: 'opt/app/', type: 'dir' },
    { path: 'opt/app/.wh..wh..opq' },
    { path: 'opt/app/bin/app', body: 'v2', mode: 0o755 },
  ],
  [
    { path: 'etc/os-release', body: 'ID=test\nVERSION=2\n' },
    { path: '.wh.usr' },
    { path: 'var/log/', type: 'dir', mode: 0o750 },
  ],
];

function tree(dir: string): string {
  return execFileSync('find', ['.', '-printf', '%p %y %m %U:%G %s %n %l\n'], { cwd: dir, encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('. '))
    .sort()
    .join('\n');
}

describe('unpackLayers', () => {
  const scratch = scratchDir('berth-unpack-layers-');
  const fresh = () => scratch.fresh();

  test('applies gzip, zstd and plain layers in order with whiteouts, reporting each layer', async () => {
    const built = [await layer(LAYERS[0]!, 'gzip'), await layer(LAYERS[1]!, 'zstd'), await layer(LAYERS[2]!, 'none')];
    const root = fresh();
    const seen: number[] = [];
    const results = await unpackLayers(root, built.map((b) => b.source), { onLayer: (i) => seen.push(i) });
    assert.deepEqual(seen, [0, 1, 2]);
    assert.deepEqual(results.map((r) => r.diffId), built.map((b) => sha256(b.tar)));
    assert.deepEqual(results.map((r) => r.bytes), built.map((b) => b.tar.length));
    assert.equal(tree(root), [
      './bin d 755 0:0 4096 2 ',
      './bin/busybox f 755 0:0 200000 2 ',
      './bin/ls f 755 0:0 200000 2 ',
      './bin/sh l 777 0:0 7 1 busybox',
      './etc d 755 0:0 4096 2 ',
      './etc/new.conf f 644 0:0 3 1 ',
      './etc/os-release f 644 0:0 18 1 ',
      './opt d 755 0:0 4096 3 ',
      './opt/app d 755 0:0 4096 3 ',
      './opt/app/bin d 755 0:0 4096 2 ',
      './opt/app/bin/app f 755 0:0 2 1 ',
      './var d 755 0:0 4096 3 ',
      './var/log d 750 0:0 4096 2 ',
    ].join('\n'));
  });

  test('a diffId that does not match rootfs.diff_ids is an error naming the layer', async () => {
    const built = [await layer(LAYERS[0]!, 'gzip'), await layer(LAYERS[1]!, 'gzip')];
    built[1]!.source.diffId = sha256(Buffer.from('something else'));
    await assert.rejects(unpackLayers(fresh(), built.map((b) => b.source)), (e) => {
      return isBerthError(e, 'DIGEST_MISMATCH') && /layer 1 .*rootfs\.diff_ids\[1\]/.test(e.message);
    });
  });

  test('a blob whose digest or size does not match its descriptor is an error', async () => {
    const good = await layer(LAYERS[0]!, 'gzip');
    const wrongDigest = { ...good.source, digest: sha256(Buffer.from('other')) };
    await assert.rejects(unpackLayers(fresh(), [wrongDigest]), (e) => isBerthError(e, 'DIGEST_MISMATCH') && /layer 0/.test(e.message));
    const wrongSize = { ...good.source, size: good.blob.length - 1 };
    await assert.rejects(unpackLayers(fresh(), [wrongSize]), (e) => isBerthError(e, 'SIZE_MISMATCH'));
  });

  test('an unsafe entry names the layer it is in', async () => {
    const built = [await layer(LAYERS[0]!, 'gzip'), await layer([{ path: '../escape', body: 'x' }], 'gzip')];
    await assert.rejects(unpackLayers(fresh(), built.map((b) => b.source)), (e) => isBerthError(e, 'UNSAFE_PATH') && /^layer 1 \(sha256:/.test(e.message));
  });

  test('a truncated gzip blob (its digest matching the truncated bytes) is an error', async () => {
    const tar = tarArchive([{ path: 'f', body: randomBytes(300_000) }]);
    const full = gzipSync(tar);
    const blob = full.subarray(0, 5000);
    assert.ok(full.length > 100_000);
    const source: LayerSource = {
      mediaType: MediaType.layerTarGzip,
      digest: sha256(blob),
      size: blob.length,
      diffId: sha256(tar),
      open: async () => Readable.from([blob]),
    };
    await assert.rejects(unpackLayers(fresh(), [source]), (e) => isBerthError(e, 'LAYER_INVALID') && /truncated/.test(e.message));
  });

  test('invalid descriptors are refused before anything is opened', async () => {
    const built = await layer(LAYERS[0]!, 'gzip');
    let opened = false;
    const bad = { ...built.source, digest: 'sha256:nothex', open: async () => ((opened = true), Readable.from([])) };
    await assert.rejects(unpackLayers(fresh(), [bad]), (e) => isBerthError(e, 'DESCRIPTOR_INVALID'));
    assert.equal(opened, false);
  });

  test('the next layer is opened and decompressed while the current one is written (concurrency)', async () => {
    for (const [concurrency, expected] of [
      [2, ['open 0', 'open 1', 'applied 0', 'open 2', 'applied 1', 'applied 2']],
      [1, ['open 0', 'applied 0', 'open 1', 'applied 1', 'open 2', 'applied 2']],
    ] as const) {
      const events: string[] = [];
      const built = await Promise.all(LAYERS.map((entries, i) => layer(entries, 'gzip', events, i)));
      await unpackLayers(fresh(), built.map((b) => b.source), { concurrency, onLayer: (i) => events.push(`applied ${i}`) });
      assert.deepEqual(events, expected, `concurrency ${concurrency}`);
    }
  });

  test('same root filesystem as umoci unpack of the same OCI layout', { skip: skipUnless(root('umoci unpack'), peer('umoci', 'umoci')) }, async () => {
    const files = await Promise.all(
      LAYERS.map(async (entries, i) => {
        const built = await layer(entries, 'gzip');
        const file = join(scratch.path, `umoci-layer-${i}.tar.gz`);
        writeFileSync(file, built.blob);
        return { mediaType: MediaType.layerTarGzip, file, diffId: sha256(built.tar) };
      }),
    );
    const layout = join(scratch.path, 'layout');
    const sources = await writeOciLayout(layout, 'v1', files);
    const bundle = join(scratch.path, 'umoci-bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:v1`, bundle], { stdio: 'pipe' });
    const ours = fresh();
    await unpackLayers(ours, sources);
    const theirs = join(bundle, 'rootfs');
    assert.equal(tree(ours), tree(theirs));
    assert.equal(readFileSync(join(ours, 'etc/os-release'), 'utf8'), readFileSync(join(theirs, 'etc/os-release'), 'utf8'));
    assert.equal(lstatSync(join(ours, 'bin/ls')).ino, lstatSync(join(ours, 'bin/busybox')).ino);
  });
});
