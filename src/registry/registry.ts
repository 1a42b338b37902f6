/**
 * One registry: its stores, its access control and the state shared by the handlers.
 * Built from a RegistryConfig by `openRegistry`; the HTTP server (server.ts) only dispatches.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import { AnonymousAuthorizer, type Authorizer } from './auth/access.js';
import { BasicAuthorizer } from './auth/basic-authorizer.js';
import { Htpasswd } from './auth/htpasswd.js';
import { loadSigningKey, loadTrustedKey } from './auth/jwt.js';
import { AccessPolicy } from './auth/policy.js';
import { TokenAuthorizer } from './auth/token-authorizer.js';
import { TokenIssuer } from './auth/token-endpoint.js';
import type { RegistryConfig } from './config.js';
import { KeyedMutex, type Locks } from './keyed-mutex.js';
import type { ManifestRecord, MetadataStore } from './metadata/metadata-store.js';
import { SqliteMetadataStore } from './metadata/sqlite-store.js';
import { Metrics } from './metrics.js';
import type { BlobStore } from './storage/blob-store.js';
import { FsBlobStore } from './storage/fs-blob-store.js';
import { UpstreamProxy } from './proxy.js';
import { UploadManager } from './uploads.js';
import { createPublicKey } from 'node:crypto';

/** Blobs up to this size are kept in memory once read (they are immutable). */
export const SMALL_BLOB_BYTES = 64 * 1024;
const SMALL_BLOB_CACHE_BYTES = 32 * 1024 * 1024;
const MANIFEST_CACHE_ENTRIES = 10_000;
/**
 * Cached manifests are re-read after this long, which bounds how stale a replica (or a server
 * whose data an offline `berth registry gc` changed) can be; this process's own writes clear it.
 */
const MANIFEST_CACHE_TTL_MS = 2000;

/** A bounded byte cache of small immutable blobs, evicting the oldest entries first. */
class SmallBlobCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  get(digest: string): Buffer | undefined {
    return this.entries.get(digest);
  }
  set(digest: string, data: Buffer): void {
    if (this.entries.has(digest)) return;
    this.entries.set(digest, data);
    this.bytes += data.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= SMALL_BLOB_CACHE_BYTES) break;
      this.entries.delete(k);
      this.bytes -= v.length;
    }
  }
  delete(digest: string): void {
    const v = this.entries.get(digest);
    if (v) {
      this.entries.delete(digest);
      this.bytes -= v.length;
    }
  }
}

export class Registry {
  /** Held while a digest is committed or collected: across replicas when the metadata is shared. */
  readonly digestLocks: Locks;
  readonly uploads: UploadManager;
  readonly metrics = new Metrics();
  readonly smallBlobs = new SmallBlobCache();
  /** The upstreams of a pull-through cache. */
  readonly proxy?: UpstreamProxy;
  /** repo\0reference → manifest and when it was read; cleared on every manifest write or delete. */
  private readonly manifestCache = new Map<string, { record: ManifestRecord; at: number }>();

  constructor(
    readonly config: RegistryConfig,
    readonly blobs: BlobStore,
    readonly meta: MetadataStore,
    readonly authorizer: Authorizer,
    readonly tokenIssuer: TokenIssuer | undefined,
  ) {
    this.digestLocks = meta.shared ? { run: (key, work) => meta.withLock(`digest:${key}`, work) } : new KeyedMutex();
    this.uploads = new UploadManager(blobs, meta, this.digestLocks, new KeyedMutex());
    if (config.proxies.length > 0) this.proxy = new UpstreamProxy(config.proxies, meta, this.uploads, config.dataDir);
    // Another replica moved a tag or deleted a manifest: forget what this one remembers.
    meta.onManifestsChanged(() => this.invalidateManifests());
  }

