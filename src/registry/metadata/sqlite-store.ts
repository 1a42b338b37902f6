/**
 * The SQLite MetadataStore (better-sqlite3, synchronous and in-process). WAL journal with
 * synchronous=FULL: a transaction that returned is on disk, so a `kill -9` (or power loss)
 * never loses a push that was acknowledged. Every statement is prepared once.
 */
import Database from 'better-sqlite3';
import { planFromRows, type GcRows } from './gc-plan.js';
import { KeyedMutex } from '../keyed-mutex.js';
import type { GcPlan, ManifestRecord, MetadataStore, NewManifest, ReferrerRecord, RegistryLinks, StagingState, UploadRecord } from './metadata-store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS repositories(name TEXT PRIMARY KEY, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs(digest TEXT PRIMARY KEY, size INTEGER NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS repo_blobs(repo TEXT NOT NULL, digest TEXT NOT NULL, linked_at INTEGER NOT NULL,
  PRIMARY KEY(repo, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_blobs_by_digest ON repo_blobs(digest);
CREATE TABLE IF NOT EXISTS manifests(digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, size INTEGER NOT NULL,
  content BLOB NOT NULL, subject TEXT, artifact_type TEXT, annotations TEXT, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests(subject) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS repo_manifests(repo TEXT NOT NULL, digest TEXT NOT NULL, pushed_at INTEGER NOT NULL,
  PRIMARY KEY(repo, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_manifests_by_digest ON repo_manifests(digest);
CREATE TABLE IF NOT EXISTS manifest_refs(manifest TEXT NOT NULL, ref TEXT NOT NULL, kind TEXT NOT NULL,
  PRIMARY KEY(manifest, ref)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifest_refs_by_ref ON manifest_refs(ref);
CREATE TABLE IF NOT EXISTS tags(repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY(repo, tag)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_digest ON tags(repo, digest);
CREATE TABLE IF NOT EXISTS uploads(id TEXT PRIMARY KEY, repo TEXT NOT NULL, algorithm TEXT NOT NULL,
  started_at INTEGER NOT NULL) WITHOUT ROWID;
`;

/** Forward-only migrations, applied in order after SCHEMA; PRAGMA user_version counts them. */
const MIGRATIONS = [
  `ALTER TABLE uploads ADD COLUMN hash_size INTEGER;
   ALTER TABLE uploads ADD COLUMN hash_state BLOB;
   CREATE TABLE IF NOT EXISTS staging(id TEXT PRIMARY KEY, state BLOB NOT NULL, version INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;`,
  `ALTER TABLE manifests ADD COLUMN sparse INTEGER NOT NULL DEFAULT 0;`,
];

interface UploadRow {
  id: string;
  repo: string;
  algorithm: 'sha256' | 'sha512';
  startedAt: number;
  hash_size: number | null;
  hash_state: Buffer | null;
}

function toUpload(r: UploadRow | undefined): UploadRecord | undefined {
  if (!r) return undefined;
  const u: UploadRecord = { id: r.id, repo: r.repo, algorithm: r.algorithm, startedAt: r.startedAt };
  if (r.hash_state !== null && r.hash_size !== null) u.hashState = { size: r.hash_size, state: r.hash_state };
  return u;
}

interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  content: Buffer;
}

export class SqliteMetadataStore implements MetadataStore {
  private readonly db: Database.Database;
  private readonly q;
  private readonly locks = new KeyedMutex();

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.db.transaction(() => {
      const version = this.db.pragma('user_version', { simple: true }) as number;
      for (let v = version; v < MIGRATIONS.length; v++) this.db.exec(MIGRATIONS[v]!);
      if (version < MIGRATIONS.length) this.db.pragma(`user_version = ${MIGRATIONS.length}`);
    })();
    const db = this.db;
    this.q = {
      repoBlob: db.prepare('SELECT b.size FROM repo_blobs r JOIN blobs b ON b.digest = r.digest WHERE r.repo = ? AND r.digest = ?').pluck(),
      blob: db.prepare('SELECT size FROM blobs WHERE digest = ?').pluck(),
      insertBlob: db.prepare('INSERT OR IGNORE INTO blobs(digest, size, created_at) VALUES (?, ?, ?)'),
      linkBlob: db.prepare(
        'INSERT INTO repo_blobs(repo, digest, linked_at) VALUES (?, ?, ?) ON CONFLICT(repo, digest) DO UPDATE SET linked_at = excluded.linked_at',
      ),
      insertRepo: db.prepare('INSERT OR IGNORE INTO repositories(name, created_at) VALUES (?, ?)'),
      reposWithBlob: db.prepare('SELECT repo FROM repo_blobs WHERE digest = ? ORDER BY linked_at DESC LIMIT ?').pluck(),
      unlinkBlob: db.prepare('DELETE FROM repo_blobs WHERE repo = ? AND digest = ?'),
      manifestByDigest: db.prepare(
        'SELECT m.digest, m.media_type, m.size, m.content FROM repo_manifests r JOIN manifests m ON m.digest = r.digest WHERE r.repo = ? AND r.digest = ?',
      ),
      manifestByTag: db.prepare(
        'SELECT m.digest, m.media_type, m.size, m.content FROM tags t JOIN manifests m ON m.digest = t.digest WHERE t.repo = ? AND t.tag = ?',
      ),
      repoHasManifest: db.prepare('SELECT 1 FROM repo_manifests WHERE repo = ? AND digest = ?').pluck(),
      insertManifest: db.prepare(
        'INSERT OR IGNORE INTO manifests(digest, media_type, size, content, subject, artifact_type, annotations, created_at, sparse) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      insertRef: db.prepare('INSERT OR IGNORE INTO manifest_refs(manifest, ref, kind) VALUES (?, ?, ?)'),
      linkManifest: db.prepare(
        'INSERT INTO repo_manifests(repo, digest, pushed_at) VALUES (?, ?, ?) ON CONFLICT(repo, digest) DO UPDATE SET pushed_at = excluded.pushed_at',
      ),
      setTag: db.prepare(
        'INSERT INTO tags(repo, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at',
      ),
      unlinkManifest: db.prepare('DELETE FROM repo_manifests WHERE repo = ? AND digest = ?'),
      deleteTagsOf: db.prepare('DELETE FROM tags WHERE repo = ? AND digest = ?'),
      manifestLinked: db.prepare('SELECT 1 FROM repo_manifests WHERE digest = ? LIMIT 1').pluck(),
      dropManifest: db.prepare('DELETE FROM manifests WHERE digest = ?'),
      dropRefs: db.prepare('DELETE FROM manifest_refs WHERE manifest = ?'),
      deleteTag: db.prepare('DELETE FROM tags WHERE repo = ? AND tag = ?'),
      repoExists: db.prepare('SELECT 1 FROM repositories WHERE name = ?').pluck(),
      tagsAfter: db.prepare('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?').pluck(),
      reposAfter: db.prepare('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?').pluck(),
      referrers: db.prepare(
        'SELECT m.media_type, m.digest, m.size, m.artifact_type, m.annotations FROM manifests m JOIN repo_manifests r ON r.digest = m.digest AND r.repo = ? WHERE m.subject = ? ORDER BY m.digest',
      ),
      insertUpload: db.prepare('INSERT INTO uploads(id, repo, algorithm, started_at) VALUES (?, ?, ?, ?)'),
      upload: db.prepare('SELECT id, repo, algorithm, started_at AS startedAt, hash_size, hash_state FROM uploads WHERE id = ?'),
      setHashState: db.prepare('UPDATE uploads SET hash_size = ?, hash_state = ? WHERE id = ?'),
      staging: db.prepare('SELECT state, version, updated_at AS updatedAt FROM staging WHERE id = ?'),
      insertStaging: db.prepare('INSERT OR IGNORE INTO staging(id, state, version, updated_at) VALUES (?, ?, 1, ?)'),
      updateStaging: db.prepare('UPDATE staging SET state = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?'),
      deleteStaging: db.prepare('DELETE FROM staging WHERE id = ?'),
      deleteUpload: db.prepare('DELETE FROM uploads WHERE id = ?'),
      uploadsBefore: db.prepare('SELECT id, repo, algorithm, started_at AS startedAt, hash_size, hash_state FROM uploads WHERE started_at < ?'),
      blobReferenced: db.prepare(
        'SELECT 1 FROM manifest_refs f JOIN repo_manifests r ON r.digest = f.manifest WHERE f.ref = ? LIMIT 1',
      ).pluck(),
      blobRecentlyLinked: db.prepare('SELECT 1 FROM repo_blobs WHERE digest = ? AND linked_at >= ? LIMIT 1').pluck(),
      blobCreatedAt: db.prepare('SELECT created_at FROM blobs WHERE digest = ?').pluck(),
      unlinkBlobEverywhere: db.prepare('DELETE FROM repo_blobs WHERE digest = ?'),
      dropBlob: db.prepare('DELETE FROM blobs WHERE digest = ?'),
    };
  }

  async repoBlob(repo: string, digest: string): Promise<number | undefined> {
    return this.q.repoBlob.get(repo, digest) as number | undefined;
  }

  async blob(digest: string): Promise<number | undefined> {
    return this.q.blob.get(digest) as number | undefined;
  }

  private readonly linkBlobTx = (repo: string, digest: string, size: number, now: number) =>
    this.db.transaction(() => {
      this.q.insertRepo.run(repo, now);
      this.q.insertBlob.run(digest, size, now);
      this.q.linkBlob.run(repo, digest, now);
    })();

  async linkBlob(repo: string, digest: string, size: number): Promise<void> {
    this.linkBlobTx(repo, digest, size, Date.now());
  }

  async reposWithBlob(digest: string, limit: number): Promise<string[]> {
    return this.q.reposWithBlob.all(digest, limit) as string[];
  }

  async unlinkBlob(repo: string, digest: string): Promise<boolean> {
    return this.q.unlinkBlob.run(repo, digest).changes > 0;
  }

  async manifestByDigest(repo: string, digest: string): Promise<ManifestRecord | undefined> {
    return toRecord(this.q.manifestByDigest.get(repo, digest) as ManifestRow | undefined);
  }

  async manifestByTag(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    return toRecord(this.q.manifestByTag.get(repo, tag) as ManifestRow | undefined);
  }

  async putManifest(m: NewManifest): Promise<{ missing: string[] }> {
    const now = Date.now();
    return this.db.transaction(() => {
      // The checks run inside the transaction, so a concurrent delete cannot slip in between.
      const missing: string[] = [];
      for (const d of m.blobRefs) if (this.q.repoBlob.get(m.repo, d) === undefined) missing.push(d);
      for (const d of m.manifestRefs) if (this.q.repoHasManifest.get(m.repo, d) === undefined) missing.push(d);
      if (missing.length > 0 && !m.sparse) return { missing };
      this.q.insertRepo.run(m.repo, now);
      this.q.insertManifest.run(
        m.digest,
        m.mediaType,
        m.size,
        m.content,
        m.subject ?? null,
        m.artifactType ?? null,
        m.annotations ? JSON.stringify(m.annotations) : null,
        now,
        missing.length > 0 ? 1 : 0,
      );
      for (const d of m.blobRefs) this.q.insertRef.run(m.digest, d, 'blob');
      for (const d of m.manifestRefs) this.q.insertRef.run(m.digest, d, 'manifest');
      this.q.linkManifest.run(m.repo, m.digest, now);
      for (const t of m.tags) this.q.setTag.run(m.repo, t, m.digest, now);
      return { missing };
    })();
  }

  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    return this.db.transaction(() => {
      const removed = this.q.unlinkManifest.run(repo, digest).changes > 0;
      this.q.deleteTagsOf.run(repo, digest);
      if (removed && this.q.manifestLinked.get(digest) === undefined) {
        this.q.dropManifest.run(digest);
        this.q.dropRefs.run(digest);
      }
      return removed;
    })();
  }

  async deleteTag(repo: string, tag: string): Promise<boolean> {
    return this.q.deleteTag.run(repo, tag).changes > 0;
  }

  async repoExists(repo: string): Promise<boolean> {
    return this.q.repoExists.get(repo) !== undefined;
  }

  async listTags(repo: string, last: string | undefined, limit: number): Promise<string[]> {
    return this.q.tagsAfter.all(repo, last ?? '', limit) as string[];
  }

  async listRepositories(last: string | undefined, limit: number): Promise<string[]> {
    return this.q.reposAfter.all(last ?? '', limit) as string[];
  }

  async referrers(repo: string, subject: string, artifactType?: string): Promise<ReferrerRecord[]> {
    const rows = this.q.referrers.all(repo, subject) as {
      media_type: string;
      digest: string;
      size: number;
      artifact_type: string | null;
      annotations: string | null;
    }[];
    const out: ReferrerRecord[] = [];
    for (const r of rows) {
      if (artifactType !== undefined && r.artifact_type !== artifactType) continue;
      const rec: ReferrerRecord = { mediaType: r.media_type, digest: r.digest, size: r.size };
      if (r.artifact_type) rec.artifactType = r.artifact_type;
      if (r.annotations) rec.annotations = JSON.parse(r.annotations) as Record<string, string>;
      out.push(rec);
    }
    return out;
  }

  async createUpload(u: UploadRecord): Promise<void> {
    const now = Date.now();
    this.db.transaction(() => {
      this.q.insertRepo.run(u.repo, now);
      this.q.insertUpload.run(u.id, u.repo, u.algorithm, u.startedAt);
    })();
  }

  async upload(id: string): Promise<UploadRecord | undefined> {
    return toUpload(this.q.upload.get(id) as UploadRow | undefined);
  }

  async setUploadHashState(id: string, size: number, state: Buffer): Promise<boolean> {
    return this.q.setHashState.run(size, state, id).changes > 0;
  }

  async stagingState(id: string): Promise<StagingState | undefined> {
    return this.q.staging.get(id) as StagingState | undefined;
  }

  async putStagingState(id: string, state: Buffer, expectedVersion: number): Promise<boolean> {
    const now = Date.now();
    if (expectedVersion === 0) return this.q.insertStaging.run(id, state, now).changes > 0;
    return this.q.updateStaging.run(state, now, id, expectedVersion).changes > 0;
  }

  async deleteStagingState(id: string): Promise<void> {
    this.q.deleteStaging.run(id);
  }

  async stagingStates(): Promise<{ id: string; mtimeMs: number }[]> {
    return this.db.prepare('SELECT id, updated_at AS mtimeMs FROM staging').all() as { id: string; mtimeMs: number }[];
  }

  /** One process owns a SQLite registry (serve.pid keeps `berth registry gc` out): an in-process lock. */
  async withLock<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.locks.run(key, work);
  }

  readonly shared = false;

  onManifestsChanged(): void {
    // No other process writes this database while a server uses it.
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async deleteUpload(id: string): Promise<void> {
    this.q.deleteUpload.run(id);
  }

  async uploadsStartedBefore(time: number): Promise<UploadRecord[]> {
    return (this.q.uploadsBefore.all(time) as UploadRow[]).map((r) => toUpload(r)!);
  }

  async planGc(opts: { now: number; graceMs: number; deleteUntagged: boolean }): Promise<GcPlan> {
    const cutoff = opts.now - opts.graceMs;
    return this.db.transaction(() =>
      planFromRows(
        {
          links: this.db.prepare('SELECT repo, digest, pushed_at AS pushedAt FROM repo_manifests').all() as GcRows['links'],
          tagged: this.db.prepare('SELECT DISTINCT repo, digest FROM tags').all() as GcRows['tagged'],
          refs: this.db.prepare('SELECT manifest, ref, kind FROM manifest_refs').all() as GcRows['refs'],
          subjects: this.db.prepare('SELECT digest, subject FROM manifests WHERE subject IS NOT NULL').all() as GcRows['subjects'],
          blobs: this.db.prepare('SELECT digest, size, created_at AS createdAt FROM blobs').all() as GcRows['blobs'],
          recentlyLinked: this.db.prepare('SELECT DISTINCT digest FROM repo_blobs WHERE linked_at >= ?').pluck().all(cutoff) as string[],
        },
        cutoff,
        opts.deleteUntagged,
      ),
    )();
  }

  async forgetBlobIfUnreferenced(digest: string, olderThan: number): Promise<boolean> {
    return this.db.transaction(() => {
      if (this.q.blobReferenced.get(digest) !== undefined) return false;
      if (this.q.blobRecentlyLinked.get(digest, olderThan) !== undefined) return false;
      const created = this.q.blobCreatedAt.get(digest) as number | undefined;
      if (created !== undefined && created >= olderThan) return false;
      this.q.unlinkBlobEverywhere.run(digest);
      this.q.dropBlob.run(digest);
      return true;
    })();
  }

  async allBlobs(): Promise<{ digest: string; size: number }[]> {
    return this.db.prepare('SELECT digest, size FROM blobs ORDER BY digest').all() as { digest: string; size: number }[];
  }

  async allManifestRefs(): Promise<{ manifest: string; ref: string; kind: 'blob' | 'manifest'; sparse: boolean }[]> {
    const rows = this.db.prepare('SELECT f.manifest, f.ref, f.kind, COALESCE(m.sparse, 0) AS sparse FROM manifest_refs f LEFT JOIN manifests m ON m.digest = f.manifest').all() as {
      manifest: string;
      ref: string;
      kind: 'blob' | 'manifest';
      sparse: number;
    }[];
    return rows.map((r) => ({ ...r, sparse: r.sparse === 1 }));
  }

  async allManifests(): Promise<ManifestRecord[]> {
    return (this.db.prepare('SELECT digest, media_type, size, content FROM manifests').all() as ManifestRow[]).map(
      (r) => toRecord(r)!,
    );
  }

  async allLinks(): Promise<RegistryLinks> {
    return this.db.transaction(() => ({
      blobs: this.db.prepare('SELECT r.repo, r.digest, b.size FROM repo_blobs r JOIN blobs b ON b.digest = r.digest ORDER BY r.repo, r.digest').all() as RegistryLinks['blobs'],
      manifests: this.db.prepare('SELECT repo, digest FROM repo_manifests ORDER BY repo, digest').all() as RegistryLinks['manifests'],
      tags: this.db.prepare('SELECT repo, tag, digest FROM tags ORDER BY repo, tag').all() as RegistryLinks['tags'],
    }))();
  }

  async stats(): Promise<{ blobs: number; bytes: number; repositories: number; manifests: number }> {
    const b = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM blobs').get() as { n: number; bytes: number };
    const r = this.db.prepare('SELECT COUNT(*) FROM repositories').pluck().get() as number;
    const m = this.db.prepare('SELECT COUNT(*) FROM manifests').pluck().get() as number;
    return { blobs: b.n, bytes: b.bytes, repositories: r, manifests: m };
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

function toRecord(row: ManifestRow | undefined): ManifestRecord | undefined {
  if (!row) return undefined;
  return { digest: row.digest, mediaType: row.media_type, size: row.size, content: row.content };
}
