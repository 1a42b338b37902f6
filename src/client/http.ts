/**
 * The one HTTP client all registry traffic goes through: keep-alive agents per origin,
 * redirects (blobs are often served by object storage through 307), idle timeouts, and
 * retries with exponential backoff and jitter on network errors, 429 and 5xx (honouring
 * Retry-After). Bodies given as a Buffer or a factory are retried; a one-shot stream is not.
 */
import type * as HttpModule from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type * as HttpsModule from 'node:https';
import { isIP } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import type * as TlsModule from 'node:tls';
import { BerthError } from '../base/errors.js';
import { lazyRequire } from '../base/lazy-require.js';
import { userAgent } from '../base/package.js';
import { openTunnel, proxyAuthorization, proxyCredentialsHint, proxyFor, proxySettingsFromEnv, type ProxySettings } from './proxy.js';
import { RegistryTrust } from './trust.js';

export type RequestBody = Buffer | string | (() => Readable) | Readable;

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  signal?: AbortSignal;
  /** Follow 3xx for GET/HEAD (default true). */
  followRedirects?: boolean;
  /** Override the client's retry count for this request (0 disables retries). */
  retries?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that finally answered (after redirects). */
  url: URL;
  body: IncomingMessage;
}

export interface HttpClientOptions {
  /** Extra attempts after the first on retryable failures (default 4). */
  retries?: number;
  /** First backoff in ms (default 250); doubles each attempt, with jitter, capped at maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Socket idle timeout in ms (default 60 s). */
  timeoutMs?: number;
  /** Skip TLS certificate verification for every host (`--tls-verify=false`). */
  insecureSkipVerify?: boolean;
  /** Hosts (`host[:port]`) whose TLS certificates are not verified (registries marked insecure). */
  insecureHosts?: Iterable<string>;
  /** More such hosts, decided per host (e.g. registries.conf wildcards). */
  isInsecureHost?: (host: string) => boolean;
  userAgent?: string;
  maxSockets?: number;
  /** Forward proxies (default: HTTPS_PROXY, HTTP_PROXY and NO_PROXY from the environment; proxy.ts). */
  proxy?: ProxySettings;
  /** CAs and client certificates per host (default: the system's CAs and certs.d; trust.ts). */
  trust?: RegistryTrust;
}

/** node:http loads at the first request that needs it: blob and manifest GETs go through raw-get.ts (~3 ms of a start). */
const http = lazyRequire<typeof HttpModule>('node:http');
/** node:https (and tls under it) loads only for an HTTPS registry: ~5 ms of every start otherwise. */
const https = lazyRequire<typeof HttpsModule>('node:https');
const tls = lazyRequire<typeof TlsModule>('node:tls');

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const MAX_RETRY_AFTER_MS = 60_000;

export class HttpClient {
  private readonly agents = new Map<string, HttpModule.Agent>();
  readonly options: Required<Omit<HttpClientOptions, 'insecureSkipVerify' | 'insecureHosts' | 'isInsecureHost' | 'proxy' | 'trust'>> & { insecureSkipVerify: boolean };
  private readonly insecureHosts: Set<string>;
  private readonly proxySettings: ProxySettings;
  private readonly trust: RegistryTrust;
  private readonly isInsecureHost: (host: string) => boolean;

  constructor(options: HttpClientOptions = {}) {
    this.options = {
      retries: options.retries ?? 4,
      backoffMs: options.backoffMs ?? 250,
      maxBackoffMs: options.maxBackoffMs ?? 10_000,
      timeoutMs: options.timeoutMs ?? 60_000,
      insecureSkipVerify: options.insecureSkipVerify ?? false,
      userAgent: options.userAgent ?? userAgent(),
      maxSockets: options.maxSockets ?? 16,
    };
    // Compared with URL.host, which normalises (e.g. IPv6 forms): normalise the same way.
    this.insecureHosts = new Set([...(options.insecureHosts ?? [])].map((h) => new URL(`https://${h}`).host));
    this.proxySettings = options.proxy ?? proxySettingsFromEnv();
    this.trust = options.trust ?? new RegistryTrust();
    this.isInsecureHost = options.isInsecureHost ?? (() => false);
  }

  /** The TLS context of connections to this https: URL's host (its CAs and client certificate). */
  secureContextFor(url: URL): TlsModule.SecureContext {
    return this.trust.contextFor(url.host);
  }

  /** The forward proxy requests to this URL go through, if any. */
  proxyFor(url: URL): URL | undefined {
    return proxyFor(url, this.proxySettings);
  }

