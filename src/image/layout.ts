/**
 * The OCI image layout (image-layout.md): a directory with `oci-layout`, `index.json` and
 * `blobs/<alg>/<encoded>`, read and written as a Target. Blob writes are atomic (temp file in
 * blobs/, hashed while written, fsynced, verified, renamed); index.json rewrites are atomic and
 * serialised by a lock (layout-lock.ts).
 */
import { createReadStream, readFileSync, type Stats } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { join, resolve as resolvePath } from 'node:path';
import { PassThrough, Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, isBerthError } from '../base/errors.js';
import type { FetchOptions, PushOptions, ReferrerLister, TagLister, Target } from '../base/target.js';
import { readAll } from '../base/read.js';
import { releaseChunk } from '../base/slab-pool.js';
import { isValidDigest, parseDigest, verifyingStream, type Digest, type DigestAlgorithm } from '../base/digest.js';
import { MediaType, isIndexMediaType, isManifestMediaType } from '../base/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../base/types.js';
import { TEMP_PREFIX, fsyncDir, writeFileAtomic } from './atomic-file.js';
import { withLock } from './layout-lock.js';
import { hostPlatform, selectManifests } from './platform.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
export const LAYOUT_VERSION = '1.0.0';
/** Temp files of blob writes live directly in blobs/ under this prefix (never a valid algorithm name). */
export const BLOB_TEMP_PREFIX = TEMP_PREFIX;
const READ_CHUNK_BYTES = 1 << 20;
/** Bytes queued for the file before the source is paused; they go out in one writev. */
const WRITE_BUFFER_BYTES = 4 << 20;

// annotations.md: ref ::= component ("/" component)*; component ::= alphanum (separator alphanum)*;
// alphanum ::= [A-Za-z0-9]+; separator ::= [-._:@+] | "--"
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

/** Validates an `org.opencontainers.image.ref.name` value (a tag in a layout). */
export function validateRefName(ref: string): string {
  if (typeof ref !== 'string' || !REF_NAME.test(ref)) {
    throw new BerthError(
      'TAG_INVALID',
      `invalid layout reference ${JSON.stringify(ref)}: use letters, digits and the separators - . _ : @ + / (annotations.md org.opencontainers.image.ref.name)`,
    );
  }
  return ref;
}

function validateDescriptorShape(desc: Descriptor, what: string): void {
  if (desc === null || typeof desc !== 'object') throw new BerthError('DESCRIPTOR_INVALID', `${what}: descriptor must be an object`);
  parseDigest(desc.digest);
  if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new BerthError('DESCRIPTOR_INVALID', `${what}: descriptor size must be a non-negative integer, got ${JSON.stringify(desc.size)}`);
  }
  if (typeof desc.mediaType !== 'string' || desc.mediaType === '') {
    throw new BerthError('DESCRIPTOR_INVALID', `${what}: descriptor of ${desc.digest} has no mediaType`);
  }
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The media type of a manifest or index document, from its mediaType field or its shape. */
export function sniffDocumentMediaType(doc: unknown): string | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  if (typeof d.mediaType === 'string') return d.mediaType;
  if (Array.isArray(d.manifests)) return MediaType.imageIndex;
  if (d.config !== undefined && Array.isArray(d.layers)) return MediaType.imageManifest;
  return undefined;
}

/** Drops the first `skip` bytes of a stream (for offset reads that still verify the whole blob). */
class SkipBytes extends Transform {
  constructor(private skip: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.skip >= chunk.length) {
      this.skip -= chunk.length;
      cb();
      return;
    }
    const out = this.skip > 0 ? chunk.subarray(this.skip) : chunk;
    this.skip = 0;
    cb(null, out);
  }
}

/**
 * The write end of a blob: hashes and counts what it is given and writes it with writev (the
 * chunks that queue up while a write is in flight go in one syscall). Refuses more bytes
 * than expected as they arrive; `verify()` checks size and digest once everything is written.
 */
