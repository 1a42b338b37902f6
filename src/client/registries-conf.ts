/**
 * containers-registries.conf(5), as podman, skopeo and buildah read it: per name prefix, a
 * registry may be insecure, blocked, moved to another location, or have mirrors that pulls try
 * first. Files: $CONTAINERS_REGISTRIES_CONF alone if set; else
 * $XDG_CONFIG_HOME/containers/registries.conf if it exists, else /etc/containers/registries.conf,
 * then the drop-ins in /etc/containers/registries.conf.d/ and
 * $XDG_CONFIG_HOME/containers/registries.conf.d/ (*.conf, in name order; a later [[registry]]
 * with the same prefix replaces an earlier one). Version 2 ([[registry]]) and version 1
 * ([registries.insecure], [registries.block]) files are read; short-name settings
 * (unqualified-search-registries, aliases) are not used: berth expands short names as docker does.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { BerthError } from '../base/errors.js';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorEntry {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryEntry {
  /** `host[/path]` or `*.domain`: the references this entry is about. */
  prefix: string;
  /** Where those references really live (`prefix` when not moved). */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrors: MirrorEntry[];
  /** The file that said so, for messages. */
  file: string;
}

export interface RegistriesConf {
  entries: RegistryEntry[];
  files: string[];
}

/** A place to read an image from: a mirror, or the registry itself (last). */
export interface PullSource {
  host: string;
  repository: string;
  mirror: boolean;
}

export function registriesConfFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.CONTAINERS_REGISTRIES_CONF) return [env.CONTAINERS_REGISTRIES_CONF];
  const userDir = join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'containers');
  const main = [join(userDir, 'registries.conf'), '/etc/containers/registries.conf'].find((f) => existsSync(f));
  const dropIns = ['/etc/containers/registries.conf.d', join(userDir, 'registries.conf.d')].flatMap((dir) => {
    if (!existsSync(dir)) return [];
    try {
      return readdirSync(dir).filter((n) => n.endsWith('.conf')).sort().map((n) => join(dir, n));
    } catch {
      return [];
    }
  });
  return [...(main ? [main] : []), ...dropIns];
}

/** Reads the configuration files; none at all is an empty configuration. */
export function loadRegistriesConf(env: NodeJS.ProcessEnv = process.env): RegistriesConf {
  const files = registriesConfFiles(env);
  const byPrefix = new Map<string, RegistryEntry>();
  const read: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      // A file named by CONTAINERS_REGISTRIES_CONF must exist; found ones may vanish meanwhile.
      if (env.CONTAINERS_REGISTRIES_CONF) throw new BerthError('USAGE', `cannot read ${file} (CONTAINERS_REGISTRIES_CONF): ${(err as Error).message}`);
      continue;
    }
    read.push(file);
    for (const entry of parseRegistriesConf(text, file)) byPrefix.set(entry.prefix, entry);
  }
  return { entries: [...byPrefix.values()], files: read };
}

const PULL_FROM_MIRROR = new Set(['all', 'digest-only', 'tag-only']);

