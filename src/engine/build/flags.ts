/**
 * Instruction flags as BuildKit's instructions/bflag.go reads them (`--name=value`, `--name`
 * for booleans, repeatable flags), plus the values that need their own parsing: RUN --mount
 * (commands_runmount.go) and HEALTHCHECK's Go durations.
 */
import { parseError, type Node } from './parser.js';

type FlagKind = 'string' | 'bool' | 'list';

export interface FlagValues {
  strings: Map<string, string>;
  bools: Map<string, boolean>;
  lists: Map<string, string[]>;
}

function flagOffset(node: Node, name: string): number {
  const at = node.original.indexOf(`--${name}`);
  return at < 0 ? 0 : at;
}

/** The error for a node, pointing at `offset` in its logical line. */
export function nodeError(node: Node, offset: number, what: string, todo: string): Error {
  const pos = node.position(offset);
  return parseError({ file: node.loc.file, ...pos }, what, todo);
}

/** Reads the node's flags against the ones its instruction knows. */
export function parseFlags(node: Node, known: Record<string, FlagKind>): FlagValues {
  const out: FlagValues = { strings: new Map(), bools: new Map(), lists: new Map() };
  const kw = node.command.toUpperCase();
  for (const raw of node.flags) {
    if (!raw.startsWith('--')) {
      throw nodeError(node, 0, `${kw} has a malformed flag ${JSON.stringify(raw)}`, 'write flags as --name=value');
    }
    const eq = raw.indexOf('=');
    const name = raw.slice(2, eq < 0 ? undefined : eq);
    const value = eq < 0 ? undefined : raw.slice(eq + 1);
    const kind = known[name];
    const off = flagOffset(node, name);
    if (kind === undefined) {
      const names = Object.keys(known).map((k) => `--${k}`);
      throw nodeError(node, off, `unknown flag --${name} for ${kw}`, names.length ? `${kw} takes ${names.join(', ')}` : `${kw} takes no flags`);
    }
    if (kind === 'bool') {
      if (out.bools.has(name)) throw nodeError(node, off, `duplicate flag --${name}`, 'give it once');
      if (value === undefined || value.toLowerCase() === 'true') out.bools.set(name, true);
      else if (value.toLowerCase() === 'false') out.bools.set(name, false);
      else throw nodeError(node, off, `--${name} must be true or false, not ${JSON.stringify(value)}`, `write --${name} or --${name}=false`);
      continue;
    }
    if (value === undefined) throw nodeError(node, off, `missing a value on flag --${name}`, `write --${name}=VALUE`);
    if (kind === 'list') {
      out.lists.set(name, [...(out.lists.get(name) ?? []), value]);
    } else {
      if (out.strings.has(name)) throw nodeError(node, off, `duplicate flag --${name}`, 'give it once');
      out.strings.set(name, value);
    }
  }
  return out;
}

