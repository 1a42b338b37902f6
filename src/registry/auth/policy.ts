/**
 * The access policy: who may do what on which repositories. A JSON file:
 *   { "groups": { "devs": ["alice", "bob"] },
 *     "rules": [ { "who": ["group:devs", "user:carol", "authenticated", "anonymous"],
 *                  "repositories": ["team/*", "public/**"], "actions": ["pull", "push", "delete"],
 *                  "catalog": false } ] }
 * In patterns `*` matches within one path component and `**` across components. Access is
 * the union of every rule that applies. Without a policy, authenticated users may do everything
 * and anonymous clients nothing.
 */
import { readFileSync } from 'node:fs';
import { BerthError } from '../../base/errors.js';
import type { AccessScope } from './access.js';

interface Rule {
  who: string[];
  repositories: RegExp[];
  actions: Set<string>;
  catalog: boolean;
}

export const ALL_ACTIONS = ['pull', 'push', 'delete'];

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export class AccessPolicy {
  private constructor(
    private readonly groups: Map<string, Set<string>>,
    private readonly rules: Rule[],
  ) {}

  /** Everyone authenticated may do everything; anonymous nothing. */
  static authenticatedOnly(): AccessPolicy {
    return new AccessPolicy(new Map(), [
      { who: ['authenticated'], repositories: [/^.*$/], actions: new Set(ALL_ACTIONS), catalog: true },
    ]);
  }

  static fromFile(path: string): AccessPolicy {
    let doc: { groups?: Record<string, string[]>; rules?: unknown[] };
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new BerthError('USAGE', `cannot read the access policy ${path}: ${(err as Error).message}`);
    }
    return AccessPolicy.fromObject(doc, path);
  }

  static fromObject(doc: { groups?: Record<string, string[]>; rules?: unknown[] }, where = 'policy'): AccessPolicy {
    const groups = new Map<string, Set<string>>();
    for (const [g, members] of Object.entries(doc.groups ?? {})) {
      if (!Array.isArray(members)) throw new BerthError('USAGE', `${where}: group ${g} must list user names`);
      groups.set(g, new Set(members.map(String)));
    }
    if (!Array.isArray(doc.rules)) throw new BerthError('USAGE', `${where}: "rules" must be an array`);
    const rules = doc.rules.map((r, i): Rule => {
      const rule = r as { who?: unknown; repositories?: unknown; actions?: unknown; catalog?: unknown };
      if (!Array.isArray(rule.who) || !Array.isArray(rule.repositories) || !Array.isArray(rule.actions)) {
        throw new BerthError('USAGE', `${where}: rules[${i}] needs "who", "repositories" and "actions" arrays`);
      }
      for (const a of rule.actions) {
        if (!ALL_ACTIONS.includes(String(a)) && a !== '*') throw new BerthError('USAGE', `${where}: rules[${i}]: unknown action ${JSON.stringify(a)}`);
      }
      const actions = new Set(rule.actions.includes('*') ? ALL_ACTIONS : rule.actions.map(String));
      return { who: rule.who.map(String), repositories: rule.repositories.map((p) => globToRegExp(String(p))), actions, catalog: rule.catalog === true };
    });
    return new AccessPolicy(groups, rules);
  }

  private applies(rule: Rule, user: string | undefined): boolean {
    return rule.who.some((w) => {
      if (w === 'anonymous') return true; // anonymous access is also granted to users
      if (user === undefined) return false;
      if (w === 'authenticated' || w === '*') return true;
      if (w === `user:${user}` || w === user) return true;
      if (w.startsWith('group:')) return this.groups.get(w.slice(6))?.has(user) ?? false;
      return false;
    });
  }

  /** The actions of `scope` that `user` is granted. */
  granted(user: string | undefined, scope: AccessScope): string[] {
    const out = new Set<string>();
    for (const rule of this.rules) {
      if (!this.applies(rule, user)) continue;
      if (scope.type === 'registry' && scope.name === 'catalog') {
        if (rule.catalog) for (const a of scope.actions) out.add(a);
      } else if (scope.type === 'repository' && rule.repositories.some((re) => re.test(scope.name))) {
        for (const a of scope.actions) if (rule.actions.has(a)) out.add(a);
      }
    }
    return [...out];
  }

  /** Whether anonymous clients are granted anything at all. */
  grantsAnonymous(): boolean {
    return this.rules.some((r) => r.who.includes('anonymous'));
  }

  allows(user: string | undefined, scope: AccessScope): boolean {
    const g = this.granted(user, scope);
    return scope.actions.every((a) => g.includes(a));
  }
}
