/**
 * A registry client: one HttpClient and one Authenticator shared by every repository on
 * every host it talks to. `send` adds authentication and handles the 401 challenge dance;
 * `repository(host, name)` gives a Target; `catalog(host)` lists repositories.
 */
import { BerthError, isBerthError } from '../base/errors.js';
import { apiHost, configuredInsecureRegistries, isLoopbackHost } from './config.js';
import { findCredentials, type Credentials } from './credentials.js';
import { Authenticator, type CredentialSource } from './auth.js';
import { discard, nextLink, HttpClient, type HttpClientOptions, type HttpRequest, type HttpResponse } from './http.js';
import { registryError } from './errors.js';
import { catalogPage, readJsonReply } from './json-reply.js';
import { RawConnectionPool, rawGet, type RawBody } from './raw-get.js';
import { Repository, type RepositoryOptions } from './repository.js';
import { RegistryTrust } from './trust.js';
import { isInsecureHost, loadRegistriesConf, locate, pullSources, type RegistriesConf } from './registries-conf.js';
import type { Descriptor } from '../base/types.js';
import type { ResolveOptions } from '../base/target.js';

export interface RegistryClientOptions extends HttpClientOptions {
  /** Hosts reached over plain HTTP in addition to loopback and the configured ones. */
  insecure?: string[];
  /** Treat every host as insecure (`--tls-verify=false`). */
  insecureAll?: boolean;
  /** Where credentials come from (default: the docker/podman files). */
  credentials?: CredentialSource;
  /** Defaults for repositories this client opens. */
  repository?: RepositoryOptions;
  /** Use only this directory's *.crt (CAs) and *.cert/*.key (client certificate) for every registry, instead of certs.d (`--cert-dir`). */
  certDir?: string;
  /** Moved, blocked, insecure and mirrored registries (default: containers-registries.conf files; registries-conf.ts). */
  registriesConf?: RegistriesConf;
}

export interface SendOptions extends Omit<HttpRequest, 'url'> {
  /** Path and query under the registry origin, e.g. `/v2/repo/tags/list?n=10`; or a full URL. */
  path: string | URL;
  scopes: string[];
}

export class RegistryClient {
  readonly http: HttpClient;
  readonly auth: Authenticator;
  private readonly insecure: Set<string>;
  private readonly insecureAll: boolean;
  private readonly probed = new Map<string, 'http' | 'https'>();
  private readonly probing = new Map<string, Promise<void>>();
  /** `host blobs` / `host manifests` that answered a raw GET with a redirect: HttpClient's from then on. */
  private readonly redirecting = new Set<string>();
  /** Blob and manifest GETs' connections, kept between requests. */
  private readonly rawPool = new RawConnectionPool();
  private readonly repositoryDefaults: RepositoryOptions;
  readonly registriesConf: RegistriesConf;

  constructor(options: RegistryClientOptions = {}) {
    this.insecure = new Set([...(options.insecure ?? []), ...configuredInsecureRegistries()]);
    this.registriesConf = options.registriesConf ?? loadRegistriesConf();
    const conf = this.registriesConf;
    const trust = options.trust ?? new RegistryTrust(options.certDir ? { certDir: options.certDir } : {});
    this.http = new HttpClient({
      ...options,
      trust,
      insecureSkipVerify: options.insecureAll || options.insecureSkipVerify,
      insecureHosts: [...this.insecure].map(apiHost),
      isInsecureHost: conf.entries.length ? (host) => isInsecureHost(conf, host) : undefined,
    });
    this.auth = new Authenticator(this.http, options.credentials ?? ((host) => findCredentials(host)));
    this.insecureAll = options.insecureAll ?? false;
    this.repositoryDefaults = options.repository ?? {};
  }

  close(): void {
    this.http.close();
    this.rawPool.close();
  }

  /**
   * `http://` for loopback hosts; `https://` otherwise. A host marked insecure is tried over
   * HTTPS without certificate verification first and over plain HTTP when that fails (as
   * skopeo and docker do); the answer is remembered per host.
   */
  baseUrl(host: string): URL {
    const scheme = isLoopbackHost(host) ? 'http' : (this.probed.get(host) ?? 'https');
    return new URL(`${scheme}://${apiHost(host)}`);
  }