  /** Closes idle keep-alive sockets (call when done, so the process can exit promptly). */
  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  /** Whether the TLS certificate of this URL's host is verified (not for insecure registries). */
  verifiesTls(url: URL): boolean {
    return !(this.options.insecureSkipVerify || this.insecureHosts.has(url.host) || this.isInsecureHost(url.host));
  }

  /**
   * Keep-alive agents: one per origin; through a proxy, one per origin whose connections are
   * CONNECT tunnels (HTTPS), or one per proxy that plain-HTTP requests are sent to.
   */
  private agentFor(url: URL, proxy: URL | undefined): HttpModule.Agent {
    const key = proxy ? (url.protocol === 'https:' ? `${url.origin} via ${proxy.href}` : `proxy ${proxy.href}`) : url.origin;
    let agent = this.agents.get(key);
    if (!agent) {
      const opts = { keepAlive: true, maxSockets: this.options.maxSockets, scheduling: 'lifo' as const };
      if (proxy && url.protocol === 'https:') agent = this.tunnelAgent(url, proxy, opts);
      else if (proxy) agent = proxy.protocol === 'https:' ? new (https().Agent)(opts) : new (http().Agent)(opts);
      else agent = url.protocol === 'https:' ? new (https().Agent)({ ...opts, rejectUnauthorized: this.verifiesTls(url), secureContext: this.secureContextFor(url) }) : new (http().Agent)(opts);
      this.agents.set(key, agent);
    }
    return agent;
  }

  /** An HTTPS agent whose connections are TLS inside a CONNECT tunnel through `proxy`. */
  private tunnelAgent(url: URL, proxy: URL, opts: HttpModule.AgentOptions): HttpModule.Agent {
    const agent = new (https().Agent)(opts);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 443);
    const rejectUnauthorized = this.verifiesTls(url);
    const secureContext = this.secureContextFor(url);
    const timeoutMs = this.options.timeoutMs;
    // http.Agent accepts a connection handed over later through the callback.
    (agent as unknown as { createConnection: (o: unknown, cb: (err: Error | null, s?: Duplex) => void) => undefined }).createConnection = (_o, cb) => {
      openTunnel(proxy, host, port, timeoutMs, (err, socket) => {
        if (err) return cb(err);
        cb(null, tls().connect({ socket, servername: isIP(host) ? undefined : host, rejectUnauthorized, secureContext, ALPNProtocols: ['http/1.1'] }));
      });
      return undefined;
    };
    return agent;
  }

  /**
   * Sends a request, following redirects and retrying what can be retried. The caller owns
   * the response body and must consume or discard it.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const retries = req.retries ?? this.options.retries;
    const replayable = !(req.body !== undefined && typeof req.body === 'object' && !Buffer.isBuffer(req.body));
    let attempt = 0;
    for (;;) {
      let res: HttpResponse | undefined;
      let failure: unknown;
      try {
        res = await this.followRedirects(req);
      } catch (err) {
        failure = err;
      }
      const canRetry = attempt < retries && replayable && !req.signal?.aborted;
      if (res && RETRYABLE_STATUS.has(res.status) && canRetry) {
        const wait = retryAfterMs(res.headers['retry-after']) ?? this.backoff(attempt);
        discard(res.body);
        await sleep(wait, req.signal);
        attempt++;
        continue;
      }
      if (res) return res;
      if (canRetry && isNetworkError(failure)) {
        await sleep(this.backoff(attempt), req.signal);
        attempt++;
        continue;
      }
      throw toNetworkError(failure, req);
    }
  }

  private backoff(attempt: number): number {
    const base = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** attempt);
    return base / 2 + Math.random() * (base / 2);
  }

  private async followRedirects(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    let headers = { ...(req.headers ?? {}) };
    let method = req.method;
    for (let hop = 0; ; hop++) {
      const res = await this.once(method, url, headers, req.body, req.signal);
      const follow = req.followRedirects ?? true;
      const location = res.headers.location;
      if (!follow || !REDIRECT_STATUS.has(res.statusCode ?? 0) || !location || !(method === 'GET' || method === 'HEAD')) {
        return { status: res.statusCode ?? 0, headers: res.headers, url, body: res };
      }
      discard(res);
      if (hop >= MAX_REDIRECTS) {
        throw new BerthError('NETWORK', `too many redirects starting at ${req.url.href}`);
      }
      const next = new URL(location, url);
      // Never hand the registry's credentials to another host (object storage signs its own URLs).
      if (next.host !== url.host) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
      }
      if (res.statusCode === 303) method = 'GET';
      url = next;
    }
  }

  private once(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: RequestBody | undefined,
    signal?: AbortSignal,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const allHeaders: Record<string, string> = { 'User-Agent': this.options.userAgent, ...headers };
      let payload: Buffer | Readable | undefined;
      if (typeof body === 'string') payload = Buffer.from(body);
      else if (typeof body === 'function') payload = body();
      else payload = body;
      if (Buffer.isBuffer(payload)) allHeaders['Content-Length'] = String(payload.length);
      else if (payload === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH')) {
        allHeaders['Content-Length'] = '0';
      }
      const proxy = this.proxyFor(url);
      let req: HttpModule.ClientRequest;
      if (proxy && url.protocol === 'http:') {
        // Plain HTTP through a proxy: the request goes to the proxy with the absolute URL.
        const auth = proxyAuthorization(proxy);
        if (auth) allHeaders['Proxy-Authorization'] = auth;
        allHeaders.Host = url.host;
        const proxyMod = proxy.protocol === 'https:' ? https() : http();
        req = proxyMod.request({
          protocol: proxy.protocol, hostname: proxy.hostname.replace(/^\[|\]$/g, ''), port: proxy.port || (proxy.protocol === 'https:' ? 443 : 80),
          path: url.href, method, headers: allHeaders, agent: this.agentFor(url, proxy), signal,
        });
      } else {
        const mod = url.protocol === 'https:' ? https() : http();
        req = mod.request(url, { method, headers: allHeaders, agent: this.agentFor(url, proxy), signal });
      }
      req.setTimeout(this.options.timeoutMs, () => {
        req.destroy(Object.assign(new Error(`no data for ${this.options.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      req.on('response', (res) => {
        if (res.statusCode === 407 && proxy && url.protocol === 'http:') {
          discard(res);
          reject(new BerthError('UNAUTHORIZED', `proxy ${proxy.host} refused ${method} ${url.href}: 407 ${res.statusMessage ?? ''}; ${proxyCredentialsHint(proxy)}`));
          return;
        }
        // Idle timeout while the body streams, too.
        res.socket?.setTimeout(this.options.timeoutMs);
        resolve(res);
      });
      req.on('error', reject);
      if (payload === undefined) req.end();
      else if (Buffer.isBuffer(payload)) req.end(payload);
      else {
        payload.on('error', (err) => req.destroy(err));
        payload.pipe(req);
      }
    });
  }
}

/** Reads a response body fully (small bodies only: JSON documents and errors). */
/** Drains a body we do not need so that its keep-alive socket is reused. */
export function discard(res: Readable): void {
  res.on('error', () => {});
  res.resume();
}

