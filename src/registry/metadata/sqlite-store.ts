/**
 * The SQLite MetadataStore (better-sqlite3, synchronous and in-process). WAL journal with
 * synchronous=FULL: a transaction that returned is on disk, so a `kill -9` (or power loss)
 * never loses a push that was acknowledged. Every statement is prepared once.
 */
import Database from 'better-sqlite3';
import type { GcPlan, ManifestRecord, MetadataStore, NewManifest, ReferrerRecord, UploadRecord } from './metadata-store.js';

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

interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  content: Buffer;
}

export class SqliteMetadataStore implements MetadataStore {
  private readonly db: Database.Database;
  private readonly q;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
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
        'INSERT OR IGNORE INTO manifests(digest, media_type, size, content, subject, artifact_type, annotations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
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
      upload: db.prepare('SELECT id, repo, algorithm, started_at AS startedAt FROM uploads WHERE id = ?'),
      deleteUpload: db.prepare('DELETE FROM uploads WHERE id = ?'),
      uploadsBefore: db.prepare('SELECT id, repo, algorithm, started_at AS startedAt FROM uploads WHERE started_at < ?'),
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
      if (missing.length > 0) return { missing };
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
    return this.q.upload.get(id) as UploadRecord | undefined;
  }

  async deleteUpload(id: string): Promise<void> {
    this.q.deleteUpload.run(id);
  }

  async uploadsStartedBefore(time: number): Promise<UploadRecord[]> {
    return this.q.uploadsBefore.all(time) as UploadRecord[];
  }

  async planGc(opts: { now: number; graceMs: number; deleteUntagged: boolean }): Promise<GcPlan> {
    const cutoff = opts.now - opts.graceMs;
    return this.db.transaction(() => {
      const links = this.db.prepare('SELECT repo, digest, pushed_at FROM repo_manifests').all() as {
        repo: string;
        digest: string;
        pushed_at: number;
      }[];
      const doomed = new Set<string>(); // "repo\0digest"
      if (opts.deleteUntagged) {
        const tagged = new Set(
          (this.db.prepare('SELECT DISTINCT repo, digest FROM tags').all() as { repo: string; digest: string }[]).map(
            (t) => `${t.repo}\0${t.digest}`,
          ),
        );
        const refs = this.db.prepare('SELECT manifest, ref FROM manifest_refs WHERE kind = ?').all('manifest') as {
          manifest: string;
          ref: string;
        }[];
        const subjects = new Map(
          (this.db.prepare('SELECT digest, subject FROM manifests WHERE subject IS NOT NULL').all() as {
            digest: string;
            subject: string;
          }[]).map((r) => [r.digest, r.subject]),
        );
        const live = new Set(links.map((l) => `${l.repo}\0${l.digest}`));
        // Reachable: tagged, recent, children of reachable indexes, referrers of reachable manifests.
        const reachable = new Set<string>();
        const queue: string[] = [];
        for (const l of links) {
          const key = `${l.repo}\0${l.digest}`;
          if (tagged.has(key) || l.pushed_at >= cutoff) {
            reachable.add(key);
            queue.push(key);
          }
        }
        const children = new Map<string, string[]>();
        for (const r of refs) children.set(r.manifest, [...(children.get(r.manifest) ?? []), r.ref]);
        const referrersOf = new Map<string, string[]>();
        for (const [d, s] of subjects) referrersOf.set(s, [...(referrersOf.get(s) ?? []), d]);
        while (queue.length > 0) {
          const key = queue.pop()!;
          const [repo, digest] = key.split('\0') as [string, string];
          for (const next of [...(children.get(digest) ?? []), ...(referrersOf.get(digest) ?? [])]) {
            const k = `${repo}\0${next}`;
            if (live.has(k) && !reachable.has(k)) {
              reachable.add(k);
              queue.push(k);
            }
          }
        }
        for (const key of live) if (!reachable.has(key)) doomed.add(key);
      }
      const surviving = new Set(links.filter((l) => !doomed.has(`${l.repo}\0${l.digest}`)).map((l) => l.digest));
      const referenced = new Set<string>();
      for (const r of this.db.prepare('SELECT manifest, ref FROM manifest_refs').all() as { manifest: string; ref: string }[]) {
        if (surviving.has(r.manifest)) referenced.add(r.ref);
      }
      const recent = new Set(
        this.db.prepare('SELECT DISTINCT digest FROM repo_blobs WHERE linked_at >= ?').pluck().all(cutoff) as string[],
      );
      const blobs = (this.db.prepare('SELECT digest, size, created_at FROM blobs').all() as {
        digest: string;
        size: number;
        created_at: number;
      }[])
        .filter((b) => !referenced.has(b.digest) && !recent.has(b.digest) && b.created_at < cutoff)
        .map((b) => ({ digest: b.digest, size: b.size }));
      return {
        manifests: [...doomed].map((k) => {
          const [repo, digest] = k.split('\0') as [string, string];
          return { repo, digest };
        }),
        blobs,
      };
    })();
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

  async allManifestRefs(): Promise<{ manifest: string; ref: string; kind: 'blob' | 'manifest' }[]> {
    return this.db.prepare('SELECT manifest, ref, kind FROM manifest_refs').all() as {
      manifest: string;
      ref: string;
      kind: 'blob' | 'manifest';
    }[];
  }

  async allManifests(): Promise<ManifestRecord[]> {
    return (this.db.prepare('SELECT digest, media_type, size, content FROM manifests').all() as ManifestRow[]).map(
      (r) => toRecord(r)!,
    );
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
