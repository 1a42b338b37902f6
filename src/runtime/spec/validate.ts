/**
 * Validates a bundle's config.json against config.md and config-linux.md, for Linux.
 *
 * Each error is RUNTIME_CONFIG_INVALID naming the field path and the rule; with
 * `checkHost`, what this host cannot do is UNSUPPORTED. The document's types are
 * checked here (the JSON schemas are the test oracle, not a runtime dependency).
 *
 * Deliberately stricter than the schemas (each is a MUST elsewhere or protects the host):
 * - ociVersion must be SemVer with major version 1 (config.md: compatible within a major);
 * - root is required (config.md: REQUIRED on all platforms but Windows) and process.user;
 * - hostname/domainname need a UTS namespace, sysctls need the namespace they
 *   belong to, as runc requires: otherwise they would change the host;
 * - uid/gid mappings need a new user namespace and vice versa (as runc requires);
 * - env entries must be NAME=value; rlimit soft ≤ hard (setrlimit refuses otherwise);
 * - process.user with uid and gid is required (config.md "POSIX-platform User");
 * - linux.netDevices need a network namespace (else there is nothing to move them into).
 * More lenient: other platforms' sections (windows, solaris, freebsd, zos, vm) are ignored.
 * Capabilities the host cannot grant are warnings, not errors (config.md: "SHOULD NOT fail").
 */
import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { hostCgroupLayout, versionOf } from '../cgroups/host.js';
import { planResourceWrites } from '../cgroups/plan.js';
import { validateCgroupsPath } from '../cgroups/manager.js';
import { SECCOMP_ACTIONS, SECCOMP_ARCHES, SECCOMP_OPERATORS, actionValue } from '../seccomp/constants.js';
import { LINUX_NAMESPACE_TYPES, type LinuxResources, type Spec } from './types.js';
import { NS_PROC_NAME } from '../linux-constants.js';

export interface ValidateOptions {
  /** The bundle directory: when given, root.path is resolved against it and must be a directory. */
  bundleDir?: string;
  /** Also refuse what this host cannot do (namespaces, LSMs, cgroup controllers, …). */
  checkHost?: boolean;
  /** Require process (with args), as `create`/`run` do; default true. */
  requireProcess?: boolean;
  /** With checkHost on a cgroup v2 host: the executor attaches the eBPF device filter (see CgroupManager.deviceFilter). */
  devicesByBpf?: boolean;
  /** Receives warnings (config.md: ungrantable capabilities MUST be logged). Default: process.emitWarning. */
  onWarning?: (message: string) => void;
}

/**
 * Validates a LinuxResources document on its own, as `update` receives it (the same rules as
 * linux.resources in config.json, and what this host's cgroups can do); `document` names it in
 * messages.
 */
export function validateResources(raw: unknown, document: string): LinuxResources {
  const c = new Checker((m) => process.emitWarning(m, 'BerthRuntimeWarning'), document);
  c.object('(document)', raw);
  checkResources(c, raw, true, false);
  return raw as LinuxResources;
}

/** capabilities(7), linux/capability.h: name → number. */
export const CAPABILITIES: Readonly<Record<string, number>> = Object.freeze({
  CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_DAC_READ_SEARCH: 2, CAP_FOWNER: 3, CAP_FSETID: 4, CAP_KILL: 5,
  CAP_SETGID: 6, CAP_SETUID: 7, CAP_SETPCAP: 8, CAP_LINUX_IMMUTABLE: 9, CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11, CAP_NET_ADMIN: 12, CAP_NET_RAW: 13, CAP_IPC_LOCK: 14, CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16, CAP_SYS_RAWIO: 17, CAP_SYS_CHROOT: 18, CAP_SYS_PTRACE: 19, CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21, CAP_SYS_BOOT: 22, CAP_SYS_NICE: 23, CAP_SYS_RESOURCE: 24, CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26, CAP_MKNOD: 27, CAP_LEASE: 28, CAP_AUDIT_WRITE: 29, CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31, CAP_MAC_OVERRIDE: 32, CAP_MAC_ADMIN: 33, CAP_SYSLOG: 34, CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36, CAP_AUDIT_READ: 37, CAP_PERFMON: 38, CAP_BPF: 39, CAP_CHECKPOINT_RESTORE: 40,
});

/** getrlimit(2) resources: name → RLIMIT_* number on Linux (asm-generic/resource.h). */
export const RLIMITS: Readonly<Record<string, number>> = Object.freeze({
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6, RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12, RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
});

/** The option strings of config.md's Linux mount option table (others are filesystem data). */
export const KNOWN_MOUNT_OPTIONS: readonly string[] = [
  'async', 'atime', 'bind', 'defaults', 'dev', 'diratime', 'dirsync', 'exec', 'iversion', 'lazytime', 'loud',
  'mand', 'noatime', 'nodev', 'nodiratime', 'noexec', 'noiversion', 'nolazytime', 'nomand', 'norelatime',
  'nostrictatime', 'nosuid', 'nosymfollow', 'private', 'ratime', 'rbind', 'rdev', 'rdiratime', 'relatime',
  'remount', 'rexec', 'rnoatime', 'rnodev', 'rnodiratime', 'rnoexec', 'rnorelatime', 'rnostrictatime', 'rnosuid',
  'rnosymfollow', 'ro', 'rprivate', 'rrelatime', 'rro', 'rrw', 'rshared', 'rslave', 'rstrictatime', 'rsuid',
  'rsymfollow', 'runbindable', 'rw', 'shared', 'silent', 'slave', 'strictatime', 'suid', 'symfollow', 'sync',
  'tmpcopyup', 'unbindable', 'idmap', 'ridmap',
];

