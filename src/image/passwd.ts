/**
 * Reading /etc/passwd and /etc/group from a container's root filesystem (conversion.md
 * "Config.User"), with symlinks resolved inside that root so that a hostile image cannot make
 * berth read host files.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { posix, join } from 'node:path';
import { BerthError } from '../base/errors.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const MAX_ID = 0xffffffff;
const MAX_FILE = 8 * 1024 * 1024;

function parseId(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

/** passwd(5) lines name:password:uid:gid:gecos:home:shell; malformed lines are skipped, as libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (f.length < 4 || !f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '', shell: f[6] ?? '' });
  }
  return out;
}

/** group(5) lines name:password:gid:member,member */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const gid = parseId(f[2]);
    if (f.length < 3 || !f[0] || gid === undefined) continue;
    const members = (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean);
    out.push({ name: f[0], gid, members });
  }
  return out;
}

/**
 * The host path of `path` inside `root`, following symlinks as if `root` were `/`
 * (absolute targets and `..` never leave the root). undefined when it does not exist.
 * Synchronous: a few lstat calls, cheaper than a trip through the thread pool each.
 */
export function resolveInRootSync(root: string, path: string): string | undefined {
  const pending = posix.normalize('/' + path).split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, part);
    let st;
    try {
      st = lstatSync(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw err;
    }
    if (st.isSymbolicLink()) {
      if (++links > 40) throw new BerthError('UNSAFE_PATH', `too many symbolic links resolving ${path} in ${root}`);
      const target = readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    done.push(part);
  }
  return join(root, ...done);
}

/** resolveInRootSync for callers that await. */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  return resolveInRootSync(root, path);
}

/** Reads a small text file of the container (e.g. /etc/passwd); undefined when absent. */
export async function readRootFile(root: string, path: string): Promise<string | undefined> {
  const host = await resolveInRoot(root, path);
  if (host === undefined) return undefined;
  const st = await lstat(host);
  if (!st.isFile()) return undefined;
  if (st.size > MAX_FILE) throw new BerthError('TOO_LARGE', `${path} in ${root} is ${st.size} bytes: too large to be an account database`);
  return readFile(host, 'utf8');
}

/** A root's small text files, read by another way than a path (engine/image-root.ts answers from a cache). */
export interface RootFiles {
  readFile(path: string): Promise<string | undefined>;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Present only when the spec asks for it: a user given by name with no group. */
  additionalGids?: number[];
  /** The passwd home directory, when the user was found there (for HOME). */
  home?: string;
}

/**
 * Resolves an image config `User` ("", user, uid, user:group, uid:gid, …) against the rootfs
 * (conversion.md "Config.User"): numbers are copied verbatim; names are looked up in the
 * container's /etc/passwd and /etc/group and MUST exist.
 */
export async function resolveUser(rootfs: string | RootFiles, spec: string | undefined): Promise<ResolvedUser> {
  const read = typeof rootfs === 'string' ? (path: string) => readRootFile(rootfs, path) : (path: string) => rootfs.readFile(path);
  const value = (spec ?? '').trim();
  const colon = value.indexOf(':');
  const userPart = colon < 0 ? value : value.slice(0, colon);
  const groupPart = colon < 0 ? undefined : value.slice(colon + 1);
  if (colon >= 0 && (userPart === '' || groupPart === '')) {
    throw new BerthError('CONFIG_INVALID', `image config User ${JSON.stringify(spec)} is malformed: use user, uid, user:group or uid:gid`);
  }
  const user = userPart === '' ? '0' : userPart;

  let passwd: PasswdEntry[] | undefined;
  const loadPasswd = async (): Promise<PasswdEntry[]> => {
    passwd ??= parsePasswd((await read('/etc/passwd')) ?? '');
    return passwd;
  };
  let groups: GroupEntry[] | undefined;
  const loadGroups = async (): Promise<GroupEntry[]> => {
    groups ??= parseGroup((await read('/etc/group')) ?? '');
    return groups;
  };

  let uid = parseId(user);
  let entry: PasswdEntry | undefined;
  if (uid === undefined) {
    entry = (await loadPasswd()).find((e) => e.name === user);
    if (!entry) {
      throw new BerthError(
        'CONFIG_INVALID',
        `image config User ${JSON.stringify(spec)}: no user ${JSON.stringify(user)} in the image's /etc/passwd; use a numeric uid or add the user to the image`,
      );
    }
    uid = entry.uid;
  } else {
    entry = (await loadPasswd()).find((e) => e.uid === uid);
  }

  let gid: number;
  if (groupPart === undefined) {
    gid = entry?.gid ?? 0;
  } else {
    const numeric = parseId(groupPart);
    if (numeric !== undefined) gid = numeric;
    else {
      const g = (await loadGroups()).find((e) => e.name === groupPart);
      if (!g) {
        throw new BerthError(
          'CONFIG_INVALID',
          `image config User ${JSON.stringify(spec)}: no group ${JSON.stringify(groupPart)} in the image's /etc/group; use a numeric gid or add the group to the image`,
        );
      }
      gid = g.gid;
    }
  }

  const out: ResolvedUser = { uid, gid };
  if (entry?.home) out.home = entry.home;
  // conversion.md: additionalGids only for a user named without a group.
  if (parseId(user) === undefined && groupPart === undefined) {
    const extra = (await loadGroups()).filter((g) => g.members.includes(user) && g.gid !== gid).map((g) => g.gid);
    out.additionalGids = [...new Set(extra)];
  }
  return out;
}
