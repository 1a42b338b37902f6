/** `run`/`create` options as docker takes them, checked and turned into plain data. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, posix, resolve } from 'node:path';
import { BerthError } from '../../base/errors.js';
import type { PortMapping } from '../network/ports.js';

export interface MountSpec {
  /** 'volume': source is a named volume (volumes.ts), made on first use. */
  type: 'bind' | 'tmpfs' | 'volume';
  source: string;
  destination: string;
  options: string[];
}

export interface Ulimit { name: string; soft: number; hard: number }

export interface RunOptions {
  name?: string;
  command: string[];
  entrypoint?: string;
  env: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  /** none, host, bridge (the default network), a user network's name, or container:NAME. */
  network: string;
  /** -p mappings, -P (the image's EXPOSE, resolved at create), --network-alias, --ip, --dns, --dns-search, --dns-option, --add-host. */
  publish: PortMapping[];
  publishAll: boolean;
  networkAliases: string[];
  ip?: string;
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  addHosts: string[];
  mounts: MountSpec[];
  readOnly: boolean;
  capAdd: string[];
  capDrop: string[];
  privileged: boolean;
  noNewPrivileges: boolean;
  /** undefined: the default profile; 'unconfined'; else a profile's text. */
  seccomp?: string;
  memory?: number;
  cpus?: number;
  pidsLimit?: number;
  ulimits: Ulimit[];
  init: boolean;
  stopSignal?: string;
  /** --stop-timeout: seconds `stop` waits by default before SIGKILL (docker's default 10). */
  stopTimeout?: number;
  labels: Record<string, string>;
  tty: boolean;
  interactive: boolean;
  /** false: no anonymous volumes for the image's VOLUMEs (a build's RUN, as BuildKit's). */
  imageVolumes?: boolean;
  /** -t: the size of our terminal, given to the container's before it runs. */
  consoleSize?: { height: number; width: number };
  /** -i without -d (docker's StdinOnce): a later start -ai ends the input with its own. */
  stdinOnce?: boolean;
  autoRemove: boolean;
  runtime: string;
  logMaxSize: number;
}

const usage = (msg: string): BerthError => new BerthError('USAGE', msg);

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** docker's sizes (RAMInBytes): 512, 64m, 1.5g, 100kb; binary units. */
export function parseSize(flag: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgtp]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) throw usage(`--${flag}: ${JSON.stringify(value)} is not a size (bytes, or a number with k, m, g, t or p)`);
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
}

/** `-e K=V`, `-e K` (the value from our environment, dropped when unset), as docker. */
export function parseEnv(entries: string[], envFiles: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  const take = (e: string): void => {
    if (e.includes('=')) { if (e.startsWith('=')) throw usage(`invalid environment variable ${JSON.stringify(e)}: the name is empty`); out.push(e); return; }
    if (e === '') return;
    const v = env[e];
    if (v !== undefined) out.push(`${e}=${v}`);
  };
  for (const f of envFiles) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw usage(`--env-file ${f}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    for (const line of text.split('\n')) {
      const t = line.replace(/\r$/, '').replace(/^\s+/, '');
      if (t === '' || t.startsWith('#')) continue;
      take(t);
    }
  }
  for (const e of entries) take(e);
  return out;
}

function checkDestination(dst: string, what: string): string {
  if (!dst.startsWith('/')) throw usage(`${what}: the container path ${JSON.stringify(dst)} must be absolute`);
  const n = posix.normalize(dst);
  if (n === '/') throw usage(`${what}: cannot mount over the container's root /`);
  return n;
}

function bindSource(src: string, what: string): string {
  const abs = resolve(src);
  if (!existsSync(abs)) throw usage(`${what}: the host path ${abs} does not exist; create it first`);
  return abs;
}

/** `-v HOST:CTR[:ro|rw|z|Z...]` (named volumes are not here yet). */
export function parseVolume(spec: string): MountSpec {
  const parts = spec.split(':');
  // `-v /path`: an anonymous volume there (source '': made at create, anon-volumes.ts).
  if (parts.length === 1 && isAbsolute(spec)) return { type: 'volume', source: '', destination: checkDestination(spec, `-v ${spec}`), options: ['rbind', 'rprivate'] };
  if (parts.length < 2 || parts.length > 3 || parts.some((p, i) => p === '' && i < 2)) {
    throw usage(`invalid volume ${JSON.stringify(spec)}: use -v HOST-PATH:CONTAINER-PATH[:ro|rw]`);
  }
  const [src, dst, mode = 'rw'] = parts as [string, string, string?];
  const opts = mode.split(',');
  for (const o of opts) if (!['ro', 'rw', 'z', 'Z', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(o)) throw usage(`invalid volume ${JSON.stringify(spec)}: unknown mode ${JSON.stringify(o)}`);
  const options = ['rbind', 'rprivate', ...(opts.includes('ro') ? ['ro'] : [])];
  if (!isAbsolute(src) && !src.startsWith('.')) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(src)) throw usage(`invalid volume ${JSON.stringify(spec)}: ${JSON.stringify(src)} is neither an absolute host path nor a volume name`);
    return { type: 'volume', source: src, destination: checkDestination(dst!, `-v ${spec}`), options };
  }
  return { type: 'bind', source: bindSource(src, `-v ${spec}`), destination: checkDestination(dst!, `-v ${spec}`), options };
}

