/**
 * Where blob bytes live. The HTTP layer only talks to this interface, so that an object-store
 * driver (S3) can replace the filesystem one. Upload sessions stage bytes here too; a blob
 * becomes readable only through `commitUpload`, after its digest has been verified.
 */
import type { Readable } from 'node:stream';

export interface BlobStat {
  size: number;
  /** Last modification time of the stored file, for GC grace periods. */
  mtimeMs: number;
}

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

export interface BlobStore {
  /** Prepares the directories; called once before serving. */
  init(): Promise<void>;
  stat(digest: string): Promise<BlobStat | undefined>;
  /** A stream of a stored blob, or of the inclusive byte range. */
  read(digest: string, range?: ByteRange): Readable;
  /** Reads a whole small blob into memory (callers bound the size). */
  readSmall(digest: string): Promise<Buffer>;
  /** Creates the empty staging area of an upload session. */
  startUpload(id: string): Promise<void>;
  /** Bytes staged so far, or undefined when the session has no staging area. */
  uploadSize(id: string): Promise<number | undefined>;
  /**
   * Appends `source` to the staged bytes; `onChunk` sees every chunk before it is written
   * (to hash it). Resolves with the number of bytes appended.
   */
  appendUpload(id: string, source: Readable, onChunk?: (chunk: Buffer) => void): Promise<number>;
  /** A stream of the staged bytes (to rehash them after a restart). */
  readUpload(id: string): Readable;
  /**
   * Makes the staged bytes durable and visible under `digest` (fsync, atomic rename, fsync of
   * the directory). The caller has verified the digest. If the blob exists, the staged copy is dropped.
   */
  commitUpload(id: string, digest: string): Promise<void>;
  cancelUpload(id: string): Promise<void>;
  /** Ids of every staged upload, with the time of its last write. */
  listUploads(): Promise<{ id: string; mtimeMs: number }[]>;
  delete(digest: string): Promise<boolean>;
  /** Every stored blob. */
  list(): AsyncIterable<{ digest: string; size: number; mtimeMs: number }>;
  /** The smallest chunk worth sending (OCI-Chunk-Min-Length), when the store has one. */
  readonly chunkMinLength?: number;
  /** A URL clients can fetch the blob from directly (object storage), when the store has one. */
  presign?(digest: string): Promise<string>;
  /** Whether the storage answers (for /healthz). */
  ping?(): Promise<void>;
  close?(): void;
}
