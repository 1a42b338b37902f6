/**
 * `berth serve` configuration: built-in defaults, then a JSON config file (--config or
 * BERTH_CONFIG), then BERTH_* environment variables, then command-line flags.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import { validateRepositoryName } from '../image/reference.js';

export type LogFormat = 'text' | 'json' | 'off';

export interface TokenConfig {
  /** URL clients fetch tokens from (the `realm` of the Bearer challenge); default: /token on the Host the client used. */
  realm?: string;
  service: string;
  issuer: string;
  /** PEM private key (RSA or EC P-256) that signs tokens of the built-in endpoint at /token. */
  signingKey?: string;
  /** PEM public keys or certificates of issuers whose tokens are accepted (the signing key's is added). */
  trustedKeys: string[];
  /** Lifetime of issued tokens, in seconds. */
  expiresIn: number;
}

/**
 * One upstream of the pull-through cache. With a prefix (a registry host such as docker.io, or
 * a path such as mirrors/team), the local repository PREFIX/NAME is the upstream's NAME, and a
 * request for NAME with `?ns=PREFIX` (containerd's mirror requests) is that repository; without
 * one, every repository no other upstream takes is the upstream's repository of the same name.
 */
export interface ProxyUpstream {
  prefix?: string;
  /** http(s)://HOST[:PORT] of the upstream registry. */
  url: string;
  username?: string;
  password?: string;
  /** How long a tag is served before it is revalidated with the upstream. */
  ttlMs: number;
}

/** An entry of the `proxies` list of the JSON config file. */
export interface ProxyEntry {
  prefix?: string;
  url: string;
  username?: string;
  password?: string;
  /** Seconds (default: proxyTtl, else 300). */
  ttl?: number;
}

export interface RegistryConfig {
  addr: string;
  /** A second listener, plain HTTP, with /metrics and /healthz and no auth (distribution's debug.addr). */
  debugAddr?: string;
  dataDir: string;
  /** Where blobs live: undefined for the data directory, or s3://BUCKET[/PREFIX]?endpoint=…&region=… */
  storage?: string;
  /** Where metadata lives: undefined for SQLite in the data directory, or postgres://… */
  metadata?: string;
  /** Pull-through cache: the upstream registries, longest prefix first (empty: not a cache). */
  proxies: ProxyUpstream[];
  /** Accept manifests whose references are missing (a mirror of part of an index). */
  sparseManifests: boolean;
  /** Blob GETs from object storage answer 307 to a presigned URL (false: proxied, with ranges). */
  redirect: boolean;
  tls?: { cert: string; key: string };
  auth: {
    /** Realm of the Basic challenge. */
    realm: string;
    /** An htpasswd file with bcrypt entries (`htpasswd -B`). */
    htpasswd?: string;
    /** JSON access policy (users and groups → repository patterns → actions). */
    policy?: string;
    token?: TokenConfig;
  };
  deleteEnabled: boolean;
  /** Upload sessions idle longer than this are purged. */
  uploadPurgeAfterMs: number;
  maxManifestBytes: number;
  /** OCI-Chunk-Min-Length advertised on upload start (0: none). */
  chunkMinLength: number;
  logFormat: LogFormat;
  gc: { deleteUntagged: boolean; graceMs: number };
  shutdownTimeoutMs: number;
  /** Operator notices sent on every API response as `Warning: 299 - "…"` (spec.md "Warnings"). */
  warnings: string[];
}

