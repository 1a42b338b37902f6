/**
 * What only the shared (PostgreSQL) metadata store promises, with several stores over one
 * database standing for several replicas: migrations applied once when replicas start together,
 * locks that hold across them, change notifications, and no blob forgotten under a manifest
 * that another replica is committing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import postgres from 'postgres';
import { MIGRATIONS, PostgresMetadataStore } from '../../src/registry/metadata/postgres-store.js';
import { startPostgres, postgresNeeds, type PgServer } from '../helpers/postgres.js';
import { skipUnless } from '../helpers/requirements.js';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

describe('PostgreSQL metadata shared by replicas', { skip: skipUnless(...postgresNeeds) }, () => {
  let pg: PgServer;
  before(async () => {
    pg = await startPostgres();
  });
  after(() => pg?.stop());

  it('applies each migration once when three replicas start at the same moment', async () => {
    const url = await pg.createDatabase();
    const stores = await Promise.all([0, 1, 2].map(() => PostgresMetadataStore.open(url)));
    try {
      const raw = postgres(url, { max: 1 });
      const rows = await raw<{ version: number }[]>`SELECT version FROM schema_migrations ORDER BY version`;
      await raw.end();
      assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((_, i) => i + 1));
      assert.deepEqual(await stores[0]!.migrate(), [], 'nothing left to apply');
      await stores[1]!.linkBlob('r', sha('b'), 1);
      assert.equal(await stores[2]!.blob(sha('b')), 1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('holds a named lock across replicas and tells other replicas of tag changes', async () => {
    const url = await pg.createDatabase();
    const [a, b] = await Promise.all([PostgresMetadataStore.open(url), PostgresMetadataStore.open(url)]);
    try {
      const order: string[] = [];
      let entered!: () => void;
      const inA = new Promise<void>((r) => (entered = r));
      const first = a.withLock('digest:x', async () => {
        order.push('a+');
        entered();
        await new Promise((r) => setTimeout(r, 150));
        order.push('a-');
      });
      await inA;
      await b.withLock('digest:x', async () => {
        order.push('b');
      });
      await first;
      assert.deepEqual(order, ['a+', 'a-', 'b']);

      let changes = 0;
      b.onManifestsChanged(() => changes++);
      await b.listeningReady();
      const notified = new Promise<void>((resolve) => b.onManifestsChanged(resolve));
      await a.putManifest({
        repo: 'r',
        digest: sha('m'),
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: 1,
        content: Buffer.from('m'),
        blobRefs: [],
        manifestRefs: [],
        tags: ['t'],
      });
      await notified;
      assert.ok(changes >= 1);
      const before = changes;
      await b.deleteTag('r', 't');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(changes, before, 'a replica is not told of its own changes');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('never forgets a blob that a manifest being committed on another replica references', async () => {
    const url = await pg.createDatabase();
    const [a, b] = await Promise.all([PostgresMetadataStore.open(url), PostgresMetadataStore.open(url)]);
    try {
      const later = Date.now() + 60_000;
      for (let i = 0; i < 20; i++) {
        const blob = sha(`blob${i}`);
        await a.linkBlob('r', blob, 4);
        // The push (on a) and the collection (on b) race; whichever wins, the outcome is consistent.
        const [push, forgot] = await Promise.all([
          a.putManifest({
            repo: 'r',
            digest: sha(`m${i}`),
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            size: 3,
            content: Buffer.from(`m${i}`),
            blobRefs: [blob],
            manifestRefs: [],
            tags: [`t${i}`],
          }),
          b.forgetBlobIfUnreferenced(blob, later),
        ]);
        if (forgot) assert.deepEqual(push.missing, [blob], 'the push is refused when the blob went first');
        else assert.deepEqual(push.missing, [], 'the blob stays when the push went first');
        if (push.missing.length === 0) assert.equal(await b.blob(blob), 4);
      }
      const refs = await b.allManifestRefs();
      const known = new Set((await b.allBlobs()).map((x) => x.digest));
      for (const r of refs) assert.ok(known.has(r.ref), `${r.manifest} references a forgotten blob ${r.ref}`);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