const HOOK_NAMES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];
const SCHED_POLICIES = ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', 'SCHED_ISO', 'SCHED_IDLE', 'SCHED_DEADLINE'];
const SCHED_FLAGS = ['SCHED_FLAG_RESET_ON_FORK', 'SCHED_FLAG_RECLAIM', 'SCHED_FLAG_DL_OVERRUN', 'SCHED_FLAG_KEEP_POLICY', 'SCHED_FLAG_KEEP_PARAMS', 'SCHED_FLAG_UTIL_CLAMP_MIN', 'SCHED_FLAG_UTIL_CLAMP_MAX'];
const IOPRIO_CLASSES = ['IOPRIO_CLASS_RT', 'IOPRIO_CLASS_BE', 'IOPRIO_CLASS_IDLE'];
const MPOL_MODES = ['MPOL_DEFAULT', 'MPOL_BIND', 'MPOL_INTERLEAVE', 'MPOL_WEIGHTED_INTERLEAVE', 'MPOL_PREFERRED', 'MPOL_PREFERRED_MANY', 'MPOL_LOCAL'];
const MPOL_FLAGS = ['MPOL_F_NUMA_BALANCING', 'MPOL_F_RELATIVE_NODES', 'MPOL_F_STATIC_NODES'];
const SECCOMP_FLAGS = ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'];

const INT32: [number, number] = [-2147483648, 2147483647];
const UINT16: [number, number] = [0, 65535];
const UINT32: [number, number] = [0, 4294967295];
const INT64: [number, number] = [-9223372036854775808, 9223372036854775807];
const UINT64: [number, number] = [0, 18446744073709551615];

// SemVer 2.0.0 (semver.org's recommended regular expression).
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

type Json = Record<string, unknown>;

/** Collects the field path in messages: "process.rlimits[1].type: …". */
class Checker {
  /** `document` names what is checked in messages (config.json, or update's resources). */
  constructor(readonly warn: (message: string) => void, readonly document = 'config.json') {}

  fail(path: string, rule: string): never {
    throw new BerthError('RUNTIME_CONFIG_INVALID', `${this.document} ${path}: ${rule}`, { detail: { field: path } });
  }

  unsupported(path: string, why: string): never {
    throw new BerthError('UNSUPPORTED', `${this.document} ${path}: ${why}`, { detail: { field: path } });
  }

  object(path: string, v: unknown): Json {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `must be an object, not ${describe(v)}`);
    return v as Json;
  }

  optObject(path: string, v: unknown): Json | undefined {
    return v === undefined ? undefined : this.object(path, v);
  }

  string(path: string, v: unknown): string {
    if (typeof v !== 'string') this.fail(path, `must be a string, not ${describe(v)}`);
    return v;
  }

  optString(path: string, v: unknown): string | undefined {
    return v === undefined ? undefined : this.string(path, v);
  }

  bool(path: string, v: unknown): boolean | undefined {
    if (v !== undefined && typeof v !== 'boolean') this.fail(path, `must be true or false, not ${describe(v)}`);
    return v as boolean | undefined;
  }

  int(path: string, v: unknown, [min, max]: [number, number]): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(path, `must be an integer, not ${describe(v)}`);
    if (v < min || v > max) this.fail(path, `${v} is out of range (${min} to ${max})`);
    return v;
  }

  optInt(path: string, v: unknown, range: [number, number]): number | undefined {
    return v === undefined ? undefined : this.int(path, v, range);
  }

  array(path: string, v: unknown): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `must be an array, not ${describe(v)}`);
    return v;
  }

  optArray(path: string, v: unknown): unknown[] {
    return v === undefined ? [] : this.array(path, v);
  }

  strings(path: string, v: unknown): string[] {
    return this.optArray(path, v).map((s, i) => this.string(`${path}[${i}]`, s));
  }

  oneOf<T extends string>(path: string, v: unknown, allowed: readonly T[]): T {
    const s = this.string(path, v);
    if (!(allowed as readonly string[]).includes(s)) {
      this.fail(path, `${JSON.stringify(s)} is not one of ${allowed.join(', ')}`);
    }
    return s as T;
  }

  absolute(path: string, v: unknown): string {
    const s = this.string(path, v);
    if (!s.startsWith('/')) this.fail(path, `${JSON.stringify(s)} must be an absolute path`);
    return s;
  }

  stringMap(path: string, v: unknown): Record<string, string> | undefined {
    const o = this.optObject(path, v);
    if (o === undefined) return undefined;
    for (const [k, val] of Object.entries(o)) {
      if (k === '') this.fail(path, 'keys must not be empty');
      this.string(`${path}[${JSON.stringify(k)}]`, val);
    }
    return o as Record<string, string>;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  return typeof v;
}

