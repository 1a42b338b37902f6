/**
 * Image config + `run` options → runtime config, with docker's defaults: its capability set,
 * the default seccomp profile, masked and read-only paths, /dev/shm and /dev/mqueue, and
 * per-container /etc/hosts, /etc/hostname and /etc/resolv.conf (moby's oci/defaults.go and
 * daemon/oci_linux.go do the same for docker).
 */
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { resolveUser, type RootFiles } from '../../image/passwd.js';
import { mergeEnv, imageAnnotations } from '../../image/runtime-config.js';
import type { ImageConfig } from '../../base/types.js';
import { CAPABILITIES } from '../../runtime/linux-constants.js';
import { DEFAULT_PATH_ENV } from '../../runtime/spec/default.js';
import type { LinuxResources, LinuxSeccomp, Mount, Rlimit, Spec } from '../../runtime/spec/types.js';
import { dockerProfileToSeccomp, defaultSeccomp } from '../seccomp-profile.js';
import type { RunOptions } from './options.js';

/** Docker's default capabilities (moby oci/caps/defaults.go). */
export const DOCKER_CAPS: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const MASKED_PATHS: readonly string[] = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'];
export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Docker's default mounts (moby oci/defaults.go). */
function dockerMounts(privileged: boolean): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', privileged ? 'rw' : 'ro'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  ];
}

const ALL_CAPS: readonly string[] = CAPABILITIES;

/** The capabilities this host's bounding set allows (`--privileged` and ALL get no more). */
function hostCaps(): string[] {
  let mask = -1n;
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) mask = BigInt(`0x${m[1]}`);
  } catch { /* keep all */ }
  return ALL_CAPS.filter((_, i) => mask === -1n || ((mask >> BigInt(i)) & 1n) === 1n);
}

function capName(c: string): string {
  const up = c.toUpperCase();
  return up.startsWith('CAP_') ? up : `CAP_${up}`;
}

/** Docker's rules for --cap-add/--cap-drop (ALL in either; add wins over drop of the same). */
export function effectiveCaps(opts: Pick<RunOptions, 'capAdd' | 'capDrop' | 'privileged'>): string[] {
  if (opts.privileged) return hostCaps();
  const add = opts.capAdd.map(capName);
  const drop = opts.capDrop.map(capName);
  for (const c of [...add, ...drop]) {
    if (c !== 'CAP_ALL' && !ALL_CAPS.includes(c)) throw new BerthError('USAGE', `unknown capability ${JSON.stringify(c)}: see capabilities(7) for the names`);
  }
  if (add.includes('CAP_ALL')) return hostCaps().filter((c) => !drop.includes(c) || add.includes(c));
  const base = drop.includes('CAP_ALL') ? [] : DOCKER_CAPS.filter((c) => !drop.includes(c));
  return [...new Set([...base, ...add])];
}

/** What the container directory provides for the spec (paths on the host). */
export interface SpecFiles {
  hosts: string;
  hostname: string;
  resolvConf: string;
  /** The static reaper to bind at /sbin/docker-init for --init. */
  init?: string;
  /** --network container:NAME: the network namespace to join (/proc/PID/ns/net of NAME's process). */
  netns?: string;
}

export interface BuiltSpec {
  spec: Spec;
  /** Docker's split: Path and Args. */
  args: string[];
  user: string;
  env: string[];
  workdir: string;
}

/** Docker's rules: --entrypoint replaces the image's Entrypoint and drops its Cmd; a command replaces Cmd. */
export function processArgs(config: ImageConfig, entrypoint: string | undefined, command: string[]): string[] {
  const c = config.config ?? {};
  let ep = c.Entrypoint ?? [];
  let cmd = c.Cmd ?? [];
  if (entrypoint !== undefined) {
    ep = entrypoint === '' ? [] : [entrypoint];
    cmd = [];
  }
  if (command.length) cmd = command;
  const args = [...ep, ...cmd];
  if (!args.length) throw new BerthError('USAGE', 'no command specified: the image has no Entrypoint or Cmd; give one after the image name');
  return args;
}