class HashingFileSink extends Writable {
  private readonly hash: Hash;
  private readonly algorithm: DigestAlgorithm;
  size = 0;
  private written = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly expected: { digest: Digest; size: number } | undefined,
    private readonly onBytes: ((bytes: number) => void) | undefined,
    /** The chunks are ours alone: give their memory back once written (PushOptions.releaseChunks). */
    private readonly releaseChunks: boolean,
  ) {
    super({ highWaterMark: WRITE_BUFFER_BYTES });
    this.algorithm = expected ? parseDigest(expected.digest).algorithm : 'sha256';
    this.hash = createHash(this.algorithm);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    for (const b of buffers) {
      this.size += b.length;
      this.hash.update(b);
    }
    if (this.expected && this.size > this.expected.size) {
      cb(new BerthError('SIZE_MISMATCH', `content is larger than its descriptor says (${this.expected.size} bytes for ${this.expected.digest}): refusing it`));
      return;
    }
    this.fh.writev(buffers).then(
      ({ bytesWritten }) => {
        if (this.releaseChunks) for (const b of buffers) releaseChunk(b);
        this.written += bytesWritten;
        this.onBytes?.(this.written);
        cb();
      },
      (err: Error) => cb(err),
    );
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this._writev([{ chunk }], cb);
  }

  /** The digest of what was written; SIZE_MISMATCH or DIGEST_MISMATCH when it is not what was expected. */
  verify(): Digest {
    const digest: Digest = `${this.algorithm}:${this.hash.digest('hex')}`;
    const exp = this.expected;
    if (exp && this.size !== exp.size) {
      throw new BerthError('SIZE_MISMATCH', `size mismatch for ${exp.digest}: expected ${exp.size} bytes, got ${this.size}`);
    }
    if (exp && digest !== exp.digest) {
      throw new BerthError('DIGEST_MISMATCH', `digest mismatch: expected ${exp.digest}, content hashes to ${digest}`);
    }
    return digest;
  }
}

/** Blobs up to this size are read whole by readDocument (documents are small; the spec's registries cap manifests at 4 MiB). */
const MAX_DOCUMENT_BYTES = 4 << 20;

export class OciLayout implements Target, TagLister, ReferrerLister {
  readonly dir: string;
  readonly name: string;
  /** Temp files this instance is writing right now (gc leaves them alone). */
  readonly activeTempFiles = new Set<string>();

  private constructor(dir: string) {
    this.dir = dir;
    this.name = `oci:${dir}`;
  }

  /** Opens (or with `create`, initialises) a layout; LAYOUT_INVALID with the reason when it is not one. */
  static async open(dir: string, opts: { create?: boolean } = {}): Promise<OciLayout> {
    const abs = resolvePath(dir);
    const layout = new OciLayout(abs);
    let st: Stats | undefined;
    try {
      st = await stat(abs);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (st && !st.isDirectory()) throw new BerthError('LAYOUT_INVALID', `${abs} is not a directory, so it cannot be an OCI image layout`);
    if (!st && !opts.create) {
      throw new BerthError('LAYOUT_INVALID', `${abs} does not exist: it is not an OCI image layout (create one with \`berth create\` or open it with create)`);
    }
    if (opts.create) await layout.initialise();
    await layout.readHeader();
    await layout.index();
    try {
      if (!(await stat(join(abs, 'blobs'))).isDirectory()) throw new Error('not a directory');
    } catch {
      throw new BerthError('LAYOUT_INVALID', `${abs} is not a valid OCI image layout: the blobs directory is missing (image-layout.md: it MUST exist)`);
    }
    return layout;
  }

  private async initialise(): Promise<void> {
    await mkdir(join(this.dir, 'blobs'), { recursive: true });
    const header = join(this.dir, 'oci-layout');
    if (!(await exists(header))) await writeFileAtomic(header, JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
    const index = join(this.dir, 'index.json');
    if (!(await exists(index))) {
      await writeFileAtomic(index, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.imageIndex, manifests: [] }));
    }
  }

