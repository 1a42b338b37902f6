/**
 * Container state on disk, under --root (default /run/berth-runtime), one directory per id:
 *   state.json     everything later verbs need (this module's ContainerRecord)
 *   state.txt      the same, as "key value" lines, for the native front end (start/state/kill/delete)
 *   bundle         the bundle path, written first: `state` reports "creating" until state.txt exists
 *   exec.fifo      exists while the container is created and not yet started
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import type { ContainerStatus, Hook, State } from './spec/types.js';
import { OCI_VERSION } from './spec/version.js';

export const DEFAULT_ROOT = '/run/berth-runtime';

export interface ContainerRecord {
  id: string;
  bundle: string;
  rootfs: string;
  pid: number;
  /** Field 22 of /proc/PID/stat at create: tells a reused pid from ours. */
  startTime: number;
  created: string;
  annotations: Record<string, string>;
  cgroupPaths: Record<string, string>;
  /** linux.cgroupsPath as configured (the cgroup manager derives the same paths from it). */
  cgroupsPath?: string;
  /** Namespace type → '' (new) or the path joined. */
  namespaces: Record<string, string>;
  poststart: Hook[];
  poststop: Hook[];
}

const ID_RE = /^[A-Za-z0-9_+.-]{1,1024}$/;

export function validateId(id: string): void {
  if (!ID_RE.test(id) || id === '.' || id === '..') {
    throw new BerthError('USAGE', `invalid container id ${JSON.stringify(id)}: use letters, digits, "_", "+", "-" and "."`);
  }
}

export const containerDir = (root: string, id: string): string => join(root, id);

/** Compiled seccomp filters (runtime/seccomp/cache.ts): ids cannot hold "@", so no container is named so. */
export const seccompCacheDir = (root: string): string => join(root, '@seccomp-cache');

/**
 * Temp file, (fsync,) rename: readers never see a partial file. `durable: false` skips the
 * fsync for what cannot outlive the processes it describes (the state under --root, which
 * belongs on a tmpfs such as /run, and pid files): after a crash those processes are gone
 * anyway, and each fsync cost 0.5-15 ms of create on an ext4 /run. (runc does not fsync
 * its state either.)
 */
export function writeAtomic(path: string, data: string | Buffer, mode = 0o600, durable = true): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    if (typeof data === 'string') writeSync(fd, data); else writeSync(fd, data);
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Reserves the id: fails with CONTAINER_EXISTS when it is in use. */
export function reserveId(root: string, id: string): string {
  validateId(id);
  mkdirSync(root, { recursive: true, mode: 0o711 });
  const dir = containerDir(root, id);
  try {
    mkdirSync(dir, { mode: 0o711 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new BerthError('CONTAINER_EXISTS', `container ${id} already exists (in ${root}); delete it first or choose another id`);
    }
    throw err;
  }
  return dir;
}

export function ociState(rec: ContainerRecord, status: ContainerStatus): State {
  const s: State = { ociVersion: OCI_VERSION, id: rec.id, status, bundle: rec.bundle };
  if (status === 'created' || status === 'running' || status === 'creating') s.pid = rec.pid;
  if (Object.keys(rec.annotations).length) s.annotations = rec.annotations;
  return s;
}

function oneLine(value: string, what: string): string {
  if (/[\n\0]/.test(value)) throw new BerthError('RUNTIME_CONFIG_INVALID', `${what} contains a newline or NUL, which berth-runtime cannot record`);
  return value;
}

/** The "key value" form the native front end reads (native/berth-runtime.c). */
export function stateText(rec: ContainerRecord): string {
  const lines = [`pid ${rec.pid}`, `starttime ${rec.startTime}`];
  for (const dir of new Set(Object.values(rec.cgroupPaths))) lines.push(`cgroup ${oneLine(dir, 'cgroup path')}`);
  // The state document printed by `state`, split around the status and pid it computes.
  const pre = JSON.stringify({ ociVersion: OCI_VERSION, id: rec.id });
  const post = JSON.stringify({ bundle: rec.bundle, ...(Object.keys(rec.annotations).length ? { annotations: rec.annotations } : {}) });
  lines.push(`pre ${pre.slice(0, -1)}`, `post ,${post.slice(1)}`);
  for (const [kind, hooks] of [['poststart', rec.poststart], ['poststop', rec.poststop]] as const) {
    for (const h of hooks) {
      lines.push(`hook ${kind} ${h.timeout ?? 0} ${oneLine(h.path, 'hook path')}`);
      for (const a of h.args ?? [h.path]) lines.push(`arg ${oneLine(a, 'hook argument')}`);
      for (const e of h.env ?? []) lines.push(`env ${oneLine(e, 'hook env')}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** (Hooks get the state document on stdin: nothing reads a copy on disk, so none is written.) */
export function writeRecord(root: string, rec: ContainerRecord): void {
  const dir = containerDir(root, rec.id);
  writeAtomic(join(dir, 'state.json'), JSON.stringify(rec), 0o600, false);
  writeAtomic(join(dir, 'state.txt'), stateText(rec), 0o600, false);
}

export function readRecord(root: string, id: string): ContainerRecord {
  validateId(id);
  try {
    return JSON.parse(readFileSync(join(containerDir(root, id), 'state.json'), 'utf8')) as ContainerRecord;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BerthError('CONTAINER_NOT_FOUND', `container ${id} does not exist (in ${root})`);
    }
    throw new BerthError('RUNTIME_ERROR', `state of container ${id} is unreadable: ${(err as Error).message}`, { cause: err });
  }
}

export function listIds(root: string): string[] {
  try {
    return readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory() && ID_RE.test(d.name)).map((d) => d.name).sort();
  } catch {
    return [];
  }
}

export function removeContainerDir(root: string, id: string): void {
  rmSync(containerDir(root, id), { recursive: true, force: true });
}

/** pid's state letter and start time from /proc/PID/stat, or undefined when it is gone. */
export function procStat(pid: number): { state: string; startTime: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0]!, startTime: Number(rest[19]) };
}

/** A zombie (PID 1 here reaps orphans only every few seconds) counts as stopped. */
export function isAlive(pid: number, startTime: number): boolean {
  const st = procStat(pid);
  return !!st && st.startTime === startTime && st.state !== 'Z' && st.state !== 'X';
}

export function statusOf(root: string, rec: ContainerRecord): ContainerStatus {
  if (!isAlive(rec.pid, rec.startTime)) return 'stopped';
  return existsSync(join(containerDir(root, rec.id), 'exec.fifo')) ? 'created' : 'running';
}
