/**
 * A registry repository as a Target (docs/ARCHITECTURE.md "One idea underneath everything"), with
 * tags, referrers (API, and the referrers tag schema where the registry has none), delete
 * and cross-repository mount. Blobs stream through: downloads are verified while they flow
 * and resume with `Range` after a broken connection; uploads go as one streamed PUT or in
 * chunks (PATCH with Content-Range) that resume from the offset the registry reports.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { BerthError, isBerthError } from '../base/errors.js';
import { DigestingStream, digestOf, validateDigest } from '../base/digest.js';
import { ALL_MANIFEST_MEDIA_TYPES, isIndexMediaType, isManifestOrIndexMediaType, MediaType } from '../base/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../base/types.js';
import { MAX_MANIFEST_BYTES, readAll } from '../base/read.js';
import type { Deleter, FetchOptions, Mounter, PushOptions, ReferrerLister, ResolveOptions, TagLister, Target } from '../base/target.js';
import { validateTag } from '../image/reference.js';
import { repositoryScope } from './auth.js';
import { registryError } from './errors.js';
import { discard, isNetworkError, nextLink, type HttpResponse } from './http.js';
import { readJsonReply, referrersIndex, tagList } from './json-reply.js';
import type { RegistryClient, SendOptions } from './registry.js';
import type { RawBody } from './raw-get.js';
import { referrersTag, referrerDescriptor } from './referrers.js';
import { BlobDownload } from './blob-download.js';

export interface RepositoryOptions {
  /** Upload blobs in chunks of this many bytes (PATCH + Content-Range); 0 sends one streamed PUT (default). */
  chunkSize?: number;
  /** Blobs up to this size go in a single `POST ?digest=` (falling back to POST+PUT); 0 disables (default). */
  singlePostMaxBytes?: number;
  /** Ask for the automatic mount (`POST ?mount=<digest>` without `from`) when starting uploads (default true). */
  autoMount?: boolean;
  /** How many times a broken blob download or chunk upload is resumed (default 5). */
  resumeAttempts?: number;
}

const MANIFEST_CACHE_ENTRIES = 128;

export class Repository implements Target, TagLister, ReferrerLister, Deleter, Mounter {
  readonly name: string;
  private readonly pullScopes: string[];
  private readonly pushScopes: string[];
  /** Manifest bytes seen recently, so that tag() after push() does not fetch them back. */
  private readonly manifestCache = new Map<string, Buffer>();

  constructor(
    readonly client: RegistryClient,
    readonly host: string,
    readonly repository: string,
    readonly options: RepositoryOptions = {},
  ) {
    this.name = `docker://${host}/${repository}`;
    this.pullScopes = [repositoryScope(repository, 'pull')];
    this.pushScopes = [repositoryScope(repository, 'pull,push')];
  }

  private path(kind: 'manifests' | 'blobs' | 'tags' | 'referrers', rest: string): string {
    return `/v2/${this.repository}/${kind}/${rest}`;
  }

  private async send(opts: SendOptions, what: string): Promise<HttpResponse> {
    const res = await this.client.send(this.host, opts);
    if (res.status === 401 || res.status === 403) await this.client.unauthorized(this.host, res, what);
    return res;
  }

  // ---- resolve and fetch ----------------------------------------------------------------

  async resolve(ref: string, opts: ResolveOptions = {}): Promise<Descriptor> {
    const isDigest = ref.includes(':');
    if (isDigest) validateDigest(ref);
    else validateTag(ref);
    const what = `resolving ${this.name}:${ref}`;
    const accept = ALL_MANIFEST_MEDIA_TYPES.join(', ');
    if (opts.prefetch) return this.resolveByGet(ref, accept, what);
    const head = await this.send({ method: 'HEAD', path: this.path('manifests', ref), headers: { Accept: accept }, scopes: this.pullScopes }, what);
    discard(head.body);
    if (head.status === 404) throw new BerthError('NOT_FOUND', `${this.name}: manifest ${ref} not found`);
    const digest = header(head, 'docker-content-digest');
    const mediaType = header(head, 'content-type')?.split(';')[0]?.trim();
    const size = Number(header(head, 'content-length'));
    if (head.status === 200 && digest && mediaType && isManifestOrIndexMediaType(mediaType) && Number.isFinite(size)) {
      validateDigest(digest);
      if (isDigest && digest !== ref) {
        throw new BerthError('DIGEST_MISMATCH', `${this.name}: asked for ${ref}, registry answered ${digest}`);
      }
      return { mediaType, digest, size };
    }
    // Some registries answer HEAD without the digest: fetch the manifest and hash it.
    return this.resolveByGet(ref, accept, what);
  }

