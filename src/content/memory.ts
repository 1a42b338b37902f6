/** An in-memory Target: for tests, small artifacts and documents built before pushing. */
import { Readable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { digestOf, validateDigest } from '../base/digest.js';
import type { Descriptor } from '../base/types.js';
import { readAll } from '../base/read.js';
import type { FetchOptions, Target, TagLister } from '../base/target.js';

export class MemoryStore implements Target, TagLister {
  readonly name: string;
  private readonly blobs = new Map<string, Buffer>();
  private readonly refs = new Map<string, Descriptor>();

  constructor(name = 'memory:') {
    this.name = name;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.blobs.has(desc.digest);
  }

  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    const bytes = this.blobs.get(desc.digest);
    if (!bytes) throw new BerthError('NOT_FOUND', `${desc.digest} is not in ${this.name}`);
    return Readable.from([bytes.subarray(opts.offset ?? 0)]);
  }

  async push(desc: Descriptor, content: Readable): Promise<void> {
    validateDigest(desc.digest);
    const bytes = await readAll(content, Number.MAX_SAFE_INTEGER);
    this.putBytes(desc, bytes);
  }

  /** Stores bytes after checking them against the descriptor. */
  putBytes(desc: Descriptor, bytes: Buffer): void {
    if (bytes.length !== desc.size) {
      throw new BerthError('SIZE_MISMATCH', `${desc.digest}: expected ${desc.size} bytes, got ${bytes.length}`);
    }
    const actual = digestOf(bytes, desc.digest.startsWith('sha512:') ? 'sha512' : 'sha256');
    if (actual !== desc.digest) throw new BerthError('DIGEST_MISMATCH', `expected ${desc.digest}, content hashes to ${actual}`);
    this.blobs.set(desc.digest, bytes);
  }

  /** Adds bytes and returns their descriptor. */
  add(mediaType: string, bytes: Buffer | string, extra: Partial<Descriptor> = {}): Descriptor {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    const desc: Descriptor = { ...extra, mediaType, digest: digestOf(buf), size: buf.length };
    this.blobs.set(desc.digest, buf);
    return desc;
  }

  /** Adds a JSON document (manifest, index, config) serialised compactly. */
  addJson(mediaType: string, doc: unknown, extra: Partial<Descriptor> = {}): Descriptor {
    return this.add(mediaType, Buffer.from(JSON.stringify(doc)), extra);
  }

  bytes(digest: string): Buffer | undefined {
    return this.blobs.get(digest);
  }

  async resolve(ref: string): Promise<Descriptor> {
    const desc = this.refs.get(ref);
    if (desc) return desc;
    throw new BerthError('NOT_FOUND', `no reference ${JSON.stringify(ref)} in ${this.name}`);
  }

  async tag(desc: Descriptor, ref: string): Promise<void> {
    if (!this.blobs.has(desc.digest)) throw new BerthError('NOT_FOUND', `cannot tag ${desc.digest}: it is not in ${this.name}`);
    this.refs.set(ref, { mediaType: desc.mediaType, digest: desc.digest, size: desc.size });
  }

  async tags(): Promise<string[]> {
    return [...this.refs.keys()].sort();
  }
}