  private isInsecure(host: string): boolean {
    return this.insecureAll || this.insecure.has(host) || isInsecureHost(this.registriesConf, host);
  }

  /** Where `host/repository` really is (registries.conf `location`); DENIED when the registry is blocked there. */
  locate(host: string, repository: string): { host: string; repository: string } {
    return locate(this.registriesConf, host, repository);
  }

  /**
   * Resolves `ref` (a tag or digest) of `host/repository` for reading: through the mirrors
   * registries.conf gives it, in order, then the registry itself; the first that answers is
   * the repository to read from. When all fail, the registry's own error is thrown, naming the
   * mirrors that failed before it.
   */
  async resolveForPull(host: string, repository: string, ref: string, opts: ResolveOptions = {}): Promise<{ repository: Repository; descriptor: Descriptor }> {
    const sources = pullSources(this.registriesConf, host, repository, ref.includes(':'));
    const primary = sources.pop()!; // the registry itself comes last
    const failed: string[] = [];
    for (const mirror of sources) {
      const repo = this.repository(mirror.host, mirror.repository);
      try {
        return { repository: repo, descriptor: await repo.resolve(ref, opts) };
      } catch (err) {
        failed.push(`${mirror.host}/${mirror.repository}: ${(err as Error).message}`);
      }
    }
    const repo = this.repository(primary.host, primary.repository);
    try {
      return { repository: repo, descriptor: await repo.resolve(ref, opts) };
    } catch (err) {
      if (failed.length && err instanceof BerthError) {
        throw new BerthError(err.code, `${err.message} (mirrors tried first: ${failed.join('; ')})`, { cause: err, detail: err.detail });
      }
      throw err;
    }
  }

  /** For an insecure host: does it answer HTTPS? Otherwise plain HTTP it is. One probe per host at a time. */
  private probe(host: string): Promise<void> {
    if (isLoopbackHost(host) || this.probed.has(host) || !this.isInsecure(host)) return Promise.resolve();
    let probing = this.probing.get(host);
    if (!probing) {
      probing = this.probeOnce(host).finally(() => this.probing.delete(host));
      this.probing.set(host, probing);
    }
    return probing;
  }

  private async probeOnce(host: string): Promise<void> {
    let scheme: 'http' | 'https' = 'https';
    try {
      const res = await this.http.request({ method: 'GET', url: new URL(`https://${apiHost(host)}/v2/`), retries: 0 });
      discard(res.body);
    } catch (err) {
      // A forward proxy that refuses the tunnel says nothing about the registry's TLS.
      if (isBerthError(err, 'UNAUTHORIZED') || isBerthError(err, 'DENIED')) throw err;
      scheme = 'http';
    }
    this.probed.set(host, scheme);
  }

  repository(host: string, name: string, options: RepositoryOptions = {}): Repository {
    return new Repository(this, host, name, { ...this.repositoryDefaults, ...options });
  }

  /** Sends a request with authentication, answering one 401 challenge. */
  async send(host: string, opts: SendOptions): Promise<HttpResponse> {
    await this.probe(host);
    const url = opts.path instanceof URL ? new URL(opts.path) : new URL(opts.path, this.baseUrl(host));
    // URLs built before the probe answered carry the default scheme.
    const base = this.baseUrl(host);
    if (url.host === base.host) url.protocol = base.protocol;
    const build = async (): Promise<HttpRequest> => {
      const headers = { ...(opts.headers ?? {}) };
      const authz = await this.auth.header(host, opts.scopes);
      if (authz) headers.Authorization = authz;
      return { ...opts, url, headers };
    };
    let req = await build();
    let res = await this.http.request(req);
    if (res.status === 401) {
      const retry = await this.auth.onUnauthorized(host, res.headers['www-authenticate'], opts.scopes, req.headers?.Authorization !== undefined);
      const replayable = opts.body === undefined || typeof opts.body !== 'object' || Buffer.isBuffer(opts.body);
      if (retry && replayable) {
        discard(res.body);
        req = await build();
        res = await this.http.request(req);
      }
    }
    return res;
  }