/** $XDG_DATA_HOME/berth/registry, ~/.local/share/berth/registry, or /var/lib/berth/registry as root. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_DATA_HOME) return join(env.XDG_DATA_HOME, 'berth', 'registry');
  if (process.getuid?.() === 0) return '/var/lib/berth/registry';
  return join(homedir(), '.local', 'share', 'berth', 'registry');
}

export function defaultConfig(env: NodeJS.ProcessEnv = process.env): RegistryConfig {
  return {
    addr: '127.0.0.1:5000',
    dataDir: defaultDataDir(env),
    auth: { realm: 'berth' },
    redirect: true,
    sparseManifests: false,
    proxies: [],
    deleteEnabled: true,
    uploadPurgeAfterMs: 24 * 3600 * 1000,
    maxManifestBytes: 4 * 1024 * 1024,
    chunkMinLength: 0,
    logFormat: 'text',
    gc: { deleteUntagged: false, graceMs: 3600 * 1000 },
    shutdownTimeoutMs: 10_000,
    warnings: [],
  };
}

/** The subset of settings a file, the environment or flags can give, all optional. */
export interface ConfigOverrides {
  addr?: string;
  debugAddr?: string;
  data?: string;
  storage?: string;
  metadata?: string;
  redirect?: boolean;
  sparseManifests?: boolean;
  /** Upstreams as URL (every repository) or PREFIX=URL; repeatable flag, comma-separated variable. */
  proxy?: string | string[];
  proxies?: ProxyEntry[];
  proxyUsername?: string;
  proxyPassword?: string;
  proxyTtl?: number;
  tlsCert?: string;
  tlsKey?: string;
  htpasswd?: string;
  realm?: string;
  policy?: string;
  tokenRealm?: string;
  tokenService?: string;
  tokenIssuer?: string;
  tokenKey?: string;
  tokenTrust?: string[];
  tokenExpiresIn?: number;
  delete?: boolean;
  uploadPurgeAfter?: number;
  maxManifestBytes?: number;
  chunkMinLength?: number;
  logFormat?: string;
  gcDeleteUntagged?: boolean;
  gcGrace?: number;
  warnings?: string[];
}

function bool(name: string, v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new BerthError('USAGE', `${name} must be true or false, got ${JSON.stringify(v)}`);
}