export async function buildSpec(id: string, config: ImageConfig, opts: RunOptions, root: RootFiles & { path: string }, files: SpecFiles): Promise<BuiltSpec> {
  const c = config.config ?? {};
  const args = processArgs(config, opts.entrypoint, opts.command);
  if (opts.init) {
    if (!files.init) throw new BerthError('INTERNAL', '--init: the reaper binary is missing (make -C native)');
    args.unshift('/sbin/docker-init', '--');
  }
  const userSpec = opts.user ?? (typeof c.User === 'string' ? c.User : '');
  let user;
  try {
    user = await resolveUser(root, userSpec);
  } catch (err) {
    throw new BerthError('USAGE', `unable to find user ${userSpec}: ${(err as Error).message.replace(/^image config User [^:]*: /, '')}`, { cause: err });
  }
  const imageEnv = c.Env ?? [];
  const hostname = opts.hostname ?? (opts.network === 'host' ? (await import('node:os')).hostname() : id.slice(0, 12));
  const base = imageEnv.some((e) => e.startsWith('PATH=')) ? [] : [DEFAULT_PATH_ENV];
  let env = mergeEnv([...base, `HOSTNAME=${hostname}`], imageEnv);
  if (opts.tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  env = mergeEnv(env, opts.env);
  if (user.home && !env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
  const workdir = opts.workdir ? posix.resolve('/', opts.workdir) : typeof c.WorkingDir === 'string' && c.WorkingDir ? posix.resolve('/', c.WorkingDir) : '/';

  const caps = effectiveCaps(opts);
  const mounts = dockerMounts(opts.privileged);
  const bind = (src: string, dst: string, ro = false): Mount => ({ destination: dst, type: 'bind', source: src, options: ['rbind', 'rprivate', ...(ro ? ['ro'] : [])] });
  const userMounts = new Set(opts.mounts.map((m) => m.destination));
  if (!userMounts.has('/etc/resolv.conf')) mounts.push(bind(files.resolvConf, '/etc/resolv.conf'));
  if (!userMounts.has('/etc/hostname')) mounts.push(bind(files.hostname, '/etc/hostname'));
  if (!userMounts.has('/etc/hosts')) mounts.push(bind(files.hosts, '/etc/hosts'));
  if (opts.init) mounts.push(bind(files.init!, '/sbin/docker-init', true));
  for (const m of opts.mounts) {
    // A user mount replaces a default one at the same place (as docker).
    const at = mounts.findIndex((x) => x.destination === m.destination);
    const mount: Mount = { destination: m.destination, type: m.type, source: m.source, options: m.options };
    if (at >= 0) mounts[at] = mount; else mounts.push(mount);
  }

  const namespaces: NonNullable<NonNullable<Spec['linux']>['namespaces']> = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (opts.network !== 'host') namespaces.push(files.netns ? { type: 'network', path: files.netns } : { type: 'network' });

  let seccomp: LinuxSeccomp | undefined;
  if (!opts.privileged && opts.seccomp !== 'unconfined') {
    seccomp = opts.seccomp ? dockerProfileToSeccomp(opts.seccomp, caps) : defaultSeccomp(caps);
  }

  const resources: LinuxResources = { devices: [{ allow: false, access: 'rwm' }] };
  if (opts.privileged) resources.devices = [{ allow: true, access: 'rwm' }];
  if (opts.memory !== undefined) resources.memory = { limit: opts.memory };
  if (opts.cpus !== undefined) resources.cpu = { quota: Math.round(opts.cpus * 100000), period: 100000 };
  if (opts.pidsLimit !== undefined) resources.pids = { limit: opts.pidsLimit };

  const rlimits: Rlimit[] = opts.ulimits.map((u) => ({ type: `RLIMIT_${u.name.toUpperCase()}`, soft: u.soft, hard: u.hard }));

  const spec: Spec = {
    ociVersion: '1.0.2',
    process: {
      terminal: opts.tty,
      // The size of the terminal `run -it` attaches from, set before the process runs (docker's ConsoleSize).
      ...(opts.tty && opts.consoleSize ? { consoleSize: opts.consoleSize } : {}),
      // The primary group is always one of the supplementary groups, as docker does (moby's
      // getUser, since its fix of CVE-2022-36109): the process never keeps groups it was not
      // given, and `id` shows groups=GID also for the default root user.
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids?.length ? user.additionalGids : [user.gid] },
      args,
      env,
      cwd: workdir,
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: caps },
      ...(rlimits.length ? { rlimits } : {}),
      noNewPrivileges: opts.noNewPrivileges,
      oomScoreAdj: 0,
    },
    root: { path: root.path, readonly: opts.readOnly },
    hostname,
    mounts,
    annotations: { ...imageAnnotations(config), ...opts.labels },
    linux: {
      cgroupsPath: `/berth/${id}`,
      namespaces,
      resources,
      ...(opts.privileged ? {} : { maskedPaths: [...MASKED_PATHS], readonlyPaths: [...READONLY_PATHS] }),
      ...(seccomp ? { seccomp } : {}),
    },
  };
  return { spec, args, user: userSpec, env, workdir };
}
