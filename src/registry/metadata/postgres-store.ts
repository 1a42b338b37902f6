/**
 * The PostgreSQL MetadataStore, shared by every replica of a registry. Client: `postgres`
 * (porsager/postgres): no dependencies, its own pool, LISTEN with reconnection, Buffers for bytea
 * and TypeScript types included (`pg` needs pg-pool, pg-protocol and @types/pg for the same).
 *
 * - Migrations: versioned, forward only, applied at start under a session advisory lock, so
 *   replicas starting together apply each exactly once (the others wait, then see them applied).
 * - Every write is one transaction. A manifest push takes a share lock on each referenced blob
 *   row and garbage collection an exclusive one before it checks references, so a blob is never
 *   forgotten while a manifest that references it commits on another replica.
 * - Cross-replica locks (a digest while it is committed or collected, GC) are advisory locks held
 *   on connections of a separate small pool, so work done under a lock never waits for them.
 * - Manifest and tag changes NOTIFY `berth_manifests`; replicas LISTEN to drop their caches.
 */
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { BerthError } from '../../base/errors.js';
import { KeyedMutex } from '../keyed-mutex.js';
import { planFromRows, type GcRows } from './gc-plan.js';
import type { GcPlan, ManifestRecord, MetadataStore, NewManifest, ReferrerRecord, RegistryLinks, StagingState, UploadRecord } from './metadata-store.js';

/** Key of the advisory lock migrations run under ("berth" in ASCII). */
const MIGRATION_LOCK = 0x6265727468;
const CHANNEL = 'berth_manifests';

/** Forward-only migrations; schema_migrations records each applied version. */
export const MIGRATIONS: string[] = [
  `CREATE TABLE repositories(name TEXT COLLATE "C" PRIMARY KEY, created_at BIGINT NOT NULL);
   CREATE TABLE blobs(digest TEXT PRIMARY KEY, size BIGINT NOT NULL, created_at BIGINT NOT NULL);
   CREATE TABLE repo_blobs(repo TEXT NOT NULL, digest TEXT NOT NULL, linked_at BIGINT NOT NULL, PRIMARY KEY(repo, digest));
   CREATE INDEX repo_blobs_by_digest ON repo_blobs(digest);
   CREATE TABLE manifests(digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, size BIGINT NOT NULL, content BYTEA NOT NULL,
     subject TEXT, artifact_type TEXT, annotations TEXT, created_at BIGINT NOT NULL);
   CREATE INDEX manifests_by_subject ON manifests(subject) WHERE subject IS NOT NULL;
   CREATE TABLE repo_manifests(repo TEXT NOT NULL, digest TEXT NOT NULL, pushed_at BIGINT NOT NULL, PRIMARY KEY(repo, digest));
   CREATE INDEX repo_manifests_by_digest ON repo_manifests(digest);
   CREATE TABLE manifest_refs(manifest TEXT NOT NULL, ref TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY(manifest, ref));
   CREATE INDEX manifest_refs_by_ref ON manifest_refs(ref);
   CREATE TABLE tags(repo TEXT COLLATE "C" NOT NULL, tag TEXT COLLATE "C" NOT NULL, digest TEXT NOT NULL, updated_at BIGINT NOT NULL,
     PRIMARY KEY(repo, tag));
   CREATE INDEX tags_by_digest ON tags(repo, digest);
   CREATE TABLE uploads(id TEXT PRIMARY KEY, repo TEXT NOT NULL, algorithm TEXT NOT NULL, started_at BIGINT NOT NULL,
     hash_size BIGINT, hash_state BYTEA);
   CREATE TABLE staging(id TEXT PRIMARY KEY, state BYTEA NOT NULL, version INTEGER NOT NULL, updated_at BIGINT NOT NULL);`,
  `ALTER TABLE manifests ADD COLUMN sparse BOOLEAN NOT NULL DEFAULT false;`,
];

type Sql = postgres.Sql<{ bigint: number }>;

interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  content: Buffer;
}