function int(name: string, v: string | number): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new BerthError('USAGE', `${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

export function overridesFromEnv(env: NodeJS.ProcessEnv): ConfigOverrides {
  const o: ConfigOverrides = {};
  const s = (k: string) => (env[k] !== undefined && env[k] !== '' ? env[k] : undefined);
  o.addr = s('BERTH_ADDR');
  o.debugAddr = s('BERTH_DEBUG_ADDR');
  o.data = s('BERTH_DATA');
  o.storage = s('BERTH_STORAGE');
  o.metadata = s('BERTH_METADATA');
  if (s('BERTH_PROXY')) o.proxy = s('BERTH_PROXY')!.split(',').filter(Boolean);
  o.proxyUsername = s('BERTH_PROXY_USERNAME');
  o.proxyPassword = s('BERTH_PROXY_PASSWORD');
  if (s('BERTH_PROXY_TTL')) o.proxyTtl = int('BERTH_PROXY_TTL', s('BERTH_PROXY_TTL')!);
  if (s('BERTH_SPARSE_MANIFESTS')) o.sparseManifests = bool('BERTH_SPARSE_MANIFESTS', s('BERTH_SPARSE_MANIFESTS')!);
  if (s('BERTH_REDIRECT')) o.redirect = bool('BERTH_REDIRECT', s('BERTH_REDIRECT')!);
  o.tlsCert = s('BERTH_TLS_CERT');
  o.tlsKey = s('BERTH_TLS_KEY');
  o.htpasswd = s('BERTH_HTPASSWD');
  o.realm = s('BERTH_AUTH_REALM');
  o.policy = s('BERTH_POLICY');
  o.tokenRealm = s('BERTH_TOKEN_REALM');
  o.tokenService = s('BERTH_TOKEN_SERVICE');
  o.tokenIssuer = s('BERTH_TOKEN_ISSUER');
  o.tokenKey = s('BERTH_TOKEN_KEY');
  if (s('BERTH_TOKEN_TRUST')) o.tokenTrust = s('BERTH_TOKEN_TRUST')!.split(',').filter(Boolean);
  if (s('BERTH_TOKEN_EXPIRES')) o.tokenExpiresIn = int('BERTH_TOKEN_EXPIRES', s('BERTH_TOKEN_EXPIRES')!);
  if (s('BERTH_DELETE')) o.delete = bool('BERTH_DELETE', s('BERTH_DELETE')!);
  if (s('BERTH_UPLOAD_PURGE_AFTER')) o.uploadPurgeAfter = int('BERTH_UPLOAD_PURGE_AFTER', s('BERTH_UPLOAD_PURGE_AFTER')!);
  if (s('BERTH_MAX_MANIFEST_BYTES')) o.maxManifestBytes = int('BERTH_MAX_MANIFEST_BYTES', s('BERTH_MAX_MANIFEST_BYTES')!);
  if (s('BERTH_CHUNK_MIN_LENGTH')) o.chunkMinLength = int('BERTH_CHUNK_MIN_LENGTH', s('BERTH_CHUNK_MIN_LENGTH')!);
  o.logFormat = s('BERTH_LOG_FORMAT');
  if (s('BERTH_GC_DELETE_UNTAGGED')) o.gcDeleteUntagged = bool('BERTH_GC_DELETE_UNTAGGED', s('BERTH_GC_DELETE_UNTAGGED')!);
  if (s('BERTH_WARNING')) o.warnings = [s('BERTH_WARNING')!];
  if (s('BERTH_GC_GRACE')) o.gcGrace = int('BERTH_GC_GRACE', s('BERTH_GC_GRACE')!);
  return o;
}

/** Reads the JSON config file; its keys are those of ConfigOverrides (see the README). */
export function overridesFromFile(path: string): ConfigOverrides {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new BerthError('USAGE', `cannot read the config file ${path}: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new BerthError('USAGE', `config file ${path} must hold a JSON object`);
  }
  const known = new Set([
    'addr', 'debugAddr', 'data', 'storage', 'metadata', 'redirect', 'sparseManifests', 'proxy', 'proxies', 'proxyUsername', 'proxyPassword', 'proxyTtl', 'tlsCert', 'tlsKey', 'htpasswd', 'realm', 'policy', 'tokenRealm', 'tokenService', 'tokenIssuer', 'tokenKey',
    'tokenTrust', 'tokenExpiresIn', 'delete', 'uploadPurgeAfter', 'maxManifestBytes', 'chunkMinLength', 'logFormat',
    'gcDeleteUntagged', 'gcGrace', 'warnings',
  ]);
  for (const k of Object.keys(doc)) {
    if (!known.has(k)) throw new BerthError('USAGE', `config file ${path}: unknown key ${JSON.stringify(k)}`);
  }
  return doc as ConfigOverrides;
}