  async manifest(repo: string, reference: string, byDigest: boolean): Promise<ManifestRecord | undefined> {
    const key = `${repo}\0${reference}`;
    const now = Date.now();
    // With replicas, tags are looked up every time: a tag moved on another replica is served
    // as moved on the very next request. Content by digest never changes (deletes are notified).
    const proxied = this.proxy?.covers(repo) ? this.proxy : undefined;
    if (!byDigest && proxied) return proxied.manifest(repo, reference, false);
    if (!byDigest && this.meta.shared) return this.meta.manifestByTag(repo, reference);
    const hit = this.manifestCache.get(key);
    if (hit !== undefined && now - hit.at < MANIFEST_CACHE_TTL_MS) return hit.record;
    const found = proxied
      ? await proxied.manifest(repo, reference, true)
      : byDigest
        ? await this.meta.manifestByDigest(repo, reference)
        : await this.meta.manifestByTag(repo, reference);
    if (this.manifestCache.size >= MANIFEST_CACHE_ENTRIES) this.manifestCache.clear();
    // Only hits are cached: a miss must see the next push at once.
    if (found) this.manifestCache.set(key, { record: found, at: now });
    else this.manifestCache.delete(key);
    return found;
  }

  invalidateManifests(): void {
    this.manifestCache.clear();
  }

  /** Whether the blob store and the metadata store answer, each with the error when not. */
  async health(): Promise<{ ok: boolean; storage: string; metadata: string }> {
    const probe = async (p: Promise<void> | undefined) => {
      try {
        await p;
        return 'ok';
      } catch (err) {
        return `${(err as Error).name}: ${(err as Error).message}`;
      }
    };
    const [storage, metadata] = await Promise.all([probe(this.blobs.ping?.()), probe(this.meta.ping())]);
    return { ok: storage === 'ok' && metadata === 'ok', storage, metadata };
  }

  async close(): Promise<void> {
    this.proxy?.close();
    this.blobs.close?.();
    await this.meta.close();
  }
}

function buildAuth(config: RegistryConfig): { authorizer: Authorizer; issuer?: TokenIssuer } {
  const htpasswd = config.auth.htpasswd ? new Htpasswd(config.auth.htpasswd) : undefined;
  const policy = config.auth.policy ? AccessPolicy.fromFile(config.auth.policy) : AccessPolicy.authenticatedOnly();
  const token = config.auth.token;
  if (token) {
    const keys = token.trustedKeys.map(loadTrustedKey);
    let issuer: TokenIssuer | undefined;
    if (token.signingKey) {
      const key = loadSigningKey(token.signingKey);
      keys.push(createPublicKey(key));
      issuer = new TokenIssuer(key, token.issuer, token.service, token.expiresIn, htpasswd, policy);
    }
    return { authorizer: new TokenAuthorizer(keys, token.realm, token.service, token.issuer, config.tls !== undefined), issuer };
  }
  if (htpasswd) return { authorizer: new BasicAuthorizer(htpasswd, policy, config.auth.realm) };
  if (config.auth.policy) {
    throw new BerthError('USAGE', 'an access policy needs users: configure an htpasswd file (--htpasswd) or token auth');
  }
  return { authorizer: new AnonymousAuthorizer() };
}

/** The metadata store the config names: PostgreSQL, or SQLite in config.dataDir/registry.db. */
export async function openMetadata(config: Pick<RegistryConfig, 'dataDir' | 'metadata'>): Promise<MetadataStore> {
  if (config.metadata) {
    const { PostgresMetadataStore } = await import('./metadata/postgres-store.js');
    return PostgresMetadataStore.open(config.metadata);
  }
  mkdirSync(config.dataDir, { recursive: true });
  return new SqliteMetadataStore(join(config.dataDir, 'registry.db'));
}

/** The blob store the config names: S3 (staging state in `meta`), or the data directory. */
export async function openBlobStore(config: Pick<RegistryConfig, 'dataDir' | 'storage'>, meta: MetadataStore): Promise<BlobStore> {
  let blobs: BlobStore;
  if (config.storage) {
    const { S3BlobStore, parseS3Url } = await import('./storage/s3-blob-store.js');
    blobs = new S3BlobStore(parseS3Url(config.storage), meta);
  } else {
    mkdirSync(config.dataDir, { recursive: true });
    blobs = new FsBlobStore(config.dataDir);
  }
  await blobs.init();
  return blobs;
}

/**
 * Opens (creating if needed) the registry: blobs in config.dataDir or S3, metadata in
 * config.dataDir/registry.db or PostgreSQL.
 */
export async function openRegistry(config: RegistryConfig): Promise<Registry> {
  const meta = await openMetadata(config);
  try {
    const blobs = await openBlobStore(config, meta);
    const { authorizer, issuer } = buildAuth(config);
    return new Registry(config, blobs, meta, authorizer, issuer);
  } catch (err) {
    await meta.close();
    throw err;
  }
}
