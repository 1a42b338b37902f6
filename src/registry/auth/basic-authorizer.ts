/** htpasswd Basic auth: 401 with a Basic challenge without valid credentials, 403 DENIED beyond the policy. */
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../errors.js';
import { basicCredentials, type AccessScope, type Authorizer, type Principal } from './access.js';
import type { Htpasswd } from './htpasswd.js';
import type { AccessPolicy } from './policy.js';

export class BasicAuthorizer implements Authorizer {
  constructor(
    private readonly htpasswd: Htpasswd,
    private readonly policy: AccessPolicy,
    private readonly realm: string,
  ) {}

  private challenge(message: string): RegistryError {
    return new RegistryError(401, 'UNAUTHORIZED', message, undefined, {
      'WWW-Authenticate': `Basic realm=${JSON.stringify(this.realm)}`,
    });
  }

  async authenticate(req: IncomingMessage): Promise<Principal> {
    const creds = basicCredentials(req);
    if (!creds) return {};
    if (!(await this.htpasswd.verify(creds.user, creds.password))) {
      throw this.challenge('invalid user name or password');
    }
    return { user: creds.user };
  }

  async authorize(req: IncomingMessage, scopes: AccessScope[]): Promise<Principal> {
    const principal = await this.authenticate(req);
    if (scopes.length === 0) {
      if (principal.user === undefined && !this.policy.grantsAnonymous()) {
        throw this.challenge('authentication required: log in with a user of the htpasswd file');
      }
      return principal;
    }
    for (const scope of scopes) {
      if (this.policy.allows(principal.user, scope)) continue;
      if (principal.user === undefined) throw this.challenge('authentication required: log in with a user of the htpasswd file');
      throw new RegistryError(403, 'DENIED', `user ${principal.user} may not ${scope.actions.join(',')} ${scope.name}`, {
        scope: `${scope.type}:${scope.name}:${scope.actions.join(',')}`,
      });
    }
    return principal;
  }

  async canPull(principal: Principal, _req: IncomingMessage, repo: string): Promise<boolean> {
    return this.policy.allows(principal.user, { type: 'repository', name: repo, actions: ['pull'] });
  }
}
