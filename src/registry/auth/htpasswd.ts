/**
 * htpasswd files with bcrypt entries, as `htpasswd -B` writes them (`user:$2y$…`). Successful
 * checks are remembered for a minute by a keyed hash of the credentials, so that bcrypt does
 * not run on every request of a busy client.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { BerthError } from '../../base/errors.js';

const REMEMBER_MS = 60_000;

export class Htpasswd {
  private readonly users = new Map<string, string>();
  private readonly verified = new Map<string, number>();
  private readonly cacheKey = randomBytes(32);

  constructor(readonly path: string) {
    const text = readFileSync(path, 'utf8');
    for (const [i, raw] of text.split('\n').entries()) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const sep = line.indexOf(':');
      const hash = line.slice(sep + 1);
      if (sep <= 0 || !/^\$2[aby]\$\d\d\$/.test(hash)) {
        throw new BerthError('USAGE', `${path}:${i + 1}: only bcrypt entries are supported (create them with "htpasswd -B")`);
      }
      this.users.set(line.slice(0, sep), hash);
    }
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  async verify(user: string, password: string): Promise<boolean> {
    const hash = this.users.get(user);
    if (hash === undefined) return false;
    const key = createHmac('sha256', this.cacheKey).update(user).update('\0').update(password).digest('base64');
    const until = this.verified.get(key);
    const now = Date.now();
    if (until !== undefined && until > now) return true;
    // bcryptjs reads $2y$ (PHP's tag for the fixed algorithm) like $2b$; normalise anyway.
    const ok = await bcrypt.compare(password, hash.replace(/^\$2y\$/, '$2b$'));
    if (ok) {
      if (this.verified.size > 10_000) this.verified.clear();
      this.verified.set(key, now + REMEMBER_MS);
    }
    return ok;
  }
}
