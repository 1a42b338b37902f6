/**
 * The init plan: plain data that native/berth-init carries out in order. Everything the
 * executor does is decided here, so the plan can be inspected and unit-tested without root.
 *
 * Wire format (parsed by berth-init without a JSON library): records "KEY LEN\n" + LEN bytes
 * + "\n"; fields inside a value are joined with NUL bytes; the plan ends with "end 0\n\n".
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, posix } from 'node:path';
import { BerthError } from '../base/errors.js';
import type { Hook, LinuxDevice, LinuxIDMapping, Mount, Process, Spec } from './spec/types.js';
import {
  CAPABILITIES, CLONE_FLAGS, IOPRIO_CLASSES, MOUNT_FLAG_OPTIONS, MS, NS_PROC_NAME, PERSONALITY_DOMAINS,
  PERSONALITY_FLAGS, PROPAGATION_OPTIONS, RECURSIVE_OPTIONS, RLIMITS, SCHED_FLAGS, SCHED_POLICIES,
} from './linux-constants.js';
import { compileSeccompCached } from './seccomp/cache.js';
import { cgroupMounts } from './cgroups/host.js';

export type PlanRecord = [key: string, value: string | Buffer];

export interface Plan {
  records: PlanRecord[];
  /** The container gets a new user namespace: the runtime writes these maps for it. */
  uidMappings?: LinuxIDMapping[];
  gidMappings?: LinuxIDMapping[];
  /** Namespaces the container gets or joins, type → path ('' when new). */
  namespaces: Record<string, string>;
  /** No hooks run before start: berth-init does not stop after the mounts ("mounted"). */
  straight?: boolean;
}

export interface InitPlanInput {
  spec: Spec;
  /** Absolute path of the root filesystem on the host. */
  rootfs: string;
  fifoPath: string;
  consoleSocket?: string;
  /** Stage 1 stays as the container's parent and exits with its status (`run`). */
  keep?: boolean;
  noPivot?: boolean;
  /** Controller → cgroup directory, for cgroup mounts without a cgroup namespace. */
  cgroupPaths: Record<string, string>;
  /** Where compiled seccomp filters are kept (runtime/seccomp/cache.ts); none: always compile. */
  seccompCacheDir?: string;
  /**
   * The engine's bridge network: stage 1 plugs the new network namespace into BRIDGE right
   * after the clone (veth VETH, IFACE inside, IP/PREFIX, default route via GATEWAY when given).
   */
  network?: { bridge: string; veth: string; iface: string; cidr: string; gateway?: string };
}

