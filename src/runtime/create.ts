/**
 * `create` (runtime.md "Lifecycle" steps 1-4): validate config.json, reserve the id, make the
 * cgroups, start berth-init with the plan, write id maps and cgroups when it asks, run the
 * prestart/createRuntime hooks (berth-init runs createContainer's) before pivot_root, and record the state.
 * On any failure nothing is left behind: no state directory, cgroup or process.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BerthError } from '../base/errors.js';
import { cgroupManagerFor, observeCgroupWrites, type CgroupManager } from './cgroups/manager.js';
import { validateRuntimeConfig } from './spec/validate.js';
import { runHooks } from './hooks.js';
import { abandonInit, releaseUnusedInit, runInit, spawnInit, waitGone, type InitStdio, type Launcher, type SpawnedInit } from './init-process.js';
import { buildInitPlanBody, buildInitPlanHead, DEFAULT_DEVICES, encodeRecords, type InitPlanInput, type PlanRecord } from './plan.js';
import type { LinuxDeviceCgroup, LinuxIDMapping, LinuxResources, Spec } from './spec/types.js';
import { containerDir, ociState, procStat, removeContainerDir, reserveId, seccompCacheDir, stateText, writeAtomic, writeRecord, type ContainerRecord } from './state.js';

export interface CreateOptions {
  root: string;
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  noPivot?: boolean;
  /** `run`: berth-init stays as the container's parent and exits with its status. */
  keep?: boolean;
  /** Where the container's stdio goes ('inherit': ours). */
  stdio?: InitStdio;
  /** berth-init runs under this program (an engine's monitor: without keep, a subreaper). */
  launcher?: Launcher;
  /** runc's --rootless: cgroups this process may not create are left out (cgroups/manager.ts). */
  rootless?: boolean;
  /**
   * Called once the container process (and its namespaces) exists, before berth-init goes on
   * with the mounts: an engine can schedule work that overlaps them (e.g. its network attach).
   */
  onPid?: (pid: number) => void;
  /**
   * The engine's bridge network, plugged by berth-init as it clones the container (plan.ts
   * InitPlanInput.network): asked for while berth-init starts, before the plan is sent.
   */
  network?: () => InitPlanInput['network'];
  /** Sees what create does, so that it can be repeated without this process (a run plan). */
  observer?: CreateObserver;
}

/**
 * What engine/containers/run-plan.ts writes down of a create: the bytes berth-init is sent before
 * it reports the pid, the settings written after, the runtime's record; refuse() when this
 * create does something a plan cannot repeat.
 */
export interface CreateObserver {
  sentToInit(data: Buffer): void;
  pidReported(): void;
  cgroupWrite(path: string, value: string): void;
  add(key: string, value: string): void;
  time(iso: string): void;
  runtimeRecord(json: string, text: string, pid: number, startTime: number): void;
  refuse(why: string): void;
}

export interface Created {
  record: ContainerRecord;
  /** Stage 1 of berth-init when this process spawned it (with keep: exits with the
   * container's status); absent when the front end started it. */
  init?: ChildProcess;
}

