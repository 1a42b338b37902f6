/**
 * Token auth as docker clients expect it (docker-registry/auth/token.md, jwt.md): requests carry
 * `Authorization: Bearer <JWT>` signed by a trusted issuer, whose `access` claim lists the granted
 * scopes. Without a (sufficient) token: 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`.
 */
import type { IncomingMessage } from 'node:http';
import type { KeyObject } from 'node:crypto';
import { RegistryError } from '../errors.js';
import { formatScope, type AccessScope, type Authorizer, type Principal } from './access.js';
import { verifyJwt } from './jwt.js';

interface Claims {
  iss?: unknown;
  sub?: unknown;
  aud?: unknown;
  exp?: unknown;
  nbf?: unknown;
  access?: unknown;
}

interface VerifiedToken {
  user?: string;
  access: AccessScope[];
}

const CLOCK_SKEW_S = 60;

export class TokenAuthorizer implements Authorizer {
  private readonly cache = new Map<string, { token: VerifiedToken; exp: number }>();

  constructor(
    private readonly keys: KeyObject[],
    private readonly realm: string | undefined,
    private readonly service: string,
    private readonly issuer: string,
    private readonly tls: boolean,
  ) {}

  /** The configured realm, else the built-in endpoint on the host the client addressed. */
  private realmFor(req: IncomingMessage): string {
    if (this.realm) return this.realm;
    const host = /^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host ?? '') ? req.headers.host : 'localhost';
    return `${this.tls ? 'https' : 'http'}://${host}/token`;
  }

  private challenge(req: IncomingMessage, scopes: AccessScope[], error?: string): RegistryError {
    let value = `Bearer realm=${JSON.stringify(this.realmFor(req))},service=${JSON.stringify(this.service)}`;
    if (scopes.length > 0) value += `,scope=${JSON.stringify(scopes.map(formatScope).join(' '))}`;
    if (error) value += `,error=${JSON.stringify(error)}`;
    const message = error === 'insufficient_scope' ? 'the token does not grant this access' : 'authentication required: fetch a token from the realm';
    return new RegistryError(401, 'UNAUTHORIZED', message, scopes.length ? scopes.map((s) => ({ Type: s.type, Name: s.name, Action: s.actions.join(',') })) : undefined, {
      'WWW-Authenticate': value,
    });
  }

  private verify(raw: string): VerifiedToken | undefined {
    const now = Math.floor(Date.now() / 1000);
    const hit = this.cache.get(raw);
    if (hit) {
      if (hit.exp > now) return hit.token;
      this.cache.delete(raw);
    }
    const claims = verifyJwt(raw, this.keys) as Claims | undefined;
    if (!claims) return undefined;
    if (claims.iss !== this.issuer) return undefined;
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(this.service)) return undefined;
    if (typeof claims.exp !== 'number' || claims.exp + CLOCK_SKEW_S < now) return undefined;
    if (typeof claims.nbf === 'number' && claims.nbf - CLOCK_SKEW_S > now) return undefined;
    const access: AccessScope[] = [];
    if (Array.isArray(claims.access)) {
      for (const a of claims.access as { type?: unknown; name?: unknown; actions?: unknown }[]) {
        if (typeof a?.type === 'string' && typeof a.name === 'string' && Array.isArray(a.actions)) {
          access.push({ type: a.type, name: a.name, actions: a.actions.map(String) });
        }
      }
    }
    const token: VerifiedToken = { user: typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : undefined, access };
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(raw, { token, exp: claims.exp });
    return token;
  }

  private tokenOf(req: IncomingMessage): VerifiedToken | 'none' | 'invalid' {
    const h = req.headers.authorization;
    if (!h || !/^bearer /i.test(h)) return 'none';
    return this.verify(h.slice(7).trim()) ?? 'invalid';
  }

  private grants(token: VerifiedToken, scope: AccessScope): boolean {
    return scope.actions.every((action) =>
      token.access.some((a) => a.type === scope.type && a.name === scope.name && (a.actions.includes(action) || a.actions.includes('*'))),
    );
  }

  async authorize(req: IncomingMessage, scopes: AccessScope[]): Promise<Principal> {
    const token = this.tokenOf(req);
    if (token === 'none') throw this.challenge(req, scopes);
    if (token === 'invalid') throw this.challenge(req, scopes, 'invalid_token');
    for (const scope of scopes) if (!this.grants(token, scope)) throw this.challenge(req, scopes, 'insufficient_scope');
    return { user: token.user };
  }

  async canPull(_principal: Principal, req: IncomingMessage, repo: string): Promise<boolean> {
    const token = this.tokenOf(req);
    return typeof token === 'object' && this.grants(token, { type: 'repository', name: repo, actions: ['pull'] });
  }
}