/** `--mount type=bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…]`. */
export function parseMount(spec: string): MountSpec {
  const kv = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    kv.set(eq < 0 ? part : part.slice(0, eq), eq < 0 ? 'true' : part.slice(eq + 1));
  }
  const type = kv.get('type') ?? 'volume';
  const dst = kv.get('target') ?? kv.get('destination') ?? kv.get('dst');
  if (!dst) throw usage(`--mount ${spec}: target is required`);
  const ro = ['readonly', 'ro'].some((k) => kv.has(k) && kv.get(k) !== 'false');
  if (type === 'bind') {
    const src = kv.get('source') ?? kv.get('src');
    if (!src) throw usage(`--mount ${spec}: a bind mount needs source=HOST-PATH`);
    return { type: 'bind', source: bindSource(src, `--mount ${spec}`), destination: checkDestination(dst, `--mount ${spec}`), options: ['rbind', 'rprivate', ...(ro ? ['ro'] : [])] };
  }
  if (type === 'tmpfs') {
    const opts = ['nosuid', 'nodev', 'noexec'];
    if (kv.has('tmpfs-size')) opts.push(`size=${parseSize('mount tmpfs-size', kv.get('tmpfs-size')!)}`);
    if (kv.has('tmpfs-mode')) opts.push(`mode=${kv.get('tmpfs-mode')}`);
    if (ro) opts.push('ro');
    return { type: 'tmpfs', source: 'tmpfs', destination: checkDestination(dst, `--mount ${spec}`), options: opts };
  }
  if (type === 'volume') {
    const src = kv.get('source') ?? kv.get('src');
    return { type: 'volume', source: src ?? '', destination: checkDestination(dst, `--mount ${spec}`), options: ['rbind', 'rprivate', ...(ro ? ['ro'] : [])] };
  }
  throw usage(`--mount ${spec}: unknown type ${JSON.stringify(type)} (bind, tmpfs)`);
}

/** `--tmpfs /path[:opts]`: docker's default options noexec,nosuid,nodev. */
export function parseTmpfs(spec: string): MountSpec {
  const colon = spec.indexOf(':');
  const dst = colon < 0 ? spec : spec.slice(0, colon);
  const extra = colon < 0 ? [] : spec.slice(colon + 1).split(',').filter(Boolean);
  const opts = ['noexec', 'nosuid', 'nodev'].filter((o) => !extra.some((e) => e === o.replace(/^no/, '') || e === o));
  return { type: 'tmpfs', source: 'tmpfs', destination: checkDestination(dst, `--tmpfs ${spec}`), options: [...opts, ...extra] };
}

