/**
 * The built-in token issuer (docker-registry/auth/token.md and oauth.md): GET /token with
 * optional Basic credentials, or POST /token with a password grant form. It grants the
 * intersection of the requested scopes with the access policy, and signs a JWT.
 */
import { createHash, randomUUID, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../errors.js';
import { basicCredentials, parseScope, type AccessScope } from './access.js';
import type { Htpasswd } from './htpasswd.js';
import { signJwt } from './jwt.js';
import type { AccessPolicy } from './policy.js';

export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
}

export class TokenIssuer {
  private readonly kid: string;

  constructor(
    private readonly key: KeyObject,
    private readonly issuer: string,
    private readonly service: string,
    private readonly expiresIn: number,
    private readonly htpasswd: Htpasswd | undefined,
    private readonly policy: AccessPolicy,
  ) {
    // A stable key id derived from the public key (any unique string works for our verifier).
    const der = key.export({ format: 'der', type: 'pkcs8' });
    this.kid = createHash('sha256').update(der).digest('base64url').slice(0, 32);
  }

  /** Handles a token request; `form` is the parsed POST body (password grant), if any. */
  async issue(req: IncomingMessage, query: URLSearchParams, form?: URLSearchParams): Promise<TokenResponse> {
    let user: string | undefined;
    let password: string | undefined;
    const basic = basicCredentials(req);
    if (basic) ({ user, password } = basic);
    if (form && form.get('grant_type') === 'password') {
      user = form.get('username') ?? undefined;
      password = form.get('password') ?? undefined;
    }
    if (user !== undefined) {
      if (!this.htpasswd || !(await this.htpasswd.verify(user, password ?? ''))) {
        throw new RegistryError(401, 'UNAUTHORIZED', 'invalid user name or password', undefined, {
          'WWW-Authenticate': 'Basic realm="berth token"',
        });
      }
    }
    const service = form?.get('service') ?? query.get('service');
    if (service !== null && service !== this.service) {
      throw new RegistryError(400, 'UNSUPPORTED', `this issuer serves ${JSON.stringify(this.service)}, not ${JSON.stringify(service)}`);
    }
    const requested = [...query.getAll('scope'), ...(form?.getAll('scope') ?? [])].flatMap((s) => s.split(' ')).filter(Boolean);
    const access: AccessScope[] = [];
    for (const raw of requested) {
      const scope = parseScope(raw);
      if (!scope) continue;
      const actions = scope.actions.includes('*') && scope.type === 'registry' ? scope.actions : scope.actions;
      const granted = this.policy.granted(user, { ...scope, actions });
      const existing = access.find((a) => a.type === scope.type && a.name === scope.name);
      if (existing) existing.actions = [...new Set([...existing.actions, ...granted])];
      else access.push({ type: scope.type, name: scope.name, actions: granted });
    }
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(
      { iss: this.issuer, sub: user ?? '', aud: this.service, exp: now + this.expiresIn, nbf: now - 1, iat: now, jti: randomUUID(), access },
      this.key,
      this.kid,
    );
    return { token, access_token: token, expires_in: this.expiresIn, issued_at: new Date(now * 1000).toISOString() };
  }
}