/** Reads and parses config.json (no validation). */
function readBundleConfig(bundle: string): unknown {
  const path = join(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BerthError('RUNTIME_CONFIG_INVALID', `cannot read ${path}: ${(err as Error).message}; --bundle must name a directory holding config.json`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BerthError('RUNTIME_CONFIG_INVALID', `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

export function loadBundleConfig(bundle: string): Spec {
  return validateRuntimeConfig(readBundleConfig(bundle), { bundleDir: bundle, checkHost: true });
}

function writeIdMap(pid: number, file: 'uid_map' | 'gid_map', maps: LinuxIDMapping[] | undefined): void {
  if (!maps?.length) throw new BerthError('RUNTIME_CONFIG_INVALID', `a new user namespace needs linux.${file === 'uid_map' ? 'uidMappings' : 'gidMappings'}`);
  writeFileSync(`/proc/${pid}/${file}`, maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join(''));
}

/**
 * The device cgroup rules to apply: the config's, then allow rules for the default devices
 * (config-linux.md "Default Devices"), the pty devices and every device in linux.devices, so
 * that a deny-all rule (as `spec` writes) does not take away what the container must have.
 */
export function withDeviceDefaults(spec: Spec): LinuxResources | undefined {
  const r = spec.linux?.resources;
  if (!r?.devices) return r;
  const allow = (type: string, major: number, minor: number | undefined): LinuxDeviceCgroup =>
    ({ allow: true, type, major, ...(minor === undefined ? {} : { minor }), access: 'rwm' });
  const extra: LinuxDeviceCgroup[] = [
    ...DEFAULT_DEVICES.map((d) => allow('c', d.major!, d.minor)),
    allow('c', 5, 1), allow('c', 5, 2), allow('c', 136, undefined),
    ...(spec.linux?.devices ?? []).filter((d) => d.type !== 'p').map((d) => allow(d.type === 'b' ? 'b' : 'c', d.major ?? 0, d.minor)),
  ];
  return { ...r, devices: [...r.devices, ...extra] };
}

/** BERTH_RUNTIME_TRACE=1 (or --debug) prints how long each step of create takes (to stderr). */
let lastTrace = 0;
function trace(what: string): void {
  if (!process.env.BERTH_RUNTIME_TRACE) return;
  const now = performance.now();
  process.stderr.write(`berth-runtime: ${what} ${(now - lastTrace).toFixed(1)} ms\n`);
  lastTrace = now;
}

/** linux.cgroupsPath of a config.json not validated yet (validation checks it later). */
function rawCgroupsPath(doc: unknown): string | undefined {
  const p = (doc as { linux?: { cgroupsPath?: unknown } } | null)?.linux?.cgroupsPath;
  return typeof p === 'string' ? p : undefined;
}

export async function createContainer(opts: CreateOptions): Promise<Created> {
  const attempt: Attempt = {};
  try {
    return await createOnce(opts, attempt);
  } catch (err) {
    // Concurrent creates of one container: each front end's guessed berth-init may sit in the
    // cgroup before the id is reserved, and ours found the loser's there. It leaves as soon as
    // its create fails on the id; then try once more, with a berth-init of our own.
    if (!attempt.cgroupDirs || !(err instanceof BerthError) || !/already has processes/.test(err.message)) throw err;
    if (!(await guessesLeft(attempt.cgroupDirs))) throw err;
    trace('another create\'s guessed berth-init left the cgroup: trying again');
    return createOnce(opts, {});
  }
}

/** What a failed create attempt had got to (for the retry above). */
interface Attempt {
  /** The container's cgroup directories, once decided. */
  cgroupDirs?: string[];
}

/**
 * Waits (up to 2 s) while the processes in `dirs` are all unadopted guesses of other creates
 * (named "berth-guess" by native/berth-init.c); true once the cgroups are empty.
 */
async function guessesLeft(dirs: string[]): Promise<boolean> {
  for (let i = 0; i < 400; i++) {
    const pids = dirs.flatMap((d) => {
      try {
        return readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
      } catch {
        return []; // removed: empty
      }
    });
    if (pids.length === 0) return true;
    const comm = (pid: string) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        return 'berth-guess'; // exited meanwhile
      }
    };
    if (!pids.every((pid) => comm(pid) === 'berth-guess')) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}

async function createOnce(opts: CreateOptions, attempt: Attempt): Promise<Created> {
  // (The `performance` global loads perf_hooks on first use: only when tracing.)
  if (process.env.BERTH_RUNTIME_TRACE) trace(`node start-up until create (${performance.now().toFixed(1)} ms since process start)`);
  const bundle = resolve(opts.bundle);
  const doc = readBundleConfig(bundle);
  let dir: string;
  try {
    dir = reserveId(opts.root, opts.id);
  } catch (err) {
    // The front end's berth-init may sit in this container's cgroups: let go of it at once,
    // so that a create that holds the id does not find it there.
    await releaseUnusedInit();
    throw err;
  }
  let cgroups: CgroupManager | undefined;
  let cgReady: Promise<void> | undefined;
  let early: SpawnedInit | undefined;
  let pid = 0;
  try {
    cgroups = cgroupManagerFor(rawCgroupsPath(doc), opts.id, { rootless: opts.rootless === true });
    const cg = cgroups;
    attempt.cgroupDirs = Object.values(cg.paths);
    if (!opts.keep) {
      // berth-init starts now and makes the cgroups and moves itself into them (slow on
      // cgroup v1: each cgroup.procs write waits for an RCU grace period) while this process
      // validates and plans; the container process, cloned later, inherits them. (With keep,
      // berth-init stays as the container's parent and must stay outside its cgroups.)
      const mounts = cg.mountPoints;
      const earlyRecords: PlanRecord[] = Object.entries(cg.paths).map(([k, d]) => ['cgroup', `${mounts[k]}\0${d}`]);
      early = await spawnInit(opts.stdio ?? 'inherit', earlyRecords, true, opts.launcher);
      if (early.guess) opts.observer?.refuse('berth-init was started by the front end');
      opts.observer?.sentToInit(encodeRecords(earlyRecords));
    }
    // Until state.txt exists, `state` reports "creating" with this bundle (runtime.md "State").
    writeAtomic(join(dir, 'bundle'), bundle, 0o600, false);
    const obs = opts.observer;
    if (obs) {
      if (opts.keep || opts.pidFile || opts.consoleSocket || opts.noPivot || opts.rootless) obs.refuse('create options a plan does not repeat');
      obs.add('rt-dir', dir);
      obs.add('rt-bundle', bundle);
      for (const d of new Set(Object.values(cg.paths))) obs.add('cgroup-dir', d);
      // The hierarchies as this host mounts them (another cgroup mode after a reboot: a miss).
      for (const m of new Set(Object.values(cg.mountPoints))) obs.add('check-exist', m);
    }
    // (Validation with bundleDir requires root.path and checks that it is a directory.)
    const spec = validateRuntimeConfig(doc, { bundleDir: bundle, checkHost: true });
    const rootfs = resolve(bundle, spec.root!.path);
    trace('config validated');
    if (opts.keep) {
      // The container process waits for these before it is placed.
      cgReady = cg.create().then(() => trace('cgroups created'));
      cgReady.catch(() => undefined);
    }
    const cgMade = cgReady;
    const record: ContainerRecord = {
      id: opts.id, bundle, rootfs, pid: 0, startTime: 0,
      created: new Date().toISOString(), annotations: spec.annotations ?? {}, cgroupPaths: { ...cg.paths },
      ...(spec.linux?.cgroupsPath ? { cgroupsPath: spec.linux.cgroupsPath } : {}),
      namespaces: {}, poststart: spec.hooks?.poststart ?? [], poststop: spec.hooks?.poststop ?? [],
    };
    const planInput: InitPlanInput = {
      spec, rootfs, fifoPath: join(dir, 'exec.fifo'), cgroupPaths: cg.paths, seccompCacheDir: seccompCacheDir(opts.root),
      ...(opts.consoleSocket ? { consoleSocket: resolve(opts.consoleSocket) } : {}),
      ...(opts.keep ? { keep: true } : {}), ...(opts.noPivot ? { noPivot: true } : {}),
      ...(opts.network ? { network: opts.network() } : {}),
    };
    // berth-init clones the container process as soon as it has the head; the body (mounts,
    // devices, process, seccomp) is built meanwhile.
    const plan = buildInitPlanHead(planInput);
    record.namespaces = plan.namespaces;
    obs?.time(record.created);
    if (obs && (!plan.straight || plan.uidMappings || spec.hooks?.poststart?.length || spec.hooks?.poststop?.length)) obs.refuse('hooks or a user namespace');
    trace('plan head built');
    const started = await runInit(plan, {
      ...(obs ? { sent: (d: Buffer) => obs.sentToInit(d) } : {}),
      onPid: async (p) => {
        pid = p;
        obs?.pidReported();
        opts.onPid?.(p);
        record.pid = p;
        record.startTime = procStat(p)?.startTime ?? 0;
        if (plan.uidMappings) {
          writeIdMap(p, 'uid_map', plan.uidMappings);
          writeIdMap(p, 'gid_map', plan.gidMappings);
        }
        trace('berth-init cloned the container process (in its cgroups)');
        if (cgMade) {
          await cgMade;
          await cg.addProcess(p);
          trace('process placed in cgroups');
        }
        if (obs) observeCgroupWrites((path, value) => obs.cgroupWrite(path, value));
        try {
          await cg.apply(withDeviceDefaults(spec));
        } finally {
          if (obs) observeCgroupWrites(undefined);
        }
        trace('resources applied');
        if (spec.process?.oomScoreAdj !== undefined) {
          writeFileSync(`/proc/${p}/oom_score_adj`, String(spec.process.oomScoreAdj));
          obs?.add('oom', String(spec.process.oomScoreAdj));
        }
      },
      onMounted: async () => {
        trace('container mounts done');
        writeRecord(opts.root, record);
        obs?.runtimeRecord(JSON.stringify(record), stateText(record), record.pid, record.startTime);
        const state = ociState(record, 'created');
        // runtime.md lifecycle 3-4: prestart (deprecated) and createRuntime in the runtime
        // namespace; berth-init then runs createContainer in the container's, before pivot_root.
        await runHooks('prestart', spec.hooks?.prestart, state);
        await runHooks('createRuntime', spec.hooks?.createRuntime, state);
        return JSON.stringify(state);
      },
    }, opts.stdio ?? 'inherit', early, () => buildInitPlanBody(planInput, plan), opts.launcher);
    trace('container ready');
    if (opts.pidFile) writeAtomic(resolve(opts.pidFile), String(started.pid), 0o600, false);
    return { record, ...(started.child ? { init: started.child } : {}) };
  } catch (err) {
    if (pid) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await waitGone(pid);
    }
    // berth-init sits in the cgroups until it is gone.
    if (early) await abandonInit(early);
    // rmdir only: a populated cgroup (another container's) cannot be removed by it.
    if (cgroups) {
      await cgReady?.catch(() => undefined); // never race the mkdirs still in flight
      await cgroups.destroy().catch(() => undefined);
    }
    removeContainerDir(opts.root, opts.id);
    throw err;
  }
}

export { containerDir };