/** The registry entries of one file (version 2, or version 1's insecure and blocked lists). */
export function parseRegistriesConf(text: string, file: string): RegistryEntry[] {
  // Most files hold only short-name aliases (unused here): without a [[registry]] or
  // [registries.*] table or a registry/registries key outside the [aliases] tables (Debian's
  // shortnames.conf has an alias named "registry") there is nothing to parse for.
  const outsideAliases = text.replace(/^\s*\[\s*"?aliases"?\s*\][^]*?(?=^\s*\[|(?![^]))/gm, '');
  if (!/^\s*(\[\[?\s*"?registr|"?registr(y|ies)"?\s*=)/m.test(outsideAliases)) return [];
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new BerthError('USAGE', `${file} is not valid TOML: ${(err as Error).message.split('\n')[0]}`);
  }
  const bad = (what: string) => new BerthError('USAGE', `${file}: ${what} (see containers-registries.conf(5))`);
  const v1 = doc.registries;
  const v2 = doc.registry;
  if (v1 !== undefined && v2 !== undefined) throw bad('mixes the version 1 [registries.*] tables with version 2 [[registry]] entries');
  const entries: RegistryEntry[] = [];
  if (v1 !== undefined) {
    const tables = v1 as Record<string, { registries?: unknown } | undefined>;
    const list = (key: string): string[] => {
      const v = tables[key]?.registries ?? [];
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw bad(`registries.${key}.registries must be a list of strings`);
      return v as string[];
    };
    const blocked = new Set(list('block'));
    const insecure = new Set(list('insecure'));
    for (const prefix of new Set([...insecure, ...blocked])) {
      entries.push({ prefix: checkPrefix(prefix, bad), location: prefix, insecure: insecure.has(prefix), blocked: blocked.has(prefix), mirrors: [], file });
    }
    return entries;
  }
  if (v2 === undefined) return entries;
  if (!Array.isArray(v2)) throw bad('registry must be an array of tables ([[registry]])');
  v2.forEach((raw: unknown, i) => {
    const r = raw as Record<string, unknown>;
    const where = `[[registry]] #${i + 1}`;
    const str = (v: unknown, key: string): string | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'string') throw bad(`${where}: ${key} must be a string`);
      return v;
    };
    const bool = (v: unknown, key: string): boolean => {
      if (v === undefined) return false;
      if (typeof v !== 'boolean') throw bad(`${where}: ${key} must be true or false`);
      return v;
    };
    const location = str(r.location, 'location') ?? '';
    const prefix = str(r.prefix, 'prefix') || location;
    if (!prefix) throw bad(`${where} has neither prefix nor location`);
    checkPrefix(prefix, bad);
    if (prefix.startsWith('*.') && location) throw bad(`${where}: a wildcard prefix (${prefix}) cannot have a location`);
    const byDigestOnly = bool(r['mirror-by-digest-only'], 'mirror-by-digest-only');
    const mirrorsRaw = r.mirror ?? [];
    if (!Array.isArray(mirrorsRaw)) throw bad(`${where}: mirror must be an array of tables ([[registry.mirror]])`);
    const mirrors = mirrorsRaw.map((m: Record<string, unknown>, j): MirrorEntry => {
      const mloc = str(m.location, `mirror #${j + 1} location`);
      if (!mloc) throw bad(`${where}: mirror #${j + 1} has no location`);
      const pull = str(m['pull-from-mirror'], `mirror #${j + 1} pull-from-mirror`) ?? 'all';
      if (!PULL_FROM_MIRROR.has(pull)) throw bad(`${where}: mirror #${j + 1} pull-from-mirror must be all, digest-only or tag-only, not ${JSON.stringify(pull)}`);
      if (byDigestOnly && pull !== 'all') throw bad(`${where}: pull-from-mirror cannot be used with mirror-by-digest-only`);
      return { location: mloc.replace(/\/+$/, ''), insecure: bool(m.insecure, `mirror #${j + 1} insecure`), pullFromMirror: byDigestOnly ? 'digest-only' : (pull as PullFromMirror) };
    });
    entries.push({ prefix, location: (location || prefix).replace(/\/+$/, ''), insecure: bool(r.insecure, 'insecure'), blocked: bool(r.blocked, 'blocked'), mirrors, file });
  });
  return entries;
}

function checkPrefix(prefix: string, bad: (what: string) => BerthError): string {
  if (/\s|:\/\/|[@]/.test(prefix) || prefix.endsWith('/')) throw bad(`invalid prefix ${JSON.stringify(prefix)}: use host[:port][/path] or *.domain`);
  return prefix;
}

/** The entry whose prefix matches `name` (host/repository) the most specifically. */
export function findEntry(conf: RegistriesConf, name: string): RegistryEntry | undefined {
  let best: RegistryEntry | undefined;
  let bestLength = -Infinity;
  const host = name.split('/')[0]!;
  for (const e of conf.entries) {
    const matches = e.prefix.startsWith('*.') ? host.endsWith(e.prefix.slice(1)) : name === e.prefix || name.startsWith(`${e.prefix}/`);
    // A wildcard is less specific than any name prefix.
    const length = e.prefix.startsWith('*.') ? e.prefix.length - 1 - 1000 : e.prefix.length;
    if (matches && length > bestLength) {
      best = e;
      bestLength = length;
    }
  }
  return best;
}

function split(name: string): { host: string; repository: string } {
  const slash = name.indexOf('/');
  return { host: name.slice(0, slash), repository: name.slice(slash + 1) };
}

function blockedError(e: RegistryEntry, name: string): BerthError {
  return new BerthError('DENIED', `${name} is blocked: ${e.file} marks registry ${e.prefix} blocked`);
}

/** The entry for `name` with a prefix (not a wildcard) to rewrite by; DENIED when it is blocked. */
function usableEntry(conf: RegistriesConf, name: string): RegistryEntry | undefined {
  const e = findEntry(conf, name);
  if (e?.blocked) throw blockedError(e, name);
  return e && !e.prefix.startsWith('*.') ? e : undefined;
}

/** Where `host/repository` really is (a moved location applied); DENIED when blocked. */
export function locate(conf: RegistriesConf, host: string, repository: string): { host: string; repository: string } {
  const name = `${host}/${repository}`;
  const e = usableEntry(conf, name);
  return e ? split(e.location + name.slice(e.prefix.length)) : { host, repository };
}

/** Where to read `host/repository` from, in order: the mirrors that serve this kind of reference, then the registry. */
export function pullSources(conf: RegistriesConf, host: string, repository: string, byDigest: boolean): PullSource[] {
  const name = `${host}/${repository}`;
  const e = usableEntry(conf, name);
  if (!e) return [{ host, repository, mirror: false }];
  const rest = name.slice(e.prefix.length);
  const primary = { ...split(e.location + rest), mirror: false };
  const mirrors = e.mirrors
    .filter((m) => m.pullFromMirror === 'all' || (m.pullFromMirror === 'digest-only') === byDigest)
    .map((m) => ({ ...split(m.location + rest), mirror: true }));
  return [...mirrors, primary];
}

/** Whether the configuration marks this registry host insecure (as a location, a mirror, or under a wildcard). */
export function isInsecureHost(conf: RegistriesConf, host: string): boolean {
  for (const e of conf.entries) {
    if (e.insecure && (e.prefix.startsWith('*.') ? host.endsWith(e.prefix.slice(1)) : e.location.split('/')[0] === host)) return true;
    if (e.mirrors.some((m) => m.insecure && m.location.split('/')[0] === host)) return true;
  }
  return false;
}