/** `--ulimit nofile=1024[:2048]`. */
export function parseUlimit(spec: string): Ulimit {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(spec);
  if (!m) throw usage(`invalid ulimit ${JSON.stringify(spec)}: use NAME=SOFT[:HARD], e.g. nofile=1024:2048`);
  const names = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack', 'as'];
  if (!names.includes(m[1]!)) throw usage(`invalid ulimit ${JSON.stringify(spec)}: unknown name ${m[1]} (${names.join(', ')})`);
  const soft = Number(m[2]);
  const hard = m[3] === undefined ? soft : Number(m[3]);
  if (soft > hard && hard !== -1) throw usage(`invalid ulimit ${JSON.stringify(spec)}: the soft limit exceeds the hard limit`);
  return { name: m[1]!, soft: soft === -1 ? 2 ** 64 - 1 : soft, hard: hard === -1 ? 2 ** 64 - 1 : hard };
}

/** `--security-opt` values: no-new-privileges[:true|false], seccomp=unconfined|FILE. */
export function parseSecurityOpts(values: string[]): { noNewPrivileges: boolean; seccomp?: string } {
  let nnp = false;
  let seccomp: string | undefined;
  for (const v of values) {
    if (v === 'no-new-privileges' || v === 'no-new-privileges:true' || v === 'no-new-privileges=true') nnp = true;
    else if (v === 'no-new-privileges:false' || v === 'no-new-privileges=false') nnp = false;
    else if (v.startsWith('seccomp=') || v.startsWith('seccomp:')) {
      const f = v.slice(8);
      if (f === 'unconfined') seccomp = 'unconfined';
      else {
        try {
          if (!statSync(f).isFile()) throw new Error('not a file');
          seccomp = readFileSync(f, 'utf8');
        } catch (err) {
          throw usage(`--security-opt ${v}: cannot read the profile: ${(err as Error).message}`);
        }
      }
    } else if (v.startsWith('label=') || v.startsWith('apparmor=')) {
      // No SELinux or AppArmor here: docker ignores these without the LSM as well.
    } else throw usage(`invalid --security-opt ${JSON.stringify(v)}: use no-new-privileges or seccomp=unconfined|FILE`);
  }
  return { noNewPrivileges: nnp, ...(seccomp !== undefined ? { seccomp } : {}) };
}

export function parseCpus(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw usage(`invalid --cpus ${JSON.stringify(v)}: a positive number such as 1.5`);
  return n;
}

export function parseLabels(entries: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf('=');
    out[eq < 0 ? e : e.slice(0, eq)] = eq < 0 ? '' : e.slice(eq + 1);
  }
  return out;
}

const SIGNALS = ['HUP', 'INT', 'QUIT', 'ILL', 'TRAP', 'ABRT', 'BUS', 'FPE', 'KILL', 'USR1', 'SEGV', 'USR2', 'PIPE', 'ALRM', 'TERM',
  'STKFLT', 'CHLD', 'CONT', 'STOP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'XCPU', 'XFSZ', 'VTALRM', 'PROF', 'WINCH', 'IO', 'PWR', 'SYS'];

/** SIGTERM, TERM, 15 → the number. */
export function signalNumber(s: string): number {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) throw usage(`invalid signal ${s}`);
    return n;
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  const i = SIGNALS.indexOf(name);
  if (i < 0) {
    const rt = /^RTMIN(?:\+(\d+))?$/.exec(name);
    if (rt) return 34 + Number(rt[1] ?? 0);
    throw usage(`invalid signal ${JSON.stringify(s)}`);
  }
  return i + 1;
}

/** `--network` values: none, host, bridge (default), container:NAME, or a user network's name. */
export function parseNetworkMode(value: string): string {
  if (value === 'default') return 'bridge';
  if (value.startsWith('container:')) {
    if (value.length === 'container:'.length) throw usage('--network container: needs a container name or id (container:NAME)');
    return value;
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(value)) throw usage(`--network ${JSON.stringify(value)}: use none, host, bridge, container:NAME or a network's name`);
  return value;
}

/** Whether the container gets an interface on a bridge network (its own namespace, attached at start). */
export function usesBridge(network: string): boolean {
  return network !== 'none' && network !== 'host' && !network.startsWith('container:');
}
