/**
 * Registry metadata: repositories, blob links, manifests (their exact bytes), tags,
 * referrers and upload sessions. The HTTP layer only talks to this interface, so that a
 * PostgreSQL driver can replace the SQLite one. Every method that writes is atomic.
 */

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  content: Buffer;
}

export interface NewManifest extends ManifestRecord {
  repo: string;
  /** Digests of the blobs (config, layers) this manifest references, to be checked and recorded. */
  blobRefs: string[];
  /** Digests of the manifests (index entries) this manifest references. */
  manifestRefs: string[];
  subject?: string;
  /** What the referrers API reports (artifactType, else the config media type for image manifests). */
  artifactType?: string;
  annotations?: Record<string, string>;
  tags: string[];
  /**
   * Accept the manifest even when references are missing (a mirror of part of an index,
   * distribution-spec: a registry MAY reject such manifests); it is then recorded as sparse.
   */
  sparse?: boolean;
}

export interface ReferrerRecord {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface UploadRecord {
  id: string;
  repo: string;
  algorithm: 'sha256' | 'sha512';
  startedAt: number;
  /**
   * Resumable hash state after `hashedSize` bytes (serialised by the hasher), so that another
   * replica continues the session without re-reading the staged bytes.
   */
  hashState?: { size: number; state: Buffer };
}

/** A driver's own state of an upload's staged bytes (e.g. an S3 multipart upload), versioned. */
export interface StagingState {
  state: Buffer;
  version: number;
  updatedAt: number;
}

export interface RegistryLinks {
  blobs: { repo: string; digest: string; size: number }[];
  manifests: { repo: string; digest: string }[];
  tags: { repo: string; tag: string; digest: string }[];
}

export interface GcPlan {
  /** Untagged manifests removed from repositories (repo, digest). */
  manifests: { repo: string; digest: string }[];
  /** Blobs no longer referenced by any manifest nor recently linked. */
  blobs: { digest: string; size: number }[];
}

export interface MetadataStore {
  /** The size of a blob linked into `repo`, or undefined. */
  repoBlob(repo: string, digest: string): Promise<number | undefined>;
  /** The size of a blob known to the registry (in any repository), or undefined. */
  blob(digest: string): Promise<number | undefined>;
  /** Records a committed blob and links it into `repo` (refreshing the link time). */
  linkBlob(repo: string, digest: string, size: number): Promise<void>;
  /** Repositories that link the blob (for mounts without `from`). */
  reposWithBlob(digest: string, limit: number): Promise<string[]>;
  unlinkBlob(repo: string, digest: string): Promise<boolean>;

  manifestByDigest(repo: string, digest: string): Promise<ManifestRecord | undefined>;
  manifestByTag(repo: string, tag: string): Promise<ManifestRecord | undefined>;
  /**
   * Stores the manifest, links it into the repository and points the tags at it, in one
   * transaction; fails with the missing references (MANIFEST_BLOB_UNKNOWN) without writing,
   * unless `sparse`, where it writes and still returns what is missing.
   */
  putManifest(m: NewManifest): Promise<{ missing: string[] }>;
  /** Removes the manifest from the repository with every tag pointing at it. */
  deleteManifest(repo: string, digest: string): Promise<boolean>;
  deleteTag(repo: string, tag: string): Promise<boolean>;

  repoExists(repo: string): Promise<boolean>;
  /** Tags in ASCII order after `last`, at most `limit`. */
  listTags(repo: string, last: string | undefined, limit: number): Promise<string[]>;
  listRepositories(last: string | undefined, limit: number): Promise<string[]>;
  referrers(repo: string, subject: string, artifactType?: string): Promise<ReferrerRecord[]>;

  createUpload(u: UploadRecord): Promise<void>;
  upload(id: string): Promise<UploadRecord | undefined>;
  deleteUpload(id: string): Promise<void>;
  uploadsStartedBefore(time: number): Promise<UploadRecord[]>;
  /** Records the hash state of a session; false when the session is gone. */
  setUploadHashState(id: string, size: number, state: Buffer): Promise<boolean>;

  /** The staging state the blob store keeps for an upload. */
  stagingState(id: string): Promise<StagingState | undefined>;
  /**
   * Writes the staging state if its version is still `expectedVersion` (0: it must not exist),
   * making it version expectedVersion + 1; false when another writer came first.
   */
  putStagingState(id: string, state: Buffer, expectedVersion: number): Promise<boolean>;
  deleteStagingState(id: string): Promise<void>;
  stagingStates(): Promise<{ id: string; mtimeMs: number }[]>;

  /**
   * Runs `work` holding the lock named `key` across every process sharing this metadata (a
   * blob digest while it is committed or collected, "gc" while collecting).
   */
  withLock<T>(key: string, work: () => Promise<T>): Promise<T>;
  /** True when other processes (replicas) write the same metadata: caches must not outlive a request by tag. */
  readonly shared: boolean;
  /** Calls `listener` when another process changed or deleted manifests or tags (where the driver can tell). */
  onManifestsChanged(listener: () => void): void;
  /** Whether the database answers (for /healthz). */
  ping(): Promise<void>;

  /** What garbage collection would remove now (nothing is changed). */
  planGc(opts: { now: number; graceMs: number; deleteUntagged: boolean }): Promise<GcPlan>;
  /** Forgets an unreferenced blob if it is still unreferenced and old; returns whether it did. */
  forgetBlobIfUnreferenced(digest: string, olderThan: number): Promise<boolean>;
  /** Every blob the metadata knows, and every manifest link (for verify). */
  allBlobs(): Promise<{ digest: string; size: number }[]>;
  /** Every reference of every manifest; `sparse` when the manifest was accepted with references missing. */
  allManifestRefs(): Promise<{ manifest: string; ref: string; kind: 'blob' | 'manifest'; sparse: boolean }[]>;
  allManifests(): Promise<ManifestRecord[]>;
  /** Every link: blobs and manifests into repositories, and tags (to copy a registry). */
  allLinks(): Promise<RegistryLinks>;
  stats(): Promise<{ blobs: number; bytes: number; repositories: number; manifests: number }>;

  close(): Promise<void>;
}