/** config-linux.md "Default Devices". */
export const DEFAULT_DEVICES: LinuxDevice[] = [
  { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/zero', type: 'c', major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/full', type: 'c', major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/random', type: 'c', major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/urandom', type: 'c', major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/tty', type: 'c', major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

const fields = (...parts: (string | number | bigint)[]): string => parts.map(String).join('\0');

/** Records without the closing "end" (berth-init reads them as they come). */
export function encodeRecords(records: PlanRecord[]): Buffer {
  // One string for the text records (a plan has hundreds; three Buffers each cost ~1 ms).
  const chunks: Buffer[] = [];
  let text = '';
  for (const [key, value] of records) {
    if (typeof value === 'string') {
      text += `${key} ${Buffer.byteLength(value)}\n${value}\n`;
      continue;
    }
    chunks.push(Buffer.from(`${text}${key} ${value.length}\n`), value);
    text = '\n';
  }
  chunks.push(Buffer.from(text));
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

export function encodePlan(records: PlanRecord[]): Buffer {
  return Buffer.concat([encodeRecords(records), Buffer.from('end 0\n\n')]);
}

export function capMask(names: string[] | undefined, where: string): bigint {
  let mask = 0n;
  for (const name of names ?? []) {
    const bit = (CAPABILITIES as readonly string[]).indexOf(name);
    if (bit < 0) throw new BerthError('RUNTIME_CONFIG_INVALID', `${where}: unknown capability ${JSON.stringify(name)}`);
    mask |= 1n << BigInt(bit);
  }
  return mask;
}


interface ParsedOptions { flags: number; clear: number; propagation: number[]; attrSet: number; attrClear: number; data: string[] }

export function parseMountOptions(options: string[] | undefined, where: string): ParsedOptions {
  const r: ParsedOptions = { flags: 0, clear: 0, propagation: [], attrSet: 0, attrClear: 0, data: [] };
  for (const opt of options ?? []) {
    const f = MOUNT_FLAG_OPTIONS[opt];
    if (f) {
      if (f.set) { r.flags |= f.set; r.clear &= ~f.set; }
      if (f.clear) { r.flags &= ~f.clear; r.clear |= f.clear; }
      continue;
    }
    if (opt in PROPAGATION_OPTIONS) { r.propagation.push(PROPAGATION_OPTIONS[opt]!); continue; }
    const rec = RECURSIVE_OPTIONS[opt];
    if (rec) { r.attrSet |= rec.set; r.attrClear |= rec.clear; continue; }
    if (opt === 'idmap' || opt === 'ridmap' || opt === 'tmpcopyup') {
      throw new BerthError('UNSUPPORTED', `${where}: mount option "${opt}" is not supported by berth-runtime; remove it`);
    }
    r.data.push(opt); // filesystem-specific (mode=, size=, newinstance, …)
  }
  return r;
}

function mountRecord(src: string, dst: string, type: string, flags: number, data: string, prop: number[], attrSet = 0, attrClear = 0, isFile = false): PlanRecord {
  return ['mount', fields(src, dst, type, flags, data, prop.join(','), attrSet, attrClear, isFile ? 1 : 0)];
}

function planCgroupMount(m: Mount, dst: string, opts: ParsedOptions, cgroupns: boolean, cgroupPaths: Record<string, string>): PlanRecord[] {
  const hier = cgroupMounts();
  const flags = opts.flags & ~MS.BIND;
  const v2only = hier.length === 1 && hier[0]!.type === 'cgroup2' && hier[0]!.mountpoint === '/sys/fs/cgroup';
  const out: PlanRecord[] = [];
  const sub = (h: { mountpoint: string; type: string; options: string }, target: string) => {
    if (cgroupns) return mountRecord(h.type, target, h.type, flags, h.type === 'cgroup' ? h.options : '', []);
    // Without a cgroup namespace, show the container its own cgroup (as runc does).
    const own = Object.values(cgroupPaths).find((p) => p.startsWith(h.mountpoint + '/')) ?? h.mountpoint;
    return mountRecord(own, target, '', MS.BIND | MS.REC | (flags & ~MS.REC), '', []);
  };
  if (v2only) return [sub(hier[0]!, dst)];
  out.push(mountRecord('tmpfs', dst, 'tmpfs', MS.NOSUID | MS.NODEV | MS.NOEXEC, 'mode=755', []));
  for (const h of hier) {
    const name = posix.basename(h.mountpoint);
    out.push(sub(h, join(dst, name)));
    if (name.includes(',')) for (const alias of name.split(',')) out.push(['symlink', fields(name, join(dst, alias))]);
  }
  // Like runc, the tmpfs holding the hierarchies stays writable; the hierarchies get the flags.
  void m;
  return out;
}

function planMounts(spec: Spec, rootfs: string, cgroupns: boolean, cgroupPaths: Record<string, string>): PlanRecord[] {
  const out: PlanRecord[] = [];
  (spec.mounts ?? []).forEach((m, i) => {
    const where = `mounts[${i}] (${m.destination})`;
    if (!isAbsolute(m.destination)) throw new BerthError('RUNTIME_CONFIG_INVALID', `${where}: destination must be an absolute path`);
    if (m.uidMappings || m.gidMappings) throw new BerthError('UNSUPPORTED', `${where}: id-mapped mounts are not supported by berth-runtime`);
    const opts = parseMountOptions(m.options, where);
    // A container path: berth-init resolves it inside the rootfs when it mounts (openat2
    // RESOLVE_IN_ROOT), so symlinks, in the image or in earlier mounts, cannot lead outside.
    const dst = m.destination;
    const type = m.type ?? '';
    if (type === 'bind' && !(opts.flags & MS.BIND)) opts.flags |= MS.BIND;
    if (type === 'cgroup' || type === 'cgroup2') {
      out.push(...planCgroupMount(m, dst, opts, cgroupns, cgroupPaths));
      return;
    }
    let src = m.source ?? type;
    let isFile = false;
    if (opts.flags & MS.BIND) {
      src = isAbsolute(src) ? src : join(rootfs, '..', src);
      try { isFile = !statSync(src).isDirectory(); } catch (err) {
        throw new BerthError('RUNTIME_CONFIG_INVALID', `${where}: bind source ${src} does not exist; create it or fix mounts[${i}].source`, { cause: err });
      }
    }
    out.push(mountRecord(src, dst, opts.flags & MS.BIND ? '' : type, opts.flags, opts.data.join(','), opts.propagation, opts.attrSet, opts.attrClear, isFile));
  });
  return out;
}

function planDevices(spec: Spec, userns: boolean, terminal: boolean): PlanRecord[] {
  const out: PlanRecord[] = [];
  const given = spec.linux?.devices ?? [];
  const all = [...given, ...DEFAULT_DEVICES.filter((d) => !given.some((g) => g.path === d.path))];
  for (const d of all) {
    const path = d.path; // resolved inside the rootfs by berth-init, as mount destinations
    if (userns) {
      // mknod is not allowed in a user namespace: bind the host's node instead.
      out.push(['device', fields(path, 'bind', 0, 0, 0, 0, 0, d.path)]);
      continue;
    }
    if (d.type === 'u') d.type = 'c';
    out.push(['device', fields(path, d.type, d.major ?? 0, d.minor ?? 0, d.fileMode ?? 0o666, d.uid ?? 0, d.gid ?? 0, '')]);
  }
  const links: [string, string][] = [
    ['/proc/self/fd', '/dev/fd'], ['/proc/self/fd/0', '/dev/stdin'], ['/proc/self/fd/1', '/dev/stdout'],
    ['/proc/self/fd/2', '/dev/stderr'],
  ];
  if (!all.some((d) => d.path === '/dev/ptmx')) links.push(['pts/ptmx', '/dev/ptmx']);
  for (const [target, link] of links) out.push(['symlink', fields(target, link)]);
  void terminal;
  return out;
}

/** A hook berth-init runs: 'cchook' createContainer (before pivot_root), 'hook' startContainer. */
function hookRecord(h: Hook, key: 'hook' | 'cchook' = 'hook'): PlanRecord {
  const args = h.args ?? [h.path];
  return [key, fields(h.timeout ?? 0, h.path, args.length, ...args, ...(h.env ?? []))];
}

/** Records shared by create and exec: the process's credentials, limits, terminal and command. */
function planProcess(p: Process, out: PlanRecord[]): void {
  out.push(['uid', String(p.user.uid)], ['gid', String(p.user.gid)]);
  out.push(['groups', (p.user.additionalGids ?? []).join(',')]);
  if (p.user.umask !== undefined) out.push(['umask', String(p.user.umask)]);
  const caps = p.capabilities ?? {};
  out.push(
    ['cap_bounding', '0x' + capMask(caps.bounding, 'process.capabilities.bounding').toString(16)],
    ['cap_effective', '0x' + capMask(caps.effective, 'process.capabilities.effective').toString(16)],
    ['cap_permitted', '0x' + capMask(caps.permitted, 'process.capabilities.permitted').toString(16)],
    ['cap_inheritable', '0x' + capMask(caps.inheritable, 'process.capabilities.inheritable').toString(16)],
    ['cap_ambient', '0x' + capMask(caps.ambient, 'process.capabilities.ambient').toString(16)],
  );
  if (p.noNewPrivileges) out.push(['nnp', '1']);
  const seen = new Set<string>();
  for (const rl of p.rlimits ?? []) {
    const n = RLIMITS[rl.type];
    if (n === undefined) throw new BerthError('RUNTIME_CONFIG_INVALID', `process.rlimits: unknown type ${JSON.stringify(rl.type)}`);
    if (seen.has(rl.type)) throw new BerthError('RUNTIME_CONFIG_INVALID', `process.rlimits: ${rl.type} is given twice (config.md: MUST generate an error)`);
    seen.add(rl.type);
    out.push(['rlimit', fields(n, BigInt(rl.soft), BigInt(rl.hard))]);
  }
  if (p.scheduler) {
    const s = p.scheduler;
    out.push(['sched_policy', String(SCHED_POLICIES[s.policy] ?? 0)]);
    out.push(['sched_flags', String((s.flags ?? []).reduce((a, f) => a | (SCHED_FLAGS[f] ?? 0), 0))]);
    out.push(['sched_nice', String(s.nice ?? 0)], ['sched_priority', String(s.priority ?? 0)]);
    out.push(['sched_runtime', String(s.runtime ?? 0)], ['sched_deadline', String(s.deadline ?? 0)], ['sched_period', String(s.period ?? 0)]);
  }
  if (p.ioPriority) out.push(['ioprio', String(((IOPRIO_CLASSES[p.ioPriority.class] ?? 0) << 13) | (p.ioPriority.priority ?? 0))]);
  if (p.terminal) {
    out.push(['terminal', '1']);
    if (p.consoleSize) out.push(['console_width', String(p.consoleSize.width)], ['console_height', String(p.consoleSize.height)]);
  }
  out.push(['cwd', p.cwd]);
  for (const a of p.args ?? []) out.push(['arg', a]);
  for (const e of p.env ?? []) out.push(['env', e]);
}

/** As runc does: without HOME in env, use the user's home from the rootfs's /etc/passwd, else "/". */
export function withHome(p: Process, rootfs: string): Process {
  if ((p.env ?? []).some((e) => e.startsWith('HOME='))) return p;
  let home = '/';
  try {
    for (const line of readFileSync(join(rootfs, 'etc/passwd'), 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 7 && Number(f[2]) === p.user.uid && f[5]) { home = f[5]; break; }
    }
  } catch { /* no passwd file: "/" */ }
  return { ...p, env: [...(p.env ?? []), `HOME=${home}`] };
}

function planSeccomp(spec: Spec, out: PlanRecord[], cacheDir: string | undefined): void {
  const sc = spec.linux?.seccomp;
  if (!sc) return;
  const compiled = compileSeccompCached(sc, cacheDir);
  if (compiled.listenerPath) throw new BerthError('UNSUPPORTED', 'linux.seccomp.listenerPath (SCMP_ACT_NOTIFY) is not supported by berth-runtime');
  out.push(['seccomp', compiled.filter], ['seccomp_flags', String(compiled.flags)]);
}

/** Settings berth-runtime does not carry out: a clear error rather than a silent skip. */
function refuseUnsupported(spec: Spec): void {
  const no = (field: string, why: string) => {
    throw new BerthError('UNSUPPORTED', `${field} is not supported by berth-runtime (${why}); remove it from config.json`);
  };
  const l = spec.linux ?? {};
  if (l.intelRdt) no('linux.intelRdt', 'no resctrl support');
  if (l.memoryPolicy) no('linux.memoryPolicy', 'no set_mempolicy support');
  if (l.netDevices && Object.keys(l.netDevices).length) no('linux.netDevices', 'network devices are not moved into the container');
  if (l.mountLabel) no('linux.mountLabel', 'no SELinux mount labels');
  if (spec.process?.execCPUAffinity) no('process.execCPUAffinity', 'no CPU affinity at exec');
}

export function buildInitPlan(input: InitPlanInput): Plan {
  const head = buildInitPlanHead(input);
  return { ...head, records: [...head.records, ...buildInitPlanBody(input, head)] };
}

/**
 * What stage 1 of berth-init needs before it clones the container process (namespaces to
 * join or make, the exec fifo, the console socket, time offsets). create sends it first, with
 * a "fork" record, so that berth-init clones while the body is built; stage 2 reads the body.
 */
export function buildInitPlanHead(input: InitPlanInput): Plan {
  const { spec } = input;
  const p = spec.process;
  if (!p) throw new BerthError('RUNTIME_CONFIG_INVALID', 'config.json: process is required to create a container');
  refuseUnsupported(spec);
  const out: PlanRecord[] = [];
  const namespaces: Record<string, string> = {};
  let clone = 0;
  for (const ns of spec.linux?.namespaces ?? []) {
    if (!(ns.type in CLONE_FLAGS)) throw new BerthError('RUNTIME_CONFIG_INVALID', `linux.namespaces: unknown type ${JSON.stringify(ns.type)}`);
    if (ns.type in namespaces) throw new BerthError('RUNTIME_CONFIG_INVALID', `linux.namespaces: ${ns.type} is given twice`);
    namespaces[ns.type] = ns.path ?? '';
    if (ns.path) out.push(['join', fields(ns.type, ns.path)]);
    else if (ns.type === 'time') out.push(['timens', '1']);
    else if (ns.type !== 'cgroup') clone |= CLONE_FLAGS[ns.type]!;
  }
  const userns = namespaces.user === '';
  // Only a mount namespace made for the container is set up and pivoted: one joined by path
  // belongs to someone else (perhaps the runtime's own, i.e. the host's), so the container is
  // only chroot'ed there, as without a mount namespace (runc does the same).
  const mountns = namespaces.mount === '';
  out.push(['clone', String(clone)]);
  if (userns) out.push(['userns', '1']);
  if (namespaces.cgroup === '') out.push(['cgroupns', '1']);
  if (mountns) out.push(['mountns', '1']);
  if (input.network) {
    if (namespaces.network !== '') throw new BerthError('RUNTIME_CONFIG_INVALID', 'a bridge network needs a new network namespace in linux.namespaces');
    const n = input.network;
    out.push(['net', fields(n.bridge, n.veth, n.iface, n.cidr, n.gateway ?? '')]);
  }
  if (input.keep) out.push(['keep', '1']);
  if (input.noPivot) out.push(['no_pivot', '1']);
  if (input.consoleSocket) out.push(['console', input.consoleSocket]);
  if (p.terminal && !input.consoleSocket) {
    throw new BerthError('USAGE', 'process.terminal is true: pass --console-socket PATH to receive the pty (or set terminal to false)');
  }
  if (!p.terminal && input.consoleSocket) throw new BerthError('USAGE', '--console-socket is only valid when process.terminal is true');
  out.push(['setsid', '1']);
  const offs = spec.linux?.timeOffsets;
  if (offs) {
    if (namespaces.time !== '') throw new BerthError('RUNTIME_CONFIG_INVALID', 'linux.timeOffsets needs a new time namespace in linux.namespaces');
    const lines = (['monotonic', 'boottime'] as const)
      .filter((k) => offs[k]).map((k) => `${k} ${offs[k]!.secs ?? 0} ${offs[k]!.nanosecs ?? 0}\n`);
    out.push(['time_offsets', lines.join('')]);
  }
  if (spec.hostname !== undefined && spec.hostname !== '') out.push(['hostname', spec.hostname]);
  if (spec.domainname !== undefined && spec.domainname !== '') out.push(['domainname', spec.domainname]);
  out.push(['fifo', input.fifoPath]);
  // Without hooks before start, nothing needs the container to stop once mounted: it goes
  // straight on to pivot_root while the runtime records the state.
  const h = spec.hooks;
  const straight = !(h?.prestart?.length || h?.createRuntime?.length || h?.createContainer?.length || h?.startContainer?.length);
  if (straight) out.push(['straight', '1']);
  return {
    records: out,
    namespaces,
    ...(straight ? { straight } : {}),
    ...(userns ? { uidMappings: spec.linux?.uidMappings ?? [], gidMappings: spec.linux?.gidMappings ?? [] } : {}),
  };
}

/** The rest of the plan (stage 2's: mounts, devices, paths, process, seccomp, hooks). */
export function buildInitPlanBody(input: InitPlanInput, head: Plan): PlanRecord[] {
  const { spec } = input;
  const p = spec.process!;
  const { namespaces } = head;
  const userns = namespaces.user === '';
  const mountns = namespaces.mount === '';
  const out: PlanRecord[] = [];
  out.push(['rootfs', input.rootfs]);
  const prop = spec.linux?.rootfsPropagation;
  // runtime-linux/runc: make the whole tree a slave (or private) so nothing leaks to the host;
  // the requested propagation is applied to the new root after pivot_root.
  out.push(['root_propagation', String((prop === 'private' ? MS.PRIVATE : MS.SLAVE) | MS.REC)]);
  if (prop) out.push(['root_propagation_after', String(PROPAGATION_OPTIONS[prop]!)]);
  if (mountns) {
    out.push(...planMounts(spec, input.rootfs, namespaces.cgroup !== undefined, input.cgroupPaths));
    out.push(...planDevices(spec, userns || namespaces.user !== undefined, !!p.terminal));
    if (p.terminal) out.push(['console_bind', '1']);
  } else {
    // Mounts made here would land in a mount namespace the container shares.
    const needs = (what: string) => {
      const why = namespaces.mount ? `the mount namespace is joined by path (${namespaces.mount}), and berth-runtime changes only a mount namespace it made for the container` : 'linux.namespaces has no mount namespace';
      throw new BerthError('RUNTIME_CONFIG_INVALID', `${what} need a new mount namespace, but ${why}; add {"type":"mount"} without a path, or remove them`);
    };
    if ((spec.mounts ?? []).length > 0) needs('mounts');
    if (spec.linux?.maskedPaths?.length) needs('linux.maskedPaths');
    if (spec.linux?.readonlyPaths?.length) needs('linux.readonlyPaths');
    if (spec.root?.readonly) needs('root.readonly');
    if (spec.linux?.rootfsPropagation) needs('linux.rootfsPropagation');
  }
  for (const [k, v] of Object.entries(spec.linux?.sysctl ?? {})) out.push(['sysctl', fields(k, v)]);
  for (const m of spec.linux?.maskedPaths ?? []) out.push(['mask', m]);
  for (const r of spec.linux?.readonlyPaths ?? []) out.push(['readonly', r]);
  if (spec.root?.readonly) out.push(['root_readonly', '1']);
  const pers = spec.linux?.personality;
  if (pers) {
    const flags = (pers.flags ?? []).reduce((a, f) => {
      const v = PERSONALITY_FLAGS[f];
      if (v === undefined) throw new BerthError('RUNTIME_CONFIG_INVALID', `linux.personality.flags: unknown flag ${JSON.stringify(f)}`);
      return a | v;
    }, 0);
    out.push(['personality', String(PERSONALITY_DOMAINS[pers.domain]! | flags)]);
  }
  planProcess(withHome(p, input.rootfs), out);
  planSeccomp(spec, out, input.seccompCacheDir);
  // config.md "createContainer Hooks": executed in the container namespace, after the mounts
  // and before pivot_root (their path resolves as in the runtime namespace: the host's root is
  // still /); startContainer hooks run there too, after start, before the process's exec.
  for (const h of spec.hooks?.createContainer ?? []) out.push(hookRecord(h, 'cchook'));
  for (const h of spec.hooks?.startContainer ?? []) out.push(hookRecord(h));
  return out;
}

export interface ExecPlanInput {
  process: Process;
  containerPid: number;
  /** The container's namespaces (type → '' or path), as recorded at create. */
  namespaces: Record<string, string>;
  seccomp?: Spec['linux'];
  seccompCacheDir?: string;
  consoleSocket?: string;
  keep: boolean;
}

/** exec: join every namespace of the container's init process, then run the process. */
export function buildExecPlan(input: ExecPlanInput): Plan {
  const out: PlanRecord[] = [['exec', '1'], ['clone', '0']];
  // Join the user namespace first (berth-init does), then the rest; time is joined via /proc too.
  for (const type of Object.keys(input.namespaces)) {
    out.push(['join', fields(type, `/proc/${input.containerPid}/ns/${NS_PROC_NAME[type]}`)]);
  }
  if (input.consoleSocket) out.push(['console', input.consoleSocket]);
  if (input.process.terminal && !input.consoleSocket) {
    throw new BerthError('USAGE', 'process.terminal is true: pass --console-socket PATH to receive the pty');
  }
  if (input.process.terminal) out.push(['setsid', '1']);
  if (input.keep) out.push(['keep', '1']);
  planProcess(input.process, out);
  if (input.seccomp?.seccomp) planSeccomp({ ociVersion: '1.0.0', linux: input.seccomp }, out, input.seccompCacheDir);
  return { records: out, namespaces: input.namespaces };
}
