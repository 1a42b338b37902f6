/**
 * copy() between in-memory stores and OCI layouts: digests preserved, platform selection,
 * --all, skipping what exists, Docker → OCI conversion (digests change and it says so),
 * referrers copied along, progress events, and places parsed as skopeo names them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';
import { fetchJson } from '../../src/base/read.js';
import { parsePlace, formatPlace } from '../../src/client/places.js';
import { OciLayout } from '../../src/image/layout.js';
import { MediaType } from '../../src/base/media-types.js';
import type { ImageIndex, ImageManifest } from '../../src/base/types.js';
import type { ProgressEvent } from '../../src/base/target.js';
import { isBerthError } from '../../src/base/errors.js';
import { addArtifact, addImage, addIndex } from '../client/fixtures.js';

describe('copy', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-copy-'));
  });
  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('copies an image into a layout with the same digests, and skips it the second time', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ a: '1' }, { b: '2' }] });
    await src.tag(img.manifest, 'x');
    const layout = await OciLayout.open(join(tmp, 'one'), { create: true });
    const events: ProgressEvent[] = [];
    const first = await copy(src, 'x', layout, 'x', { onProgress: (e) => events.push(e) });
    assert.equal(first.descriptor.digest, img.manifest.digest);
    assert.equal(first.blobsCopied, 3);
    assert.equal(first.converted, false);
    assert.equal(events.filter((e) => e.type === 'start').length, 3);
    assert.equal(events.filter((e) => e.type === 'done').length, 4, 'three blobs and the manifest');
    const second = await copy(src, 'x', layout, 'y');
    assert.equal(second.blobsCopied, 0);
    assert.equal(second.blobsSkipped, 3);
    assert.deepEqual(await layout.tags(), ['x', 'y']);
  });

  it('picks the requested platform from an index, or copies the whole index with all', async () => {
    const src = new MemoryStore();
    const amd = addImage(src, { files: [{ f: 'amd' }], platform: { architecture: 'amd64', os: 'linux' } });
    const arm = addImage(src, { files: [{ f: 'arm' }], platform: { architecture: 'arm', os: 'linux', variant: 'v7' } });
    const index = addIndex(src, [amd.manifest, arm.manifest]);
    await src.tag(index, 'multi');
    const dst = new MemoryStore();
    const one = await copy(src, 'multi', dst, 'arm', { platform: 'linux/arm/v7' });
    assert.equal(one.descriptor.digest, arm.manifest.digest);
    assert.equal(await dst.exists(amd.layers[0]!), false);
    const all = await copy(src, 'multi', dst, 'all', { all: true });
    assert.equal(all.descriptor.digest, index.digest);
    assert.equal(await dst.exists(amd.layers[0]!), true);
    await assert.rejects(copy(src, 'multi', dst, 'none', { platform: 'linux/s390x' }), (err: unknown) => isBerthError(err, 'PLATFORM_NOT_FOUND'));
  });

  it('converts Docker media types to OCI, changing manifest digests and saying so', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ d: 'docker' }], docker: true });
    const list = addIndex(src, [img.manifest], true);
    await src.tag(list, 'd');
    const dst = new MemoryStore();
    const result = await copy(src, 'd', dst, 'd', { all: true, convertToOci: true });
    assert.equal(result.converted, true);
    assert.notEqual(result.descriptor.digest, list.digest);
    assert.equal(result.descriptor.mediaType, MediaType.imageIndex);
    const index = await fetchJson<ImageIndex>(dst, result.descriptor);
    assert.equal(index.mediaType, MediaType.imageIndex);
    const manifest = await fetchJson<ImageManifest>(dst, index.manifests[0]!);
    assert.equal(manifest.mediaType, MediaType.imageManifest);
    assert.equal(manifest.config.mediaType, MediaType.imageConfig);
    assert.equal(manifest.layers[0]!.mediaType, MediaType.layerTarGzip);
    assert.equal(manifest.layers[0]!.digest, img.layers[0]!.digest, 'layer bytes are kept');
    assert.deepEqual(index.manifests[0]!.platform, img.manifest.platform);
  });

  it('copies referrers into a layout where they can be listed again', async () => {
    const src = await OciLayout.open(join(tmp, 'ref-src'), { create: true });
    const mem = new MemoryStore();
    const img = addImage(mem, { files: [{ s: 'subject' }] });
    const sig = addArtifact(mem, img.manifest, 'application/vnd.example.sig', 'sig');
    await mem.tag(img.manifest, 's');
    await mem.tag(sig, 'sig');
    await copy(mem, 's', src, 's');
    await copy(mem, 'sig', src, undefined);
    assert.equal((await src.referrers(img.manifest)).length, 1);
    const dst = await OciLayout.open(join(tmp, 'ref-dst'), { create: true });
    const result = await copy(src, 's', dst, 's', { referrers: true });
    assert.equal(result.referrersCopied, 1);
    const listed = await dst.referrers(img.manifest, 'application/vnd.example.sig');
    assert.deepEqual(listed.map((d) => d.digest), [sig.digest]);
  });

  it('names the blob when the source does not have it', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ m: 'missing' }] });
    await src.tag(img.manifest, 'm');
    // Build a source that lost a layer.
    const broken = new MemoryStore();
    for (const d of [img.manifest, img.config]) broken.putBytes(d, src.bytes(d.digest)!);
    await broken.tag(img.manifest, 'm');
    await assert.rejects(copy(broken, 'm', new MemoryStore(), 'm'), (err: unknown) => {
      assert.ok(isBerthError(err, 'NOT_FOUND'));
      assert.match((err as Error).message, new RegExp(img.layers[0]!.digest));
      return true;
    });
  });
});

describe('places', () => {
  it('parses the four kinds as skopeo does', () => {
    assert.deepEqual(parsePlace('docker://localhost:5000/a/b:1'), { kind: 'docker', reference: { registry: 'localhost:5000', repository: 'a/b', tag: '1' } });
    assert.deepEqual(parsePlace('oci:/tmp/lay:v1'), { kind: 'oci', path: '/tmp/lay', ref: 'v1' });
    assert.deepEqual(parsePlace('oci:/tmp/lay'), { kind: 'oci', path: '/tmp/lay' });
    assert.deepEqual(parsePlace('oci-archive:x.tar:busybox:latest'), { kind: 'oci-archive', path: 'x.tar', ref: 'busybox:latest' });
    assert.deepEqual(parsePlace('docker-archive:/s/save.tar'), { kind: 'docker-archive', path: '/s/save.tar' });
    assert.equal(formatPlace(parsePlace('docker://busybox')), 'docker://docker.io/library/busybox:latest');
    assert.throws(() => parsePlace('ftp://x'), (err: unknown) => isBerthError(err, 'USAGE'));
    assert.throws(() => parsePlace('oci:'), (err: unknown) => isBerthError(err, 'USAGE'));
  });
});