interface UploadRow {
  id: string;
  repo: string;
  algorithm: 'sha256' | 'sha512';
  started_at: number;
  hash_size: number | null;
  hash_state: Buffer | null;
}

function toRecord(row: ManifestRow | undefined): ManifestRecord | undefined {
  return row && { digest: row.digest, mediaType: row.media_type, size: row.size, content: row.content };
}

function toUpload(r: UploadRow | undefined): UploadRecord | undefined {
  if (!r) return undefined;
  const u: UploadRecord = { id: r.id, repo: r.repo, algorithm: r.algorithm, startedAt: r.started_at };
  if (r.hash_state !== null && r.hash_size !== null) u.hashState = { size: r.hash_size, state: r.hash_state };
  return u;
}

function connect(url: string, max: number): Sql {
  return postgres(url, {
    max,
    onnotice: () => undefined,
    connect_timeout: 10,
    // int8 columns (sizes, times) as numbers: every value here is below 2^53.
    types: { bigint: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
  }) as unknown as Sql;
}

export class PostgresMetadataStore implements MetadataStore {
  readonly shared = true;
  private readonly sql: Sql;
  private readonly lockSql: Sql;
  private readonly localLocks = new KeyedMutex();
  private readonly instance = randomUUID();
  private readonly listeners: (() => void)[] = [];
  private listening?: Promise<unknown>;

  private constructor(readonly url: string, poolSize: number) {
    this.sql = connect(url, poolSize);
    this.lockSql = connect(url, Math.max(2, Math.ceil(poolSize / 2)));
  }

  /** Connects, applies pending migrations under the advisory lock, and returns the store. */
  static async open(url: string, opts: { poolSize?: number } = {}): Promise<PostgresMetadataStore> {
    const store = new PostgresMetadataStore(url, opts.poolSize ?? 10);
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      const redacted = url.replace(/\/\/[^@/]*@/, '//');
      throw new BerthError('NETWORK', `cannot open the PostgreSQL metadata at ${redacted}: ${(err as Error).message}; check --metadata and that the server answers`, { cause: err });
    }
    return store;
  }

  /** Applies every migration not yet recorded; returns the versions this call applied. */
  async migrate(): Promise<number[]> {
    const conn = await this.sql.reserve();
    const applied: number[] = [];
    try {
      await conn`SELECT pg_advisory_lock(${MIGRATION_LOCK})`;
      try {
        await conn`CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`;
        const done = new Set((await conn<{ version: number }[]>`SELECT version FROM schema_migrations`).map((r) => r.version));
        for (let i = 0; i < MIGRATIONS.length; i++) {
          const version = i + 1;
          if (done.has(version)) continue;
          await conn.unsafe('BEGIN');
          try {
            await conn.unsafe(MIGRATIONS[i]!);
            await conn`INSERT INTO schema_migrations(version, applied_at) VALUES (${version}, ${Date.now()})`;
            await conn.unsafe('COMMIT');
          } catch (err) {
            await conn.unsafe('ROLLBACK');
            throw err;
          }
          applied.push(version);
        }
      } finally {
        await conn`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`;
      }
    } finally {
      conn.release();
    }
    return applied;
  }

  async repoBlob(repo: string, digest: string): Promise<number | undefined> {
    const [r] = await this.sql<{ size: number }[]>`SELECT b.size FROM repo_blobs r JOIN blobs b ON b.digest = r.digest WHERE r.repo = ${repo} AND r.digest = ${digest}`;
    return r?.size;
  }

  async blob(digest: string): Promise<number | undefined> {
    const [r] = await this.sql<{ size: number }[]>`SELECT size FROM blobs WHERE digest = ${digest}`;
    return r?.size;
  }

  async linkBlob(repo: string, digest: string, size: number): Promise<void> {
    const now = Date.now();
    await this.sql.begin(async (tx) => {
      await tx`INSERT INTO repositories(name, created_at) VALUES (${repo}, ${now}) ON CONFLICT DO NOTHING`;
      await tx`INSERT INTO blobs(digest, size, created_at) VALUES (${digest}, ${size}, ${now}) ON CONFLICT DO NOTHING`;
      await tx`INSERT INTO repo_blobs(repo, digest, linked_at) VALUES (${repo}, ${digest}, ${now})
               ON CONFLICT (repo, digest) DO UPDATE SET linked_at = excluded.linked_at`;
    });
  }

  async reposWithBlob(digest: string, limit: number): Promise<string[]> {
    const rows = await this.sql<{ repo: string }[]>`SELECT repo FROM repo_blobs WHERE digest = ${digest} ORDER BY linked_at DESC LIMIT ${limit}`;
    return rows.map((r) => r.repo);
  }

  async unlinkBlob(repo: string, digest: string): Promise<boolean> {
    return (await this.sql`DELETE FROM repo_blobs WHERE repo = ${repo} AND digest = ${digest}`).count > 0;
  }

  async manifestByDigest(repo: string, digest: string): Promise<ManifestRecord | undefined> {
    const [r] = await this.sql<ManifestRow[]>`SELECT m.digest, m.media_type, m.size, m.content FROM repo_manifests r
      JOIN manifests m ON m.digest = r.digest WHERE r.repo = ${repo} AND r.digest = ${digest}`;
    return toRecord(r);
  }

  async manifestByTag(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    const [r] = await this.sql<ManifestRow[]>`SELECT m.digest, m.media_type, m.size, m.content FROM tags t
      JOIN manifests m ON m.digest = t.digest WHERE t.repo = ${repo} AND t.tag = ${tag}`;
    return toRecord(r);
  }

  async putManifest(m: NewManifest): Promise<{ missing: string[] }> {
    const now = Date.now();
    return this.sql.begin(async (tx) => {
      const missing: string[] = [];
      if (m.blobRefs.length > 0) {
        // FOR SHARE: garbage collection cannot forget these blobs until this commits.
        const found = new Set(
          (await tx<{ digest: string }[]>`SELECT b.digest FROM repo_blobs r JOIN blobs b ON b.digest = r.digest
             WHERE r.repo = ${m.repo} AND r.digest IN ${tx(m.blobRefs)} FOR SHARE OF b`).map((r) => r.digest),
        );
        for (const d of m.blobRefs) if (!found.has(d)) missing.push(d);
      }
      if (m.manifestRefs.length > 0) {
        const found = new Set(
          (await tx<{ digest: string }[]>`SELECT digest FROM repo_manifests WHERE repo = ${m.repo} AND digest IN ${tx(m.manifestRefs)} FOR SHARE`).map(
            (r) => r.digest,
          ),
        );
        for (const d of m.manifestRefs) if (!found.has(d)) missing.push(d);
      }
      if (missing.length > 0 && !m.sparse) return { missing };
      await tx`INSERT INTO repositories(name, created_at) VALUES (${m.repo}, ${now}) ON CONFLICT DO NOTHING`;
      await tx`INSERT INTO manifests(digest, media_type, size, content, subject, artifact_type, annotations, created_at, sparse)
        VALUES (${m.digest}, ${m.mediaType}, ${m.size}, ${m.content}, ${m.subject ?? null}, ${m.artifactType ?? null},
                ${m.annotations ? JSON.stringify(m.annotations) : null}, ${now}, ${missing.length > 0}) ON CONFLICT DO NOTHING`;
      const refs = [...m.blobRefs.map((ref) => ({ manifest: m.digest, ref, kind: 'blob' })), ...m.manifestRefs.map((ref) => ({ manifest: m.digest, ref, kind: 'manifest' }))];
      if (refs.length > 0) await tx`INSERT INTO manifest_refs ${tx(refs)} ON CONFLICT DO NOTHING`;
      await tx`INSERT INTO repo_manifests(repo, digest, pushed_at) VALUES (${m.repo}, ${m.digest}, ${now})
               ON CONFLICT (repo, digest) DO UPDATE SET pushed_at = excluded.pushed_at`;
      if (m.tags.length > 0) {
        // Sorted: two pushes setting the same tags lock them in the same order (no deadlock).
        const rows = [...m.tags].sort().map((tag) => ({ repo: m.repo, tag, digest: m.digest, updated_at: now }));
        await tx`INSERT INTO tags ${tx(rows)} ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`;
        await this.notify(tx);
      }
      return { missing };
    });
  }

  private async notify(tx: postgres.TransactionSql<{ bigint: number }>): Promise<void> {
    // Delivered to listeners when the transaction commits.
    await tx`SELECT pg_notify(${CHANNEL}, ${this.instance})`;
  }

  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    return this.sql.begin(async (tx) => {
      const removed = (await tx`DELETE FROM repo_manifests WHERE repo = ${repo} AND digest = ${digest}`).count > 0;
      await tx`DELETE FROM tags WHERE repo = ${repo} AND digest = ${digest}`;
      if (removed) {
        const [still] = await tx`SELECT 1 FROM repo_manifests WHERE digest = ${digest} LIMIT 1`;
        if (!still) {
          await tx`DELETE FROM manifests WHERE digest = ${digest}`;
          await tx`DELETE FROM manifest_refs WHERE manifest = ${digest}`;
        }
        await this.notify(tx);
      }
      return removed;
    });
  }

  async deleteTag(repo: string, tag: string): Promise<boolean> {
    return this.sql.begin(async (tx) => {
      const removed = (await tx`DELETE FROM tags WHERE repo = ${repo} AND tag = ${tag}`).count > 0;
      if (removed) await this.notify(tx);
      return removed;
    });
  }

  async repoExists(repo: string): Promise<boolean> {
    return (await this.sql`SELECT 1 FROM repositories WHERE name = ${repo}`).length > 0;
  }

  async listTags(repo: string, last: string | undefined, limit: number): Promise<string[]> {
    const rows = await this.sql<{ tag: string }[]>`SELECT tag FROM tags WHERE repo = ${repo} AND tag > ${last ?? ''}
      ORDER BY tag ${limit >= 0 ? this.sql`LIMIT ${limit}` : this.sql``}`;
    return rows.map((r) => r.tag);
  }

  async listRepositories(last: string | undefined, limit: number): Promise<string[]> {
    const rows = await this.sql<{ name: string }[]>`SELECT name FROM repositories WHERE name > ${last ?? ''}
      ORDER BY name ${limit >= 0 ? this.sql`LIMIT ${limit}` : this.sql``}`;
    return rows.map((r) => r.name);
  }

  async referrers(repo: string, subject: string, artifactType?: string): Promise<ReferrerRecord[]> {
    const rows = await this.sql<{ media_type: string; digest: string; size: number; artifact_type: string | null; annotations: string | null }[]>`
      SELECT m.media_type, m.digest, m.size, m.artifact_type, m.annotations FROM manifests m
      JOIN repo_manifests r ON r.digest = m.digest AND r.repo = ${repo}
      WHERE m.subject = ${subject} ${artifactType !== undefined ? this.sql`AND m.artifact_type = ${artifactType}` : this.sql``}
      ORDER BY m.digest`;
    return rows.map((r) => {
      const rec: ReferrerRecord = { mediaType: r.media_type, digest: r.digest, size: r.size };
      if (r.artifact_type) rec.artifactType = r.artifact_type;
      if (r.annotations) rec.annotations = JSON.parse(r.annotations) as Record<string, string>;
      return rec;
    });
  }

  async createUpload(u: UploadRecord): Promise<void> {
    const now = Date.now();
    await this.sql.begin(async (tx) => {
      await tx`INSERT INTO repositories(name, created_at) VALUES (${u.repo}, ${now}) ON CONFLICT DO NOTHING`;
      await tx`INSERT INTO uploads(id, repo, algorithm, started_at) VALUES (${u.id}, ${u.repo}, ${u.algorithm}, ${u.startedAt})`;
    });
  }

  async upload(id: string): Promise<UploadRecord | undefined> {
    const [r] = await this.sql<UploadRow[]>`SELECT id, repo, algorithm, started_at, hash_size, hash_state FROM uploads WHERE id = ${id}`;
    return toUpload(r);
  }

  async deleteUpload(id: string): Promise<void> {
    await this.sql`DELETE FROM uploads WHERE id = ${id}`;
  }

  async uploadsStartedBefore(time: number): Promise<UploadRecord[]> {
    const rows = await this.sql<UploadRow[]>`SELECT id, repo, algorithm, started_at, hash_size, hash_state FROM uploads WHERE started_at < ${time}`;
    return rows.map((r) => toUpload(r)!);
  }

  async setUploadHashState(id: string, size: number, state: Buffer): Promise<boolean> {
    return (await this.sql`UPDATE uploads SET hash_size = ${size}, hash_state = ${state} WHERE id = ${id}`).count > 0;
  }

  async stagingState(id: string): Promise<StagingState | undefined> {
    const [r] = await this.sql<{ state: Buffer; version: number; updated_at: number }[]>`SELECT state, version, updated_at FROM staging WHERE id = ${id}`;
    return r && { state: r.state, version: r.version, updatedAt: r.updated_at };
  }

  async putStagingState(id: string, state: Buffer, expectedVersion: number): Promise<boolean> {
    const now = Date.now();
    if (expectedVersion === 0) {
      return (await this.sql`INSERT INTO staging(id, state, version, updated_at) VALUES (${id}, ${state}, 1, ${now}) ON CONFLICT DO NOTHING`).count > 0;
    }
    return (await this.sql`UPDATE staging SET state = ${state}, version = version + 1, updated_at = ${now} WHERE id = ${id} AND version = ${expectedVersion}`).count > 0;
  }

  async deleteStagingState(id: string): Promise<void> {
    await this.sql`DELETE FROM staging WHERE id = ${id}`;
  }

  async stagingStates(): Promise<{ id: string; mtimeMs: number }[]> {
    return (await this.sql<{ id: string; updated_at: number }[]>`SELECT id, updated_at FROM staging`).map((r) => ({ id: r.id, mtimeMs: r.updated_at }));
  }

  async planGc(opts: { now: number; graceMs: number; deleteUntagged: boolean }): Promise<GcPlan> {
    const cutoff = opts.now - opts.graceMs;
    const rows = await this.sql.begin('ISOLATION LEVEL REPEATABLE READ READ ONLY', async (tx) => {
      const r: GcRows = {
        links: (await tx<{ repo: string; digest: string; pushed_at: number }[]>`SELECT repo, digest, pushed_at FROM repo_manifests`).map((l) => ({
          repo: l.repo,
          digest: l.digest,
          pushedAt: l.pushed_at,
        })),
        tagged: [...(await tx<{ repo: string; digest: string }[]>`SELECT DISTINCT repo, digest FROM tags`)],
        refs: [...(await tx<{ manifest: string; ref: string; kind: string }[]>`SELECT manifest, ref, kind FROM manifest_refs`)],
        subjects: [...(await tx<{ digest: string; subject: string }[]>`SELECT digest, subject FROM manifests WHERE subject IS NOT NULL`)],
        blobs: (await tx<{ digest: string; size: number; created_at: number }[]>`SELECT digest, size, created_at FROM blobs`).map((b) => ({
          digest: b.digest,
          size: b.size,
          createdAt: b.created_at,
        })),
        recentlyLinked: (await tx<{ digest: string }[]>`SELECT DISTINCT digest FROM repo_blobs WHERE linked_at >= ${cutoff}`).map((b) => b.digest),
      };
      return r;
    });
    return planFromRows(rows, cutoff, opts.deleteUntagged);
  }

  async forgetBlobIfUnreferenced(digest: string, olderThan: number): Promise<boolean> {
    return this.sql.begin(async (tx) => {
      // Exclusive row lock first: a manifest push holding FOR SHARE on it commits before we look.
      const [b] = await tx<{ created_at: number }[]>`SELECT created_at FROM blobs WHERE digest = ${digest} FOR UPDATE`;
      if (b && b.created_at >= olderThan) return false;
      const [referenced] = await tx`SELECT 1 FROM manifest_refs f JOIN repo_manifests r ON r.digest = f.manifest WHERE f.ref = ${digest} LIMIT 1`;
      if (referenced) return false;
      const [recent] = await tx`SELECT 1 FROM repo_blobs WHERE digest = ${digest} AND linked_at >= ${olderThan} LIMIT 1`;
      if (recent) return false;
      await tx`DELETE FROM repo_blobs WHERE digest = ${digest}`;
      await tx`DELETE FROM blobs WHERE digest = ${digest}`;
      return true;
    });
  }

  async allBlobs(): Promise<{ digest: string; size: number }[]> {
    return [...(await this.sql<{ digest: string; size: number }[]>`SELECT digest, size FROM blobs ORDER BY digest`)];
  }

  async allManifestRefs(): Promise<{ manifest: string; ref: string; kind: 'blob' | 'manifest'; sparse: boolean }[]> {
    return [
      ...(await this.sql<{ manifest: string; ref: string; kind: 'blob' | 'manifest'; sparse: boolean }[]>`SELECT f.manifest, f.ref, f.kind,
        COALESCE(m.sparse, false) AS sparse FROM manifest_refs f LEFT JOIN manifests m ON m.digest = f.manifest`),
    ];
  }

  async allManifests(): Promise<ManifestRecord[]> {
    return (await this.sql<ManifestRow[]>`SELECT digest, media_type, size, content FROM manifests`).map((r) => toRecord(r)!);
  }

  async allLinks(): Promise<RegistryLinks> {
    return this.sql.begin('ISOLATION LEVEL REPEATABLE READ READ ONLY', async (tx) => ({
      blobs: [...(await tx<RegistryLinks['blobs']>`SELECT r.repo, r.digest, b.size FROM repo_blobs r JOIN blobs b ON b.digest = r.digest ORDER BY r.repo, r.digest`)],
      manifests: [...(await tx<RegistryLinks['manifests']>`SELECT repo, digest FROM repo_manifests ORDER BY repo, digest`)],
      tags: [...(await tx<RegistryLinks['tags']>`SELECT repo, tag, digest FROM tags ORDER BY repo, tag`)],
    }));
  }

  async stats(): Promise<{ blobs: number; bytes: number; repositories: number; manifests: number }> {
    const [r] = await this.sql<{ blobs: number; bytes: number; repositories: number; manifests: number }[]>`SELECT
      (SELECT COUNT(*) FROM blobs) AS blobs, (SELECT COALESCE(SUM(size), 0)::bigint FROM blobs) AS bytes,
      (SELECT COUNT(*) FROM repositories) AS repositories, (SELECT COUNT(*) FROM manifests) AS manifests`;
    return { blobs: r!.blobs, bytes: r!.bytes, repositories: r!.repositories, manifests: r!.manifests };
  }

  async withLock<T>(key: string, work: () => Promise<T>): Promise<T> {
    // One connection per key and process: local waiters queue here, not on the pool.
    return this.localLocks.run(key, async () => {
      const conn = await this.lockSql.reserve();
      try {
        await conn`SELECT pg_advisory_lock(hashtextextended(${key}, 0))`;
        try {
          return await work();
        } finally {
          await conn`SELECT pg_advisory_unlock(hashtextextended(${key}, 0))`;
        }
      } finally {
        conn.release();
      }
    });
  }

  onManifestsChanged(listener: () => void): void {
    this.listeners.push(listener);
    const all = () => {
      for (const l of this.listeners) l();
    };
    // The third callback runs on every (re)connection: what was missed while away is dropped too.
    this.listening ??= this.sql.listen(CHANNEL, (from) => from !== this.instance && all(), all);
  }

  /** Resolves once LISTEN is in place (tests wait for it). */
  async listeningReady(): Promise<void> {
    await this.listening;
  }

  async ping(): Promise<void> {
    await this.sql`SELECT 1`;
  }

  async close(): Promise<void> {
    await Promise.all([this.sql.end({ timeout: 5 }), this.lockSql.end({ timeout: 5 })]);
  }
}