/** Validates and returns the config (relative mount destinations made absolute, config.md). */
export function validateRuntimeConfig(doc: unknown, opts: ValidateOptions = {}): Spec {
  const c: Checker = new Checker(opts.onWarning ?? ((m) => process.emitWarning(m, 'BerthRuntimeWarning')));
  const spec = c.object('(document)', doc);

  const version = c.string('ociVersion', spec.ociVersion);
  const m = SEMVER.exec(version);
  if (m === null) c.fail('ociVersion', `${JSON.stringify(version)} is not a SemVer 2.0.0 version`);
  if (m[1] !== '1') {
    c.fail('ociVersion', `${version}: berth-runtime implements runtime-spec 1.x; a configuration for major version ${m[1]} is not compatible (config.md "Specification version")`);
  }

  const namespaces = checkNamespaces(c, spec.linux, opts.checkHost === true);

  checkRoot(c, spec.root, opts.bundleDir);
  const out: Spec = { ...(spec as unknown as Spec) };
  out.mounts = checkMounts(c, spec.mounts, namespaces.has('user'));

  if (spec.process !== undefined) checkProcess(c, spec.process, opts);
  else if (opts.requireProcess !== false) c.fail('process', 'is required to create a container (config.md: REQUIRED when start is called)');

  for (const key of ['hostname', 'domainname'] as const) {
    const v = c.optString(key, spec[key]);
    if (v !== undefined && v !== '' && !namespaces.has('uts')) {
      c.fail(key, 'needs a uts namespace in linux.namespaces (otherwise it would change the host\'s name)');
    }
  }
  checkHooks(c, spec.hooks);
  c.stringMap('annotations', spec.annotations);
  if (spec.linux !== undefined) checkLinux(c, c.object('linux', spec.linux), namespaces, opts);
  if (spec.mounts === undefined) delete out.mounts;
  return out;
}

/** namespace type → 'new' or the path it joins. */
/** The type name of a /proc/PID/ns/ entry ("mnt" for "mnt:[4026531841]"), else undefined. */
function procNsLink(path: string): string | undefined {
  try {
    return /^([a-z_]+):\[\d+\]$/.exec(readlinkSync(path))?.[1];
  } catch {
    return undefined; // not a symlink (e.g. a bind mount of a namespace): berth-init checks it
  }
}

function checkNamespaces(c: Checker, linux: unknown, checkHost: boolean): Map<string, string> {
  const out = new Map<string, string>();
  if (linux === undefined) return out;
  const l = c.object('linux', linux);
  for (const [i, raw] of c.optArray('linux.namespaces', l.namespaces).entries()) {
    const p = `linux.namespaces[${i}]`;
    const ns = c.object(p, raw);
    const type = c.oneOf(`${p}.type`, ns.type, LINUX_NAMESPACE_TYPES);
    if (out.has(type)) c.fail(`${p}.type`, `namespace ${type} is listed twice (config-linux.md: duplicated namespaces MUST be an error)`);
    const path = ns.path === undefined ? undefined : c.absolute(`${p}.path`, ns.path);
    out.set(type, path ?? 'new');
    if (checkHost) {
      if (!existsSync(`/proc/self/ns/${NS_PROC_NAME[type]}`)) {
        c.unsupported(`${p}.type`, `this kernel has no ${type} namespaces (/proc/self/ns/${NS_PROC_NAME[type]} is missing)`);
      }
      if (path !== undefined && !existsSync(path)) c.fail(`${p}.path`, `${path} does not exist`);
      // config-linux.md: a path that is not a namespace of this type MUST be an error. A
      // /proc/PID/ns entry names its type ("mnt:[4026531841]"); berth-init checks every path
      // (bind mounts of namespaces too) with NS_GET_NSTYPE before it joins.
      const link = path === undefined ? undefined : procNsLink(path);
      if (link !== undefined && link !== NS_PROC_NAME[type]) {
        const other = Object.entries(NS_PROC_NAME).find(([, n]) => n === link)?.[0] ?? link;
        c.fail(`${p}.path`, `${path} is a ${other} namespace, not a ${type} namespace; give a path to a ${type} namespace`);
      }
    }
  }
  return out;
}

function checkRoot(c: Checker, root: unknown, bundleDir: string | undefined): void {
  if (root === undefined) c.fail('root', 'is required on Linux (config.md "Root")');
  const r = c.object('root', root);
  const path = c.string('root.path', r.path);
  if (path === '') c.fail('root.path', 'must not be empty');
  c.bool('root.readonly', r.readonly);
  if (bundleDir !== undefined) {
    const abs = isAbsolute(path) ? path : resolve(bundleDir, path);
    let isDir = false;
    try {
      isDir = statSync(abs).isDirectory();
    } catch {
      c.fail('root.path', `${abs} does not exist (config.md: a directory MUST exist at root.path); unpack the root filesystem there or fix the path`);
    }
    if (!isDir) c.fail('root.path', `${abs} is not a directory`);
  }
}

function checkMounts(c: Checker, mounts: unknown, hasUserNs: boolean): Spec['mounts'] {
  return c.optArray('mounts', mounts).map((raw, i) => {
    const p = `mounts[${i}]`;
    const mnt = c.object(p, raw);
    let destination = c.string(`${p}.destination`, mnt.destination);
    if (destination === '') c.fail(`${p}.destination`, 'must not be empty');
    // config.md: on Linux a relative destination (deprecated) is relative to "/".
    if (!destination.startsWith('/')) destination = `/${destination}`;
    const type = c.optString(`${p}.type`, mnt.type);
    const source = c.optString(`${p}.source`, mnt.source);
    const options = c.strings(`${p}.options`, mnt.options);
    // runc and crun also take type "bind" alone as a bind mount.
    const isBind = options.includes('bind') || options.includes('rbind') || type === 'bind';
    if (isBind && (source === undefined || source === '')) c.fail(`${p}.source`, 'a bind mount needs a source');
    if (!isBind && type === undefined && !options.includes('remount')) {
      c.fail(`${p}.type`, 'is required unless the mount is a bind mount (options bind or rbind)');
    }
    const uid = checkIdMappings(c, `${p}.uidMappings`, mnt.uidMappings);
    const gid = checkIdMappings(c, `${p}.gidMappings`, mnt.gidMappings);
    if ((uid === undefined) !== (gid === undefined)) {
      c.fail(uid === undefined ? `${p}.uidMappings` : `${p}.gidMappings`, 'uidMappings and gidMappings MUST be given together (config.md "POSIX-platform Mounts")');
    }
    const idmap = options.includes('idmap') || options.includes('ridmap');
    if (idmap && uid === undefined && !hasUserNs) {
      c.fail(`${p}.options`, 'idmap/ridmap needs uidMappings/gidMappings on the mount or a user namespace (config.md mount options)');
    }
    return { ...(mnt as object), destination } as NonNullable<Spec['mounts']>[number];
  });
}

