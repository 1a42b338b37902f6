/**
 * The container's cgroups on cgroup v1, v2 and hybrid hosts, chosen per controller
 * (host.ts), with linux.resources mapped to files by plan.ts.
 *
 * cgroupsPath (config-linux.md "Cgroups Path"):
 * - absolute: relative to the mount point of every hierarchy;
 * - relative: relative to the runtime's own cgroup in each hierarchy (as runc does);
 * - absent: /berth/<containerId>.
 * `paths` maps each v1 controller to its directory, and 'unified' to the cgroup2 one.
 */
// fs.promises is a lazy getter: create, which needs none of the async calls here, does not
// pay for loading node:fs/promises at start-up.
import { accessSync, constants as fsConstants, existsSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { hostCgroupLayout, versionOf, v2Name, type CgroupLayout, type CgroupVersion } from './host.js';
import { compileDeviceFilter } from './devices.js';
import { planResourceWrites, type CgroupWrite, type PlanOptions } from './plan.js';
import type { LinuxResources } from '../spec/types.js';

export type { CgroupLayout } from './host.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let writeObserver: ((path: string, value: string) => void) | undefined;

/** Sees every settings write that succeeds (a run plan repeats them: engine/containers/run-plan.ts). */
export function observeCgroupWrites(fn: ((path: string, value: string) => void) | undefined): void {
  writeObserver = fn;
}

export interface CgroupManager {
  /** Controller name (or 'unified' for the cgroup2 hierarchy) → absolute cgroup directory. */
  readonly paths: Record<string, string>;
  /** The mount point of the hierarchy behind each key of `paths`. */
  readonly mountPoints: Record<string, string>;
  create(): Promise<void>;
  /**
   * Writes the resources. On a host whose devices controller is cgroup v2, pass
   * `devicesByBpf` when the executor attaches `deviceFilter()`'s program itself.
   */
  apply(resources: LinuxResources | undefined, opts?: PlanOptions): Promise<void>;
  /**
   * The BPF_PROG_TYPE_CGROUP_DEVICE program for resources.devices when this host controls
   * devices through cgroup v2 (no v1 devices hierarchy), else undefined. The executor
   * loads it and attaches it to `paths.unified` (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI).
   */
  deviceFilter(resources: LinuxResources | undefined): Buffer | undefined;
  addProcess(pid: number): Promise<void>;
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  pids(): Promise<number[]>;
  killAll(signal: NodeJS.Signals | number): Promise<void>;
  destroy(): Promise<void>;
}

/** The key of the cgroup2 directory in `paths`. */
export const UNIFIED = 'unified';

const FREEZE_TIMEOUT_MS = 5000;
const DESTROY_RETRY_MS = 2000;

export function defaultCgroupsPath(containerId: string): string {
  return `/berth/${containerId}`;
}

/** Checks a cgroupsPath value: absolute or relative, no "." / ".." components, no NUL. */
export function validateCgroupsPath(cgroupsPath: string): void {
  const bad = (why: string): BerthError =>
    new BerthError('RUNTIME_CONFIG_INVALID', `linux.cgroupsPath ${JSON.stringify(cgroupsPath)}: ${why}`);
  if (cgroupsPath === '' || cgroupsPath === '/') throw bad('must name a cgroup below the root');
  if (cgroupsPath.includes('\0')) throw bad('contains a NUL byte');
  // runc's systemd form "slice:prefix:name" is not supported: berth drives cgroupfs.
  if (!cgroupsPath.startsWith('/') && /^[^/]*:[^/]*:[^/]*$/.test(cgroupsPath)) {
    throw bad('looks like a systemd "slice:prefix:name" path; berth-runtime manages cgroupfs directly, give a path like /machine/mycontainer');
  }
  for (const part of cgroupsPath.split('/')) {
    if (part === '.' || part === '..') throw bad('must not contain "." or ".." components');
  }
}

export interface ManagerOptions {
  /**
   * runc's --rootless: without a linux.cgroupsPath, a hierarchy where the caller may not create
   * the container's cgroup (EACCES, EPERM, EROFS) is left out instead of failing create; a
   * limit for a controller left out is still an error (as runc's fs manager), device rules
   * are then skipped (as runc does when rootless).
   */
  rootless?: boolean;
}

export function cgroupManagerFor(cgroupsPath: string | undefined, containerId: string, opts: ManagerOptions = {}): CgroupManager {
  return cgroupManagerWith(hostCgroupLayout(), cgroupsPath, containerId, opts);
}

/** The manager for an explicit layout (tests use a fake cgroupfs directory). */
export function cgroupManagerWith(layout: CgroupLayout, cgroupsPath: string | undefined, containerId: string, opts: ManagerOptions = {}): CgroupManager {
  const path = cgroupsPath ?? defaultCgroupsPath(containerId);
  validateCgroupsPath(path);
  return new FsCgroupManager(layout, path, opts.rootless === true && cgroupsPath === undefined);
}

/** Whether this process may create dir: its nearest existing ancestor is writable to us. */
function mayCreate(dir: string): boolean {
  for (let d = dir; ; d = posix.dirname(d)) {
    if (existsSync(d)) {
      try {
        accessSync(d, fsConstants.W_OK);
        return true;
      } catch (err) {
        const code = errnoOf(err);
        return !(code === 'EACCES' || code === 'EPERM' || code === 'EROFS');
      }
    }
    if (d === '/') return true;
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function readTrimmed(file: string): Promise<string> {
  return (await fsp.readFile(file, 'utf8')).trim();
}

function readOr(file: string, dflt: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return dflt;
  }
}

class FsCgroupManager implements CgroupManager {
  readonly paths: Record<string, string> = {};
  /** Mount point of the hierarchy behind each key of `paths`. */
  private readonly mounts: Record<string, string> = {};

  get mountPoints(): Record<string, string> {
    return { ...this.mounts };
  }

  /** Hierarchies left out under --rootless (no permission there). */
  private readonly skipped = new Set<string>();

  constructor(
    private readonly layout: CgroupLayout,
    cgroupsPath: string,
    private readonly rootless = false,
  ) {
    const resolve = (mountPoint: string, own: string | undefined): string =>
      cgroupsPath.startsWith('/')
        ? join(mountPoint, cgroupsPath)
        : join(mountPoint, own ?? '/', cgroupsPath);
    for (const [controller, mountPoint] of Object.entries(layout.v1)) {
      this.paths[controller] = resolve(mountPoint, layout.own[controller]);
      this.mounts[controller] = mountPoint;
    }
    if (layout.v2 !== undefined) {
      this.paths[UNIFIED] = resolve(layout.v2.mountPoint, layout.own['']);
      this.mounts[UNIFIED] = layout.v2.mountPoint;
    }
    if (Object.keys(this.paths).length === 0) {
      throw new BerthError('UNSUPPORTED', 'no cgroup hierarchy is mounted on this host (neither cgroup v1 nor cgroup2 in /proc/self/mountinfo); mount cgroupfs at /sys/fs/cgroup');
    }
    if (rootless) {
      for (const [key, dir] of Object.entries(this.paths)) {
        if (mayCreate(dir)) continue;
        this.skipped.add(key);
        delete this.paths[key];
        delete this.mounts[key];
      }
    }
  }

  private version(controller: string): CgroupVersion | undefined {
    if (controller === '') return this.layout.v2 !== undefined ? 2 : undefined;
    return versionOf(this.layout, controller);
  }

  private dirOf(controller: string, version: CgroupVersion): string {
    const key = version === 2 ? UNIFIED : controller;
    const dir = this.paths[key];
    if (dir === undefined && this.skipped.has(key)) {
      throw new BerthError('RUNTIME_ERROR', `cannot set the ${controller || 'cgroup'} limits: --rootless left out the ${key} hierarchy, where berth-runtime may not create a cgroup; delegate a cgroup to this user and give it as linux.cgroupsPath, or remove the limits`);
    }
    if (dir === undefined) throw new BerthError('INTERNAL', `no cgroup directory for ${controller}`);
    return dir;
  }

  /**
   * Creates the cgroup in every hierarchy. An existing one must be fit for a new container
   * (config-linux.md "Control groups": a non-empty or frozen cgroup MUST be an error).
   */
  async create(): Promise<void> {
    await this.checkFitForCreate();
    // Directories this call created (deepest last), removed again if a later step fails.
    const created: string[] = [];
    try {
      for (const [key, dir] of Object.entries(this.paths)) {
        let first: string | undefined;
        try {
          first = await fsp.mkdir(dir, { recursive: true });
        } catch (err) {
          throw new BerthError('RUNTIME_ERROR', `cannot create cgroup ${dir}: ${(err as Error).message}`, { cause: err });
        }
        if (first !== undefined) {
          for (let d = dir; d.length >= first.length; d = posix.dirname(d)) created.unshift(d);
        }
        // A new v1 cpuset starts with empty cpus/mems and takes no tasks until they are set.
        if (key === 'cpuset') await this.fillCpusets(dir);
      }
    } catch (err) {
      for (const d of created.sort((a, b) => b.length - a.length)) await fsp.rmdir(d).catch(() => {});
      throw err;
    }
  }

  private async checkFitForCreate(): Promise<void> {
    const occupied = await this.pids();
    if (occupied.length > 0) {
      throw new BerthError(
        'RUNTIME_ERROR',
        `cgroup ${Object.values(this.paths)[0]} already has processes (${occupied.slice(0, 10).join(', ')}); another container may use this cgroupsPath: choose another one or stop those processes`,
      );
    }
    const freezer = this.paths.freezer;
    const state = freezer !== undefined ? await readTrimmed(join(freezer, 'freezer.state')).catch(() => 'THAWED') : undefined;
    const unified = this.paths[UNIFIED];
    const v2Frozen = unified !== undefined && freezer === undefined ? await readTrimmed(join(unified, 'cgroup.freeze')).catch(() => '0') : '0';
    if ((state !== undefined && state !== 'THAWED') || v2Frozen === '1') {
      throw new BerthError('RUNTIME_ERROR', `cgroup ${freezer ?? unified} exists and is frozen; thaw or remove it, or choose another cgroupsPath`);
    }
  }

  private async fillCpusets(dir: string): Promise<void> {
    const root = this.mounts.cpuset!;
    const chain: string[] = [];
    for (let d = dir; d.length > root.length; d = posix.dirname(d)) chain.unshift(d);
    for (const d of chain) {
      const parent = posix.dirname(d);
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const file = join(d, f);
        if (!(await exists(file))) continue;
        if ((await readTrimmed(file)) === '') await fsp.writeFile(file, await readTrimmed(join(parent, f)));
      }
    }
  }

  /** Enables v2 controllers in cgroup.subtree_control from the hierarchy's root down to the container's parent. */
  private enableV2(controllers: Set<string>): void {
    const dir = this.paths[UNIFIED];
    const root = this.mounts[UNIFIED];
    if (dir === undefined || root === undefined || controllers.size === 0) return;
    const ancestors: string[] = [];
    for (let d = posix.dirname(dir); d.length >= root.length; d = posix.dirname(d)) {
      ancestors.unshift(d);
      if (d === root) break;
    }
    for (const d of ancestors) {
      const enabled = new Set(readOr(join(d, 'cgroup.subtree_control'), '').split(/\s+/));
      const missing = [...controllers].filter((c) => !enabled.has(c));
      if (missing.length === 0) continue;
      try {
        writeFileSync(join(d, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
        writeObserver?.(join(d, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
      } catch (err) {
        throw new BerthError(
          'RUNTIME_ERROR',
          `cannot enable the cgroup v2 controllers ${missing.join(', ')} in ${d}: ${(err as Error).message} (a cgroup with processes cannot delegate controllers; move them to a leaf cgroup)`,
          { cause: err },
        );
      }
    }
  }

  deviceFilter(resources: LinuxResources | undefined): Buffer | undefined {
    const devices = resources?.devices;
    if (devices === undefined || devices.length === 0) return undefined;
    if (this.version('devices') === 1 || this.paths[UNIFIED] === undefined) return undefined;
    return compileDeviceFilter(devices).program;
  }

  // Synchronous writes: create waits for them anyway, and a cgroupfs write takes microseconds
  // while a thread-pool round trip per file made applying ~15 device rules take 5-10 ms.
  async apply(resources: LinuxResources | undefined, opts: PlanOptions = {}): Promise<void> {
    const writes = planResourceWrites(resources, (c) => this.version(c), opts);
    this.checkBeforeUpdate(resources);
    const v2Controllers = new Set(
      writes.filter((w) => w.version === 2 && w.controller !== '').map((w) => v2Name(w.controller)),
    );
    this.enableV2(v2Controllers);
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]!;
      const next = writes[i + 1];
      // runc, rootless: device rules are skipped where the devices cgroup could not be made.
      if (w.controller === 'devices' && this.skipped.has(w.version === 2 ? UNIFIED : 'devices')) continue;
      // v1: memory.limit_in_bytes ≤ memory.memsw.limit_in_bytes at every moment; when the
      // new limit exceeds the current memsw, the kernel refuses it: write memsw first.
      if (w.file === 'memory.limit_in_bytes' && next?.file === 'memory.memsw.limit_in_bytes') {
        try {
          this.write(w);
          this.write(next);
        } catch {
          this.write(next);
          this.write(w);
        }
        i++;
        continue;
      }
      this.write(w);
    }
  }

  /**
   * config-linux.md memory.checkBeforeUpdate: a new limit below the current usage MUST be
   * rejected. (cgroup v1's kernel refuses it itself; v2 would invoke the OOM killer.)
   */
  private checkBeforeUpdate(resources: LinuxResources | undefined): void {
    const m = resources?.memory;
    if (m?.checkBeforeUpdate !== true || m.limit === undefined || m.limit < 0 || this.version('memory') !== 2) return;
    const current = Number(readOr(join(this.paths[UNIFIED]!, 'memory.current'), '0'));
    if (m.limit < current) {
      throw new BerthError(
        'RUNTIME_ERROR',
        `memory limit ${m.limit} is below the container's current usage ${current} (memory.checkBeforeUpdate is set); raise the limit or free memory first`,
      );
    }
  }

  private write(w: CgroupWrite): void {
    const dir = this.dirOf(w.controller, w.version);
    let { file, value } = w;
    if (w.fallback !== undefined && !existsSync(join(dir, file))) ({ file, value } = w.fallback);
    try {
      writeFileSync(join(dir, file), value);
      writeObserver?.(join(dir, file), value);
    } catch (err) {
      const code = errnoOf(err);
      const why =
        code === 'ENOENT' || code === 'EACCES'
          ? 'the file does not exist (the kernel lacks this setting or the controller is not enabled)'
          : code === 'EINVAL' || code === 'EBUSY' || code === 'EOPNOTSUPP'
            ? 'the kernel refused the value'
            : (err as Error).message;
      throw new BerthError('RUNTIME_ERROR', `cannot write ${JSON.stringify(value)} to ${join(dir, file)}: ${why} (${code ?? 'error'})`, {
        cause: err,
      });
    }
  }

  async addProcess(pid: number): Promise<void> {
    if (!Number.isInteger(pid) || pid <= 0) throw new BerthError('INTERNAL', `addProcess: invalid pid ${pid}`);
    for (const dir of Object.values(this.paths)) {
      try {
        await fsp.writeFile(join(dir, 'cgroup.procs'), String(pid));
      } catch (err) {
        throw new BerthError('RUNTIME_ERROR', `cannot move process ${pid} into cgroup ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  async freeze(): Promise<void> {
    await this.setFrozen(true);
  }

  async thaw(): Promise<void> {
    await this.setFrozen(false);
  }

  private async setFrozen(frozen: boolean): Promise<void> {
    const v = this.version('freezer');
    if (v === undefined) {
      throw new BerthError('UNSUPPORTED', 'no freezer on this host (no v1 freezer hierarchy and no cgroup2); pause/resume cannot work');
    }
    const deadline = Date.now() + FREEZE_TIMEOUT_MS;
    if (v === 1) {
      const file = join(this.paths.freezer!, 'freezer.state');
      const want = frozen ? 'FROZEN' : 'THAWED';
      for (;;) {
        await fsp.writeFile(file, want);
        if ((await readTrimmed(file)) === want) return; // FREEZING means: tasks still being stopped
        if (Date.now() > deadline) throw new BerthError('RUNTIME_ERROR', `cgroup ${this.paths.freezer} did not become ${want} within ${FREEZE_TIMEOUT_MS} ms`);
        await sleep(10);
      }
    }
    const dir = this.paths[UNIFIED]!;
    await fsp.writeFile(join(dir, 'cgroup.freeze'), frozen ? '1' : '0');
    for (;;) {
      const events = await fsp.readFile(join(dir, 'cgroup.events'), 'utf8').catch(() => '');
      const m = /^frozen (\d)$/m.exec(events);
      if (m === null || m[1] === (frozen ? '1' : '0')) return;
      if (Date.now() > deadline) throw new BerthError('RUNTIME_ERROR', `cgroup ${dir} did not ${frozen ? 'freeze' : 'thaw'} within ${FREEZE_TIMEOUT_MS} ms`);
      await sleep(10);
    }
  }

  async pids(): Promise<number[]> {
    // Processes are in every hierarchy; read the one most likely to exist.
    const dir = this.paths.pids ?? this.paths.memory ?? this.paths[UNIFIED] ?? Object.values(this.paths)[0];
    if (dir === undefined) return []; // --rootless without any cgroup
    let text: string;
    try {
      text = await fsp.readFile(join(dir, 'cgroup.procs'), 'utf8');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return [];
      throw new BerthError('RUNTIME_ERROR', `cannot list the processes of cgroup ${dir}: ${(err as Error).message}`, { cause: err });
    }
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  }

  async killAll(signal: NodeJS.Signals | number): Promise<void> {
    const unified = this.paths[UNIFIED];
    if ((signal === 'SIGKILL' || signal === 9) && unified !== undefined) {
      // cgroup.kill (5.14+) kills the whole subtree atomically, no freezing needed.
      if (await exists(join(unified, 'cgroup.kill'))) {
        await fsp.writeFile(join(unified, 'cgroup.kill'), '1');
        return;
      }
    }
    // Freeze so that no process forks a child we would miss, signal all, thaw.
    const canFreeze = this.version('freezer') !== undefined;
    if (canFreeze) await this.freeze();
    try {
      for (const pid of await this.pids()) {
        try {
          process.kill(pid, signal);
        } catch (err) {
          if (errnoOf(err) !== 'ESRCH') throw err;
        }
      }
    } finally {
      if (canFreeze) await this.thaw();
    }
  }

  async destroy(): Promise<void> {
    const deadline = Date.now() + DESTROY_RETRY_MS;
    for (const dir of Object.values(this.paths)) {
      for (;;) {
        try {
          await fsp.rmdir(dir);
          break;
        } catch (err) {
          const code = errnoOf(err);
          if (code === 'ENOENT') break;
          // EBUSY: processes are still exiting (the kernel releases them asynchronously).
          if (code === 'EBUSY' && Date.now() < deadline) {
            await sleep(20);
            continue;
          }
          const left = code === 'EBUSY' ? await fsp.readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '') : '';
          throw new BerthError(
            'RUNTIME_ERROR',
            `cannot remove cgroup ${dir}: ${(err as Error).message}${left.trim() ? `; processes still in it: ${left.trim().split('\n').join(', ')} (kill them first)` : ''}`,
            { cause: err },
          );
        }
      }
    }
  }
}
