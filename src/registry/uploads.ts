/**
 * Blob upload sessions (spec.md "Pushing blobs"): bytes are hashed as they arrive and the
 * hash state is kept in memory across PATCH requests; after a restart, or after a request
 * that failed half-way, the staged file is rehashed instead. With replicas (shared metadata)
 * the digest of the bytes received so far is recorded after each request, so the closing PUT
 * may land on any replica without a rehash; chunks that alternate between replicas are
 * rehashed once, when the upload is closed. A blob becomes visible only
 * after its digest and size are verified and the file is fsynced and renamed.
 */
import { randomUUID, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { newHash, parseDigest, type DigestAlgorithm } from '../base/digest.js';
import { RegistryError } from './errors.js';
import type { Locks } from './keyed-mutex.js';
import type { MetadataStore, UploadRecord } from './metadata/metadata-store.js';
import type { BlobStore } from './storage/blob-store.js';

interface HashState {
  hash: Hash;
  algorithm: DigestAlgorithm;
  size: number;
}

export interface UploadMetrics {
  inFlight: number;
}

export class UploadManager {
  private readonly hashes = new Map<string, HashState>();
  private readonly sessionLocks;
  readonly metrics: UploadMetrics = { inFlight: 0 };

  constructor(
    private readonly blobs: BlobStore,
    private readonly meta: MetadataStore,
    private readonly digestLocks: Locks,
    sessionLocks: Locks,
  ) {
    this.sessionLocks = sessionLocks;
  }

  async start(repo: string, algorithm: DigestAlgorithm): Promise<string> {
    const id = randomUUID();
    await this.blobs.startUpload(id);
    await this.meta.createUpload({ id, repo, algorithm, startedAt: Date.now() });
    this.hashes.set(id, { hash: newHash(algorithm), algorithm, size: 0 });
    return id;
  }

  /** The session, checked to belong to `repo`; 404 BLOB_UPLOAD_UNKNOWN otherwise. */
  async session(repo: string, id: string): Promise<UploadRecord> {
    const u = /^[a-f0-9-]{36}$/.test(id) ? await this.meta.upload(id) : undefined;
    if (!u || u.repo !== repo) {
      throw new RegistryError(404, 'BLOB_UPLOAD_UNKNOWN', `upload ${JSON.stringify(id)} is unknown in ${repo}: start a new one with POST /v2/${repo}/blobs/uploads/`);
    }
    return u;
  }

  /** Bytes received so far. */
  async size(repo: string, id: string): Promise<number> {
    await this.session(repo, id);
    const size = await this.blobs.uploadSize(id);
    if (size === undefined) throw new RegistryError(404, 'BLOB_UPLOAD_UNKNOWN', `upload ${id} has no data any more: start a new one`);
    return size;
  }

  /**
   * Appends a chunk. `range` is the parsed Content-Range (inclusive); a chunk that does not
   * start where the upload ends is refused with 416 (spec.md: chunks MUST be uploaded in order).
   */
  async append(repo: string, id: string, body: Readable, range?: { start: number; end: number }, length?: number): Promise<number> {
    return this.sessionLocks.run(id, async () => {
      const current = await this.size(repo, id);
      if (range) {
        if (range.start !== current) {
          throw new RegistryError(416, 'BLOB_UPLOAD_INVALID', `chunk starts at byte ${range.start} but the upload has ${current} bytes: send the chunk starting at ${current}`, undefined, {
            Location: `/v2/${repo}/blobs/uploads/${id}`,
            Range: rangeHeader(current),
          });
        }
        if (length !== undefined && range.end - range.start + 1 !== length) {
          throw new RegistryError(400, 'SIZE_INVALID', `Content-Range ${range.start}-${range.end} does not match Content-Length ${length}`);
        }
      }
      let state = this.hashes.get(id);
      if (!state && current === 0) {
        // Started on another replica: nothing to rehash yet.
        const u = await this.session(repo, id);
        state = { hash: newHash(u.algorithm), algorithm: u.algorithm, size: 0 };
        this.hashes.set(id, state);
      }
      const usable = state && state.size === current ? state : undefined;
      this.metrics.inFlight++;
      let appended: number;
      try {
        appended = await this.blobs.appendUpload(id, body, usable ? (chunk) => usable.hash.update(chunk) : undefined);
      } catch (err) {
        // The file may hold part of the chunk: forget the hash and rehash from disk next time.
        this.hashes.delete(id);
        throw new RegistryError(400, 'BLOB_UPLOAD_INVALID', `upload of the chunk failed: ${(err as Error).message}; check the upload status with GET and resume`);
      } finally {
        this.metrics.inFlight--;
      }
      if (usable) {
        usable.size += appended;
        // Replicas: the digest of the bytes so far, for a PUT without body that lands elsewhere.
        if (this.meta.shared) await this.meta.setUploadHashState(id, usable.size, Buffer.from(`${usable.algorithm}:${usable.hash.copy().digest('hex')}`));
      }
      if (length !== undefined && appended !== length) {
        throw new RegistryError(400, 'SIZE_INVALID', `received ${appended} bytes but Content-Length said ${length}`);
      }
      return current + appended;
    });
  }

  /**
   * Closes the session: verifies `digest` against every byte received, makes the blob durable
   * and visible, and links it into the repository. Returns the blob size.
   */
  async finish(repo: string, id: string, digest: string): Promise<number> {
    return this.sessionLocks.run(id, async () => {
      const session = await this.session(repo, id);
      const algorithm = parseDigest(digest).algorithm;
      const size = await this.blobs.uploadSize(id);
      if (size === undefined) throw new RegistryError(404, 'BLOB_UPLOAD_UNKNOWN', `upload ${id} has no data any more: start a new one`);
      const state = this.hashes.get(id);
      const recorded = session.hashState?.size === size ? session.hashState.state.toString() : undefined;
      let actual: string;
      if (state && state.size === size && state.algorithm === algorithm) {
        actual = `${algorithm}:${state.hash.digest('hex')}`;
      } else if (recorded?.startsWith(`${algorithm}:`)) {
        actual = recorded;
      } else {
        const h = newHash(algorithm);
        for await (const chunk of this.blobs.readUpload(id) as AsyncIterable<Buffer>) h.update(chunk);
        actual = `${algorithm}:${h.digest('hex')}`;
      }
      this.hashes.delete(id);
      if (actual !== digest) {
        await this.discard(id);
        throw new RegistryError(400, 'DIGEST_INVALID', `the uploaded content hashes to ${actual}, not ${digest}: the upload was discarded, push it again`, {
          expected: digest,
          actual,
        });
      }
      await this.digestLocks.run(digest, async () => {
        await this.blobs.commitUpload(id, digest);
        await this.meta.linkBlob(repo, digest, size);
      });
      await this.meta.deleteUpload(id);
      return size;
    });
  }

  async cancel(repo: string, id: string): Promise<void> {
    await this.sessionLocks.run(id, async () => {
      await this.session(repo, id);
      await this.discard(id);
    });
  }

  private async discard(id: string): Promise<void> {
    this.hashes.delete(id);
    await this.blobs.cancelUpload(id);
    await this.meta.deleteUpload(id);
  }

  /** Removes sessions started before `cutoff` (and staged files no session owns). */
  async purgeStale(cutoff: number): Promise<string[]> {
    const purged: string[] = [];
    for (const u of await this.meta.uploadsStartedBefore(cutoff)) {
      await this.sessionLocks.run(u.id, () => this.discard(u.id));
      purged.push(u.id);
    }
    for (const f of await this.blobs.listUploads()) {
      if (f.mtimeMs < cutoff && !(await this.meta.upload(f.id))) {
        await this.blobs.cancelUpload(f.id);
        purged.push(f.id);
      }
    }
    return purged;
  }
}

/** spec.md: `Range: 0-<end-of-range>`; distribution answers 0-0 for an empty upload. */
export function rangeHeader(size: number): string {
  return `0-${size > 0 ? size - 1 : 0}`;
}