export function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs) && secs >= 0) return Math.min(secs * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(v);
  if (!Number.isNaN(date)) return Math.min(Math.max(0, date - Date.now()), MAX_RETRY_AFTER_MS);
  return undefined;
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export function isNetworkError(err: unknown): boolean {
  if (err instanceof BerthError) return err.code === 'NETWORK';
  const e = err as NodeJS.ErrnoException | undefined;
  if (!e) return false;
  if (e.code && NETWORK_CODES.has(e.code)) return true;
  return /socket hang up|aborted/i.test(e.message ?? '') && e.name !== 'AbortError';
}

/** TLS verification failures: the registry's certificate is not one this client trusts. */
const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function toNetworkError(err: unknown, req: HttpRequest): unknown {
  if (err instanceof BerthError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError') return err;
  const host = req.url.host;
  const hint = e?.code && CERTIFICATE_CODES.has(e.code)
    ? ` (${e.code}): to trust this registry's CA, put it in /etc/containers/certs.d/${host}/ca.crt (or a --cert-dir, or the system's CA store); or mark ${host} insecure (--tls-verify=false) to skip verification`
    : '';
  return new BerthError('NETWORK', `${req.method} ${req.url.href} failed: ${e?.message ?? String(err)}${hint}`, { cause: err });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The URL of the next page from an RFC 5988 `Link: <url>; rel="next"` header. */
export function nextLink(header: string | string[] | undefined, base: URL): URL | undefined {
  const values = Array.isArray(header) ? header : header ? [header] : [];
  for (const value of values) {
    for (const part of value.split(/,(?=\s*<)/)) {
      const m = /<([^>]*)>\s*;(.*)/.exec(part.trim());
      if (m && /rel="?next"?/.test(m[2]!)) return new URL(m[1]!, base);
    }
  }
  return undefined;
}