/** Applies overrides in order (later wins) and checks the result. */
export function buildConfig(base: RegistryConfig, ...layers: ConfigOverrides[]): RegistryConfig {
  const c: RegistryConfig = structuredClone(base);
  let tokenRealm: string | undefined;
  let tokenService: string | undefined;
  let tokenIssuer: string | undefined;
  let tokenKey: string | undefined;
  let tokenTrust: string[] = [];
  let tokenExpiresIn = 300;
  let tlsCert: string | undefined;
  let tlsKey: string | undefined;
  let sparseSet = false;
  let proxyEntries: ProxyEntry[] = [];
  let proxyFlags: string[] = [];
  const proxyDefaults: { username?: string; password?: string; ttl: number } = { ttl: 300 };
  for (const o of layers) {
    if (o.addr !== undefined) c.addr = o.addr;
    if (o.debugAddr !== undefined) c.debugAddr = o.debugAddr;
    if (o.data !== undefined) c.dataDir = o.data;
    if (o.storage !== undefined) c.storage = o.storage;
    if (o.metadata !== undefined) c.metadata = o.metadata;
    if (o.redirect !== undefined) c.redirect = o.redirect;
    if (o.sparseManifests !== undefined) {
      c.sparseManifests = o.sparseManifests;
      sparseSet = true;
    }
    if (o.proxy !== undefined) proxyFlags = typeof o.proxy === 'string' ? [o.proxy] : o.proxy;
    if (o.proxies !== undefined) proxyEntries = o.proxies;
    if (o.proxyUsername !== undefined) proxyDefaults.username = o.proxyUsername;
    if (o.proxyPassword !== undefined) proxyDefaults.password = o.proxyPassword;
    if (o.proxyTtl !== undefined) proxyDefaults.ttl = int('proxyTtl', o.proxyTtl);
    if (o.tlsCert !== undefined) tlsCert = o.tlsCert;
    if (o.tlsKey !== undefined) tlsKey = o.tlsKey;
    if (o.htpasswd !== undefined) c.auth.htpasswd = o.htpasswd;
    if (o.realm !== undefined) c.auth.realm = o.realm;
    if (o.policy !== undefined) c.auth.policy = o.policy;
    if (o.tokenRealm !== undefined) tokenRealm = o.tokenRealm;
    if (o.tokenService !== undefined) tokenService = o.tokenService;
    if (o.tokenIssuer !== undefined) tokenIssuer = o.tokenIssuer;
    if (o.tokenKey !== undefined) tokenKey = o.tokenKey;
    if (o.tokenTrust !== undefined) tokenTrust = o.tokenTrust;
    if (o.tokenExpiresIn !== undefined) tokenExpiresIn = int('tokenExpiresIn', o.tokenExpiresIn);
    if (o.delete !== undefined) c.deleteEnabled = o.delete;
    if (o.uploadPurgeAfter !== undefined) c.uploadPurgeAfterMs = int('uploadPurgeAfter', o.uploadPurgeAfter) * 1000;
    if (o.maxManifestBytes !== undefined) c.maxManifestBytes = int('maxManifestBytes', o.maxManifestBytes);
    if (o.chunkMinLength !== undefined) c.chunkMinLength = int('chunkMinLength', o.chunkMinLength);
    if (o.logFormat !== undefined) {
      if (o.logFormat !== 'text' && o.logFormat !== 'json' && o.logFormat !== 'off') {
        throw new BerthError('USAGE', `log format must be text, json or off, got ${JSON.stringify(o.logFormat)}`);
      }
      c.logFormat = o.logFormat;
    }
    if (o.gcDeleteUntagged !== undefined) c.gc.deleteUntagged = o.gcDeleteUntagged;
    if (o.gcGrace !== undefined) c.gc.graceMs = int('gcGrace', o.gcGrace) * 1000;
    if (o.warnings !== undefined) c.warnings = o.warnings.map(String);
  }
  // spec.md "Warnings": at most 4096 bytes of warning data in all headers combined.
  const warningBytes = c.warnings.reduce((n, w) => n + Buffer.byteLength(w) + 9, 0);
  if (warningBytes > 4096) throw new BerthError('USAGE', `warnings take ${warningBytes} bytes; at most 4096 bytes may be sent`);
  for (const w of c.warnings) {
    if (/["\\\r\n]/.test(w) || /[^\x20-\x7e]/.test(w)) throw new BerthError('USAGE', `warning ${JSON.stringify(w)}: use printable ASCII without quotes or backslashes`);
  }
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new BerthError('USAGE', 'TLS needs both a certificate and a key (--tls-cert and --tls-key)');
  }
  if (tlsCert && tlsKey) c.tls = { cert: tlsCert, key: tlsKey };
  if (tokenRealm !== undefined || tokenKey !== undefined || tokenTrust.length > 0) {
    if (!tokenKey && tokenTrust.length === 0) {
      throw new BerthError('USAGE', 'token auth needs a signing key (--token-key) or trusted issuer keys (--token-trust)');
    }
    c.auth.token = {
      realm: tokenRealm,
      service: tokenService ?? 'berth-registry',
      issuer: tokenIssuer ?? 'berth',
      signingKey: tokenKey,
      trustedKeys: tokenTrust,
      expiresIn: tokenExpiresIn,
    };
  }
  c.proxies = proxyUpstreams(proxyEntries, proxyFlags, proxyDefaults);
  // A mirror holds what was asked for: manifests arrive before (or without) all their parts.
  if (c.proxies.length > 0 && !sparseSet) c.sparseManifests = true;
  if (c.storage !== undefined && !c.storage.startsWith('s3://')) {
    throw new BerthError('USAGE', `storage must be s3://BUCKET?endpoint=…&region=… (or unset for the data directory), got ${JSON.stringify(c.storage)}`);
  }
  if (c.metadata !== undefined && !/^postgres(ql)?:\/\//.test(c.metadata)) {
    throw new BerthError('USAGE', `metadata must be postgres://USER@HOST:PORT/DB (or unset for SQLite in the data directory), got a ${JSON.stringify(c.metadata.split(':')[0])} URL`);
  }
  splitAddr(c.addr);
  if (c.debugAddr !== undefined) splitAddr(c.debugAddr, 'the debug address (--debug-addr)');
  return c;
}

/** The upstreams of the config's `proxies` list and of --proxy [PREFIX=]URL, checked, longest prefix first. */
function proxyUpstreams(entries: ProxyEntry[], flags: string[], d: { username?: string; password?: string; ttl: number }): ProxyUpstream[] {
  if (!Array.isArray(entries)) throw new BerthError('USAGE', 'proxies must be a list of {"prefix", "url", "username", "password", "ttl"} objects');
  const all: ProxyEntry[] = [...entries];
  for (const f of flags) {
    const eq = f.indexOf('=');
    // A URL holds no "=" before its scheme: "docker.io=http://…" names a prefix, "http://…" does not.
    all.push(eq > 0 && !f.slice(0, eq).includes('://') ? { prefix: f.slice(0, eq), url: f.slice(eq + 1) } : { url: f });
  }
  const seen = new Set<string>();
  const out = all.map((e): ProxyUpstream => {
    if (typeof e !== 'object' || e === null || typeof e.url !== 'string') throw new BerthError('USAGE', `a proxy needs a "url", got ${JSON.stringify(e)}`);
    if (!/^https?:\/\/[^/]+\/?$/.test(e.url)) throw new BerthError('USAGE', `proxy must be the upstream's http(s)://HOST[:PORT], got ${JSON.stringify(e.url)}`);
    const prefix = e.prefix?.replace(/^\/+|\/+$/g, '') || undefined;
    // The prefix is the first components of local repository names.
    if (prefix !== undefined) {
      try {
        validateRepositoryName(prefix);
      } catch {
        throw new BerthError('USAGE', `proxy prefix ${JSON.stringify(e.prefix)} must be a registry host without port (docker.io) or repository path components (mirrors/team)`);
      }
    }
    const key = prefix ?? '';
    if (seen.has(key)) throw new BerthError('USAGE', prefix ? `two proxies for the prefix ${prefix}: keep one` : 'two proxies without a prefix: give each a PREFIX=URL');
    seen.add(key);
    const unprefixed = prefix === undefined;
    return {
      prefix,
      url: e.url.replace(/\/+$/, ''),
      // BERTH_PROXY_USERNAME and friends are the credentials of the upstream without a prefix.
      username: e.username ?? (unprefixed ? d.username : undefined),
      password: e.password ?? (unprefixed ? d.password : undefined),
      ttlMs: (e.ttl !== undefined ? int('ttl of a proxy', e.ttl) : d.ttl) * 1000,
    };
  });
  return out.sort((a, b) => (b.prefix?.length ?? -1) - (a.prefix?.length ?? -1));
}

export function splitAddr(addr: string, what = 'address'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new BerthError('USAGE', `${what} must be HOST:PORT (e.g. 127.0.0.1:5000), got ${JSON.stringify(addr)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
