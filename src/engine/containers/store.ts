/**
 * Container records, shared by every `berth` process and the native monitors, as files under
 * BERTH_ROOT/containers (no daemon, no database lock):
 *
 *   <id>/container.json   what was asked (image, config, options): written once, atomically
 *                         (again by rename, for the name)
 *   <id>/creating         "PID STARTTIME" of the berth process creating it; gone once complete
 *   <id>/state.json       pid, start time, status as the last berth command saw it (atomic)
 *   <id>/exit             "CODE FINISHED-AT-NS", written by the monitor (or a foreground run)
 *   names/<name>          a symlink to <id>: symlink(2) fails with EEXIST, so names are unique
 *   .removing-<id>        a container being removed: rename(2) makes exactly one remover win
 *
 * Why files and not SQLite: the native monitor records an exit with one rename, without a
 * database library; 50 concurrent creates touch 50 different directories, not one writer
 * lock; and every step is one atomic call (mkdir, symlink, rename), so a `kill -9` between
 * two steps leaves either a complete container or leftovers that sweep() recognises: a
 * `creating` file whose process is gone, a name pointing nowhere, a `.removing-` directory.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { isAlive, procStat, writeAtomic } from '../../runtime/state.js';

export interface ContainerConfig {
  image: string;
  /** The manifest digest the container was made from. */
  imageDigest: string;
  /** Process args as resolved (entrypoint + command). */
  args: string[];
  /** Docker's Path and Args split of `args`, and what was asked. */
  entrypoint?: string[];
  cmd?: string[];
  env: string[];
  user: string;
  workdir: string;
  hostname: string;
  labels: Record<string, string>;
  stopSignal: string;
  /** --stop-timeout (seconds), when given. */
  stopTimeout?: number;
  tty: boolean;
  interactive: boolean;
  /** docker's StdinOnce: the end of an attached client's input closes the container's stdin. */
  stdinOnce?: boolean;
  autoRemove: boolean;
  /** 'berth' (berth-init in process) or a runc-compatible command. */
  runtime: string;
  network: string;
  /** Bridge networking (--network bridge or NAME): what the attach at each start is given. */
  publish?: { hostIp: string; hostPort: number; containerPort: number; proto: 'tcp' | 'udp'; hostRange?: [number, number] }[];
  networkAliases?: string[];
  ip?: string;
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  addHosts?: string[];
  readOnly: boolean;
  mounts: { type: string; source: string; destination: string; options: string[] }[];
  /** The anonymous volumes made for it (anon-volumes.ts): gone with `rm -v` and `--rm`. */
  anonymousVolumes?: string[];
  /** Where the snapshot's layers are when the rootfs is an overlay mount (rootfs.ts). */
  logMaxSize: number;
}

export interface ContainerRecord {
  id: string;
  name: string;
  created: string;
  config: ContainerConfig;
}

export type ContainerStatus = 'created' | 'running' | 'exited' | 'removing';

export interface ContainerState {
  status: ContainerStatus;
  /** The container's process (host pid) while it runs, and its /proc start time. */
  pid: number;
  pidStart: number;
  /** The monitor's pid (detached) or the foreground berth's. */
  monitorPid: number;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
}

export interface Container extends ContainerRecord {
  dir: string;
  state: ContainerState;
}

const ID_BYTES = 32;
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The adjectives-and-surnames of docker's generator are not needed: a short random name. */
function randomName(): string {
  return `berth_${randomBytes(4).toString('hex')}`;
}

