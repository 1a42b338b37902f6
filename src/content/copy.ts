/**
 * copy(): walks the graph from one Target to another once (docs/ARCHITECTURE.md "One idea underneath
 * everything"): index → manifests → config and layers, blobs in parallel with bounded
 * concurrency, asking the destination first and skipping what it has, mounting across
 * repositories of one registry, and pushing children before parents (blobs, manifests, the
 * index, then the tag). Bytes and digests are preserved unless `convertToOci` is asked for.
 */
import { BerthError, isBerthError } from '../base/errors.js';
import { digestOf } from '../base/digest.js';
import { isIndexMediaType, isManifestMediaType, isManifestOrIndexMediaType, MediaType } from '../base/media-types.js';
import { formatPlatform, hostPlatform, parsePlatform, selectManifests } from '../image/platform.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../base/types.js';
import { Readable } from 'node:stream';
import { fetchBytes } from '../base/read.js';
import { indexToOci, manifestToOci, ociDocumentMediaType } from './convert.js';
import { Limiter } from './limit.js';
import type { Mounter, ProgressEvent, ReferrerLister, Target } from '../base/target.js';

export interface CopyOptions {
  /** The platform to pick from an index (default: this host's), unless `all`. */
  platform?: Platform | string;
  /** Copy every manifest of an index, keeping the index (skopeo --all). */
  all?: boolean;
  /** Blobs transferred at once (default 4). */
  concurrency?: number;
  /** Also copy the artifacts whose subject is a copied manifest (signatures, SBOMs), recursively. */
  referrers?: boolean;
  /** Rewrite Docker schema 2 media types as OCI (changes manifest digests). */
  convertToOci?: boolean;
  /** Extra attempts for a blob whose transfer failed on the network (default 2). */
  retries?: number;
  onProgress?: (event: ProgressEvent) => void;
}

export interface CopyResult {
  /** The root as it now is in the destination (differs from the source when a platform was picked or converted). */
  descriptor: Descriptor;
  source: Descriptor;
  /** True when manifests were rewritten (convertToOci) and digests therefore changed. */
  converted: boolean;
  blobsCopied: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesCopied: number;
  referrersCopied: number;
}

/** A Target that is a repository of some registry (for mounting between repositories). */
interface RegistryRepository {
  host: string;
  repository: string;
}

function isRegistryRepository(t: unknown): t is RegistryRepository & Target {
  return typeof (t as RegistryRepository).host === 'string' && typeof (t as RegistryRepository).repository === 'string';
}

function isMounter(t: unknown): t is Mounter {
  return typeof (t as Mounter).mount === 'function';
}

function isReferrerLister(t: unknown): t is ReferrerLister {
  return typeof (t as ReferrerLister).referrers === 'function';
}

function hasFetchUnverified(t: unknown): t is { fetchUnverified(d: Descriptor): Readable | Promise<Readable> } {
  return typeof (t as { fetchUnverified?: unknown }).fetchUnverified === 'function';
}

function hasAddManifest(t: unknown): t is { addManifest(d: Descriptor): Promise<void> } {
  return typeof (t as { addManifest?: unknown }).addManifest === 'function';
}

/**
 * Copies what `srcRef` names in `src` (a tag or digest, or the descriptor it resolved to) to `dst`,
 * tagged `dstRef` when given.
 */
export async function copy(src: Target, srcRef: string | Descriptor, dst: Target, dstRef: string | undefined, opts: CopyOptions = {}): Promise<CopyResult> {
  const root = typeof srcRef === 'string' ? await src.resolve(srcRef, { prefetch: true }) : srcRef;
  const copier = new Copier(src, dst, opts);
  let start = root;
  if (isIndexMediaType(root.mediaType) && !opts.all) {
    start = await copier.pickPlatform(root);
  }
  const pushed = await copier.copyDocument(start);
  if (opts.referrers) await copier.copyReferrers();
  if (dstRef !== undefined) await dst.tag(pushed, dstRef);
  else if (hasAddManifest(dst)) await dst.addManifest(pushed);
  return {
    descriptor: pushed,
    source: start,
    converted: copier.converted,
    blobsCopied: copier.stats.copied,
    blobsSkipped: copier.stats.skipped,
    blobsMounted: copier.stats.mounted,
    bytesCopied: copier.stats.bytes,
    referrersCopied: copier.stats.referrers,
  };
}