  /** Resolves by fetching the manifest and hashing it; the bytes are kept for the fetch that follows. */
  private async resolveByGet(ref: string, accept: string, what: string): Promise<Descriptor> {
    const isDigest = ref.includes(':');
    const res = await this.getManifest(ref, accept, what);
    if (res.status === 404) {
      discard(res.body);
      throw new BerthError('NOT_FOUND', `${this.name}: manifest ${ref} not found`);
    }
    if (res.status !== 200) throw await registryError(res.body, what);
    const bytes = await readAll(res.body, MAX_MANIFEST_BYTES, `manifest ${ref} of ${this.name}`);
    const computed = digestOf(bytes, isDigest ? (ref.startsWith('sha512:') ? 'sha512' : 'sha256') : 'sha256');
    if (isDigest && computed !== ref) throw new BerthError('DIGEST_MISMATCH', `${this.name}: manifest ${ref} hashes to ${computed}`);
    const headerType = header(res, 'content-type')?.split(';')[0]?.trim();
    const type = headerType && isManifestOrIndexMediaType(headerType) ? headerType : mediaTypeOfDocument(bytes);
    this.remember(computed, bytes);
    return { mediaType: type, digest: computed, size: bytes.length };
  }

  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    validateDigest(desc.digest);
    if (isManifestOrIndexMediaType(desc.mediaType)) {
      const bytes = await this.fetchManifestBytes(desc);
      return Readable.from([opts.offset ? bytes.subarray(opts.offset) : bytes]);
    }
    const offset = opts.offset ?? 0;
    const source = this.fetchUnverified(desc, opts);
    // With an offset only the size of the rest can be checked; the caller hashes the whole.
    const verify = new DigestingStream(offset ? { expectedSize: desc.size - offset } : { expectedDigest: desc.digest, expectedSize: desc.size });
    source.on('error', (err) => verify.destroy(err));
    return source.pipe(verify);
  }

  /**
   * A blob's bytes without digest verification (resumed with Range after a broken
   * connection). Only for consumers that verify what they receive themselves: every
   * Pusher does (base/target.ts), so copy() uses this to avoid hashing twice.
   */
  fetchUnverified(desc: Descriptor, opts: FetchOptions = {}): Readable {
    validateDigest(desc.digest);
    const what = `fetching blob ${desc.digest} from ${this.name}`;
    const signal = opts.signal;
    return new BlobDownload({
      size: desc.size,
      start: opts.offset ?? 0,
      maxFailures: this.options.resumeAttempts ?? 5,
      what,
      open: async (offset) => {
        const headers: Record<string, string> = {};
        if (offset > 0) headers.Range = `bytes=${offset}-`;
        const path = this.path('blobs', desc.digest);
        const raw = await this.client.rawGet(this.host, { path, headers, scopes: this.pullScopes, signal });
        if (raw) return raw;
        const res = await this.send({ method: 'GET', path, headers, scopes: this.pullScopes, signal }, what);
        if (res.status === 404) {
          discard(res.body);
          throw new BerthError('NOT_FOUND', `${this.name}: blob ${desc.digest} not found`);
        }
        if (res.status !== 200 && res.status !== 206) throw await registryError(res.body, what);
        return res;
      },
    });
  }

  /** `GET …/manifests/REF`: through raw-get.ts when the answer is a plain 200, else through send(). */
  private async getManifest(ref: string, accept: string, what: string): Promise<RawBody | HttpResponse> {
    const path = this.path('manifests', ref);
    const headers = { Accept: accept };
    return (await this.client.rawGet(this.host, { path, headers, scopes: this.pullScopes })) ?? (await this.send({ method: 'GET', path, headers, scopes: this.pullScopes }, what));
  }

  /** Manifest bytes by digest, verified and capped at 4 MiB. */
  async fetchManifestBytes(desc: Descriptor): Promise<Buffer> {
    const cached = this.manifestCache.get(desc.digest);
    if (cached) return cached;
    if (desc.size > MAX_MANIFEST_BYTES) {
      throw new BerthError('TOO_LARGE', `${this.name}: manifest ${desc.digest} is ${desc.size} bytes, over the 4 MiB limit`);
    }
    const what = `fetching manifest ${desc.digest} from ${this.name}`;
    const accept = [desc.mediaType, ...ALL_MANIFEST_MEDIA_TYPES.filter((t) => t !== desc.mediaType)].join(', ');
    const res = await this.getManifest(desc.digest, accept, what);
    if (res.status === 404) {
      discard(res.body);
      throw new BerthError('NOT_FOUND', `${this.name}: manifest ${desc.digest} not found`);
    }
    if (res.status !== 200) throw await registryError(res.body, what);
    const bytes = await readAll(res.body.pipe(new DigestingStream({ expectedDigest: desc.digest, expectedSize: desc.size })), MAX_MANIFEST_BYTES);
    this.remember(desc.digest, bytes);
    return bytes;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    validateDigest(desc.digest);
    const kind = isManifestOrIndexMediaType(desc.mediaType) ? 'manifests' : 'blobs';
    const headers: Record<string, string> = kind === 'manifests' ? { Accept: ALL_MANIFEST_MEDIA_TYPES.join(', ') } : {};
    const res = await this.send(
      { method: 'HEAD', path: this.path(kind, desc.digest), headers, scopes: this.pullScopes },
      `checking ${desc.digest} in ${this.name}`,
    );
    discard(res.body);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw new BerthError('REGISTRY_ERROR', `checking ${desc.digest} in ${this.name}: registry answered ${res.status}`);
  }

  // ---- push -------------------------------------------------------------------------------

  async push(desc: Descriptor, content: Readable, opts: PushOptions = {}): Promise<void> {
    validateDigest(desc.digest);
    if (isManifestOrIndexMediaType(desc.mediaType)) {
      const bytes = await readAll(content.pipe(new DigestingStream({ expectedDigest: desc.digest, expectedSize: desc.size })), MAX_MANIFEST_BYTES);
      await this.putManifest(desc, bytes, desc.digest);
      opts.onBytes?.(bytes.length);
      return;
    }
    await this.pushBlob(desc, content, opts);
  }

  /** PUTs manifest bytes under a digest or tag, then maintains the referrers tag schema if needed. */
  async putManifest(desc: Descriptor, bytes: Buffer, ref: string): Promise<void> {
    const what = `pushing manifest ${desc.digest} to ${this.name}${ref === desc.digest ? '' : `:${ref}`}`;
    const res = await this.send(
      { method: 'PUT', path: this.path('manifests', ref), headers: { 'Content-Type': desc.mediaType }, body: bytes, scopes: this.pushScopes },
      what,
    );
    if (res.status !== 201 && res.status !== 200) throw await registryError(res.body, what);
    discard(res.body);
    const answered = header(res, 'docker-content-digest');
    if (answered && answered !== desc.digest) {
      throw new BerthError('DIGEST_MISMATCH', `${what}: the registry stored it as ${answered}, not ${desc.digest}`);
    }
    this.remember(desc.digest, bytes);
    if (ref !== desc.digest) return;
    // spec.md "Pushing Manifests with Subject": without OCI-Subject, the client keeps the tag index.
    const doc = parseDocument(bytes);
    if (doc?.subject && !header(res, 'oci-subject')) {
      await this.addToReferrersTag(doc.subject, referrerDescriptor(desc, doc));
    }
  }

  private async pushBlob(desc: Descriptor, content: Readable, opts: PushOptions): Promise<void> {
    // The registry hashes what it receives and refuses a wrong digest (DIGEST_INVALID), and
    // sources verify as they stream, so only the size is checked here: no third hash pass.
    const verified = new SizeLimit(desc);
    content.on('error', (err) => verified.destroy(err));
    if (opts.onBytes) {
      const onBytes = opts.onBytes;
      verified.onBytes = onBytes;
    }
    content.pipe(verified);
    const singleMax = this.options.singlePostMaxBytes ?? 0;
    if (singleMax > 0 && desc.size <= singleMax) {
      const bytes = await readAll(verified, singleMax);
      if (await this.singlePost(desc, bytes)) return;
      const location = await this.startUpload(desc);
      if (location) await this.finishUpload(desc, location, bytes);
      return;
    }
    const location = await this.startUpload(desc);
    if (!location) {
      // Mounted automatically: the content is not needed.
      verified.resume();
      content.destroy();
      return;
    }
    const chunkSize = this.options.chunkSize ?? 0;
    if (chunkSize > 0) {
      await this.uploadChunks(desc, location, verified, chunkSize);
    } else {
      await this.finishUpload(desc, location, verified);
    }
  }

  /** `POST /blobs/uploads/?digest=` with the whole blob: true when the registry took it (201). */
  private async singlePost(desc: Descriptor, bytes: Buffer): Promise<boolean> {
    const what = `pushing blob ${desc.digest} to ${this.name}`;
    const res = await this.send(
      {
        method: 'POST',
        path: `${this.path('blobs', 'uploads/')}?digest=${encodeURIComponent(desc.digest)}`,
        headers: { 'Content-Type': 'application/octet-stream' },
        body: bytes,
        scopes: this.pushScopes,
      },
      what,
    );
    // A 202 means the registry ignored the body and opened a session: we start a normal upload.
    return this.createdOrCancelled(res, what);
  }

  /**
   * Opens an upload session, asking for the automatic mount (`?mount=` without `from`,
   * spec.md "Mounting a blob from another repository"): a registry that already has the blob
   * may answer 201 and we are done (undefined); otherwise the 202 session is used as usual.
   */
  private async startUpload(desc: Descriptor): Promise<URL | undefined> {
    const what = `starting upload of blob ${desc.digest} to ${this.name}`;
    const auto = this.options.autoMount ?? true;
    const path = `${this.path('blobs', 'uploads/')}${auto ? `?mount=${encodeURIComponent(desc.digest)}` : ''}`;
    const res = await this.send({ method: 'POST', path, scopes: this.pushScopes }, what);
    if (res.status === 201 && auto) {
      discard(res.body);
      return undefined;
    }
    if (res.status !== 202) throw await registryError(res.body, what);
    discard(res.body);
    return this.locationOf(res, what);
  }

  private locationOf(res: HttpResponse, what: string): URL {
    const location = header(res, 'location');
    if (!location) throw new BerthError('REGISTRY_ERROR', `${what}: registry answered ${res.status} without a Location header`);
    return new URL(location, res.url);
  }

  private async finishUpload(desc: Descriptor, location: URL, body: Readable | Buffer | undefined): Promise<void> {
    const what = `pushing blob ${desc.digest} to ${this.name}`;
    const url = new URL(location);
    url.searchParams.set('digest', desc.digest);
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
    if (body !== undefined && !Buffer.isBuffer(body)) headers['Content-Length'] = String(desc.size);
    const res = await this.send({ method: 'PUT', path: url, headers, body, scopes: this.pushScopes, retries: body === undefined || Buffer.isBuffer(body) ? undefined : 0 }, what);
    if (res.status !== 201) throw await registryError(res.body, what);
    discard(res.body);
  }

  /** Chunked upload: each chunk is held (chunkSize bytes at most) so that it can be resent from where the registry stopped. */
  private async uploadChunks(desc: Descriptor, start: URL, content: Readable, chunkSize: number): Promise<void> {
    let location = start;
    let offset = 0;
    for await (const chunk of chunksOf(content, chunkSize)) {
      location = await this.sendChunk(desc, location, chunk, offset);
      offset += chunk.length;
    }
    await this.finishUpload(desc, location, undefined);
  }

  private async sendChunk(desc: Descriptor, location: URL, chunk: Buffer, chunkStart: number): Promise<URL> {
    const what = `uploading blob ${desc.digest} to ${this.name}`;
    let committed = chunkStart;
    let failures = 0;
    const maxFailures = this.options.resumeAttempts ?? 5;
    for (;;) {
      const part = chunk.subarray(committed - chunkStart);
      try {
        const res = await this.send(
          {
            method: 'PATCH',
            path: location,
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${committed}-${committed + part.length - 1}` },
            body: part,
            scopes: this.pushScopes,
            retries: 0,
          },
          what,
        );
        if (res.status === 202) {
          discard(res.body);
          return this.locationOf(res, what);
        }
        if (res.status === 404 && failures > 0) {
          // The session died with the broken connection (distribution 2.8 cancels it).
          const err = await registryError(res.body, what);
          throw new BerthError('NETWORK', `${what}: the registry dropped the upload session after the connection broke (${err.message})`, { cause: err });
        }
        if (res.status !== 416) throw await registryError(res.body, `${what} (bytes ${committed}-${committed + part.length - 1})`);
        discard(res.body);
      } catch (err) {
        if (!isNetworkError(err)) throw err;
      }
      if (++failures > maxFailures) throw new BerthError('NETWORK', `${what}: chunk at byte ${committed} failed ${failures} times`);
      // spec.md "Resuming an upload": ask where the registry is, continue from there.
      let status: { next: number; location: URL };
      try {
        status = await this.uploadStatus(location);
      } catch (err) {
        if (!isBerthError(err, 'NOT_FOUND')) throw err;
        // Some registries (distribution 2.8) drop a session whose chunk was cut short: the
        // blob has to be sent again from its start, which copy() does on NETWORK errors.
        throw new BerthError('NETWORK', `${what}: the registry dropped the upload session after the connection broke at byte ${committed}`, { cause: err });
      }
      location = status.location;
      const end = chunkStart + chunk.length;
      if (status.next >= end) return location;
      if (status.next < chunkStart) {
        throw new BerthError('REGISTRY_ERROR', `${what}: the registry lost data before byte ${chunkStart} (it has ${status.next}); push again`);
      }
      committed = status.next;
    }
  }

  /** GET on an upload session: the next byte the registry expects, from its `Range: 0-N`. */
  private async uploadStatus(location: URL): Promise<{ next: number; location: URL }> {
    const what = `checking upload status at ${this.name}`;
    const res = await this.send({ method: 'GET', path: location, scopes: this.pushScopes }, what);
    if (res.status !== 204) throw await registryError(res.body, what);
    discard(res.body);
    const range = header(res, 'range');
    const m = range ? /^(?:bytes=)?0-(\d+)$/.exec(range) : null;
    return { next: m ? Number(m[1]) + 1 : 0, location: header(res, 'location') ? this.locationOf(res, what) : location };
  }

  private async cancelUpload(location: string): Promise<void> {
    try {
      const res = await this.send({ method: 'DELETE', path: new URL(location, this.client.baseUrl(this.host)), scopes: this.pushScopes }, 'cancelling upload');
      discard(res.body);
    } catch {
      /* the session expires on its own */
    }
  }

  async mount(desc: Descriptor, fromRepository: string): Promise<boolean> {
    validateDigest(desc.digest);
    const what = `mounting blob ${desc.digest} from ${fromRepository} into ${this.name}`;
    const path = `${this.path('blobs', 'uploads/')}?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(fromRepository)}`;
    const res = await this.send({ method: 'POST', path, scopes: [...this.pushScopes, repositoryScope(fromRepository, 'pull')] }, what);
    // spec.md: a registry that cannot mount starts an ordinary upload (202) instead.
    return this.createdOrCancelled(res, what);
  }

  /**
   * The answer to a POST that may complete at once (single-POST push, mount): 201 is done; 202
   * opened an upload session that we do not want, so it is cancelled and the caller uploads.
   */
  private async createdOrCancelled(res: HttpResponse, what: string): Promise<boolean> {
    if (res.status === 201) {
      discard(res.body);
      return true;
    }
    if (res.status === 202) {
      const location = header(res, 'location');
      discard(res.body);
      if (location) await this.cancelUpload(location);
      return false;
    }
    throw await registryError(res.body, what);
  }

  // ---- tags --------------------------------------------------------------------------------

  async tag(desc: Descriptor, ref: string): Promise<void> {
    validateTag(ref);
    const bytes = await this.fetchManifestBytes(desc);
    await this.putManifest(desc, bytes, ref);
  }

  /** Every tag, following pagination (`n`, `last`, `Link`). */
  async tags(pageSize = 1000): Promise<string[]> {
    const all: string[] = [];
    const seen = new Set<string>();
    let url: URL | undefined = new URL(`${this.path('tags', 'list')}?n=${pageSize}`, this.client.baseUrl(this.host));
    const what = `listing tags of ${this.name}`;
    while (url) {
      const res = await this.send({ method: 'GET', path: url, scopes: this.pullScopes }, what);
      if (res.status === 404) {
        discard(res.body);
        throw new BerthError('NOT_FOUND', `${this.name}: repository not found`);
      }
      if (res.status !== 200) throw await registryError(res.body, what);
      const body = await readJsonReply<{ tags?: string[] | null }>(res, what, tagList);
      const fresh = (body.tags ?? []).filter((t) => !seen.has(t));
      for (const t of fresh) seen.add(t);
      all.push(...fresh);
      // A registry that ignores `last` would hand back the same page forever.
      if (fresh.length === 0) break;
      url = nextLink(res.headers.link, url);
    }
    return all;
  }

  // ---- referrers ----------------------------------------------------------------------------

  async referrers(subject: Descriptor, artifactType?: string): Promise<Descriptor[]> {
    validateDigest(subject.digest);
    const what = `listing referrers of ${subject.digest} in ${this.name}`;
    let url: URL | undefined = new URL(this.path('referrers', subject.digest), this.client.baseUrl(this.host));
    if (artifactType) url.searchParams.set('artifactType', artifactType);
    const out: Descriptor[] = [];
    let filtered = true;
    const seen = new Set<string>();
    while (url && !seen.has(url.href)) {
      seen.add(url.href);
      const res = await this.send({ method: 'GET', path: url, headers: { Accept: MediaType.imageIndex }, scopes: this.pullScopes }, what);
      if (res.status === 404) {
        discard(res.body);
        if (out.length === 0) return this.referrersFromTag(subject, artifactType);
        break;
      }
      if (res.status !== 200) throw await registryError(res.body, what);
      const index = await readJsonReply<ImageIndex>(res, what, referrersIndex);
      out.push(...(index.manifests ?? []));
      filtered = (header(res, 'oci-filters-applied') ?? '').split(',').map((s) => s.trim()).includes('artifactType');
      url = nextLink(res.headers.link, url);
    }
    return artifactType && !filtered ? out.filter((d) => d.artifactType === artifactType) : out;
  }

  /** spec.md "Referrers Tag Schema": the index tagged `<alg>-<encoded>`. */
  private async referrersFromTag(subject: Descriptor, artifactType?: string): Promise<Descriptor[]> {
    const current = await this.readReferrersIndex(subject);
    const list = current?.index.manifests ?? [];
    return artifactType ? list.filter((d) => d.artifactType === artifactType) : list;
  }

  private async readReferrersIndex(subject: Descriptor): Promise<{ desc: Descriptor; index: ImageIndex } | undefined> {
    const tag = referrersTag(subject.digest);
    let desc: Descriptor;
    try {
      desc = await this.resolve(tag);
    } catch (err) {
      if (isBerthError(err, 'NOT_FOUND')) return undefined;
      throw err;
    }
    if (!isIndexMediaType(desc.mediaType)) {
      throw new BerthError('MANIFEST_INVALID', `${this.name}:${tag} should be the referrers index of ${subject.digest} but is ${desc.mediaType}: remove that tag`);
    }
    const index = JSON.parse((await this.fetchManifestBytes(desc)).toString('utf8')) as ImageIndex;
    return { desc, index };
  }

  private async addToReferrersTag(subject: Descriptor, referrer: Descriptor): Promise<void> {
    const current = await this.readReferrersIndex(subject);
    const manifests = current?.index.manifests ?? [];
    if (manifests.some((d) => d.digest === referrer.digest)) return;
    await this.writeReferrersIndex(subject, [...manifests, referrer]);
  }

  private async removeFromReferrersTag(subject: Descriptor, digest: string): Promise<void> {
    const current = await this.readReferrersIndex(subject);
    if (!current || !current.index.manifests.some((d) => d.digest === digest)) return;
    await this.writeReferrersIndex(subject, current.index.manifests.filter((d) => d.digest !== digest));
  }

  private async writeReferrersIndex(subject: Descriptor, manifests: Descriptor[]): Promise<void> {
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.imageIndex, manifests };
    const bytes = Buffer.from(JSON.stringify(index));
    const desc: Descriptor = { mediaType: MediaType.imageIndex, digest: digestOf(bytes), size: bytes.length };
    await this.putManifest(desc, bytes, referrersTag(subject.digest));
  }

  // ---- delete --------------------------------------------------------------------------------

  async delete(desc: Descriptor): Promise<void> {
    validateDigest(desc.digest);
    const isManifest = isManifestOrIndexMediaType(desc.mediaType);
    let subject: Descriptor | undefined;
    if (isManifest) {
      try {
        subject = parseDocument(await this.fetchManifestBytes(desc))?.subject;
      } catch (err) {
        if (!isBerthError(err, 'NOT_FOUND')) throw err;
      }
    }
    const kind = isManifest ? 'manifests' : 'blobs';
    const what = `deleting ${isManifest ? 'manifest' : 'blob'} ${desc.digest} from ${this.name}`;
    const res = await this.send({ method: 'DELETE', path: this.path(kind, desc.digest), scopes: [repositoryScope(this.repository, 'delete'), ...this.pushScopes] }, what);
    if (res.status === 404) {
      discard(res.body);
      throw new BerthError('NOT_FOUND', `${this.name}: ${desc.digest} not found`);
    }
    if (res.status === 405) throw await registryError(res.body, what, 'the registry does not allow deletes (distribution: storage.delete.enabled)');
    if (res.status !== 202 && res.status !== 200) throw await registryError(res.body, what);
    discard(res.body);
    this.manifestCache.delete(desc.digest);
    // spec.md "Deleting Manifests": without a referrers API, the client keeps the tag index current.
    if (subject) await this.removeFromReferrersTag(subject, desc.digest);
  }

  /** Deletes a tag (distribution-spec end-9); registries may only allow deleting by digest. */
  async deleteTag(tag: string): Promise<void> {
    validateTag(tag);
    const what = `deleting tag ${tag} from ${this.name}`;
    const res = await this.send({ method: 'DELETE', path: this.path('manifests', tag), scopes: [repositoryScope(this.repository, 'delete'), ...this.pushScopes] }, what);
    if (res.status === 202 || res.status === 200) {
      discard(res.body);
      return;
    }
    if (res.status === 404) {
      discard(res.body);
      throw new BerthError('NOT_FOUND', `${this.name}: tag ${tag} not found`);
    }
    throw await registryError(res.body, what, 'this registry may only delete by digest: berth delete REPO@DIGEST removes the manifest and every tag on it');
  }

  private remember(digest: string, bytes: Buffer): void {
    if (this.manifestCache.size >= MANIFEST_CACHE_ENTRIES) {
      this.manifestCache.delete(this.manifestCache.keys().next().value!);
    }
    this.manifestCache.set(digest, bytes);
  }
}

/** Passes bytes through, reporting progress and failing on more or fewer bytes than the descriptor says. */
class SizeLimit extends Transform {
  private count = 0;
  onBytes?: (bytes: number) => void;

  constructor(private readonly desc: Descriptor) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.desc.size) {
      cb(new BerthError('SIZE_MISMATCH', `blob ${this.desc.digest} is larger than its descriptor says (${this.desc.size} bytes): refusing it`));
      return;
    }
    this.onBytes?.(this.count);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.count !== this.desc.size) {
      cb(new BerthError('SIZE_MISMATCH', `blob ${this.desc.digest}: expected ${this.desc.size} bytes, got ${this.count}`));
      return;
    }
    cb();
  }
}

function header(res: { headers: Record<string, string | string[] | undefined> }, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseDocument(bytes: Buffer): (ImageManifest & ImageIndex) | undefined {
  try {
    return JSON.parse(bytes.toString('utf8')) as ImageManifest & ImageIndex;
  } catch {
    return undefined;
  }
}

function mediaTypeOfDocument(bytes: Buffer): string {
  const doc = parseDocument(bytes);
  if (doc?.mediaType) return doc.mediaType;
  return Array.isArray(doc?.manifests) ? MediaType.imageIndex : MediaType.imageManifest;
}

/** Splits a stream into buffers of exactly `size` bytes (the last may be shorter). */
export async function* chunksOf(source: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const raw of source as AsyncIterable<Buffer>) {
    let chunk = raw;
    while (have + chunk.length >= size) {
      const take = size - have;
      parts.push(chunk.subarray(0, take));
      yield Buffer.concat(parts, size);
      parts = [];
      have = 0;
      chunk = chunk.subarray(take);
    }
    if (chunk.length) {
      parts.push(chunk);
      have += chunk.length;
    }
  }
  if (have > 0) yield Buffer.concat(parts, have);
}