function checkIdMappings(c: Checker, path: string, v: unknown): unknown[] | undefined {
  if (v === undefined) return undefined;
  const list = c.array(path, v);
  for (const [i, raw] of list.entries()) {
    const m = c.object(`${path}[${i}]`, raw);
    c.int(`${path}[${i}].containerID`, m.containerID, UINT32);
    c.int(`${path}[${i}].hostID`, m.hostID, UINT32);
    const size = c.int(`${path}[${i}].size`, m.size, UINT32);
    if (size === 0) c.fail(`${path}[${i}].size`, 'must be at least 1');
  }
  return list;
}

function checkProcess(c: Checker, raw: unknown, opts: ValidateOptions): void {
  const proc = c.object('process', raw);
  c.bool('process.terminal', proc.terminal);
  const box = c.optObject('process.consoleSize', proc.consoleSize);
  if (box !== undefined) {
    c.int('process.consoleSize.height', box.height, UINT64);
    c.int('process.consoleSize.width', box.width, UINT64);
  }
  const user = c.object('process.user', proc.user ?? c.fail('process.user', 'is required on Linux (uid and gid)'));
  c.int('process.user.uid', user.uid, UINT32);
  c.int('process.user.gid', user.gid, UINT32);
  c.optInt('process.user.umask', user.umask, UINT32);
  c.optArray('process.user.additionalGids', user.additionalGids).forEach((g, i) => c.int(`process.user.additionalGids[${i}]`, g, UINT32));
  c.optString('process.user.username', user.username);

  const args = c.strings('process.args', proc.args);
  if (args.length === 0 && opts.requireProcess !== false) {
    c.fail('process.args', 'needs at least one entry, the program to run (config.md "Process")');
  }
  const cwd = c.string('process.cwd', proc.cwd);
  if (!cwd.startsWith('/')) c.fail('process.cwd', `${JSON.stringify(cwd)} must be an absolute path`);
  for (const [i, e] of c.strings('process.env', proc.env).entries()) {
    if (e.indexOf('=') <= 0) c.fail(`process.env[${i}]`, `${JSON.stringify(e)} is not NAME=value`);
  }

  const caps = c.optObject('process.capabilities', proc.capabilities);
  if (caps !== undefined) {
    const bounding = opts.checkHost ? hostBoundingSet() : undefined;
    for (const set of ['bounding', 'effective', 'inheritable', 'permitted', 'ambient']) {
      for (const [i, name] of c.strings(`process.capabilities.${set}`, caps[set]).entries()) {
        const n = CAPABILITIES[name];
        if (n === undefined) {
          c.warn(`config.json process.capabilities.${set}[${i}]: ${JSON.stringify(name)} is not a capability this runtime knows (capabilities(7)); it is ignored`);
        } else if (bounding !== undefined && !bounding.has(n)) {
          c.warn(`config.json process.capabilities.${set}[${i}]: ${name} is not in this host's bounding set, so it cannot be granted; it is dropped`);
        }
      }
    }
  }

  const seen = new Set<string>();
  for (const [i, raw] of c.optArray('process.rlimits', proc.rlimits).entries()) {
    const p = `process.rlimits[${i}]`;
    const r = c.object(p, raw);
    const type = c.string(`${p}.type`, r.type);
    if (RLIMITS[type] === undefined) c.fail(`${p}.type`, `${JSON.stringify(type)} is not a Linux resource limit (getrlimit(2): ${Object.keys(RLIMITS).join(', ')})`);
    if (seen.has(type)) c.fail(`${p}.type`, `${type} is listed twice (config.md: duplicated rlimits MUST be an error)`);
    seen.add(type);
    const soft = c.int(`${p}.soft`, r.soft, UINT64);
    const hard = c.int(`${p}.hard`, r.hard, UINT64);
    if (soft > hard) c.fail(`${p}.soft`, `soft limit ${soft} is above the hard limit ${hard} (setrlimit(2) refuses it)`);
  }

  c.bool('process.noNewPrivileges', proc.noNewPrivileges);
  c.optInt('process.oomScoreAdj', proc.oomScoreAdj, [-1000, 1000]);
  const apparmor = c.optString('process.apparmorProfile', proc.apparmorProfile);
  const selinux = c.optString('process.selinuxLabel', proc.selinuxLabel);
  if (opts.checkHost) {
    if (apparmor !== undefined && apparmor !== '' && !appArmorEnabled()) {
      c.unsupported('process.apparmorProfile', 'AppArmor is not enabled on this host; remove the profile or run where AppArmor is enabled');
    }
    if (selinux !== undefined && selinux !== '' && !seLinuxEnabled()) {
      c.unsupported('process.selinuxLabel', 'SELinux is not enabled on this host; remove the label or run where SELinux is enabled');
    }
  }

  const sched = c.optObject('process.scheduler', proc.scheduler);
  if (sched !== undefined) {
    const policy = c.oneOf('process.scheduler.policy', sched.policy, SCHED_POLICIES);
    const nice = c.optInt('process.scheduler.nice', sched.nice, INT32);
    if (nice !== undefined && (nice < -20 || nice > 19)) c.fail('process.scheduler.nice', `${nice} is outside -20..19`);
    const prio = c.optInt('process.scheduler.priority', sched.priority, INT32);
    const realtime = policy === 'SCHED_FIFO' || policy === 'SCHED_RR';
    if (realtime && (prio === undefined || prio < 1 || prio > 99)) c.fail('process.scheduler.priority', `${policy} needs a priority of 1 to 99`);
    if (!realtime && prio !== undefined && prio !== 0) c.fail('process.scheduler.priority', `${policy} takes priority 0 only (sched(7))`);
    c.optArray('process.scheduler.flags', sched.flags).forEach((f, i) => c.oneOf(`process.scheduler.flags[${i}]`, f, SCHED_FLAGS));
    const runtime = c.optInt('process.scheduler.runtime', sched.runtime, UINT64);
    const deadline = c.optInt('process.scheduler.deadline', sched.deadline, UINT64);
    const period = c.optInt('process.scheduler.period', sched.period, UINT64);
    if (policy === 'SCHED_DEADLINE') {
      if (!runtime || !deadline) c.fail('process.scheduler', 'SCHED_DEADLINE needs runtime and deadline');
      if (runtime > deadline || (period !== undefined && period !== 0 && deadline > period)) {
        c.fail('process.scheduler', 'SCHED_DEADLINE needs runtime ≤ deadline ≤ period (sched(7))');
      }
    }
    if (policy === 'SCHED_ISO') c.unsupported('process.scheduler.policy', 'SCHED_ISO is not implemented by the Linux kernel');
  }

  const io = c.optObject('process.ioPriority', proc.ioPriority);
  if (io !== undefined) {
    c.oneOf('process.ioPriority.class', io.class, IOPRIO_CLASSES);
    c.optInt('process.ioPriority.priority', io.priority, [0, 7]);
  }
  const aff = c.optObject('process.execCPUAffinity', proc.execCPUAffinity);
  if (aff !== undefined) {
    for (const k of ['initial', 'final']) {
      const v = c.optString(`process.execCPUAffinity.${k}`, aff[k]);
      if (v !== undefined && !/^[0-9, -]*$/.test(v)) c.fail(`process.execCPUAffinity.${k}`, `${JSON.stringify(v)} is not a CPU list like 0-3,7`);
    }
  }
}