/**
 * Like Promise.all, but waits for every task to finish before failing, so that no transfer
 * is still writing into the destination when copy() reports an error.
 */
async function settleAll<T>(tasks: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

class Copier {
  readonly stats = { copied: 0, skipped: 0, mounted: 0, bytes: 0, referrers: 0 };
  converted = false;
  private readonly limiter: Limiter;
  private readonly blobs = new Map<string, Promise<void>>();
  private readonly documents = new Map<string, Promise<Descriptor>>();
  /** Source digests of every manifest and index copied, for the referrers pass. */
  private readonly copiedDocuments: Descriptor[] = [];
  private readonly emit: (e: ProgressEvent) => void;

  constructor(
    private readonly src: Target,
    private readonly dst: Target,
    private readonly opts: CopyOptions,
  ) {
    this.limiter = new Limiter(opts.concurrency ?? 4);
    this.emit = opts.onProgress ?? (() => {});
  }

  async pickPlatform(indexDesc: Descriptor): Promise<Descriptor> {
    const index = JSON.parse((await fetchBytes(this.src, indexDesc)).toString('utf8')) as ImageIndex;
    const want = typeof this.opts.platform === 'string' ? parsePlatform(this.opts.platform) : (this.opts.platform ?? hostPlatform());
    const [best] = selectManifests(index, want);
    if (!best) {
      const have = index.manifests.filter((d) => d.platform).map((d) => formatPlatform(d.platform!));
      throw new BerthError(
        'PLATFORM_NOT_FOUND',
        `${this.src.name ?? 'source'}: no manifest for ${formatPlatform(want)} in index ${indexDesc.digest} (it has ${have.join(', ') || 'no platforms'}); pick one with --platform or copy them all with --all`,
      );
    }
    return best;
  }

  /** Copies a manifest or index and everything under it; returns its descriptor in the destination. */
  copyDocument(desc: Descriptor): Promise<Descriptor> {
    let p = this.documents.get(desc.digest);
    if (!p) {
      p = this.doCopyDocument(desc);
      this.documents.set(desc.digest, p);
    }
    return p;
  }

  private async doCopyDocument(desc: Descriptor): Promise<Descriptor> {
    let bytes = await fetchBytes(this.src, desc);
    let doc: ImageManifest & ImageIndex;
    try {
      doc = JSON.parse(bytes.toString('utf8')) as ImageManifest & ImageIndex;
    } catch (err) {
      throw new BerthError('MANIFEST_INVALID', `${desc.digest} from ${this.src.name ?? 'source'} is not JSON: ${(err as Error).message}`);
    }
    this.copiedDocuments.push(desc);
    let out: Descriptor = { ...desc };
    if (isIndexMediaType(desc.mediaType)) {
      const children = await settleAll(
        (doc.manifests ?? []).map(async (child) => {
          if (isManifestOrIndexMediaType(child.mediaType)) {
            const pushed = await this.copyDocument(child);
            return { ...child, mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.size };
          }
          await this.copyBlob(child);
          return child;
        }),
      );
      if (this.opts.convertToOci && desc.mediaType === MediaType.dockerManifestList) {
        bytes = Buffer.from(JSON.stringify(indexToOci(doc, children)));
      } else if (children.some((c, i) => c.digest !== doc.manifests[i]!.digest)) {
        bytes = Buffer.from(JSON.stringify({ ...doc, manifests: children }));
      }
    } else if (isManifestMediaType(desc.mediaType)) {
      const manifest = doc as ImageManifest;
      if (!manifest.config || !Array.isArray(manifest.layers)) {
        throw new BerthError('MANIFEST_INVALID', `${desc.digest} from ${this.src.name ?? 'source'} has no config or layers`);
      }
      await settleAll([manifest.config, ...manifest.layers].map((d) => this.copyBlob(d)));
      if (this.opts.convertToOci && desc.mediaType === MediaType.dockerManifest) {
        bytes = Buffer.from(JSON.stringify(manifestToOci(manifest)));
      }
    } else {
      throw new BerthError('MEDIA_TYPE_UNKNOWN', `cannot copy ${desc.digest}: ${desc.mediaType} is not a manifest or index media type`);
    }
    const digest = digestOf(bytes);
    if (digest !== desc.digest) {
      this.converted = true;
      out = { ...desc, mediaType: ociDocumentMediaType(desc.mediaType), digest, size: bytes.length };
    }
    if (await this.dst.exists(out)) {
      this.emit({ type: 'skipped', desc: out, reason: 'exists' });
    } else {
      await this.dst.push(out, Readable.from([bytes]));
      this.emit({ type: 'done', desc: out });
    }
    return out;
  }

  copyBlob(desc: Descriptor): Promise<void> {
    let p = this.blobs.get(desc.digest);
    if (!p) {
      p = this.limiter.run(() => this.transferBlob(desc));
      this.blobs.set(desc.digest, p);
    }
    return p;
  }

  private async transferBlob(desc: Descriptor): Promise<void> {
    if (await this.dst.exists(desc)) {
      this.stats.skipped++;
      this.emit({ type: 'skipped', desc, reason: 'exists' });
      return;
    }
    if (isMounter(this.dst) && isRegistryRepository(this.dst) && isRegistryRepository(this.src) && this.src.host === this.dst.host && this.src.repository !== this.dst.repository) {
      if (await this.dst.mount(desc, this.src.repository)) {
        this.stats.mounted++;
        this.emit({ type: 'mounted', desc, from: this.src.repository });
        return;
      }
    }
    const attempts = 1 + (this.opts.retries ?? 2);
    for (let attempt = 1; ; attempt++) {
      this.emit({ type: 'start', desc });
      try {
        // Every Pusher verifies digest and size itself; a source that can skip its own
        // verification then saves a second hash pass over the blob.
        const stream = hasFetchUnverified(this.src) ? await this.src.fetchUnverified(desc) : await this.src.fetch(desc);
        await this.dst.push(desc, stream, {
          onBytes: (bytes) => this.emit({ type: 'bytes', desc, bytes, total: desc.size }),
          // Nothing but the destination reads this stream.
          releaseChunks: true,
        });
        this.stats.copied++;
        this.stats.bytes += desc.size;
        this.emit({ type: 'done', desc });
        return;
      } catch (err) {
        if (attempt < attempts && isBerthError(err, 'NETWORK')) continue;
        const e = err instanceof Error ? err : new Error(String(err));
        this.emit({ type: 'error', desc, error: e });
        if (isBerthError(err)) {
          throw new BerthError(err.code, `blob ${desc.digest} (${desc.mediaType}, ${desc.size} bytes): ${err.message}`, { cause: err, detail: err.detail });
        }
        throw new BerthError('INTERNAL', `blob ${desc.digest}: ${e.message}`, { cause: err });
      }
    }
  }

  /** Copies the referrers of every copied manifest, and theirs, until none are new. */
  async copyReferrers(): Promise<void> {
    if (!isReferrerLister(this.src)) {
      throw new BerthError('UNSUPPORTED', `${this.src.name ?? 'the source'} cannot list referrers, so --referrers cannot be used with it`);
    }
    const done = new Set<string>();
    for (let i = 0; i < this.copiedDocuments.length; i++) {
      const subject = this.copiedDocuments[i]!;
      if (done.has(subject.digest)) continue;
      done.add(subject.digest);
      for (const ref of await this.src.referrers(subject)) {
        if (this.documents.has(ref.digest)) continue;
        const pushed = await this.copyDocument(ref);
        if (pushed.digest !== ref.digest) {
          throw new BerthError('UNSUPPORTED', `referrer ${ref.digest} would change digest when copied; copy referrers without --format oci`);
        }
        if (hasAddManifest(this.dst)) await this.dst.addManifest(pushed);
        this.stats.referrers++;
      }
    }
  }
}
