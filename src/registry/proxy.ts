/**
 * Pull-through cache (`berth serve --proxy URL`): repositories are those of one upstream
 * registry. Manifests by digest are fetched once and kept for ever; a tag is revalidated with a
 * HEAD once its TTL has passed, and served from the cache when the upstream does not answer.
 * A blob is fetched from upstream once, even when many clients ask at once (one fetch per digest
 * and process), hashed and stored through an ordinary upload session, then served as any blob.
 * Manifests are stored sparse: the blobs they reference arrive when first asked for.
 */
import { Readable } from 'node:stream';
import { digestOf, parseDigest } from '../base/digest.js';
import { RegistryError } from './errors.js';
import { parsePushedManifest } from './manifests.js';
import type { ManifestRecord, MetadataStore } from './metadata/metadata-store.js';
import type { UploadManager } from './uploads.js';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface ProxyConfig {
  /** http(s)://HOST[:PORT] of the upstream registry. */
  url: string;
  username?: string;
  password?: string;
  /** How long a tag is served before it is revalidated with the upstream. */
  ttlMs: number;
}

export class UpstreamProxy {
  private readonly fetches = new Map<string, Promise<void>>();
  private readonly tagChecked = new Map<string, number>();
  private readonly tokens = new Map<string, { value: string; until: number }>();
  private readonly base: string;

  constructor(
    private readonly config: ProxyConfig,
    private readonly meta: MetadataStore,
    private readonly uploads: UploadManager,
  ) {
    this.base = config.url.replace(/\/+$/, '');
  }

  private basic(): string | undefined {
    if (this.config.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${this.config.username}:${this.config.password ?? ''}`).toString('base64')}`;
  }

  /** A request to the upstream, answering its Basic or Bearer challenge (docker token flow). */
  private async call(repo: string, path: string, init: RequestInit = {}): Promise<Response> {
    const scope = `repository:${repo}:pull`;
    const token = this.tokens.get(scope);
    const headers = new Headers(init.headers);
    if (token && token.until > Date.now()) headers.set('Authorization', `Bearer ${token.value}`);
    else if (this.basic()) headers.set('Authorization', this.basic()!);
    let res = await fetch(`${this.base}${path}`, { ...init, headers, signal: AbortSignal.timeout(30_000) });
    const challenge = res.headers.get('www-authenticate') ?? '';
    if (res.status !== 401 || !/^Bearer /i.test(challenge)) return res;
    await res.arrayBuffer();
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) return res;
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', scope);
    const t = await fetch(url, { headers: this.basic() ? { Authorization: this.basic()! } : {}, signal: AbortSignal.timeout(30_000) });
    if (!t.ok) return res;
    const body = (await t.json()) as { token?: string; access_token?: string; expires_in?: number };
    const value = body.token ?? body.access_token;
    if (!value) return res;
    this.tokens.set(scope, { value, until: Date.now() + Math.max(30, (body.expires_in ?? 60) - 10) * 1000 });
    headers.set('Authorization', `Bearer ${value}`);
    res = await fetch(`${this.base}${path}`, { ...init, headers, signal: AbortSignal.timeout(30_000) });
    return res;
  }

  /** Fetches a manifest from upstream, checks its digest, and stores it (sparse) with `tags`. */
  private async fetchManifest(repo: string, reference: string, expected: string | undefined, tags: string[]): Promise<ManifestRecord | undefined> {
    const res = await this.call(repo, `/v2/${repo}/manifests/${reference}`, { headers: { Accept: ACCEPT } });
    if (res.status === 404) {
      await res.arrayBuffer();
      return undefined;
    }
    if (!res.ok) throw new RegistryError(502, 'INTERNAL', `upstream ${this.base} answered ${res.status} for ${repo}:${reference}`);
    const content = Buffer.from(await res.arrayBuffer());
    const wanted = expected ?? res.headers.get('docker-content-digest') ?? undefined;
    const digest = digestOf(content, wanted ? parseDigest(wanted).algorithm : 'sha256');
    if (wanted && digest !== wanted) throw new RegistryError(502, 'INTERNAL', `upstream ${this.base} sent ${repo}:${reference} hashing to ${digest}, not ${wanted}`);
    const parsed = parsePushedManifest(content, res.headers.get('content-type') ?? undefined);
    await this.meta.putManifest({ ...parsed, repo, digest, size: content.length, content, tags, sparse: true });
    return { digest, mediaType: parsed.mediaType, size: content.length, content };
  }

  /** The manifest, from the cache or the upstream; undefined when neither has it. */
  async manifest(repo: string, reference: string, byDigest: boolean): Promise<ManifestRecord | undefined> {
    if (byDigest) {
      const local = await this.meta.manifestByDigest(repo, reference);
      if (local) return local;
      await this.once(`m\0${repo}\0${reference}`, async () => {
        await this.fetchManifest(repo, reference, reference, []);
      });
      return this.meta.manifestByDigest(repo, reference);
    }
    const key = `${repo}\0${reference}`;
    const cached = await this.meta.manifestByTag(repo, reference);
    if (cached && Date.now() - (this.tagChecked.get(key) ?? 0) < this.config.ttlMs) return cached;
    let head: Response;
    try {
      head = await this.call(repo, `/v2/${repo}/manifests/${reference}`, { method: 'HEAD', headers: { Accept: ACCEPT } });
    } catch {
      return cached; // the upstream is down: what is cached is still served
    }
    if (head.status === 404) return undefined;
    if (!head.ok) return cached;
    const digest = head.headers.get('docker-content-digest');
    if (cached && digest === cached.digest) {
      this.tagChecked.set(key, Date.now());
      return cached;
    }
    const fresh = await this.fetchManifest(repo, digest ?? reference, digest ?? undefined, [reference]);
    if (fresh) this.tagChecked.set(key, Date.now());
    return fresh;
  }

  /** Runs `work` once for concurrent callers with the same key. */
  private once(key: string, work: () => Promise<void>): Promise<void> {
    let p = this.fetches.get(key);
    if (!p) {
      p = work().finally(() => this.fetches.delete(key));
      this.fetches.set(key, p);
    }
    return p;
  }

  /** Makes sure the blob is stored and linked into `repo`, fetching it from upstream once. */
  async ensureBlob(repo: string, digest: string): Promise<boolean> {
    if ((await this.meta.repoBlob(repo, digest)) !== undefined) return true;
    await this.once(`b\0${digest}`, async () => {
      const size = await this.meta.blob(digest);
      if (size !== undefined) {
        await this.meta.linkBlob(repo, digest, size);
        return;
      }
      const res = await this.call(repo, `/v2/${repo}/blobs/${digest}`);
      if (!res.ok || !res.body) {
        await res.arrayBuffer().catch(() => undefined);
        return;
      }
      // Stored through an ordinary upload session: hashed, verified, committed, linked.
      const id = await this.uploads.start(repo, parseDigest(digest).algorithm);
      try {
        await this.uploads.append(repo, id, Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>));
        await this.uploads.finish(repo, id, digest);
      } catch (err) {
        await this.uploads.cancel(repo, id).catch(() => undefined);
        throw err;
      }
    });
    if ((await this.meta.repoBlob(repo, digest)) !== undefined) return true;
    // Fetched for another repository at the same moment: link it here too.
    const size = await this.meta.blob(digest);
    if (size === undefined) return false;
    await this.meta.linkBlob(repo, digest, size);
    return true;
  }
}
