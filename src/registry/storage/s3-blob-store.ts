/**
 * The S3 BlobStore (any S3 API: AWS, Ceph RGW, MinIO), with the AWS SDK v3.
 *
 * - Blobs: `<prefix>blobs/<alg>/<first two hex>/<encoded>`, written only by `commitUpload`
 *   after the caller verified the digest, so a blob key exists only when whole and verified.
 * - Uploads: one multipart upload per session at `<prefix>uploads/<id>/data-<generation>`.
 *   Bytes are copied into parts of 5 MiB (S3's minimum for every part but the last; one part sent
 *   while the next is read), from buffers shared by every upload of the process (part-pool.ts);
 *   what is left at the end of a request (under 5 MiB) waits for the next one in the session's
 *   staging state in the metadata store, which every replica shares, so any replica continues a
 *   session: inline when small, else as an object of its own (the tail) that the next request
 *   reads back into its first part and the commit copies server-side as the last part.
 * - Commit: the last bytes become the last part, the multipart upload completes to its staging
 *   key, a server-side copy puts it at the blob key, and the staging object is deleted.
 *   A small blob (an inline tail, no part) is written with one PutObject.
 * - Parts of an unfinished multipart upload cannot be read back. To rehash an upload (another
 *   replica continues it without the hash state), `readUpload` completes the multipart upload
 *   into a readable object, opens the next generation with that object as its first part
 *   (a server-side part copy), and streams the object plus the buffered tail.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import http from 'node:http';
import https from 'node:https';
import { BerthError } from '../../base/errors.js';
import { parseDigest } from '../../base/digest.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { BlobStat, BlobStore, ByteRange } from './blob-store.js';
import { PartPool } from './part-pool.js';

const UPLOAD_ID_RE = /^[a-f0-9-]{36}$/;
/** S3: every part but the last is at least 5 MiB. */
export const MIN_PART = 5 * 1024 * 1024;
/**
 * Parts are sent once this much is buffered: 5 MiB (memory: two parts per upload in flight),
 * growing with the upload so that S3's 10,000 parts hold blobs of several TiB.
 */
function partTarget(received: number): number {
  return Math.max(MIN_PART, Math.floor(received / 2000));
}
/**
 * Parts being filled or sent, across every upload of the process: 6 x 5 MiB. More concurrent
 * uploads wait for a buffer (their clients with them) rather than growing the replica's memory.
 */
const partPool = new PartPool(MIN_PART, 6, 1);
/** Tails up to this size stay in the metadata store: a small blob is then one PutObject at commit. */
const INLINE_TAIL = 256 * 1024;
/** The largest single copy (CopyObject, UploadPartCopy). */
const MAX_COPY = 5 * 1024 * 1024 * 1024;
const PRESIGN_SECONDS = 20 * 60;
const PRESIGN_CACHE_ENTRIES = 10_000;

// berth supports Node 20 and pins an SDK release that runs on it: no notice on every start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface S3Options {
  bucket: string;
  endpoint?: string;
  region: string;
  /** Key prefix inside the bucket ("" or ending with "/"). */
  prefix: string;
  /** Explicit credentials (tests); otherwise the SDK's default chain: environment, shared files, … */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Create the bucket at init when it does not exist. */
  createBucket: boolean;
  /** Keys per listing page (S3's default and maximum: 1000). */
  pageSize?: number;
}

interface Part {
  n: number;
  etag: string;
  size: number;
}

interface Staging {
  mpu: string;
  generation: number;
  parts: Part[];
  /** Staging objects left by rehashes, deleted on commit or cancel. */
  bases: string[];
  /** The bytes after the last part (under 5 MiB), as an object of their own. */
  tail?: { key: string; size: number };
  /** Or the same, when small (INLINE_TAIL), held in the metadata store itself. */
  pending: Buffer;
  version: number;
}

function tailSize(s: Staging): number {
  return s.pending.length + (s.tail?.size ?? 0);
}

function encodeStaging(s: Staging): Buffer {
  const head = Buffer.from(JSON.stringify({ mpu: s.mpu, generation: s.generation, parts: s.parts, bases: s.bases, tail: s.tail }));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(head.length);
  return Buffer.concat([len, head, s.pending]);
}

function decodeStaging(buf: Buffer, version: number): Staging {
  const n = buf.readUInt32BE(0);
  const head = JSON.parse(buf.subarray(4, 4 + n).toString()) as Omit<Staging, 'pending' | 'version'>;
  return { ...head, pending: Buffer.from(buf.subarray(4 + n)), version };
}

