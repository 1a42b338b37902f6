/**
 * The storage and metadata driver contracts, run for every driver (today: the filesystem
 * BlobStore and the SQLite MetadataStore; S3 and PostgreSQL drivers join these lists).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { MetadataStore } from '../../src/registry/metadata/metadata-store.js';
import { PostgresMetadataStore } from '../../src/registry/metadata/postgres-store.js';
import { SqliteMetadataStore } from '../../src/registry/metadata/sqlite-store.js';
import type { BlobStore } from '../../src/registry/storage/blob-store.js';
import { FsBlobStore } from '../../src/registry/storage/fs-blob-store.js';
import { S3BlobStore } from '../../src/registry/storage/s3-blob-store.js';
import { cephNeeds, startCeph, type CephRgw } from '../helpers/ceph.js';
import { startPostgres, postgresNeeds, type PgServer } from '../helpers/postgres.js';
import { skipUnless } from '../helpers/requirements.js';

const pgSkip = skipUnless(...postgresNeeds);
let pg: PgServer | undefined;
const pgServer = () => pg!;
if (!pgSkip) {
  before(async () => {
    pg = await startPostgres();
  });
  after(() => pg?.stop());
}

const root = mkdtempSync(join(tmpdir(), 'berth-stores-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, String(n++));

const cephSkip = skipUnless(...cephNeeds, ...postgresNeeds);
let ceph: CephRgw | undefined;
if (!cephSkip) {
  before(async () => {
    ceph = await startCeph();
  });
  after(() => ceph?.stop());
}
let buckets = 0;

const blobDrivers: { name: string; skip?: string | false; make: () => Promise<BlobStore> }[] = [
  {
    name: 'filesystem',
    make: async () => {
      const s = new FsBlobStore(fresh());
      await s.init();
      return s;
    },
  },
  {
    name: 's3 (Ceph RGW) with staging state in PostgreSQL',
    skip: cephSkip || pgSkip,
    make: async () => {
      const meta = await PostgresMetadataStore.open(await pgServer().createDatabase());
      after(() => meta.close());
      const s = new S3BlobStore(
        {
          bucket: `berth-contract-${buckets++}`,
          endpoint: ceph!.endpoint,
          region: ceph!.region,
          prefix: 'reg/',
          credentials: { accessKeyId: ceph!.accessKeyId, secretAccessKey: ceph!.secretAccessKey },
          createBucket: true,
          pageSize: 2,
        },
        meta,
      );
      await s.init();
      return s;
    },
  },
];
const metaDrivers: { name: string; skip?: string | false; make: () => Promise<MetadataStore> }[] = [
  {
    name: 'sqlite',
    make: async () => {
      const dir = fresh();
      mkdirSync(dir, { recursive: true });
      return new SqliteMetadataStore(join(dir, 'registry.db'));
    },
  },
  {
    name: 'postgres',
    skip: pgSkip,
    make: async () => PostgresMetadataStore.open(await pgServer().createDatabase()),
  },
];

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const ID = '123e4567-e89b-12d3-a456-426614174000';

for (const driver of blobDrivers) {
  describe(`BlobStore contract: ${driver.name}`, { skip: driver.skip ?? false }, () => {
    it('stages uploads in pieces, commits under the digest, reads whole and ranges', async () => {
      const s = await driver.make();
      await s.startUpload(ID);
      assert.equal(await s.uploadSize(ID), 0);
      const seen: Buffer[] = [];
      assert.equal(await s.appendUpload(ID, Readable.from([Buffer.from('hello ')]), (c) => seen.push(c)), 6);
      assert.equal(await s.appendUpload(ID, Readable.from([Buffer.from('world')])), 5);
      assert.equal(Buffer.concat(seen).toString(), 'hello ');
      let staged = '';
      for await (const c of s.readUpload(ID)) staged += c;
      assert.equal(staged, 'hello world');
      const digest = sha('hello world');
      assert.equal(await s.stat(digest), undefined, 'invisible before commit');
      await s.commitUpload(ID, digest);
      assert.equal(await s.uploadSize(ID), undefined);
      assert.equal((await s.stat(digest))!.size, 11);
      assert.equal((await s.readSmall(digest)).toString(), 'hello world');
      let part = '';
      for await (const c of s.read(digest, { start: 6, end: 10 })) part += c;
      assert.equal(part, 'world');
      const listed = [];
      for await (const b of s.list()) listed.push(b.digest);
      assert.deepEqual(listed, [digest]);
      // committing the same content again keeps one copy and drops the staged one
      await s.startUpload(ID);
      await s.appendUpload(ID, Readable.from([Buffer.from('hello world')]));
      await s.commitUpload(ID, digest);
      assert.deepEqual(await s.listUploads(), []);
      assert.equal(await s.delete(digest), true);
      assert.equal(await s.delete(digest), false);
      assert.equal(await s.stat(digest), undefined);
    });

    it('stages megabytes in parts from chunks of any size, rehashes mid-upload, lists with pagination', async () => {
      const s = await driver.make();
      const data = randomBytes(13 * 1024 * 1024 + 5);
      await s.startUpload(ID);
      // 1 MiB chunks (combined into parts), then 7 MiB in one request, then the rest.
      for (let off = 0; off < 3 << 20; off += 1 << 20) await s.appendUpload(ID, Readable.from([data.subarray(off, off + (1 << 20))]));
      await s.appendUpload(ID, Readable.from([data.subarray(3 << 20, 10 << 20)]));
      assert.equal(await s.uploadSize(ID), 10 << 20);
      // Another replica without the hash state reads the staged bytes back, then the upload goes on.
      const h = createHash('sha256');
      for await (const c of s.readUpload(ID)) h.update(c as Buffer);
      assert.equal(`sha256:${h.digest('hex')}`, sha(data.subarray(0, 10 << 20)));
      assert.equal(await s.uploadSize(ID), 10 << 20);
      await s.appendUpload(ID, Readable.from([data.subarray(10 << 20)]));
      const digest = sha(data);
      await s.commitUpload(ID, digest);
      assert.equal((await s.stat(digest))!.size, data.length);
      const back: Buffer[] = [];
      for await (const c of s.read(digest)) back.push(c as Buffer);
      assert.ok(Buffer.concat(back).equals(data));
      let range = Buffer.alloc(0);
      for await (const c of s.read(digest, { start: 5 << 20, end: (5 << 20) + 9 })) range = Buffer.concat([range, c as Buffer]);
      assert.ok(range.equals(data.subarray(5 << 20, (5 << 20) + 10)));
      const small = ['a', 'b', 'c', 'd', 'e'].map((x) => Buffer.from(x));
      for (const b of small) {
        await s.startUpload(ID);
        await s.appendUpload(ID, Readable.from([b]));
        await s.commitUpload(ID, sha(b));
      }
      const listed: string[] = [];
      for await (const b of s.list()) listed.push(b.digest);
      assert.deepEqual(listed.sort(), [digest, ...small.map(sha)].sort());
      assert.deepEqual(await s.listUploads(), []);
    });

    it('cancels uploads and refuses malformed upload ids', async () => {
      const s = await driver.make();
      await s.startUpload(ID);
      assert.equal((await s.listUploads()).length, 1);
      await s.cancelUpload(ID);
      assert.equal(await s.uploadSize(ID), undefined);
      await assert.rejects(s.startUpload('../../etc/passwd'));
    });
  });
}

for (const driver of metaDrivers) {
  describe(`MetadataStore contract: ${driver.name}`, { skip: driver.skip ?? false }, () => {
    const manifest = (repo: string, content: string, blobRefs: string[], extra: Partial<Parameters<MetadataStore['putManifest']>[0]> = {}) => ({
      repo,
      digest: sha(content),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: content.length,
      content: Buffer.from(content),
      blobRefs,
      manifestRefs: [],
      tags: [],
      ...extra,
    });

    it('links blobs per repository and refuses manifests with missing references, atomically', async () => {
      const m = await driver.make();
      try {
        const b = sha('blob');
        assert.equal(await m.repoBlob('a', b), undefined);
        await m.linkBlob('a', b, 4);
        assert.equal(await m.repoBlob('a', b), 4);
        assert.equal(await m.repoBlob('other', b), undefined);
        assert.equal(await m.blob(b), 4);
        assert.deepEqual(await m.reposWithBlob(b, 10), ['a']);
        const missing = sha('missing');
        assert.deepEqual((await m.putManifest(manifest('a', 'm1', [b, missing], { tags: ['t'] }))).missing, [missing]);
        assert.equal(await m.manifestByTag('a', 't'), undefined, 'nothing written');
        assert.deepEqual((await m.putManifest(manifest('a', 'm1', [b], { tags: ['t', 'u'] }))).missing, []);
        const got = await m.manifestByTag('a', 'u');
        assert.equal(got!.digest, sha('m1'));
        assert.equal(got!.content.toString(), 'm1');
        assert.equal((await m.manifestByDigest('a', sha('m1')))!.size, 2);
        assert.ok((await m.allManifestRefs()).every((r) => !r.sparse));
        // Sparse: stored with what is missing, and known as such.
        assert.deepEqual((await m.putManifest(manifest('a', 'part', [b, missing], { tags: ['p'], sparse: true }))).missing, [missing]);
        assert.equal((await m.manifestByTag('a', 'p'))!.digest, sha('part'));
        assert.deepEqual(
          (await m.allManifestRefs()).filter((r) => r.manifest === sha('part')).map((r) => [r.ref, r.sparse]).sort(),
          [[b, true], [missing, true]].sort(),
        );
        assert.equal(await m.manifestByDigest('other', sha('m1')), undefined);
      } finally {
        await m.close();
      }
    });

    it('lists tags and repositories in ASCII order with last/limit; deletes tags and manifests', async () => {
      const m = await driver.make();
      try {
        const b = sha('x');
        await m.linkBlob('r', b, 1);
        await m.putManifest(manifest('r', 'm', [b], { tags: ['b', 'B', 'a', '1'] }));
        assert.deepEqual(await m.listTags('r', undefined, -1), ['1', 'B', 'a', 'b']);
        assert.deepEqual(await m.listTags('r', 'B', 2), ['a', 'b']);
        assert.ok(await m.repoExists('r'));
        assert.ok(!(await m.repoExists('nope')));
        await m.linkBlob('q', b, 1);
        assert.deepEqual(await m.listRepositories(undefined, 10), ['q', 'r']);
        assert.deepEqual(await m.listRepositories('q', 10), ['r']);
        assert.deepEqual(await m.allLinks(), {
          blobs: [
            { repo: 'q', digest: b, size: 1 },
            { repo: 'r', digest: b, size: 1 },
          ],
          manifests: [{ repo: 'r', digest: sha('m') }],
          tags: ['1', 'B', 'a', 'b'].map((tag) => ({ repo: 'r', tag, digest: sha('m') })),
        });
        assert.ok(await m.deleteTag('r', 'a'));
        assert.ok(!(await m.deleteTag('r', 'a')));
        assert.ok(await m.deleteManifest('r', sha('m')));
        assert.deepEqual(await m.listTags('r', undefined, -1), []);
        assert.deepEqual(await m.allManifests(), []);
      } finally {
        await m.close();
      }
    });

    it('answers referrers with artifactType filtering, per repository', async () => {
      const m = await driver.make();
      try {
        const subject = sha('subject');
        await m.putManifest(manifest('r', 'sig', [], { subject, artifactType: 'application/x.sig', annotations: { k: 'v' } }));
        await m.putManifest(manifest('r', 'sbom', [], { subject, artifactType: 'application/x.sbom' }));
        await m.putManifest(manifest('other', 'elsewhere', [], { subject, artifactType: 'application/x.sig' }));
        const all = await m.referrers('r', subject);
        assert.equal(all.length, 2);
        assert.deepEqual(all.find((r) => r.digest === sha('sig')), {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: sha('sig'),
          size: 3,
          artifactType: 'application/x.sig',
          annotations: { k: 'v' },
        });
        assert.deepEqual((await m.referrers('r', subject, 'application/x.sbom')).map((r) => r.digest), [sha('sbom')]);
        assert.deepEqual(await m.referrers('r', sha('unknown')), []);
      } finally {
        await m.close();
      }
    });

    it('keeps upload sessions and plans garbage collection', async () => {
      const m = await driver.make();
      try {
        await m.createUpload({ id: ID, repo: 'r', algorithm: 'sha512', startedAt: 1000 });
        assert.deepEqual(await m.upload(ID), { id: ID, repo: 'r', algorithm: 'sha512', startedAt: 1000 });
        assert.deepEqual((await m.uploadsStartedBefore(2000)).map((u) => u.id), [ID]);
        assert.deepEqual(await m.uploadsStartedBefore(500), []);
        await m.deleteUpload(ID);
        assert.equal(await m.upload(ID), undefined);
        const used = sha('used');
        const unused = sha('unused');
        await m.linkBlob('r', used, 4);
        await m.linkBlob('r', unused, 6);
        await m.putManifest(manifest('r', 'mm', [used], { tags: ['t'] }));
        const later = Date.now() + 10_000;
        assert.deepEqual((await m.planGc({ now: later, graceMs: 0, deleteUntagged: true })).blobs, [{ digest: unused, size: 6 }]);
        assert.deepEqual((await m.planGc({ now: later, graceMs: 3600_000, deleteUntagged: true })).blobs, []);
        assert.ok(!(await m.forgetBlobIfUnreferenced(used, later)));
        assert.ok(await m.forgetBlobIfUnreferenced(unused, later));
        assert.equal(await m.blob(unused), undefined);
        const stats = await m.stats();
        assert.deepEqual(stats, { blobs: 1, bytes: 4, repositories: 1, manifests: 1 });
      } finally {
        await m.close();
      }
    });

    it('keeps resumable hash state and versioned staging state of upload sessions', async () => {
      const m = await driver.make();
      try {
        assert.equal(await m.setUploadHashState(ID, 5, Buffer.from('x')), false, 'no session yet');
        await m.createUpload({ id: ID, repo: 'r', algorithm: 'sha256', startedAt: 1000 });
        assert.ok(await m.setUploadHashState(ID, 5, Buffer.from([0, 1, 2])));
        assert.deepEqual((await m.upload(ID))!.hashState, { size: 5, state: Buffer.from([0, 1, 2]) });
        assert.equal(await m.stagingState(ID), undefined);
        assert.ok(await m.putStagingState(ID, Buffer.from('v1'), 0));
        assert.ok(!(await m.putStagingState(ID, Buffer.from('again'), 0)), 'created once');
        const s1 = (await m.stagingState(ID))!;
        assert.equal(s1.version, 1);
        assert.equal(s1.state.toString(), 'v1');
        assert.ok(await m.putStagingState(ID, Buffer.from('v2'), 1));
        assert.ok(!(await m.putStagingState(ID, Buffer.from('lost'), 1)), 'a stale writer loses');
        assert.equal((await m.stagingState(ID))!.state.toString(), 'v2');
        assert.deepEqual((await m.stagingStates()).map((s) => s.id), [ID]);
        await m.deleteStagingState(ID);
        assert.equal(await m.stagingState(ID), undefined);
      } finally {
        await m.close();
      }
    });

    it('serialises work under a named lock', async () => {
      const m = await driver.make();
      try {
        const order: string[] = [];
        const slow = m.withLock('k', async () => {
          order.push('a+');
          await new Promise((r) => setTimeout(r, 50));
          order.push('a-');
        });
        const fast = m.withLock('k', async () => {
          order.push('b');
        });
        const other = m.withLock('other', async () => {
          order.push('c');
        });
        await Promise.all([slow, fast, other]);
        assert.deepEqual(order.filter((o) => o !== 'c'), ['a+', 'a-', 'b']);
        assert.ok(order.indexOf('c') < order.indexOf('a-'), 'another key does not wait');
        await m.ping();
      } finally {
        await m.close();
      }
    });
  });
}