  private async readHeader(): Promise<void> {
    const path = join(this.dir, 'oci-layout');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (isNotFound(err)) throw new BerthError('LAYOUT_INVALID', `${this.dir} is not an OCI image layout: it has no oci-layout file`);
      throw err;
    }
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (err) {
      throw new BerthError('LAYOUT_INVALID', `${path} is not valid JSON: ${(err as Error).message}`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) {
      throw new BerthError('LAYOUT_INVALID', `${path} must be a JSON object with imageLayoutVersion`);
    }
    const version = (header as Record<string, unknown>).imageLayoutVersion;
    if (version !== LAYOUT_VERSION) {
      throw new BerthError(
        'LAYOUT_INVALID',
        `${path}: imageLayoutVersion is ${JSON.stringify(version)}; berth reads layouts of version ${LAYOUT_VERSION}`,
      );
    }
  }

  blobPath(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, encoded);
  }

  async index(): Promise<ImageIndex> {
    const path = join(this.dir, 'index.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (isNotFound(err)) throw new BerthError('LAYOUT_INVALID', `${this.dir} is not an OCI image layout: it has no index.json`);
      throw err;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new BerthError('LAYOUT_INVALID', `${path} is not valid JSON: ${(err as Error).message}`);
    }
    const index = doc as ImageIndex;
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || index.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
      throw new BerthError('LAYOUT_INVALID', `${path} is not an image index: it needs schemaVersion 2 and a manifests array`);
    }
    index.manifests.forEach((d, i) => {
      try {
        validateDescriptorShape(d, `index.json manifests[${i}]`);
      } catch (err) {
        throw new BerthError('LAYOUT_INVALID', `${path}: ${(err as Error).message}`, { cause: err });
      }
    });
    return index;
  }

  private async updateIndex(mutate: (index: ImageIndex) => boolean | void): Promise<void> {
    await withLock(join(this.dir, 'index.json.lock'), async () => {
      const index = await this.index();
      if (mutate(index) === false) return;
      await writeFileAtomic(join(this.dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
    });
  }

  async exists(desc: Descriptor): Promise<boolean> {
    try {
      const st = await stat(this.blobPath(desc.digest));
      return st.isFile() && st.size === desc.size;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    const raw = await this.openBlob(desc, 'fetch', opts.signal);
    const verified = verifyingStream(raw, desc.digest, desc.size);
    const offset = opts.offset ?? 0;
    if (offset <= 0) return verified;
    // The whole blob is still hashed: only bytes past the offset are handed on.
    const skip = new SkipBytes(offset);
    verified.on('error', (err) => skip.destroy(err));
    return verified.pipe(skip);
  }

  /**
   * A small blob (a manifest, an index, a config) whole, size and digest checked: one read,
   * without a stream (a warm `run` reads three of these).
   */
  async readDocument(desc: Descriptor): Promise<Buffer> {
    if (desc.size > MAX_DOCUMENT_BYTES) return readAll(await this.fetch(desc));
    validateDescriptorShape(desc, 'fetch');
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.blobPath(desc.digest));
    } catch (err) {
      if (isNotFound(err)) throw new BerthError('NOT_FOUND', `blob ${desc.digest} is not in ${this.name}`);
      throw err;
    }
    if (bytes.length !== desc.size) throw new BerthError('SIZE_MISMATCH', `blob ${desc.digest} in ${this.name} is ${bytes.length} bytes but its descriptor says ${desc.size}`);
    const { algorithm } = parseDigest(desc.digest);
    const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    if (actual !== desc.digest) throw new BerthError('DIGEST_MISMATCH', `digest mismatch: expected ${desc.digest}, content hashes to ${actual}`);
    return bytes;
  }

  /**
   * A blob's bytes, size-checked but not hashed: only for consumers that verify what they
   * receive (every Pusher does, base/target.ts), so copy() does not hash a blob twice.
   */
  async fetchUnverified(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    const raw = await this.openBlob(desc, 'fetch', opts.signal);
    const offset = opts.offset ?? 0;
    if (offset <= 0) return raw;
    const skip = new SkipBytes(offset);
    raw.on('error', (err) => skip.destroy(err));
    return raw.pipe(skip);
  }

  private async openBlob(desc: Descriptor, what: string, signal: AbortSignal | undefined): Promise<Readable> {
    validateDescriptorShape(desc, what);
    const path = this.blobPath(desc.digest);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isNotFound(err)) throw new BerthError('NOT_FOUND', `blob ${desc.digest} is not in ${this.name}`);
      throw err;
    }
    const size = (await fh.stat()).size;
    if (size !== desc.size) {
      await fh.close();
      throw new BerthError('SIZE_MISMATCH', `blob ${desc.digest} in ${this.name} is ${size} bytes but its descriptor says ${desc.size}`);
    }
    // 1 MiB reads: a quarter of the CPU per byte that 256 KiB reads cost (measured on tmpfs).
    return fh.createReadStream({ highWaterMark: READ_CHUNK_BYTES, signal });
  }

  /** Writes a blob atomically: hashed while written, verified before it becomes visible. */
  async push(desc: Descriptor, content: Readable, opts: PushOptions = {}): Promise<void> {
    validateDescriptorShape(desc, 'push');
    // The source may fail before the writer below listens (exists() takes a moment under load):
    // its error must reject this push, not crash the process. The writer sees it as `errored`.
    const held = (): void => undefined;
    content.on('error', held);
    try {
      await this.pushChecked(desc, content, opts);
    } finally {
      content.off('error', held);
    }
  }

  private async pushChecked(desc: Descriptor, content: Readable, opts: PushOptions): Promise<void> {
    if (content.errored) throw content.errored;
    if (await this.exists(desc)) {
      content.resume();
      await new Promise<void>((res, rej) => {
        if (content.readableEnded) return res();
        content.once('end', res);
        content.once('close', res);
        content.once('error', rej);
      });
      return;
    }
    await this.writeBlob({ digest: desc.digest, size: desc.size }, content, opts);
  }

  /**
   * Writes a blob whose digest is not known in advance (a layer being created): `produce` writes
   * the content to the given stream; the blob lands under the digest of what was written.
   */
  async ingest(mediaType: string, produce: (out: Writable) => Promise<void>): Promise<Descriptor> {
    const source = new PassThrough({ highWaterMark: 256 * 1024 });
    source.on('error', () => undefined); // reported through the promises below
    const producing = produce(source).then(
      () => {
        if (!source.writableEnded) source.end();
      },
      (err: unknown) => {
        source.destroy(err instanceof Error ? err : new Error(String(err)));
        throw err;
      },
    );
    const [produced, written] = await Promise.allSettled([producing, this.writeBlob(undefined, source, {})]);
    // The producer's failure is the cause; the writer's is then only its consequence.
    if (produced.status === 'rejected') throw produced.reason;
    if (written.status === 'rejected') throw written.reason;
    const { digest, size } = written.value;
    return { mediaType, digest, size };
  }

  /**
   * Streams content into a temp file in blobs/, hashing each batch of chunks on the main
   * thread while the previous batch is written on the thread pool; fsyncs, verifies digest
   * and size, and only then renames it into place.
   */
  private async writeBlob(
    expected: { digest: Digest; size: number } | undefined,
    content: Readable,
    opts: PushOptions,
  ): Promise<{ digest: Digest; size: number }> {
    const blobs = join(this.dir, 'blobs');
    const tmp = join(blobs, `${BLOB_TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    this.activeTempFiles.add(tmp);
    const fh = await open(tmp, 'wx', 0o644);
    let closed = false;
    try {
      const sink = new HashingFileSink(fh, expected, opts.onBytes, opts.releaseChunks ?? false);
      await pipeline(content, sink, opts.signal ? { signal: opts.signal } : {});
      await fh.sync();
      await fh.close();
      closed = true;
      const digest = sink.verify();
      const { algorithm } = parseDigest(digest);
      await mkdir(join(blobs, algorithm), { recursive: true });
      await rename(tmp, this.blobPath(digest));
      await fsyncDir(join(blobs, algorithm));
      return { digest, size: sink.size };
    } catch (err) {
      if (!closed) await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    } finally {
      this.activeTempFiles.delete(tmp);
    }
  }

  /** Reads a small JSON blob (manifest, index, config) through the verifying fetch. */
  async readJson<T = unknown>(desc: Descriptor): Promise<T> {
    const bytes = await this.readDocument(desc);
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch (err) {
      throw new BerthError('MANIFEST_INVALID', `${desc.digest} in ${this.name} is not valid JSON: ${(err as Error).message}`);
    }
  }

  /** A tag (org.opencontainers.image.ref.name in index.json) or a digest in the index or the blobs. */
  async resolve(ref: string): Promise<Descriptor> {
    const index = await this.index();
    const bare = ref.startsWith('@') ? ref.slice(1) : ref;
    if (isValidDigest(bare)) {
      const entry = index.manifests.find((d) => d.digest === bare);
      if (entry) return withoutRefName(entry);
      return this.describeBlob(bare);
    }
    const matches = index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] === ref);
    if (matches.length === 0) {
      const known = index.manifests.map((d) => d.annotations?.[REF_NAME_ANNOTATION]).filter((t): t is string => !!t);
      throw new BerthError(
        'NOT_FOUND',
        `no reference ${JSON.stringify(ref)} in ${this.name}${known.length ? ` (it has: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''})` : ' (it has no tags)'}`,
      );
    }
    // Several entries may share a name (one per platform): prefer what this host runs.
    const best = selectManifests({ schemaVersion: 2, manifests: matches }, hostPlatform())[0];
    return withoutRefName(best ?? matches[0]!);
  }

  /** A descriptor for a manifest or index blob found by digest alone. */
  private async describeBlob(digest: Digest): Promise<Descriptor> {
    let size: number;
    try {
      size = (await stat(this.blobPath(digest))).size;
    } catch (err) {
      if (isNotFound(err)) throw new BerthError('NOT_FOUND', `${digest} is neither in the index nor in the blobs of ${this.name}`);
      throw err;
    }
    const doc = await this.readJson({ mediaType: 'application/octet-stream', digest, size }).catch((err: unknown) => {
      if (isBerthError(err, 'TOO_LARGE') || isBerthError(err, 'MANIFEST_INVALID')) {
        throw new BerthError('NOT_FOUND', `${digest} in ${this.name} is not a manifest or an index`);
      }
      throw err;
    });
    const mediaType = sniffDocumentMediaType(doc);
    if (!mediaType || !(isManifestMediaType(mediaType) || isIndexMediaType(mediaType))) {
      throw new BerthError('NOT_FOUND', `${digest} in ${this.name} is not a manifest or an index`);
    }
    const desc: Descriptor = { mediaType, digest, size };
    const artifactType = (doc as ImageManifest).artifactType;
    if (typeof artifactType === 'string') desc.artifactType = artifactType;
    return desc;
  }

  /** Adds or moves a tag; the manifest or index must already be in the layout. */
  async tag(desc: Descriptor, ref: string): Promise<void> {
    validateDescriptorShape(desc, 'tag');
    validateRefName(ref);
    if (!(await this.exists(desc))) {
      throw new BerthError('NOT_FOUND', `cannot tag ${desc.digest} as ${ref}: the blob is not in ${this.name} (push it first)`);
    }
    const entry = descriptorEntry(desc);
    entry.annotations = { ...(entry.annotations ?? {}), [REF_NAME_ANNOTATION]: ref };
    await this.updateIndex((index) => {
      index.manifests = index.manifests.filter((d) => {
        const name = d.annotations?.[REF_NAME_ANNOTATION];
        if (name === ref) return false;
        // An untagged entry kept only for gc is superseded by the tagged one.
        return !(name === undefined && d.digest === desc.digest);
      });
      index.manifests.push(entry);
    });
  }

  async untag(ref: string): Promise<void> {
    let found = false;
    await this.updateIndex((index) => {
      const kept = index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== ref);
      found = kept.length !== index.manifests.length;
      if (!found) return false;
      index.manifests = kept;
    });
    if (!found) throw new BerthError('NOT_FOUND', `no reference ${JSON.stringify(ref)} in ${this.name}`);
  }

  async tags(): Promise<string[]> {
    const names = (await this.index()).manifests
      .map((d) => d.annotations?.[REF_NAME_ANNOTATION])
      .filter((t): t is string => typeof t === 'string');
    return [...new Set(names)].sort();
  }

  /** Records a manifest in index.json without a tag, so that gc keeps it (referrers, pulled children). */
  async addManifest(desc: Descriptor): Promise<void> {
    validateDescriptorShape(desc, 'addManifest');
    if (!(await this.exists(desc))) {
      throw new BerthError('NOT_FOUND', `cannot add ${desc.digest} to index.json: the blob is not in ${this.name} (push it first)`);
    }
    await this.updateIndex((index) => {
      if (index.manifests.some((d) => d.digest === desc.digest)) return false;
      index.manifests.push(descriptorEntry(desc));
    });
  }

  /** Removes every index.json entry pointing at the digest; the blob stays until gc. */
  async delete(desc: Descriptor): Promise<void> {
    parseDigest(desc.digest);
    let removed = false;
    await this.updateIndex((index) => {
      const kept = index.manifests.filter((d) => d.digest !== desc.digest);
      removed = kept.length !== index.manifests.length;
      if (!removed) return false;
      index.manifests = kept;
    });
    if (!removed && !(await exists(this.blobPath(desc.digest)))) {
      throw new BerthError('NOT_FOUND', `${desc.digest} is not in ${this.name}`);
    }
  }

  /** Manifests listed in index.json whose subject is `subject` (image-spec manifest.md "subject"). */
  async referrers(subject: Descriptor, artifactType?: string): Promise<Descriptor[]> {
    parseDigest(subject.digest);
    const out: Descriptor[] = [];
    const seen = new Set<string>();
    for (const entry of (await this.index()).manifests) {
      if (seen.has(entry.digest)) continue;
      seen.add(entry.digest);
      if (!isManifestMediaType(entry.mediaType) && !isIndexMediaType(entry.mediaType)) continue;
      let doc: ImageManifest & Partial<ImageIndex>;
      try {
        doc = await this.readJson(entry);
      } catch (err) {
        if (isBerthError(err, 'NOT_FOUND')) continue;
        throw err;
      }
      if (doc.subject?.digest !== subject.digest) continue;
      // distribution-spec referrers: artifactType, else the config media type of a manifest.
      const type = doc.artifactType ?? (isManifestMediaType(entry.mediaType) ? doc.config?.mediaType : undefined);
      if (artifactType !== undefined && type !== artifactType) continue;
      const desc: Descriptor = { mediaType: entry.mediaType, digest: entry.digest, size: entry.size };
      if (type !== undefined) desc.artifactType = type;
      if (doc.annotations && Object.keys(doc.annotations).length) desc.annotations = { ...doc.annotations };
      out.push(desc);
    }
    return out;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

function withoutRefName(d: Descriptor): Descriptor {
  const out: Descriptor = { ...d };
  if (out.annotations) {
    const { [REF_NAME_ANNOTATION]: _ignored, ...rest } = out.annotations;
    if (Object.keys(rest).length) out.annotations = rest;
    else delete out.annotations;
  }
  return out;
}

/** The fields of a descriptor that belong in index.json (no data payload). */
function descriptorEntry(desc: Descriptor): Descriptor {
  const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (desc.artifactType) entry.artifactType = desc.artifactType;
  if (desc.platform) entry.platform = desc.platform;
  if (desc.annotations && Object.keys(desc.annotations).length) entry.annotations = { ...desc.annotations };
  if (desc.urls) entry.urls = desc.urls;
  return entry;
}