function checkHooks(c: Checker, raw: unknown): void {
  const hooks = c.optObject('hooks', raw);
  if (hooks === undefined) return;
  for (const name of HOOK_NAMES) {
    for (const [i, h] of c.optArray(`hooks.${name}`, hooks[name]).entries()) {
      const p = `hooks.${name}[${i}]`;
      const hook = c.object(p, h);
      c.absolute(`${p}.path`, hook.path);
      c.strings(`${p}.args`, hook.args);
      c.strings(`${p}.env`, hook.env);
      if (hook.timeout !== undefined) {
        const t = c.int(`${p}.timeout`, hook.timeout, INT64);
        if (t <= 0) c.fail(`${p}.timeout`, 'MUST be greater than zero (config.md "POSIX-platform Hooks")');
      }
    }
  }
}

function checkLinux(c: Checker, linux: Json, namespaces: Map<string, string>, opts: ValidateOptions): void {
  const hasNew = (t: string): boolean => namespaces.get(t) === 'new';
  const uid = checkIdMappings(c, 'linux.uidMappings', linux.uidMappings);
  const gid = checkIdMappings(c, 'linux.gidMappings', linux.gidMappings);
  // With a joined user namespace (path), mappings describe it (runc accepts them too).
  if ((uid !== undefined || gid !== undefined) && !namespaces.has('user')) {
    c.fail(uid !== undefined ? 'linux.uidMappings' : 'linux.gidMappings', 'id mappings need a user namespace in linux.namespaces');
  }
  if (hasNew('user') && (uid === undefined || uid.length === 0 || gid === undefined || gid.length === 0)) {
    c.fail('linux.uidMappings', 'a new user namespace needs uidMappings and gidMappings (without them every id in the container is unmapped)');
  }
  for (const [key, limit] of [['linux.uidMappings', uid], ['linux.gidMappings', gid]] as const) {
    if (limit !== undefined && limit.length > 340) c.fail(key, `${limit.length} entries are more than the kernel's 340`);
  }

  const seenDevices = new Set<string>();
  for (const [i, raw] of c.optArray('linux.devices', linux.devices).entries()) {
    const p = `linux.devices[${i}]`;
    const d = c.object(p, raw);
    const type = c.oneOf(`${p}.type`, d.type, ['c', 'b', 'u', 'p']);
    const path = c.absolute(`${p}.path`, d.path);
    if (seenDevices.has(path)) c.fail(`${p}.path`, `${path} is listed twice`);
    seenDevices.add(path);
    if (type !== 'p') {
      if (d.major === undefined || d.minor === undefined) c.fail(p, `major and minor are required for type ${type} (config-linux.md "Devices")`);
      c.int(`${p}.major`, d.major, INT64);
      c.int(`${p}.minor`, d.minor, INT64);
    } else {
      c.optInt(`${p}.major`, d.major, INT64);
      c.optInt(`${p}.minor`, d.minor, INT64);
    }
    c.optInt(`${p}.fileMode`, d.fileMode, [0, 0o777]); // defs.json FileMode: permission bits
    c.optInt(`${p}.uid`, d.uid, UINT32);
    c.optInt(`${p}.gid`, d.gid, UINT32);
  }

  const netDevices = c.optObject('linux.netDevices', linux.netDevices);
  if (netDevices !== undefined) {
    for (const [name, raw] of Object.entries(netDevices)) {
      const nd = c.object(`linux.netDevices[${JSON.stringify(name)}]`, raw);
      c.optString(`linux.netDevices[${JSON.stringify(name)}].name`, nd.name);
    }
    if (Object.keys(netDevices).length > 0 && !namespaces.has('network')) {
      c.fail('linux.netDevices', 'moving network devices needs a network namespace in linux.namespaces');
    }
  }

  if (linux.cgroupsPath !== undefined) validateCgroupsPath(c.string('linux.cgroupsPath', linux.cgroupsPath));
  checkResources(c, linux.resources, opts.checkHost === true, opts.devicesByBpf === true);

  const sysctl = c.stringMap('linux.sysctl', linux.sysctl);
  for (const name of Object.keys(sysctl ?? {})) checkSysctl(c, name, namespaces);

  for (const key of ['maskedPaths', 'readonlyPaths'] as const) {
    c.optArray(`linux.${key}`, linux[key]).forEach((v, i) => c.absolute(`linux.${key}[${i}]`, v));
  }
  if (linux.rootfsPropagation !== undefined) {
    c.oneOf('linux.rootfsPropagation', linux.rootfsPropagation, ['private', 'shared', 'slave', 'unbindable']);
  }
  const mountLabel = c.optString('linux.mountLabel', linux.mountLabel);
  if (opts.checkHost && mountLabel !== undefined && mountLabel !== '' && !seLinuxEnabled()) {
    c.unsupported('linux.mountLabel', 'SELinux is not enabled on this host; remove the label or run where SELinux is enabled');
  }

  if (linux.seccomp !== undefined) checkSeccomp(c, c.object('linux.seccomp', linux.seccomp));

  const pers = c.optObject('linux.personality', linux.personality);
  if (pers !== undefined) {
    c.oneOf('linux.personality.domain', pers.domain, ['LINUX', 'LINUX32']);
    c.strings('linux.personality.flags', pers.flags);
  }

  const offsets = c.optObject('linux.timeOffsets', linux.timeOffsets);
  if (offsets !== undefined) {
    for (const [clock, raw] of Object.entries(offsets)) {
      const p = `linux.timeOffsets.${clock}`;
      if (clock !== 'boottime' && clock !== 'monotonic') c.fail(p, 'only the boottime and monotonic clocks have offsets (time_namespaces(7))');
      const o = c.object(p, raw);
      c.optInt(`${p}.secs`, o.secs, INT64);
      c.optInt(`${p}.nanosecs`, o.nanosecs, [0, 999999999]);
    }
    if (Object.keys(offsets).length > 0 && !hasNew('time')) {
      c.fail('linux.timeOffsets', 'clock offsets need a new time namespace in linux.namespaces (offsets of an existing one cannot change)');
    }
  }

  const rdt = c.optObject('linux.intelRdt', linux.intelRdt);
  if (rdt !== undefined) {
    c.optString('linux.intelRdt.closID', rdt.closID);
    c.strings('linux.intelRdt.schemata', rdt.schemata);
    c.optString('linux.intelRdt.l3CacheSchema', rdt.l3CacheSchema);
    const mb = c.optString('linux.intelRdt.memBwSchema', rdt.memBwSchema);
    if (mb !== undefined && !/^MB:[^\n]*$/.test(mb)) c.fail('linux.intelRdt.memBwSchema', 'must start with "MB:" and be one line');
    c.bool('linux.intelRdt.enableMonitoring', rdt.enableMonitoring);
    if (opts.checkHost && !existsSync('/sys/fs/resctrl/schemata')) {
      c.unsupported('linux.intelRdt', 'resctrl is not mounted on this host (/sys/fs/resctrl); Intel RDT cannot be configured');
    }
  }

  const mpol = c.optObject('linux.memoryPolicy', linux.memoryPolicy);
  if (mpol !== undefined) {
    const mode = c.oneOf('linux.memoryPolicy.mode', mpol.mode, MPOL_MODES);
    const nodes = c.optString('linux.memoryPolicy.nodes', mpol.nodes);
    if (nodes !== undefined && !/^[0-9,-]*$/.test(nodes)) c.fail('linux.memoryPolicy.nodes', `${JSON.stringify(nodes)} is not a node list like 0-3,7`);
    if (['MPOL_BIND', 'MPOL_INTERLEAVE', 'MPOL_WEIGHTED_INTERLEAVE', 'MPOL_PREFERRED_MANY'].includes(mode) && !nodes) {
      c.fail('linux.memoryPolicy.nodes', `${mode} needs nodes (set_mempolicy(2))`);
    }
    c.optArray('linux.memoryPolicy.flags', mpol.flags).forEach((f, i) => c.oneOf(`linux.memoryPolicy.flags[${i}]`, f, MPOL_FLAGS));
  }
}

