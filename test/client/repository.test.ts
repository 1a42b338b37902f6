/**
 * The registry client against Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1:
 * push and pull through copy(), resolve, exists, tags, catalog, chunked upload, mount,
 * delete, the referrers tag-schema fallback, and failures: a cut connection mid-blob is
 * resumed, a 503 is retried, a blob whose bytes do not match its digest is refused.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../../src/client/registry.js';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';
import { readAll } from '../../src/base/read.js';
import { freeSlabCount } from '../../src/base/slab-pool.js';
import { OciLayout } from '../../src/image/layout.js';
import { digestOf } from '../../src/base/digest.js';
import { MediaType } from '../../src/base/media-types.js';
import type { ProgressEvent } from '../../src/base/target.js';
import { isBerthError } from '../../src/base/errors.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { addArtifact, addImage, addIndex, noise } from './fixtures.js';
import { startCuttingProxy, startHttpProxy } from './proxy.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const skip = skipUnless(peer(REGISTRY_BIN, 'docker-registry'));

describe('Repository against docker-registry', { skip }, () => {
  let reg: RegistryServer;
  let client: RegistryClient;
  let tmp: string;

  before(async () => {
    reg = await startRegistry();
    client = new RegistryClient({ backoffMs: 20, credentials: async () => undefined });
    tmp = await mkdtemp(join(tmpdir(), 'berth-repo-test-'));
  });
  after(async () => {
    client?.close();
    await reg?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('pushes an image with copy, resolves it by tag and digest, and pulls it back byte for byte', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ 'a.txt': 'hello' }, { 'b.bin': noise(200, 'push') }] });
    await src.tag(img.manifest, 'v1');
    const repo = client.repository(reg.host, 'test/push');
    const events: ProgressEvent[] = [];
    const result = await copy(src, 'v1', repo, 'v1', { onProgress: (e) => events.push(e) });
    assert.equal(result.descriptor.digest, img.manifest.digest);
    assert.equal(result.blobsCopied, 3);
    assert.ok(events.some((e) => e.type === 'bytes'));

    const byTag = await repo.resolve('v1');
    assert.equal(byTag.digest, img.manifest.digest);
    assert.equal(byTag.mediaType, MediaType.imageManifest);
    assert.equal(byTag.size, img.manifest.size);
    assert.equal((await repo.resolve(img.manifest.digest)).digest, img.manifest.digest);
    assert.equal(await repo.exists(img.layers[1]!), true);

    const layer = await readAll(await repo.fetch(img.layers[1]!), 10 << 20);
    assert.equal(digestOf(layer), img.layers[1]!.digest);

    // Pushing again skips every blob.
    const again = await copy(src, 'v1', repo, 'v1b');
    assert.equal(again.blobsCopied, 0);
    assert.equal(again.blobsSkipped, 3);

    // Pull into a layout: same digests.
    const layout = await OciLayout.open(join(tmp, 'pull'), { create: true });
    const pulled = await copy(repo, 'v1', layout, 'v1');
    assert.equal(pulled.descriptor.digest, img.manifest.digest);
    assert.equal((await layout.resolve('v1')).digest, img.manifest.digest);
  });

  it('pulls several multi-MiB layers at once into a layout, reusing receive buffers, every file intact', async () => {
    const src = new MemoryStore();
    const files = Array.from({ length: 6 }, (_, i) => ({ [`f${i}.bin`]: randomBytes((3 << 20) + i * 4099) }));
    const img = addImage(src, { files });
    await src.tag(img.manifest, 'v1');
    const repo = client.repository(reg.host, 'test/slabs');
    await copy(src, 'v1', repo, 'v1');
    const freeBefore = freeSlabCount();
    const layout = await OciLayout.open(join(tmp, 'slabs'), { create: true });
    const result = await copy(client.repository(reg.host, 'test/slabs'), 'v1', layout, 'v1', { concurrency: 4 });
    assert.equal(result.blobsCopied, 7);
    // Receive buffers went back to the pool once the layout had written their bytes...
    assert.ok(freeSlabCount() > freeBefore, `no slab was released (${freeSlabCount()} free)`);
    // ...and no bytes were overwritten before they reached the disk: every file hashes to its name.
    const dir = join(tmp, 'slabs', 'blobs', 'sha256');
    for (const name of await readdir(dir)) {
      assert.equal(createHash('sha256').update(await readFile(join(dir, name))).digest('hex'), name);
    }
    assert.equal((await readdir(dir)).length, 8);
  });

  it('resolves with prefetch by one GET (no HEAD) and serves the following fetch from it', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ 'p.txt': 'prefetch' }] });
    await src.tag(img.manifest, 'v1');
    await copy(src, 'v1', client.repository(reg.host, 'test/prefetch'), 'v1');
    const seen: string[] = [];
    const proxy = await startHttpProxy(reg.host, (req) => {
      if (req.url?.includes('/manifests/')) seen.push(`${req.method} ${req.url.replace(/.*\/manifests\//, '')}`);
      return undefined;
    });
    const viaProxy = new RegistryClient({ backoffMs: 20, credentials: async () => undefined });
    try {
      const repo = viaProxy.repository(proxy.host, 'test/prefetch');
      const desc = await repo.resolve('v1', { prefetch: true });
      assert.equal(desc.digest, img.manifest.digest);
      assert.equal(desc.mediaType, MediaType.imageManifest);
      assert.equal(digestOf(await readAll(await repo.fetch(desc))), img.manifest.digest);
      assert.deepEqual(seen, ['GET v1']);
      await assert.rejects(repo.resolve('nope', { prefetch: true }), (err) => isBerthError(err, 'NOT_FOUND'));
    } finally {
      viaProxy.close();
      await proxy.close();
    }
  });

  it('asks a registry that redirects its blobs once per blob, not twice', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ a: 'redirect one' }, { b: 'redirect two' }, { c: 'redirect three' }] });
    await src.tag(img.manifest, 'v1');
    await copy(src, 'v1', client.repository(reg.host, 'test/redirect'), 'v1');
    // A front that sends every blob GET to the registry itself, as Docker Hub sends them to its CDN.
    const blobGets: string[] = [];
    const front = await startHttpProxy(reg.host, (req) => {
      if (req.method === 'GET' && req.url?.includes('/blobs/')) {
        blobGets.push(req.url);
        return { status: 307, headers: { Location: `http://${reg.host}${req.url}` } };
      }
      return undefined;
    });
    const viaFront = new RegistryClient({ backoffMs: 20, credentials: async () => undefined });
    try {
      const back = new MemoryStore();
      const result = await copy(viaFront.repository(front.host, 'test/redirect'), 'v1', back, 'v1', { concurrency: 1 });
      assert.equal(result.blobsCopied, 4);
      for (const layer of img.layers) assert.ok(await back.exists(layer));
      // The first blob: a raw GET answered 307, then HttpClient's; every later one: HttpClient's only.
      assert.equal(blobGets.length, 5, blobGets.join('\n'));
    } finally {
      viaFront.close();
      await front.close();
    }
  });

  it('reports a missing tag as NOT_FOUND and an unknown blob as absent', async () => {
    const repo = client.repository(reg.host, 'test/push');
    await assert.rejects(repo.resolve('nope'), (err: unknown) => isBerthError(err, 'NOT_FOUND'));
    assert.equal(await repo.exists({ mediaType: MediaType.layerTarGzip, digest: digestOf('absent'), size: 6 }), false);
  });

  it('copies a multi-platform index whole with all, and one platform without', async () => {
    const src = new MemoryStore();
    const amd = addImage(src, { files: [{ f: 'amd64' }], platform: { architecture: 'amd64', os: 'linux' } });
    const arm = addImage(src, { files: [{ f: 'arm64' }], platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } });
    const index = addIndex(src, [amd.manifest, arm.manifest]);
    await src.tag(index, 'multi');
    const repo = client.repository(reg.host, 'test/multi');
    const all = await copy(src, 'multi', repo, 'multi', { all: true });
    assert.equal(all.descriptor.digest, index.digest);
    const resolved = await repo.resolve('multi');
    assert.equal(resolved.mediaType, MediaType.imageIndex);
    assert.equal(resolved.digest, index.digest);

    const one = await copy(repo, 'multi', client.repository(reg.host, 'test/single'), 'arm', { platform: 'linux/arm64' });
    assert.equal(one.descriptor.digest, arm.manifest.digest);
    // Same registry, other repository: blobs are mounted, not uploaded.
    assert.equal(one.blobsMounted, 2);
    assert.equal(one.blobsCopied, 0);
  });

  it('uploads in chunks (PATCH with Content-Range) and lists tags with pagination', async () => {
    const chunked = new RegistryClient({ backoffMs: 20, credentials: async () => undefined, repository: { chunkSize: 64 * 1024 } });
    try {
      const src = new MemoryStore();
      const img = addImage(src, { files: [{ big: noise(300, 'chunks') }] });
      for (const t of ['a', 'b', 'c', 'd', 'e']) await src.tag(img.manifest, t);
      const repo = chunked.repository(reg.host, 'test/chunked');
      for (const t of ['a', 'b', 'c', 'd', 'e']) await copy(src, t, repo, t);
      const fetched = await readAll(await repo.fetch(img.layers[0]!), 10 << 20);
      assert.equal(digestOf(fetched), img.layers[0]!.digest);
      assert.deepEqual((await repo.tags(2)).sort(), ['a', 'b', 'c', 'd', 'e']);
    } finally {
      chunked.close();
    }
  });

  it('tries the single POST with digest= for small blobs and falls back to POST+PUT where the registry ignores it', async () => {
    const single = new RegistryClient({ backoffMs: 20, credentials: async () => undefined, repository: { singlePostMaxBytes: 1 << 20 } });
    try {
      const src = new MemoryStore();
      const img = addImage(src, { files: [{ small: 'single post' }] });
      await src.tag(img.manifest, 's');
      const repo = single.repository(reg.host, 'test/single-post');
      const r = await copy(src, 's', repo, 's');
      assert.equal(r.blobsCopied, 2);
      assert.equal(digestOf(await readAll(await repo.fetch(img.layers[0]!))), img.layers[0]!.digest);
    } finally {
      single.close();
    }
  });

  it('lists the catalog', async () => {
    const names = await client.catalog(reg.host, 2);
    for (const n of ['test/push', 'test/multi', 'test/single', 'test/chunked']) assert.ok(names.includes(n), `${n} in ${names}`);
  });

  it('maintains the referrers tag schema where the registry has no referrers API, and filters by artifactType', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ f: 'subject' }] });
    await src.tag(img.manifest, 'subject');
    const repo = client.repository(reg.host, 'test/referrers');
    await copy(src, 'subject', repo, 'subject');
    const sig = addArtifact(src, img.manifest, 'application/vnd.example.signature', '{"sig":1}', { 'org.example.k': 'v' });
    const sbom = addArtifact(src, img.manifest, 'application/vnd.example.sbom', '{"sbom":1}');
    await src.tag(sig, 'sig');
    await src.tag(sbom, 'sbom');
    await copy(src, 'sig', repo, undefined);
    await copy(src, 'sbom', repo, undefined);

    const all = await repo.referrers(img.manifest);
    assert.deepEqual(all.map((d) => d.digest).sort(), [sig.digest, sbom.digest].sort());
    const sigEntry = all.find((d) => d.digest === sig.digest)!;
    assert.equal(sigEntry.artifactType, 'application/vnd.example.signature');
    assert.deepEqual(sigEntry.annotations, { 'org.example.k': 'v' });
    const only = await repo.referrers(img.manifest, 'application/vnd.example.sbom');
    assert.deepEqual(only.map((d) => d.digest), [sbom.digest]);
    const tag = `sha256-${img.manifest.digest.slice(7)}`;
    assert.ok((await repo.tags()).includes(tag));

    // copy --referrers brings both artifacts along to another repository.
    const dst = client.repository(reg.host, 'test/referrers-copy');
    const copied = await copy(repo, 'subject', dst, 'subject', { referrers: true });
    assert.equal(copied.referrersCopied, 2);
    assert.equal((await dst.referrers(img.manifest)).length, 2);

    // Deleting a referrer removes it from the tag index.
    await repo.delete(sig);
    assert.deepEqual((await repo.referrers(img.manifest)).map((d) => d.digest), [sbom.digest]);
  });

  it('deletes manifests and blobs', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ f: 'to delete' }] });
    await src.tag(img.manifest, 'gone');
    const repo = client.repository(reg.host, 'test/delete');
    await copy(src, 'gone', repo, 'gone');
    await repo.delete(img.manifest);
    await assert.rejects(repo.resolve('gone'), (err: unknown) => isBerthError(err, 'NOT_FOUND'));
    await repo.delete(img.layers[0]!);
    assert.equal(await repo.exists(img.layers[0]!), false);
  });

  it('resumes a blob download with Range after the connection is cut mid-blob', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ big: noise(1024, 'resume') }] });
    await src.tag(img.manifest, 'r');
    await copy(src, 'r', client.repository(reg.host, 'test/resume'), 'r');
    const proxy = await startCuttingProxy(reg.host);
    const viaProxy = new RegistryClient({ backoffMs: 20, credentials: async () => undefined });
    try {
      const repo = viaProxy.repository(proxy.host, 'test/resume');
      await repo.resolve('r');
      proxy.armDownload(300 * 1024);
      const bytes = await readAll(await repo.fetch(img.layers[0]!), 10 << 20);
      assert.equal(proxy.cuts, 1);
      assert.equal(digestOf(bytes), img.layers[0]!.digest);
    } finally {
      viaProxy.close();
      await proxy.close();
    }
  });

  it('resumes a chunked upload from the offset the registry reports after a cut', async () => {
    const proxy = await startCuttingProxy(reg.host);
    const viaProxy = new RegistryClient({ backoffMs: 20, credentials: async () => undefined, repository: { chunkSize: 256 * 1024 } });
    try {
      const src = new MemoryStore();
      const img = addImage(src, { files: [{ big: noise(1024, 'upload-resume') }] });
      const repo = viaProxy.repository(proxy.host, 'test/upload-resume');
      await src.tag(img.manifest, 'u');
      proxy.armUpload(600 * 1024);
      // distribution 2.8 cancels a session whose chunk was cut short (its state no longer matches
      // the stored size), so the client learns that from the status GET and copy() sends the blob again.
      const result = await copy(src, 'u', repo, 'u');
      assert.equal(proxy.cuts, 1);
      assert.equal(result.blobsCopied, 2);
      const direct = client.repository(reg.host, 'test/upload-resume');
      assert.equal(digestOf(await readAll(await direct.fetch(img.layers[0]!), 10 << 20)), img.layers[0]!.digest);
    } finally {
      viaProxy.close();
      await proxy.close();
    }
  });

  it('retries a 503 (honouring Retry-After) and succeeds', async () => {
    let failed = 0;
    const proxy = await startHttpProxy(reg.host, (req) => {
      if (req.method === 'HEAD' && req.url?.includes('/manifests/') && failed === 0) {
        failed++;
        return { status: 503, headers: { 'Retry-After': '0' } };
      }
      return undefined;
    });
    const viaProxy = new RegistryClient({ backoffMs: 20, credentials: async () => undefined });
    try {
      const desc = await viaProxy.repository(proxy.host, 'test/push').resolve('v1');
      assert.equal(failed, 1);
      assert.equal(desc.mediaType, MediaType.imageManifest);
    } finally {
      viaProxy.close();
      await proxy.close();
    }
  });

  it('refuses a blob whose bytes do not match its digest and writes nothing to the destination', async () => {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ f: noise(64, 'corrupt') }] });
    await src.tag(img.manifest, 'bad');
    await copy(src, 'bad', client.repository(reg.host, 'test/corrupt'), 'bad');
    const target = img.layers[0]!.digest;
    const proxy = await startHttpProxy(reg.host, (req) =>
      req.method === 'GET' && req.url?.endsWith(`/blobs/${target}`)
        ? {
            alter: (body: Buffer) => {
              const copyOf = Buffer.from(body);
              copyOf[copyOf.length - 30] ^= 0xff;
              return copyOf;
            },
          }
        : undefined,
    );
    const viaProxy = new RegistryClient({ backoffMs: 20, credentials: async () => undefined });
    try {
      const dir = join(tmp, 'corrupt');
      const layout = await OciLayout.open(dir, { create: true });
      await assert.rejects(copy(viaProxy.repository(proxy.host, 'test/corrupt'), 'bad', layout, 'bad'), (err: unknown) => {
        assert.ok(isBerthError(err, 'DIGEST_MISMATCH'), String(err));
        assert.match((err as Error).message, new RegExp(target));
        return true;
      });
      assert.equal(await layout.exists(img.layers[0]!), false);
      assert.deepEqual(await layout.tags(), []);
      // Neither the blob nor a partial temp file of it is left behind.
      const files = (await readdir(join(dir, 'blobs'), { recursive: true })).map(String);
      assert.deepEqual(files.filter((n) => n.includes(target.slice(7)) || /tmp|partial/i.test(n)), []);
    } finally {
      viaProxy.close();
      await proxy.close();
    }
  });
});