/** Parses `s3://BUCKET[/PREFIX]?endpoint=URL&region=R&create=false`. */
export function parseS3Url(url: string): S3Options {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BerthError('USAGE', `storage ${JSON.stringify(url)} is not a URL: use s3://BUCKET?endpoint=http://HOST:PORT&region=REGION`);
  }
  if (u.protocol !== 's3:' || !u.hostname) throw new BerthError('USAGE', `storage ${JSON.stringify(url)}: expected s3://BUCKET[/PREFIX]?endpoint=…&region=…`);
  const prefix = decodeURIComponent(u.pathname.replace(/^\/+/, ''));
  for (const k of u.searchParams.keys()) {
    if (!['endpoint', 'region', 'create'].includes(k)) throw new BerthError('USAGE', `storage URL: unknown parameter ${JSON.stringify(k)} (known: endpoint, region, create)`);
  }
  return {
    bucket: u.hostname,
    endpoint: u.searchParams.get('endpoint') ?? undefined,
    region: u.searchParams.get('region') ?? process.env.AWS_REGION ?? 'us-east-1',
    prefix: prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix,
    createBucket: u.searchParams.get('create') !== 'false',
  };
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.name === 'NoSuchUpload' || e?.$metadata?.httpStatusCode === 404;
}

export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  readonly chunkMinLength = MIN_PART;
  private readonly presigned = new Map<string, { url: string; until: number }>();

  constructor(
    readonly opts: S3Options,
    private readonly meta: MetadataStore,
  ) {
    const config: S3ClientConfig = {
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: true,
      // Ceph 16 refuses the SDK's default streamed checksums (MissingContentLength).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Our own agents: no CA bundle read from the environment (AWS_CA_BUNDLE) for plain HTTP.
      requestHandler: {
        httpAgent: new http.Agent({ keepAlive: true, maxSockets: 128 }),
        httpsAgent: new https.Agent({ keepAlive: true, maxSockets: 128 }),
      },
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
    };
    this.client = new S3Client(config);
  }

  private get bucket(): string {
    return this.opts.bucket;
  }

  blobKey(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return `${this.opts.prefix}blobs/${algorithm}/${encoded.slice(0, 2)}/${encoded}`;
  }

  private stagingKey(id: string, generation: number): string {
    if (!UPLOAD_ID_RE.test(id)) throw new Error(`invalid upload id ${JSON.stringify(id)}`);
    return `${this.opts.prefix}uploads/${id}/data-${generation}`;
  }

  async init(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (!isNotFound(err) || !this.opts.createBucket) {
        throw new BerthError('NETWORK', `S3 bucket ${this.bucket} at ${this.opts.endpoint ?? 'AWS'} cannot be used: ${(err as Error).name}: ${(err as Error).message}; check the endpoint, the bucket and the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws)`, { cause: err });
      }
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
      } catch (e) {
        if ((e as Error).name !== 'BucketAlreadyOwnedByYou') throw e;
      }
    }
  }

  /** Whether S3 answers (for /healthz). */
  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  async stat(digest: string): Promise<BlobStat | undefined> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }));
      return { size: h.ContentLength ?? 0, mtimeMs: h.LastModified?.getTime() ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * A URL the client can GET the blob (or a range of it, with its own Range header) from directly.
   * Signing costs more than the rest of the request: a URL is reused for a quarter of its life.
   */
  async presign(digest: string): Promise<string> {
    const now = Date.now();
    const hit = this.presigned.get(digest);
    if (hit && hit.until > now) return hit.url;
    const url = await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }), { expiresIn: PRESIGN_SECONDS });
    if (this.presigned.size >= PRESIGN_CACHE_ENTRIES) this.presigned.clear();
    this.presigned.set(digest, { url, until: now + (PRESIGN_SECONDS * 1000) / 4 });
    return url;
  }

  read(digest: string, range?: ByteRange): Readable {
    return this.readKey(this.blobKey(digest), range);
  }

  /** A stream that emits 'open' once S3 answered (as a file stream does), then the bytes. */
  private readKey(key: string, range?: ByteRange): Readable {
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    const abort = new AbortController();
    out.once('close', () => abort.abort());
    this.client
      .send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }), {
        abortSignal: abort.signal,
      })
      .then((r) => {
        const body = r.Body as Readable;
        out.emit('open');
        body.once('error', (err) => out.destroy(err));
        body.pipe(out);
      })
      .catch((err: Error) => out.destroy(err));
    return out;
  }

  async readSmall(digest: string): Promise<Buffer> {
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }));
    return Buffer.from(await r.Body!.transformToByteArray());
  }

  private async load(id: string): Promise<Staging | undefined> {
    if (!UPLOAD_ID_RE.test(id)) throw new Error(`invalid upload id ${JSON.stringify(id)}`);
    const s = await this.meta.stagingState(id);
    return s && decodeStaging(s.state, s.version);
  }

  private async save(id: string, s: Staging): Promise<void> {
    if (!(await this.meta.putStagingState(id, encodeStaging(s), s.version))) {
      throw new Error(`upload ${id} was changed by another request at the same time`);
    }
    s.version++;
  }

  private async loadOrFail(id: string): Promise<Staging> {
    const s = await this.load(id);
    if (!s) throw new Error(`upload ${id} has no staged data`);
    return s;
  }

  async startUpload(id: string): Promise<void> {
    const key = this.stagingKey(id, 0);
    const mpu = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
    await this.save(id, { mpu: mpu.UploadId!, generation: 0, parts: [], bases: [], pending: Buffer.alloc(0), version: 0 });
  }

  async uploadSize(id: string): Promise<number | undefined> {
    const s = await this.load(id);
    return s && s.parts.reduce((n, p) => n + p.size, 0) + tailSize(s);
  }

  /** Sends `chunks` (`size` bytes) as part `n`, streamed from memory without copying them. */
  private async uploadPart(id: string, s: Staging, chunks: Buffer[], size: number, n: number): Promise<Part> {
    const r = await this.client.send(
      new UploadPartCommand({
        Bucket: this.bucket,
        Key: this.stagingKey(id, s.generation),
        UploadId: s.mpu,
        PartNumber: n,
        Body: chunks.length === 1 ? chunks[0] : Readable.from(chunks),
        ContentLength: size,
      }),
    );
    return { n, etag: r.ETag!, size };
  }

  async appendUpload(id: string, source: Readable, onChunk?: (chunk: Buffer) => void): Promise<number> {
    const s = await this.loadOrFail(id);
    let count = 0;
    let next = (s.parts.at(-1)?.n ?? 0) + 1;
    let received = s.parts.reduce((n, p) => n + p.size, 0);
    let target = partTarget(received);
    // The part being filled (from the shared pool) and the one in flight: one sent while the next is read.
    let buf: Buffer | undefined = await partPool.take(target);
    let used = 0;
    let inFlight: Promise<Part> | undefined;
    const send = async () => {
      if (inFlight) s.parts.push(await inFlight);
      const sending = buf!;
      inFlight = this.uploadPart(id, s, [sending.subarray(0, used)], used, next++).finally(() => partPool.give(sending));
      inFlight.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
      received += used;
      target = partTarget(received);
      buf = undefined;
      used = 0;
      buf = await partPool.take(target);
    };
    const fill = (chunk: Buffer) => {
      chunk.copy(buf!, used);
      used += chunk.length;
    };
    const previousTail = s.tail;
    try {
      // The part starts with the bytes left by the previous request.
      if (s.pending.length > 0) fill(s.pending);
      else if (s.tail) for await (const c of this.readKey(s.tail.key) as AsyncIterable<Buffer>) fill(c);
      for await (const chunk of source as AsyncIterable<Buffer>) {
        count += chunk.length;
        onChunk?.(chunk);
        for (let off = 0; off < chunk.length; ) {
          const n = Math.min(chunk.length - off, target - used);
          chunk.copy(buf!, used, off, off + n);
          used += n;
          off += n;
          if (used >= target) await send();
        }
      }
      if (count === 0) return 0; // nothing new: the staged state stays as it is
      if (used >= MIN_PART) await send();
      if (inFlight) s.parts.push(await inFlight);
      // What is left waits for the next request (any replica may continue): a few bytes in the
      // metadata store, more as an object (PostgreSQL sends bytea as hex text: a 5 MiB tail cost
      // ~25 MB of a replica's memory on each write and read).
      s.pending = used <= INLINE_TAIL ? Buffer.from(buf!.subarray(0, used)) : Buffer.alloc(0);
      s.tail = undefined;
      if (used > INLINE_TAIL) {
        const key = `${this.opts.prefix}uploads/${id}/tail-${randomUUID()}`;
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: buf!.subarray(0, used), ContentLength: used }));
        s.tail = { key, size: used };
      }
    } catch (err) {
      await inFlight?.catch(() => undefined);
      throw err;
    } finally {
      if (buf) partPool.give(buf);
    }
    try {
      await this.save(id, s);
    } catch (err) {
      if (s.tail) await this.deleteKey(s.tail.key);
      throw err;
    }
    if (previousTail) await this.deleteKey(previousTail.key);
    return count;
  }

  /** Deletes an object, best effort: what is left is found by listing (listUploads). */
  private async deleteKey(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })).catch(() => undefined);
  }

  /** Completes the current multipart upload to its staging key; returns that key (or none without parts). */
  private async completeStaging(id: string, s: Staging): Promise<string | undefined> {
    if (s.parts.length === 0) return undefined;
    const key = this.stagingKey(id, s.generation);
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: s.mpu,
        MultipartUpload: { Parts: s.parts.map((p) => ({ PartNumber: p.n, ETag: p.etag })) },
      }),
    );
    return key;
  }

  readUpload(id: string): Readable {
    const out = new PassThrough();
    (async () => {
      const s = await this.loadOrFail(id);
      const base = await this.completeStaging(id, s);
      if (base !== undefined) {
        // The next generation starts with the completed bytes as its parts (server-side copies).
        const size = s.parts.reduce((n, p) => n + p.size, 0);
        const next: Staging = { mpu: '', generation: s.generation + 1, parts: [], bases: [...s.bases, base], tail: s.tail, pending: s.pending, version: s.version };
        const key = this.stagingKey(id, next.generation);
        next.mpu = (await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }))).UploadId!;
        await this.copyParts(`${this.bucket}/${base}`, size, key, next);
        await this.save(id, next);
        for await (const c of this.readKey(base)) if (!out.write(c)) await new Promise((r) => out.once('drain', r));
      }
      if (s.tail) for await (const c of this.readKey(s.tail.key)) if (!out.write(c)) await new Promise((r) => out.once('drain', r));
      out.end(s.pending);
    })().catch((err: Error) => out.destroy(err));
    return out;
  }

  /** Copies `size` bytes of `source` (bucket/key) as parts of s.mpu, each at most 5 GiB. */
  private async copyParts(source: string, size: number, key: string, s: Staging): Promise<void> {
    const count = Math.ceil(size / MAX_COPY);
    const each = Math.ceil(size / count);
    for (let start = 0; start < size; start += each) {
      const end = Math.min(size, start + each) - 1;
      const n = s.parts.length + 1;
      const r = await this.client.send(
        new UploadPartCopyCommand({ Bucket: this.bucket, Key: key, UploadId: s.mpu, PartNumber: n, CopySource: encodeURI(source), CopySourceRange: `bytes=${start}-${end}` }),
      );
      s.parts.push({ n, etag: r.CopyPartResult!.ETag!, size: end - start + 1 });
    }
  }

  async commitUpload(id: string, digest: string): Promise<void> {
    const s = await this.loadOrFail(id);
    const dst = this.blobKey(digest);
    if (!(await this.stat(digest))) {
      if (s.parts.length === 0) {
        // The whole blob is the tail: copied server-side, or written from the staging state.
        if (s.tail) await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: dst, CopySource: encodeURI(`${this.bucket}/${s.tail.key}`) }));
        else await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: dst, Body: s.pending, ContentLength: s.pending.length }));
        await this.abort(id, s);
      } else {
        // The tail becomes the last part (S3 allows it under 5 MiB), copied server-side.
        if (s.tail) await this.copyParts(`${this.bucket}/${s.tail.key}`, s.tail.size, this.stagingKey(id, s.generation), s);
        else if (s.pending.length > 0) s.parts.push(await this.uploadPart(id, s, [s.pending], s.pending.length, (s.parts.at(-1)?.n ?? 0) + 1));
        const staged = (await this.completeStaging(id, s))!;
        const size = s.parts.reduce((n, p) => n + p.size, 0);
        await this.copy(staged, dst, size);
        s.bases.push(staged);
      }
    } else {
      await this.abort(id, s);
    }
    await this.dropStaging(id, s);
  }

  /** Server-side copy of `src` to `dst` (multipart copy beyond 5 GiB). */
  private async copy(src: string, dst: string, size: number): Promise<void> {
    const source = encodeURI(`${this.bucket}/${src}`);
    if (size <= MAX_COPY) {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: dst, CopySource: source }));
      return;
    }
    const mpu = (await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: dst }))).UploadId!;
    const s: Staging = { mpu, generation: 0, parts: [], bases: [], pending: Buffer.alloc(0), version: 0 };
    await this.copyParts(`${this.bucket}/${src}`, size, dst, s);
    await this.client.send(
      new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: dst, UploadId: mpu, MultipartUpload: { Parts: s.parts.map((p) => ({ PartNumber: p.n, ETag: p.etag })) } }),
    );
  }

  private async abort(id: string, s: Staging): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.stagingKey(id, s.generation), UploadId: s.mpu }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async dropStaging(id: string, s: Staging): Promise<void> {
    for (const key of s.bases) await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    if (s.tail) await this.deleteKey(s.tail.key);
    await this.meta.deleteStagingState(id);
  }

  async cancelUpload(id: string): Promise<void> {
    const s = await this.load(id);
    if (s) {
      await this.abort(id, s);
      await this.dropStaging(id, s);
      return;
    }
    // A multipart upload whose state is gone (a crash between the two): abort it by listing.
    for (const u of await this.orphanUploads()) if (u.id === id) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.key, UploadId: u.mpu }));
    for (const o of await this.stagedObjects(`${this.opts.prefix}uploads/${id}/`)) await this.deleteKey(o.key);
  }

  /** Objects under `prefix` (tails and completed generations of upload sessions). */
  private async stagedObjects(prefix: string): Promise<{ key: string; mtimeMs: number }[]> {
    const out: { key: string; mtimeMs: number }[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: this.opts.pageSize }));
      for (const o of r.Contents ?? []) out.push({ key: o.Key!, mtimeMs: o.LastModified?.getTime() ?? 0 });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  private async orphanUploads(): Promise<{ id: string; key: string; mpu: string; mtimeMs: number }[]> {
    const out: { id: string; key: string; mpu: string; mtimeMs: number }[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    const re = new RegExp(`^${this.opts.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}uploads/([a-f0-9-]{36})/data-\\d+$`);
    for (;;) {
      const r = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: `${this.opts.prefix}uploads/`, KeyMarker: keyMarker, UploadIdMarker: idMarker }),
      );
      for (const u of r.Uploads ?? []) {
        const m = re.exec(u.Key ?? '');
        if (m) out.push({ id: m[1]!, key: u.Key!, mpu: u.UploadId!, mtimeMs: u.Initiated?.getTime() ?? 0 });
      }
      if (!r.IsTruncated) return out;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  }

  async listUploads(): Promise<{ id: string; mtimeMs: number }[]> {
    const states = await this.meta.stagingStates();
    const known = new Set(states.map((s) => s.id));
    const orphans = new Map<string, number>();
    for (const u of await this.orphanUploads()) if (!known.has(u.id)) orphans.set(u.id, Math.max(orphans.get(u.id) ?? 0, u.mtimeMs));
    // Objects of sessions whose state is gone (a crash between writing a tail and recording it).
    const uploads = `${this.opts.prefix}uploads/`;
    for (const o of await this.stagedObjects(uploads)) {
      const id = o.key.slice(uploads.length).split('/')[0]!;
      if (UPLOAD_ID_RE.test(id) && !known.has(id)) orphans.set(id, Math.max(orphans.get(id) ?? 0, o.mtimeMs));
    }
    return [...states, ...[...orphans].map(([id, mtimeMs]) => ({ id, mtimeMs }))];
  }

  async delete(digest: string): Promise<boolean> {
    if (!(await this.stat(digest))) return false;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }));
    return true;
  }

  async *list(): AsyncIterable<{ digest: string; size: number; mtimeMs: number }> {
    const prefix = `${this.opts.prefix}blobs/`;
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: this.opts.pageSize }));
      for (const o of r.Contents ?? []) {
        const m = /^(sha256|sha512)\/[0-9a-f]{2}\/([0-9a-f]+)$/.exec(o.Key!.slice(prefix.length));
        if (!m) continue;
        const digest = `${m[1]}:${m[2]}`;
        try {
          parseDigest(digest);
        } catch {
          continue;
        }
        yield { digest, size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0 };
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  close(): void {
    this.client.destroy();
  }
}
