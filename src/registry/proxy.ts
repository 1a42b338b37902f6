/**
 * Pull-through cache (`berth serve --proxy [PREFIX=]URL`, or the config's `proxies` list): the
 * registry serves the repositories of one or more upstream registries, each keyed by a prefix
 * of the local repository name (a host such as docker.io, or a path such as mirrors/team; also
 * containerd's `?ns=HOST` on mirror requests) or, without a prefix, every other repository.
 * Manifests by digest are fetched once and kept for ever; a tag is revalidated with a HEAD once
 * its TTL has passed, and served from the cache when the upstream does not answer. A blob is
 * fetched from upstream once, even when many clients ask at once (one fetch per digest and
 * process): it is stored through an ordinary upload session (hashed, verified, committed) while
 * every waiting client reads it from a spool file as it arrives (blob-spool.ts). Manifests are
 * stored sparse: the blobs they reference arrive when first asked for.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { digestOf, parseDigest } from '../base/digest.js';
import { BlobSpool } from './blob-spool.js';
import type { ProxyUpstream } from './config.js';
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

const MAX_CHECKED_TAGS = 10_000;

/** A local repository and where it comes from. */
interface Mapped {
  up: ProxyUpstream;
  /** The repository's name on the upstream. */
  remote: string;
}

/** What a blob request gets from the cache. */
export type ProxiedBlob = { kind: 'stored' } | { kind: 'arriving'; spool: BlobSpool } | { kind: 'unknown' };

function upstreamError(up: ProxyUpstream, what: string, detail: string): RegistryError {
  return new RegistryError(502, 'INTERNAL', `upstream ${up.url} ${detail} for ${what}: check that it answers (the cache serves only what it already holds)`);
}

export class UpstreamProxy {
  private readonly work = new Map<string, Promise<unknown>>();
  /** Fetches under way: the spool, or whether the blob turned out stored already (true) or unknown upstream (false). */
  private readonly arriving = new Map<string, Promise<BlobSpool | boolean>>();
  private readonly tagChecked = new Map<string, number>();
  private readonly tokens = new Map<string, { value: string; until: number }>();
  private readonly spoolDir: string;
  private readonly agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

  constructor(
    /** Longest prefix first (config.ts). */
    private readonly upstreams: ProxyUpstream[],
    private readonly meta: MetadataStore,
    private readonly uploads: UploadManager,
    dataDir: string,
  ) {
    this.spoolDir = join(dataDir, 'proxy-spool');
    // Spool files of an earlier run are leftovers (this process's are created from now on).
    rmSync(this.spoolDir, { recursive: true, force: true });
    mkdirSync(this.spoolDir, { recursive: true, mode: 0o700 });
  }

  /** Closes the kept-alive connections to the upstreams. */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  /** The upstream serving local repository `repo`, if any. */
  private map(repo: string): Mapped | undefined {
    for (const up of this.upstreams) {
      if (up.prefix === undefined) return { up, remote: repo };
      if (repo.startsWith(`${up.prefix}/`)) return { up, remote: repo.slice(up.prefix.length + 1) };
    }
    return undefined;
  }

  /** Whether `repo` is served from an upstream. */
  covers(repo: string): boolean {
    return this.map(repo) !== undefined;
  }

  /** containerd asks a mirror for NAME?ns=HOST: the local repository HOST/NAME when an upstream has that prefix. */
  localName(name: string, ns: string): string | undefined {
    return this.upstreams.some((u) => u.prefix === ns) ? `${ns}/${name}` : undefined;
  }

