/** Access scopes as docker token auth names them (docker-registry/auth/scope.md). */
import type { IncomingMessage } from 'node:http';

export interface AccessScope {
  /** `repository` or `registry`. */
  type: string;
  name: string;
  actions: string[];
}

export interface Principal {
  /** Undefined for anonymous requests. */
  user?: string;
}

/** Decides whether a request may do what it asks; throws a 401/403 RegistryError otherwise. */
export interface Authorizer {
  /** `scopes` empty means "any authenticated (or permitted anonymous) client" (GET /v2/). */
  authorize(req: IncomingMessage, scopes: AccessScope[]): Promise<Principal>;
  /** Whether `principal` may additionally pull from `repo` (for cross-repository mounts). */
  canPull(principal: Principal, req: IncomingMessage, repo: string): Promise<boolean>;
}

export class AnonymousAuthorizer implements Authorizer {
  async authorize(): Promise<Principal> {
    return {};
  }
  async canPull(): Promise<boolean> {
    return true;
  }
}

/** Parses `repository:team/app:pull,push` (the name may contain ":" for a port). */
export function parseScope(scope: string): AccessScope | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter(Boolean),
  };
}

export function formatScope(s: AccessScope): string {
  return `${s.type}:${s.name}:${s.actions.join(',')}`;
}

/** Credentials of a Basic Authorization header, or undefined. */
export function basicCredentials(req: IncomingMessage): { user: string; password: string } | undefined {
  const h = req.headers.authorization;
  if (!h || !/^basic /i.test(h)) return undefined;
  const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const sep = decoded.indexOf(':');
  if (sep < 0) return undefined;
  return { user: decoded.slice(0, sep), password: decoded.slice(sep + 1) };
}
