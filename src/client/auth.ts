/**
 * Registry authentication as docker, podman and skopeo do it (docker-registry/auth/token.md,
 * oauth.md): anonymous first; on a 401, the `WWW-Authenticate` challenge says Basic or
 * Bearer. Bearer tokens come from the realm by GET (with Basic credentials if we have any)
 * or, when an identity (refresh) token is stored, by the OAuth2 POST form; they are cached
 * per scope set until they expire.
 */
import { BerthError } from '../base/errors.js';
import type { Credentials } from './credentials.js';
import type { HttpClient } from './http.js';
import { readJsonReply, tokenAnswer } from './json-reply.js';
import { registryError } from './errors.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (several challenges may be comma separated). */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const values = Array.isArray(header) ? header : header ? [header] : [];
  const out: Challenge[] = [];
  for (const value of values) {
    const re = /\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)|\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/y;
    let current: Challenge | undefined;
    let m: RegExpExecArray | null;
    re.lastIndex = 0;
    while (re.lastIndex < value.length && (m = re.exec(value))) {
      if (m[2] !== undefined) {
        if (!current) break;
        current.params[m[2].toLowerCase()] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[4] ?? '');
      } else if (m[1] !== undefined) {
        current = { scheme: m[1].toLowerCase(), params: {} };
        out.push(current);
      }
      if (m[0] === '') break;
    }
  }
  return out;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** What a host asked for the last time it said 401. */
type HostScheme = { kind: 'basic' } | { kind: 'bearer'; realm: string; service?: string };

export type CredentialSource = (host: string) => Promise<Credentials | undefined>;

/** Per-client authentication state: the scheme each host wants, and bearer tokens per scope. */
export class Authenticator {
  private readonly schemes = new Map<string, HostScheme>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly creds = new Map<string, Promise<Credentials | undefined>>();

  constructor(
    private readonly http: HttpClient,
    private readonly credentialSource: CredentialSource,
  ) {}

  credentialsFor(host: string): Promise<Credentials | undefined> {
    let p = this.creds.get(host);
    if (!p) {
      p = this.credentialSource(host);
      this.creds.set(host, p);
    }
    return p;
  }

  /** Overrides the credentials for a host (login verifies before writing). */
  setCredentials(host: string, creds: Credentials | undefined): void {
    this.creds.set(host, Promise.resolve(creds));
    for (const key of [...this.tokens.keys()]) if (key.startsWith(`${host} `)) this.tokens.delete(key);
  }

  /** The Authorization header to send, if we already know what the host wants. */
  async header(host: string, scopes: string[]): Promise<string | undefined> {
    const scheme = this.schemes.get(host);
    if (!scheme) return undefined;
    if (scheme.kind === 'basic') return this.basicHeader(host);
    const cached = this.tokens.get(tokenKey(host, scopes));
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    return `Bearer ${await this.fetchToken(host, scheme, scopes)}`;
  }

  /**
   * Learns from a 401 challenge. Returns true when a retry with new credentials makes sense
   * (we had not tried this scheme and scope set yet).
   */
  async onUnauthorized(host: string, wwwAuthenticate: string | string[] | undefined, scopes: string[], sentAuth: boolean): Promise<boolean> {
    const challenges = parseChallenges(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer?.params.realm) {
      const wanted = bearer.params.scope ? bearer.params.scope.split(' ').filter(Boolean) : [];
      const allScopes = [...new Set([...scopes, ...wanted])];
      const scheme: HostScheme = { kind: 'bearer', realm: bearer.params.realm, service: bearer.params.service };
      this.schemes.set(host, scheme);
      // The caller retries once: drop a refused token and fetch one for every scope asked for.
      this.tokens.delete(tokenKey(host, scopes));
      this.tokens.delete(tokenKey(host, allScopes));
      const token = await this.fetchToken(host, scheme, allScopes);
      this.tokens.set(tokenKey(host, scopes), { token, expiresAt: this.tokens.get(tokenKey(host, allScopes))!.expiresAt });
      return true;
    }
    if (basic) {
      const known = this.schemes.get(host);
      this.schemes.set(host, { kind: 'basic' });
      if (sentAuth && known?.kind === 'basic') return false;
      return (await this.credentialsFor(host)) !== undefined;
    }
    return false;
  }

  private async basicHeader(host: string): Promise<string | undefined> {
    const c = await this.credentialsFor(host);
    if (!c || c.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}`;
  }

  private async fetchToken(host: string, scheme: { realm: string; service?: string }, scopes: string[]): Promise<string> {
    const key = tokenKey(host, scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.token;
    const creds = await this.credentialsFor(host);
    const realm = new URL(scheme.realm);
    let res;
    if (creds?.identityToken) {
      // oauth.md: refresh-token grant by POST form.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'berth' });
      if (scheme.service) form.set('service', scheme.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.http.request({
        method: 'POST',
        url: realm,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
    } else {
      const url = new URL(realm);
      if (scheme.service) url.searchParams.set('service', scheme.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (creds?.username !== undefined) {
        headers.Authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      }
      res = await this.http.request({ method: 'GET', url, headers });
    }
    if (res.status !== 200) {
      const hint = res.status === 401 ? `check the credentials for ${host} (berth login ${host})` : undefined;
      throw await registryError(res.body, `getting a token for ${host} from ${realm.origin}${realm.pathname}`, hint);
    }
    const body = await readJsonReply<{
      token?: string;
      access_token?: string;
      expires_in?: number;
      issued_at?: string;
    }>(res, `getting a token for ${host} from ${realm.origin}${realm.pathname}`, tokenAnswer, 1024 * 1024);
    const token = body.token ?? body.access_token;
    if (!token) throw new BerthError('UNAUTHORIZED', `the token server for ${host} answered without a token`);
    // token.md: expires_in defaults to 60 s; keep a margin so a token never expires in flight.
    const lifetime = (body.expires_in && body.expires_in > 0 ? body.expires_in : 60) * 1000;
    const issued = body.issued_at ? Date.parse(body.issued_at) : NaN;
    const start = Number.isNaN(issued) || issued > Date.now() ? Date.now() : issued;
    this.tokens.set(key, { token, expiresAt: start + lifetime - Math.min(10_000, lifetime / 10) });
    return token;
  }
}

function tokenKey(host: string, scopes: string[]): string {
  return `${host} ${[...scopes].sort().join(' ')}`;
}

export function repositoryScope(repository: string, actions: string): string {
  return `repository:${repository}:${actions}`;
}