function checkResources(c: Checker, raw: unknown, checkHost: boolean, devicesByBpf: boolean): void {
  const res = c.optObject('linux.resources', raw);
  if (res === undefined) return;
  const p = 'linux.resources';
  const mem = c.optObject(`${p}.memory`, res.memory);
  if (mem !== undefined) {
    for (const k of ['limit', 'reservation', 'swap', 'kernel', 'kernelTCP']) c.optInt(`${p}.memory.${k}`, mem[k], INT64);
    c.optInt(`${p}.memory.swappiness`, mem.swappiness, [0, 100]);
    for (const k of ['disableOOMKiller', 'useHierarchy', 'checkBeforeUpdate']) c.bool(`${p}.memory.${k}`, mem[k]);
  }
  const cpu = c.optObject(`${p}.cpu`, res.cpu);
  if (cpu !== undefined) {
    for (const k of ['shares', 'period', 'burst', 'realtimePeriod']) c.optInt(`${p}.cpu.${k}`, cpu[k], UINT64);
    for (const k of ['quota', 'realtimeRuntime', 'idle']) c.optInt(`${p}.cpu.${k}`, cpu[k], INT64);
    c.optString(`${p}.cpu.cpus`, cpu.cpus);
    c.optString(`${p}.cpu.mems`, cpu.mems);
  }
  const pids = c.optObject(`${p}.pids`, res.pids);
  if (pids !== undefined) c.int(`${p}.pids.limit`, pids.limit, INT64);
  const bio = c.optObject(`${p}.blockIO`, res.blockIO);
  if (bio !== undefined) {
    c.optInt(`${p}.blockIO.weight`, bio.weight, UINT16);
    c.optInt(`${p}.blockIO.leafWeight`, bio.leafWeight, UINT16);
    for (const [i, raw2] of c.optArray(`${p}.blockIO.weightDevice`, bio.weightDevice).entries()) {
      const d = c.object(`${p}.blockIO.weightDevice[${i}]`, raw2);
      c.int(`${p}.blockIO.weightDevice[${i}].major`, d.major, INT64);
      c.int(`${p}.blockIO.weightDevice[${i}].minor`, d.minor, INT64);
      c.optInt(`${p}.blockIO.weightDevice[${i}].weight`, d.weight, UINT16);
      c.optInt(`${p}.blockIO.weightDevice[${i}].leafWeight`, d.leafWeight, UINT16);
    }
    for (const key of ['throttleReadBpsDevice', 'throttleWriteBpsDevice', 'throttleReadIOPSDevice', 'throttleWriteIOPSDevice']) {
      for (const [i, raw2] of c.optArray(`${p}.blockIO.${key}`, bio[key]).entries()) {
        const d = c.object(`${p}.blockIO.${key}[${i}]`, raw2);
        c.int(`${p}.blockIO.${key}[${i}].major`, d.major, INT64);
        c.int(`${p}.blockIO.${key}[${i}].minor`, d.minor, INT64);
        c.int(`${p}.blockIO.${key}[${i}].rate`, d.rate, UINT64);
      }
    }
  }
  for (const [i, raw2] of c.optArray(`${p}.hugepageLimits`, res.hugepageLimits).entries()) {
    const h = c.object(`${p}.hugepageLimits[${i}]`, raw2);
    const size = c.string(`${p}.hugepageLimits[${i}].pageSize`, h.pageSize);
    if (!/^[1-9][0-9]*[KMG]B$/.test(size)) c.fail(`${p}.hugepageLimits[${i}].pageSize`, `${JSON.stringify(size)} is not <size><K|M|G>B, e.g. 2MB`);
    c.int(`${p}.hugepageLimits[${i}].limit`, h.limit, UINT64);
  }
  for (const [i, raw2] of c.optArray(`${p}.devices`, res.devices).entries()) {
    const d = c.object(`${p}.devices[${i}]`, raw2);
    if (typeof d.allow !== 'boolean') c.fail(`${p}.devices[${i}].allow`, 'is required (true or false)');
    if (d.type !== undefined) c.oneOf(`${p}.devices[${i}].type`, d.type, ['a', 'c', 'b']);
    c.optInt(`${p}.devices[${i}].major`, d.major, INT64);
    c.optInt(`${p}.devices[${i}].minor`, d.minor, INT64);
    const access = c.optString(`${p}.devices[${i}].access`, d.access);
    if (access !== undefined && !/^[rwm]*$/.test(access)) c.fail(`${p}.devices[${i}].access`, `${JSON.stringify(access)} may contain only r, w and m`);
  }
  const net = c.optObject(`${p}.network`, res.network);
  if (net !== undefined) {
    c.optInt(`${p}.network.classID`, net.classID, UINT32);
    for (const [i, raw2] of c.optArray(`${p}.network.priorities`, net.priorities).entries()) {
      const pr = c.object(`${p}.network.priorities[${i}]`, raw2);
      c.string(`${p}.network.priorities[${i}].name`, pr.name);
      c.int(`${p}.network.priorities[${i}].priority`, pr.priority, UINT32);
    }
  }
  const rdma = c.optObject(`${p}.rdma`, res.rdma);
  for (const [dev, raw2] of Object.entries(rdma ?? {})) {
    const r = c.object(`${p}.rdma[${JSON.stringify(dev)}]`, raw2);
    c.optInt(`${p}.rdma[${JSON.stringify(dev)}].hcaHandles`, r.hcaHandles, UINT32);
    c.optInt(`${p}.rdma[${JSON.stringify(dev)}].hcaObjects`, r.hcaObjects, UINT32);
  }
  c.stringMap(`${p}.unified`, res.unified);

  // Semantic rules shared with the cgroup writer (burst ≤ quota, swap ≥ limit on v2, …),
  // against this host's cgroup layout when asked, else against "v1 everywhere" for the
  // rules that hold on every host.
  if (checkHost) {
    const layout = hostCgroupLayout();
    planResourceWrites(res as never, (ctl) => (ctl === '' ? (layout.v2 ? 2 : undefined) : versionOf(layout, ctl)), { devicesByBpf });
  }
}