  /**
   * A GET of a blob or manifest through rawGet (raw-get.ts), with the credentials already
   * learnt for the host; undefined when the answer is anything but a 200/206 body or the
   * connection failed before it, and the caller then sends the request through send().
   */
  async rawGet(host: string, opts: { path: string; headers: Record<string, string>; scopes: string[]; signal?: AbortSignal }): Promise<RawBody | undefined> {
    const url = new URL(opts.path, this.baseUrl(host));
    // Through a forward proxy every request takes HttpClient's way (tunnel or absolute form).
    if (this.http.proxyFor(url)) return undefined;
    // A registry that redirects its blobs (to object storage or a CDN, as Docker Hub does) would
    // be asked twice for each: once here, once by HttpClient to follow the redirect.
    const kind = `${host} ${opts.path.includes('/blobs/') ? 'blobs' : 'manifests'}`;
    if (this.redirecting.has(kind)) return undefined;
    const headers: Record<string, string> = { 'User-Agent': this.http.options.userAgent, ...opts.headers };
    const authz = await this.auth.header(host, opts.scopes);
    if (authz) headers.Authorization = authz;
    try {
      const tlsOptions = url.protocol === 'https:' ? { rejectUnauthorized: this.http.verifiesTls(url), secureContext: this.http.secureContextFor(url) } : {};
      const onRefused = (status: number) => {
        if (status >= 300 && status < 400) this.redirecting.add(kind);
      };
      return await rawGet(url, { headers, timeoutMs: this.http.options.timeoutMs, signal: opts.signal, onRefused, pool: this.rawPool, ...tlsOptions });
    } catch (err) {
      if ((err as Error)?.name === 'AbortError') throw err;
      return undefined;
    }
  }

  /** Throws a clear error for 401/403 answers; the caller handles other statuses. */
  async unauthorized(host: string, res: HttpResponse, what: string): Promise<never> {
    const creds = await this.auth.credentialsFor(host);
    const hint =
      res.status === 401
        ? creds
          ? `the credentials stored for ${host} were refused: run "berth login ${host}" again`
          : `no credentials for ${host}: run "berth login ${host}" (or set REGISTRY_AUTH_FILE)`
        : `the credentials for ${host} do not grant this access`;
    throw await registryError(res.body, what, hint);
  }

  /** Checks that the host speaks the distribution API and the credentials work (`GET /v2/`). */
  async ping(host: string, creds?: Credentials): Promise<void> {
    if (creds) this.auth.setCredentials(host, creds);
    const res = await this.send(host, { method: 'GET', path: '/v2/', scopes: [] });
    if (res.status === 401 || res.status === 403) await this.unauthorized(host, res, `logging in to ${host}`);
    if (res.status !== 200) throw await registryError(res.body, `checking ${host}/v2/`);
    discard(res.body);
  }

  /** Lists repositories with `_catalog`, following pagination (`n`, `last`, `Link`). */
  async catalog(host: string, pageSize = 1000): Promise<string[]> {
    const names: string[] = [];
    let url: URL | undefined = new URL(`/v2/_catalog?n=${pageSize}`, this.baseUrl(host));
    const seen = new Set<string>();
    while (url && !seen.has(url.href)) {
      seen.add(url.href);
      const res = await this.send(host, { method: 'GET', path: url, scopes: ['registry:catalog:*'] });
      if (res.status === 401 || res.status === 403) await this.unauthorized(host, res, `listing repositories of ${host}`);
      if (res.status !== 200) throw await registryError(res.body, `listing repositories of ${host}`);
      const body = await readJsonReply<{ repositories?: string[] | null }>(res, `listing repositories of ${host}`, catalogPage);
      const page = body.repositories ?? [];
      names.push(...page);
      url = nextLink(res.headers.link, url);
      if (!url && page.length >= pageSize) {
        url = new URL(`/v2/_catalog?n=${pageSize}&last=${encodeURIComponent(page[page.length - 1]!)}`, this.baseUrl(host));
      }
      if (page.length === 0) break;
    }
    return [...new Set(names)];
  }
}

export function assertHost(host: string): string {
  if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:.]+\](:\d+)?$/.test(host)) {
    throw new BerthError('REFERENCE_INVALID', `invalid registry host ${JSON.stringify(host)}: expected host[:port]`);
  }
  return host;
}