/** Go's time.ParseDuration, in nanoseconds (HEALTHCHECK --interval=1m30s). */
export function parseGoDuration(s: string): number | undefined {
  const UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (s === '0') return 0;
  const m = /^([-+]?)((?:\d*\.?\d+(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) return undefined;
  let total = 0;
  for (const part of m[2]!.matchAll(/(\d*\.?\d+)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(part[1]) * UNITS[part[2]!]!;
  return Math.round(m[1] === '-' ? -total : total);
}

export type MountType = 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';

export interface RunMount {
  type: MountType;
  /** Where it appears in the container. */
  target: string;
  source?: string;
  /** A stage name or an image (bind, cache). */
  from?: string;
  readonly: boolean;
  /** cache and secret id. */
  id?: string;
  sharing?: 'shared' | 'private' | 'locked';
  mode?: number;
  uid?: number;
  gid?: number;
  /** tmpfs size in bytes. */
  size?: number;
  /** secret/ssh: the build fails when the secret is missing. */
  required?: boolean;
  /** secret: also (or only) exposed as this environment variable. */
  env?: string;
}

/** A CSV field list as Go's encoding/csv reads one record (quotes allowed). */
function csvFields(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quoted) {
      if (ch === '"' && s[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur === '') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function parseSize(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

function parseBool(v: string | undefined): boolean | undefined {
  if (v === undefined || v === '' || /^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  return undefined;
}

/** One `--mount=` value (BuildKit commands_runmount.go parseMount); `expand` substitutes args in each field. */
export function parseRunMount(value: string, fail: (what: string, todo: string) => Error, expand: (s: string) => string = (s) => s): RunMount {
  const m: Partial<RunMount> & { type: MountType } = { type: 'bind' };
  let readonly: boolean | undefined;
  for (const field of csvFields(value)) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const raw = eq < 0 ? undefined : field.slice(eq + 1);
    const v = raw === undefined ? undefined : expand(raw);
    const need = (): string => {
      if (v === undefined) throw fail(`mount option ${key} needs a value`, `write ${key}=VALUE`);
      return v;
    };
    const int = (what: string): number => {
      const n = Number(need());
      if (!Number.isSafeInteger(n) || n < 0) throw fail(`mount ${what} ${JSON.stringify(v)} is not a non-negative integer`, `give ${what} as a number`);
      return n;
    };
    switch (key) {
      case 'type': {
        const t = need().toLowerCase();
        if (!['bind', 'cache', 'tmpfs', 'secret', 'ssh'].includes(t)) throw fail(`unsupported mount type ${JSON.stringify(t)}`, 'use bind, cache, tmpfs, secret or ssh');
        m.type = t as MountType;
        break;
      }
      case 'source':
      case 'src':
        m.source = need();
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = need();
        break;
      case 'readonly':
      case 'ro':
      case 'readwrite':
      case 'rw': {
        const b = parseBool(v);
        if (b === undefined) throw fail(`mount option ${key}=${v} is not a boolean`, `write ${key} or ${key}=false`);
        readonly = key.startsWith('r') && (key === 'readonly' || key === 'ro') ? b : !b;
        break;
      }
      case 'required': {
        const b = parseBool(v);
        if (b === undefined) throw fail(`mount option required=${v} is not a boolean`, 'write required or required=false');
        m.required = b;
        break;
      }
      case 'id':
        m.id = need();
        break;
      case 'sharing': {
        const s = need().toLowerCase();
        if (s !== 'shared' && s !== 'private' && s !== 'locked') throw fail(`unsupported sharing value ${JSON.stringify(s)}`, 'use shared, private or locked');
        m.sharing = s;
        break;
      }
      case 'from':
        m.from = need();
        break;
      case 'mode': {
        const s = need();
        if (!/^[0-7]+$/.test(s)) throw fail(`mount mode ${JSON.stringify(s)} is not octal`, 'write mode=0755');
        m.mode = parseInt(s, 8);
        break;
      }
      case 'uid':
        m.uid = int('uid');
        break;
      case 'gid':
        m.gid = int('gid');
        break;
      case 'size': {
        const n = parseSize(need());
        if (n === undefined) throw fail(`mount size ${JSON.stringify(v)} is not a size`, 'write size=64m');
        m.size = n;
        break;
      }
      case 'env':
        m.env = need();
        break;
      default:
        throw fail(`unexpected key ${JSON.stringify(key)} in --mount=${value}`, 'see the RUN --mount options of the Dockerfile reference');
    }
  }
  if (m.type === 'secret' || m.type === 'ssh') {
    if (m.type === 'secret' && m.id === undefined && m.target === undefined && m.env === undefined) {
      throw fail('a secret mount needs an id or a target', 'write --mount=type=secret,id=NAME');
    }
    if (m.type === 'secret' && m.id === undefined) m.id = m.target!.split('/').filter(Boolean).pop();
    if (m.type === 'ssh' && m.id === undefined) m.id = 'default';
    if (m.target === undefined && m.env === undefined) m.target = m.type === 'secret' ? `/run/secrets/${m.id}` : '/run/buildkit/ssh_agent.0';
    readonly = true;
  }
  if (m.target === undefined && m.type !== 'secret') throw fail(`a ${m.type} mount needs a target`, 'add target=/path');
  if (m.type === 'cache') {
    m.sharing ??= 'shared';
    m.id ??= m.target;
  }
  if (m.type !== 'cache' && m.sharing !== undefined) throw fail('sharing applies only to cache mounts', 'remove sharing=');
  if (m.type !== 'tmpfs' && m.size !== undefined) throw fail('size applies only to tmpfs mounts', 'remove size=');
  if (m.from !== undefined && m.type !== 'bind' && m.type !== 'cache') throw fail(`from= cannot be used with a ${m.type} mount`, 'remove from=');
  return { ...m, target: m.target ?? '', readonly: readonly ?? m.type === 'bind' } as RunMount;
}
