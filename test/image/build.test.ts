import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { OciLayout } from '../../src/image/layout.js';
import { appendLayer, createImage, mutateImage, BASE_DIGEST_ANNOTATION } from '../../src/image/build.js';
import { loadImage } from '../../src/image/load-image.js';
import { digestStream, DigestingStream } from '../../src/base/digest.js';
import { decompressorForMediaType } from '../../src/layer/compress.js';
import { MediaType } from '../../src/base/media-types.js';
import { hostPlatform } from '../../src/image/platform.js';
import { isBerthError } from '../../src/base/errors.js';

async function diffIdOf(layout: OciLayout, desc: { mediaType: string; digest: string; size: number }): Promise<string> {
  const hasher = new DigestingStream();
  const sink = (async function* (src: AsyncIterable<Buffer>) {
    for await (const _ of src) void _;
  });
  await pipeline(await layout.fetch(desc), decompressorForMediaType(desc.mediaType), hasher, sink);
  return hasher.digest;
}

describe('createImage, appendLayer, mutateImage', () => {
  let tmp: string;
  let src: string;
  let extra: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-build-'));
    src = join(tmp, 'src');
    await mkdir(join(src, 'app'), { recursive: true });
    await writeFile(join(src, 'app', 'hello.txt'), 'hello\n');
    await writeFile(join(src, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    extra = join(tmp, 'extra');
    await mkdir(join(extra, 'app'), { recursive: true });
    await writeFile(join(extra, 'app', 'second.txt'), 'second layer\n');
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('createImage writes a correct config, manifest and tag; same epoch gives the same digest', async () => {
    const layout = await OciLayout.open(join(tmp, 'l1'), { create: true });
    const opts = {
      dir: src,
      tag: 'v1',
      entrypoint: ['/run.sh'],
      cmd: ['--verbose'],
      env: ['A=1', 'PATH=/bin'],
      workdir: '/app',
      user: '1000:1000',
      labels: { 'com.example.team': 'infra' },
      annotations: { 'org.opencontainers.image.title': 'demo' },
      exposedPorts: ['8080', '53/udp'],
      volumes: ['/data'],
      stopSignal: 'SIGINT',
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      sourceDateEpoch: 1700000000,
    };
    const desc = await createImage(layout, opts);
    assert.equal(desc.mediaType, MediaType.imageManifest);
    assert.deepEqual(await layout.resolve('v1'), desc);
    const img = await loadImage(layout, 'v1');
    assert.equal(img.manifest.layers.length, 1);
    assert.equal(img.manifest.layers[0]!.mediaType, MediaType.layerTarGzip);
    assert.deepEqual(img.manifest.annotations, { 'org.opencontainers.image.title': 'demo' });
    const c = img.config;
    assert.equal(c.created, '2023-11-14T22:13:20Z');
    assert.equal(c.architecture, 'arm64');
    assert.equal(c.variant, 'v8');
    assert.deepEqual(c.config, {
      Entrypoint: ['/run.sh'],
      Cmd: ['--verbose'],
      Env: ['A=1', 'PATH=/bin'],
      WorkingDir: '/app',
      User: '1000:1000',
      Labels: { 'com.example.team': 'infra' },
      ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
      Volumes: { '/data': {} },
      StopSignal: 'SIGINT',
    });
    assert.equal(c.history?.length, 1);
    assert.equal(c.history?.[0]?.created, c.created);
    // diff_ids are the digests of the uncompressed layers.
    assert.deepEqual(c.rootfs.diff_ids, [await diffIdOf(layout, img.manifest.layers[0]!)]);
    // Reproducible: the same tree and epoch give the same manifest digest.
    const again = await createImage(layout, { ...opts, tag: 'v1-again' });
    assert.equal(again.digest, desc.digest);
  });

  test('createImage defaults: host platform, no tag keeps an untagged index entry; zstd and none compression', async () => {
    const layout = await OciLayout.open(join(tmp, 'l2'), { create: true });
    const desc = await createImage(layout, { dir: src, compression: 'zstd' });
    const index = await layout.index();
    assert.deepEqual(index.manifests.map((d) => d.digest), [desc.digest]);
    const img = await loadImage(layout, desc.digest);
    assert.equal(img.config.architecture, hostPlatform().architecture);
    assert.equal(img.manifest.layers[0]!.mediaType, MediaType.layerTarZstd);
    assert.deepEqual(img.config.rootfs.diff_ids, [await diffIdOf(layout, img.manifest.layers[0]!)]);
    const plain = await createImage(layout, { dir: src, compression: 'none', tag: 'plain' });
    const p = await loadImage(layout, plain.digest);
    assert.equal(p.manifest.layers[0]!.mediaType, MediaType.layerTar);
    assert.equal(p.config.rootfs.diff_ids[0], p.manifest.layers[0]!.digest);
    await assert.rejects(createImage(layout, { dir: join(tmp, 'nope') }), (e) => isBerthError(e, 'USAGE') && /not a directory/.test(e.message));
    await assert.rejects(createImage(layout, { dir: src, exposedPorts: ['http'] }), (e) => isBerthError(e, 'USAGE'));
  });

  test('appendLayer adds a layer, diff_id and history entry and moves the tag', async () => {
    const layout = await OciLayout.open(join(tmp, 'l3'), { create: true });
    const base = await createImage(layout, { dir: src, tag: 'app', env: ['A=1'], sourceDateEpoch: 1 });
    const before = await loadImage(layout, 'app');
    const appended = await appendLayer(layout, 'app', { dir: extra, sourceDateEpoch: 2 });
    assert.notEqual(appended.digest, base.digest);
    assert.deepEqual(await layout.resolve('app'), appended);
    const after = await loadImage(layout, 'app');
    assert.equal(after.manifest.layers.length, 2);
    assert.deepEqual(after.manifest.layers[0], before.manifest.layers[0]);
    assert.equal(after.config.rootfs.diff_ids.length, 2);
    assert.equal(after.config.rootfs.diff_ids[0], before.config.rootfs.diff_ids[0]);
    assert.equal(after.config.rootfs.diff_ids[1], await diffIdOf(layout, after.manifest.layers[1]!));
    assert.equal(after.config.history?.length, 2);
    assert.equal(after.config.created, '1970-01-01T00:00:02Z');
    assert.deepEqual(after.config.config?.Env, ['A=1']);
    assert.equal(after.manifest.annotations?.[BASE_DIGEST_ANNOTATION], base.digest);
    // With --tag the original tag stays where it was; by digest without a tag, nothing is tagged.
    const tagged = await appendLayer(layout, 'app', { dir: extra, tag: 'app-plus' });
    assert.deepEqual((await layout.resolve('app')).digest, appended.digest);
    assert.deepEqual((await layout.resolve('app-plus')).digest, tagged.digest);
    const untagged = await appendLayer(layout, base.digest, { dir: extra });
    assert.ok((await layout.index()).manifests.some((d) => d.digest === untagged.digest && !d.annotations));
  });

  test('mutateImage changes config and annotations, keeps layers', async () => {
    const layout = await OciLayout.open(join(tmp, 'l4'), { create: true });
    await createImage(layout, {
      dir: src,
      tag: 'app',
      env: ['A=1', 'B=2', 'C=3'],
      labels: { keep: 'yes', drop: 'me' },
      annotations: { x: '1', y: '2' },
      cmd: ['old'],
    });
    const before = await loadImage(layout, 'app');
    const desc = await mutateImage(layout, 'app', {
      entrypoint: ['/bin/sh', '-c'],
      cmd: null,
      env: ['B=20', 'D=4'],
      unsetEnv: ['C'],
      workdir: '/srv',
      user: 'nobody',
      labels: { added: 'l' },
      unsetLabels: ['drop'],
      annotations: { y: '22' },
      unsetAnnotations: ['x'],
      exposedPorts: ['443'],
      stopSignal: 'SIGQUIT',
      created: '2020-01-01T00:00:00Z',
    });
    assert.deepEqual(await layout.resolve('app'), desc);
    const after = await loadImage(layout, 'app');
    assert.deepEqual(after.manifest.layers, before.manifest.layers);
    assert.deepEqual(after.config.rootfs, before.config.rootfs);
    assert.deepEqual(after.config.history, before.config.history);
    assert.equal(after.config.created, '2020-01-01T00:00:00Z');
    const c = after.config.config!;
    assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
    assert.equal(c.Cmd, null);
    assert.deepEqual(c.Env, ['A=1', 'B=20', 'D=4']);
    assert.equal(c.WorkingDir, '/srv');
    assert.equal(c.User, 'nobody');
    assert.deepEqual(c.Labels, { keep: 'yes', added: 'l' });
    assert.deepEqual(c.ExposedPorts, { '443/tcp': {} });
    assert.equal(c.StopSignal, 'SIGQUIT');
    assert.deepEqual(after.manifest.annotations, { y: '22' });
    // A new tag leaves the old one in place.
    const copy = await mutateImage(layout, 'app', { env: ['E=5'], tag: 'app-e' });
    assert.equal((await layout.resolve('app')).digest, desc.digest);
    assert.equal((await layout.resolve('app-e')).digest, copy.digest);
    await assert.rejects(mutateImage(layout, 'missing', {}), (e) => isBerthError(e, 'NOT_FOUND'));
  });
});