/** runc's rule: a sysctl is allowed only inside the namespace it belongs to. */
function checkSysctl(c: Checker, name: string, namespaces: Map<string, string>): void {
  const p = `linux.sysctl[${JSON.stringify(name)}]`;
  if (!/^[a-zA-Z0-9_-]+([./][a-zA-Z0-9_@:+-]+)+$/.test(name) || name.includes('..')) {
    c.fail(p, 'is not a sysctl name like net.ipv4.ip_forward');
  }
  const key = name.replace(/\//g, '.');
  const ipc = ['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced'];
  const inNs = (t: string): boolean => namespaces.get(t) !== undefined;
  if (ipc.includes(key) || key.startsWith('fs.mqueue.')) {
    if (!inNs('ipc')) c.fail(p, 'needs an ipc namespace in linux.namespaces (it would change the host otherwise)');
    return;
  }
  if (key.startsWith('net.')) {
    if (!inNs('network')) c.fail(p, 'needs a network namespace in linux.namespaces (it would change the host otherwise)');
    return;
  }
  if (key === 'kernel.hostname' || key === 'kernel.domainname') {
    if (!inNs('uts')) c.fail(p, 'needs a uts namespace in linux.namespaces');
    return;
  }
  c.fail(p, 'is not namespaced (only ipc, net.* and uts sysctls can be set per container); setting it would change the host');
}

function checkSeccomp(c: Checker, s: Json): void {
  const p = 'linux.seccomp';
  const action = c.oneOf(`${p}.defaultAction`, s.defaultAction, SECCOMP_ACTIONS);
  const defaultErrno = c.optInt(`${p}.defaultErrnoRet`, s.defaultErrnoRet, UINT32);
  actionValue(action, defaultErrno, `${p}.defaultAction`);
  c.optArray(`${p}.architectures`, s.architectures).forEach((a, i) => c.oneOf(`${p}.architectures[${i}]`, a, SECCOMP_ARCHES));
  c.optArray(`${p}.flags`, s.flags).forEach((f, i) => c.oneOf(`${p}.flags[${i}]`, f, SECCOMP_FLAGS));
  const listener = c.optString(`${p}.listenerPath`, s.listenerPath);
  const meta = c.optString(`${p}.listenerMetadata`, s.listenerMetadata);
  if (meta !== undefined && listener === undefined) c.fail(`${p}.listenerMetadata`, 'MUST NOT be set without listenerPath (config-linux.md "Seccomp")');
  let notify = action === 'SCMP_ACT_NOTIFY';
  for (const [i, raw] of c.optArray(`${p}.syscalls`, s.syscalls).entries()) {
    const sp = `${p}.syscalls[${i}]`;
    const sc = c.object(sp, raw);
    const names = c.strings(`${sp}.names`, sc.names ?? c.fail(`${sp}.names`, 'is required'));
    if (names.length === 0) c.fail(`${sp}.names`, 'MUST contain at least one entry');
    const a = c.oneOf(`${sp}.action`, sc.action, SECCOMP_ACTIONS);
    if (a === 'SCMP_ACT_NOTIFY') notify = true;
    actionValue(a, c.optInt(`${sp}.errnoRet`, sc.errnoRet, UINT32), `${sp}.action`);
    for (const [j, rawArg] of c.optArray(`${sp}.args`, sc.args).entries()) {
      const ap = `${sp}.args[${j}]`;
      const arg = c.object(ap, rawArg);
      c.int(`${ap}.index`, arg.index, [0, 5]);
      c.int(`${ap}.value`, arg.value, UINT64);
      c.optInt(`${ap}.valueTwo`, arg.valueTwo, UINT64);
      c.oneOf(`${ap}.op`, arg.op, SECCOMP_OPERATORS);
    }
  }
  if (notify && (listener === undefined || listener === '')) {
    c.fail(`${p}.listenerPath`, 'SCMP_ACT_NOTIFY is used, so listenerPath must name the seccomp agent\'s socket');
  }
}

// ---- host facts ------------------------------------------------------------------------

let boundingCache: Set<number> | undefined;

/** The capabilities in this process's bounding set (/proc/self/status CapBnd). */
export function hostBoundingSet(): Set<number> {
  if (boundingCache === undefined) {
    const status = readFileSync('/proc/self/status', 'utf8');
    const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0';
    const bits = BigInt(`0x${hex}`);
    boundingCache = new Set(Object.values(CAPABILITIES).filter((n) => (bits >> BigInt(n)) & 1n));
  }
  return boundingCache;
}

export function appArmorEnabled(): boolean {
  try {
    return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

export function seLinuxEnabled(): boolean {
  return existsSync('/sys/fs/selinux/enforce');
}