  private basic(up: ProxyUpstream): string | undefined {
    if (up.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${up.username}:${up.password ?? ''}`).toString('base64')}`;
  }

  /** A request to the upstream, answering its Basic or Bearer challenge (docker token flow). */
  private async call(m: Mapped, path: string, init: RequestInit = {}): Promise<Response> {
    const { up } = m;
    const scope = `repository:${m.remote}:pull`;
    const tokenKey = `${up.url} ${scope}`;
    const token = this.tokens.get(tokenKey);
    const headers = new Headers(init.headers);
    if (token && token.until > Date.now()) headers.set('Authorization', `Bearer ${token.value}`);
    else if (this.basic(up)) headers.set('Authorization', this.basic(up)!);
    const url = `${up.url}/v2/${m.remote}${path}`;
    let res = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(30_000) });
    const challenge = res.headers.get('www-authenticate') ?? '';
    if (res.status !== 401 || !/^Bearer /i.test(challenge)) return res;
    await res.arrayBuffer();
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!.toLowerCase(), x[2]!]));
    if (!params.realm) return res;
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', scope);
    const t = await fetch(realm, { headers: this.basic(up) ? { Authorization: this.basic(up)! } : {}, signal: AbortSignal.timeout(30_000) });
    if (!t.ok) return res;
    const body = (await t.json()) as { token?: string; access_token?: string; expires_in?: number };
    const value = body.token ?? body.access_token;
    if (!value) return res;
    this.tokens.set(tokenKey, { value, until: Date.now() + Math.max(30, (body.expires_in ?? 60) - 10) * 1000 });
    headers.set('Authorization', `Bearer ${value}`);
    res = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(30_000) });
    return res;
  }

  /** Runs `task` once for concurrent callers with the same key. */
  private once<T>(key: string, task: () => Promise<T>): Promise<T> {
    let p = this.work.get(key) as Promise<T> | undefined;
    if (!p) {
      p = task().finally(() => this.work.delete(key));
      this.work.set(key, p);
    }
    return p;
  }

  /** Fetches a manifest from upstream, checks its digest, and stores it (sparse) with `tags`. */
  private async fetchManifest(repo: string, m: Mapped, reference: string, expected: string | undefined, tags: string[]): Promise<ManifestRecord | undefined> {
    const res = await this.call(m, `/manifests/${reference}`, { headers: { Accept: ACCEPT } });
    if (res.status === 404) {
      await res.arrayBuffer();
      return undefined;
    }
    if (!res.ok) throw upstreamError(m.up, `${m.remote}:${reference}`, `answered ${res.status}`);
    const content = Buffer.from(await res.arrayBuffer());
    const wanted = expected ?? res.headers.get('docker-content-digest') ?? undefined;
    const digest = digestOf(content, wanted ? parseDigest(wanted).algorithm : 'sha256');
    if (wanted && digest !== wanted) throw upstreamError(m.up, `${m.remote}:${reference}`, `sent a manifest hashing to ${digest}, not ${wanted}`);
    const parsed = parsePushedManifest(content, res.headers.get('content-type') ?? undefined);
    await this.meta.putManifest({ ...parsed, repo, digest, size: content.length, content, tags, sparse: true });
    return { digest, mediaType: parsed.mediaType, size: content.length, content };
  }

  /** The manifest, from the cache or the upstream; undefined when neither has it. */
  async manifest(repo: string, reference: string, byDigest: boolean): Promise<ManifestRecord | undefined> {
    const m = this.map(repo);
    if (byDigest) {
      const local = await this.meta.manifestByDigest(repo, reference);
      if (local || !m) return local;
      // Content by digest never changes: fetched once, kept for ever.
      return this.once(`m\0${repo}\0${reference}`, () => this.fetchManifest(repo, m, reference, reference, []));
    }
    const cached = await this.meta.manifestByTag(repo, reference);
    if (!m) return cached;
    const key = `${repo}\0${reference}`;
    if (cached && Date.now() - (this.tagChecked.get(key) ?? 0) < m.up.ttlMs) return cached;
    return this.once(`t\0${key}`, () => this.revalidate(repo, m, reference, cached));
  }

  /** Asks the upstream (HEAD) where the tag points; fetches the manifest only when it moved. */
  private async revalidate(repo: string, m: Mapped, tag: string, cached: ManifestRecord | undefined): Promise<ManifestRecord | undefined> {
    const key = `${repo}\0${tag}`;
    let head: Response;
    try {
      head = await this.call(m, `/manifests/${tag}`, { method: 'HEAD', headers: { Accept: ACCEPT } });
    } catch (err) {
      if (cached) return cached; // the upstream is down: what is cached is still served
      throw upstreamError(m.up, `${m.remote}:${tag}`, `did not answer (${(err as Error).message})`);
    }
    if (head.status === 404) return undefined;
    if (!head.ok) {
      if (cached) return cached;
      throw upstreamError(m.up, `${m.remote}:${tag}`, `answered ${head.status}`);
    }
    const digest = head.headers.get('docker-content-digest');
    if (cached && digest === cached.digest) {
      this.checked(key);
      return cached;
    }
    const fresh = await this.fetchManifest(repo, m, digest ?? tag, digest ?? undefined, [tag]);
    if (fresh) this.checked(key);
    return fresh;
  }

  /** Records when a tag was last confirmed upstream (bounded: forgetting only costs a HEAD). */
  private checked(key: string): void {
    if (this.tagChecked.size >= MAX_CHECKED_TAGS) this.tagChecked.clear();
    this.tagChecked.set(key, Date.now());
  }

  /**
   * The blob for a client of `repo`: already stored (and linked into `repo`), arriving from the
   * upstream (read it from the spool while it arrives), or unknown to both.
   */
  async blob(repo: string, digest: string): Promise<ProxiedBlob> {
    if ((await this.meta.repoBlob(repo, digest)) !== undefined) return { kind: 'stored' };
    const m = this.map(repo);
    if (!m) return { kind: 'unknown' };
    // One fetch per upstream repository and blob, however many clients ask.
    const key = `${m.up.url} ${m.remote} ${digest}`;
    let pending = this.arriving.get(key);
    if (!pending) {
      pending = this.startFetch(repo, m, digest);
      this.arriving.set(key, pending);
      const forget = () => this.arriving.delete(key);
      pending.then((s) => (typeof s === 'object' ? s.finished.then(forget) : forget()), forget);
    }
    const got = await pending;
    // The upstream repository has it: linked here too (another local name of that repository).
    if (typeof got === 'boolean') return got && (await this.link(repo, digest, true)) ? { kind: 'stored' } : { kind: 'unknown' };
    const spool = got;
    void spool.finished.then((ok) => ok && this.link(repo, digest, true)).catch(() => undefined);
    return { kind: 'arriving', spool };
  }

  /**
   * Links a stored blob into `repo`. Unless the caller knows the upstream repository has it
   * (`confirmed`), only a blob of that same upstream repository is linked: a digest learnt from
   * one repository must not open another's content.
   */
  private async link(repo: string, digest: string, confirmed: boolean): Promise<boolean> {
    if ((await this.meta.repoBlob(repo, digest)) !== undefined) return true;
    const size = await this.meta.blob(digest);
    if (size === undefined || !confirmed) return false;
    await this.meta.linkBlob(repo, digest, size);
    return true;
  }

  /** Starts the one upstream fetch of `digest`; true when it is stored already (and linked), false when unknown upstream. */
  private async startFetch(repo: string, m: Mapped, digest: string): Promise<BlobSpool | boolean> {
    if ((await this.meta.blob(digest)) !== undefined) {
      // Stored for another repository: linked here once this one's upstream says it has it too (HEAD).
      let head: Response;
      try {
        head = await this.call(m, `/blobs/${digest}`, { method: 'HEAD' });
      } catch (err) {
        throw upstreamError(m.up, `${m.remote}@${digest}`, `did not answer (${(err as Error).message})`);
      }
      await head.arrayBuffer().catch(() => undefined);
      if (head.status === 404) return false;
      if (!head.ok) throw upstreamError(m.up, `${m.remote}@${digest}`, `answered ${head.status}`);
      return this.link(repo, digest, true);
    }
    const got = await this.getBlob(m, digest);
    if (!got) return false;
    const { length, body } = got;
    const spool = await BlobSpool.create(join(this.spoolDir, randomUUID()), Number.isSafeInteger(length) && length >= 0 ? length : undefined);
    void this.store(repo, digest, body, spool);
    return spool;
  }

  /**
   * GET of the blob from the upstream: its body and announced length, undefined on 404. A plain
   * 200 is read as a node:http stream on a kept-alive connection (cheaper than fetch's web
   * stream); a redirect or an auth challenge goes through fetch, which follows and answers them.
   */
  private async getBlob(m: Mapped, digest: string): Promise<{ length: number; body: Readable } | undefined> {
    const url = new URL(`${m.up.url}/v2/${m.remote}/blobs/${digest}`);
    const token = this.tokens.get(`${m.up.url} repository:${m.remote}:pull`);
    const auth = token && token.until > Date.now() ? `Bearer ${token.value}` : this.basic(m.up);
    const direct = await new Promise<IncomingMessage | undefined>((resolve) => {
      const secure = url.protocol === 'https:';
      const req = (secure ? https : http).get(url, { agent: secure ? this.agents.https : this.agents.http, headers: auth ? { Authorization: auth } : {}, timeout: 30_000 }, resolve);
      req.once('timeout', () => req.destroy());
      req.once('error', () => resolve(undefined));
    });
    if (direct?.statusCode === 200) return { length: Number(direct.headers['content-length'] ?? NaN), body: direct };
    direct?.resume();
    if (direct?.statusCode === 404) return undefined;
    let res: Response;
    try {
      res = await this.call(m, `/blobs/${digest}`);
    } catch (err) {
      throw upstreamError(m.up, `${m.remote}@${digest}`, `did not answer (${(err as Error).message})`);
    }
    if (!res.ok || !res.body) {
      await res.arrayBuffer().catch(() => undefined);
      if (res.status === 404) return undefined;
      throw upstreamError(m.up, `${m.remote}@${digest}`, `answered ${res.status}`);
    }
    return { length: Number(res.headers.get('content-length') ?? NaN), body: Readable.fromWeb(res.body as ReadableStream<Uint8Array>) };
  }

  /** Stores the upstream's bytes through an upload session (hashed, verified, committed, linked) and spools them for the waiting clients. */
  private async store(repo: string, digest: string, body: Readable, spool: BlobSpool): Promise<void> {
    let id: string | undefined;
    try {
      id = await this.uploads.start(repo, parseDigest(digest).algorithm);
      const tee = new Transform({
        transform(chunk: Buffer, _enc, done) {
          spool.write(chunk).then(() => done(null, chunk), done);
        },
      });
      body.once('error', (err) => tee.destroy(err));
      await this.uploads.append(repo, id, body.pipe(tee));
      await this.uploads.finish(repo, id, digest);
      await spool.end();
    } catch (err) {
      body.destroy();
      await spool.end(err as Error);
      if (id !== undefined) await this.uploads.cancel(repo, id).catch(() => undefined);
    }
  }
}