/** A name as given (docker's leading "/" allowed), checked; the bare name. */
function validName(name: string): string {
  const bare = name.replace(/^\//, '');
  if (!NAME_RE.test(bare) || bare === 'names') throw new BerthError('USAGE', `invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return bare;
}

export class ContainerStore {
  readonly dir: string;
  readonly namesDir: string;

  constructor(berthRoot: string) {
    this.dir = join(berthRoot, 'containers');
    this.namesDir = join(berthRoot, 'containers', 'names');
  }

  containerDir(id: string): string {
    // (Not join(): ps calls this for every container, and ids are checked hex.)
    return /^[0-9a-f]{64}$/.test(id) ? `${this.dir}/${id}` : join(this.dir, id);
  }

  private ensureDirs(): void {
    mkdirSync(this.namesDir, { recursive: true, mode: 0o711 });
  }

  /**
   * Reserves a new id and name (step 1 of create): the directory with a `creating` marker,
   * then the name link. Call complete() when the record is written.
   */
  reserve(name: string | undefined): { id: string; name: string; dir: string } {
    this.ensureDirs();
    if (name !== undefined) name = validName(name);
    const id = randomBytes(ID_BYTES).toString('hex');
    const dir = this.containerDir(id);
    // The directory appears with its marker already inside (made aside, then renamed): a
    // sweep never sees a container directory it cannot tell from an abandoned one.
    // Its name says whose it is too, for the moment before the marker is written.
    const me = `${process.pid} ${procStat(process.pid)?.startTime ?? 0}`;
    const fresh = join(this.dir, `.new-${id}.${me.replace(' ', '.')}`);
    mkdirSync(fresh, { mode: 0o711 });
    writeAtomic(join(fresh, 'creating'), `${me}\n`, 0o600, false);
    renameSync(fresh, dir);
    let chosen = name ?? randomName();
    for (let attempt = 0; ; attempt++) {
      try {
        if (this.linkName(id, chosen)) break;
      } catch (err) {
        this.discard(id);
        throw err;
      }
      if (name === undefined && attempt < 5) { chosen = randomName(); continue; }
      const err = this.nameTaken(chosen);
      this.discard(id);
      throw err;
    }
    return { id, name: chosen, dir };
  }

  /**
   * docker rename: the new name's link, then the record, then the old link goes. Killed between,
   * the container keeps both names until it is removed (the sweep then drops the one left).
   */
  rename(c: Container, to: string): string {
    const bare = validName(to);
    if (bare === c.name) throw new BerthError('USAGE', `container ${c.name} is already named ${bare}: give another name`);
    if (!this.linkName(c.id, bare)) throw this.nameTaken(bare);
    const file = join(c.dir, 'container.json');
    const rec = JSON.parse(readFileSync(file, 'utf8')) as ContainerRecord;
    writeAtomic(file, JSON.stringify({ ...rec, name: bare }));
    this.unlinkName(c.name, c.id);
    return bare;
  }

  /** Links names/NAME to id: false when another container holds it (a link to none is reclaimed). */
  private linkName(id: string, name: string): boolean {
    for (;;) {
      try {
        symlinkSync(id, join(this.namesDir, name));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (!this.reclaimName(name)) return false;
      }
    }
  }

  private nameTaken(name: string): BerthError {
    return new BerthError('CONTAINER_EXISTS', `the container name "/${name}" is already in use by container "${this.nameTarget(name)}": remove (or rename) that container to reuse the name`);
  }

  /** Step 2 of create: the record is written and the marker goes. */
  complete(rec: ContainerRecord, state: ContainerState): void {
    const dir = this.containerDir(rec.id);
    writeAtomic(join(dir, 'container.json'), JSON.stringify(rec));
    this.writeState(rec.id, state);
    unlinkSync(join(dir, 'creating'));
  }

  writeState(id: string, state: ContainerState): void {
    writeAtomic(join(this.containerDir(id), 'state.json'), JSON.stringify(state), 0o600, false);
  }

  /** Undoes a reservation (a create that failed). */
  discard(id: string): void {
    this.removeDir(id);
  }

  private nameTarget(name: string): string | undefined {
    try {
      // (Names are one path component: a directory entry or a checked name. `ps` sweeps them all.)
      return readlinkSync(`${this.namesDir}/${name}`);
    } catch {
      return undefined;
    }
  }

  /** A name whose container is gone or abandoned is free again. */
  private reclaimName(name: string): boolean {
    const id = this.nameTarget(name);
    if (id === undefined) return true; // removed meanwhile: try again
    const dir = this.containerDir(id);
    if (existsSync(dir) && !this.abandoned(id)) return false;
    this.unlinkName(name, id);
    return true;
  }

  /** Removes names/<name> if it still points to id. */
  private unlinkName(name: string, id: string): void {
    if (this.nameTarget(name) !== id) return;
    // Renamed first, so that a link another process made meanwhile under the name is not lost.
    const tmp = join(this.namesDir, `.${name}.${randomBytes(6).toString('hex')}`);
    try {
      renameSync(join(this.namesDir, name), tmp);
    } catch {
      return;
    }
    let target: string | undefined;
    try { target = readlinkSync(tmp); } catch { /* gone */ }
    if (target === id) { try { unlinkSync(tmp); } catch { /* gone */ } return; }
    // Someone else's link: put it back unless the name was taken again meanwhile.
    try { symlinkSync(target!, join(this.namesDir, name)); } catch { /* taken */ }
    try { unlinkSync(tmp); } catch { /* gone */ }
  }

  /** A container left half-created by a process that is gone. */
  private abandoned(id: string): boolean {
    let text: string;
    try {
      text = readFileSync(join(this.containerDir(id), 'creating'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
      // A complete record without its marker: in use. Neither: not a container of ours.
      return false;
    }
    const [pid, start] = text.trim().split(' ').map(Number);
    return !isAlive(pid!, start!);
  }

  /** Renames the directory away (one remover wins), then deletes it. */
  private removeDir(id: string): boolean {
    const dir = this.containerDir(id);
    const away = join(this.dir, `.removing-${id}`);
    try {
      renameSync(dir, away);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    rmSync(away, { recursive: true, force: true });
    return true;
  }

  /** Removes the record and the name (the caller has stopped and cleaned the container). */
  remove(c: ContainerRecord): boolean {
    const removed = this.removeDir(c.id);
    this.unlinkName(c.name, c.id);
    return removed;
  }

  ids(): string[] {
    try {
      return readdirSync(this.dir).filter((n) => /^[0-9a-f]{64}$/.test(n));
    } catch {
      return [];
    }
  }

  /** The container, or undefined when it does not exist or is not complete. */
  load(id: string): Container | undefined {
    const dir = this.containerDir(id);
    let rec: ContainerRecord;
    try {
      rec = JSON.parse(readFileSync(`${dir}/container.json`, 'utf8')) as ContainerRecord;
    } catch {
      return undefined;
    }
    let state: ContainerState;
    try {
      state = JSON.parse(readFileSync(`${dir}/state.json`, 'utf8')) as ContainerState;
    } catch {
      state = { status: 'created', pid: 0, pidStart: 0, monitorPid: 0 };
    }
    return { ...rec, dir, state: this.current(id, state) };
  }

  /** The state with what the monitor recorded and whether the process still lives. */
  private current(id: string, state: ContainerState): ContainerState {
    if (state.status !== 'running') return state;
    const exit = readExitFile(`${this.containerDir(id)}/exit`);
    if (exit) return { ...state, status: 'exited', exitCode: exit.code, finishedAt: exit.finishedAt };
    if (state.pid && isAlive(state.pid, state.pidStart)) return state;
    // Gone without a word (a foreground berth killed): docker reports such exits as 255... after
    // a short grace for the monitor still writing its file.
    if (state.monitorPid && isAlive(state.monitorPid, procStat(state.monitorPid)?.startTime ?? -1)) return state;
    const again = readExitFile(join(this.containerDir(id), 'exit'));
    if (again) return { ...state, status: 'exited', exitCode: again.code, finishedAt: again.finishedAt };
    return { ...state, status: 'exited', exitCode: state.exitCode ?? 255, finishedAt: state.finishedAt ?? new Date().toISOString() };
  }

  list(): Container[] {
    const out: Container[] = [];
    for (const id of this.ids()) {
      const c = this.load(id);
      if (c) out.push(c);
    }
    return out.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
  }

  /** By full id, name, or unique id prefix (as docker). */
  find(ref: string): Container {
    const bare = ref.replace(/^\//, '');
    if (NAME_RE.test(bare)) {
      const target = this.nameTarget(bare);
      if (target) {
        const c = this.load(target);
        if (c) return c;
      }
    }
    if (/^[0-9a-f]{1,64}$/.test(ref)) {
      const matches = this.ids().filter((id) => id.startsWith(ref));
      if (matches.length > 1) throw new BerthError('USAGE', `container id prefix ${ref} is ambiguous: ${matches.length} containers match; give more digits`);
      if (matches.length === 1) {
        const c = this.load(matches[0]!);
        if (c) return c;
      }
    }
    throw new BerthError('CONTAINER_NOT_FOUND', `no such container: ${ref}`);
  }

  /**
   * Finishes what interrupted commands left: removals half done, creates whose process is
   * gone, names that point nowhere. Cheap enough to run at the start of every command.
   */
  sweep(onAbandoned?: (id: string, dir: string) => void): void {
    let entries: string[];
    try {
      entries = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of entries) {
      if (n.startsWith('.new-')) {
        // A reservation killed before its rename: the marker says whose it was, or before the
        // marker was written, the name (.new-ID.PID.STARTTIME; a name without them waits a minute).
        let text = /^\.new-[0-9a-f]{64}\.(\d+)\.(\d+)$/.exec(n)?.slice(1).join(' ') ?? '';
        try { text = readFileSync(join(this.dir, n, 'creating'), 'utf8'); } catch { /* not written yet */ }
        const [pid, start] = text.trim().split(' ').map(Number);
        if (text ? !isAlive(pid!, start!) : !this.recentlyTouched(join(this.dir, n), 60_000)) rmSync(join(this.dir, n), { recursive: true, force: true });
      } else if (n.startsWith('.removing-')) {
        const id = n.slice('.removing-'.length);
        // A monitor may still be deleting it: leave a fresh one alone.
        if (!this.recentlyTouched(join(this.dir, n))) {
          onAbandoned?.(id, join(this.dir, n));
          rmSync(join(this.dir, n), { recursive: true, force: true });
        }
      } else if (/^[0-9a-f]{64}$/.test(n) && !existsSync(`${this.dir}/${n}/container.json`) && this.abandoned(n)) {
        onAbandoned?.(n, this.containerDir(n));
        this.removeDir(n);
      }
    }
    const listed = new Set(entries);
    let names: string[] = [];
    try { names = readdirSync(this.namesDir); } catch { /* none */ }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const id = this.nameTarget(name);
      // (Listed above: no need to look again; one made since is checked on disk.)
      if (id !== undefined && !listed.has(id) && !existsSync(this.containerDir(id))) this.unlinkName(name, id);
    }
  }

  private recentlyTouched(path: string, ms = 2000): boolean {
    try {
      return Date.now() - statSync(path).mtimeMs < ms;
    } catch {
      return true;
    }
  }
}

export function readExitFile(path: string): { code: number; finishedAt: string } | undefined {
  let text: string;
  // Usually absent (a running container): existsSync costs no exception (ps asks for each).
  if (!existsSync(path)) return undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const [code, ns] = text.trim().split(' ');
  if (code === undefined || ns === undefined) return undefined;
  return { code: Number(code), finishedAt: new Date(Number(BigInt(ns) / 1000000n)).toISOString() };
}

/** Writes the exit file as the monitor does (for a foreground run). */
export function writeExitFile(dir: string, code: number): void {
  writeAtomic(join(dir, 'exit'), `${code} ${BigInt(Date.now()) * 1000000n}\n`, 0o644, false);
}
