/**
 * A container's resource usage read from its cgroup files, in the shape runc's `events`
 * prints (runc types/events.go: Stats, which containerd's shim decodes): cpu, cpuset, memory,
 * pids, blkio and hugetlb, from cgroup v1 controllers or the cgroup2 directory, whichever holds
 * each controller. Counters are uint64 in the kernel: they are kept as bigint, and printed
 * exactly by statsJson. As in runc, zero values of "omitempty" fields are left out.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UNIFIED } from './manager.js';

type U64 = bigint;
type Obj = Record<string, unknown>;

/** cgroup v1 writes "no limit" as this (PAGE_COUNTER_MAX × 4096 on x86_64); v2 writes "max". */
const UNLIMITED = 0xffffffffffffffffn;

function read(dir: string | undefined, file: string): string | undefined {
  if (dir === undefined) return undefined;
  try {
    return readFileSync(join(dir, file), 'utf8').trim();
  } catch {
    return undefined;
  }
}

function num(dir: string | undefined, file: string): U64 | undefined {
  const t = read(dir, file);
  if (t === undefined || t === '') return undefined;
  if (t === 'max') return UNLIMITED;
  return /^-?\d+$/.test(t) ? BigInt(t) : undefined;
}

/** "key value" lines (memory.stat, cpu.stat, cpuacct.stat, memory.events) → key → value. */
function keyed(dir: string | undefined, file: string): Record<string, U64> | undefined {
  const t = read(dir, file);
  if (t === undefined) return undefined;
  const out: Record<string, U64> = {};
  for (const line of t.split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = BigInt(v);
  }
  return out;
}

/** The same record with its keys sorted (runc prints Go maps so). */
function sorted(o: Record<string, U64>): Record<string, U64> | undefined {
  const keys = Object.keys(o).sort();
  return keys.length ? Object.fromEntries(keys.map((k) => [k, o[k]!])) : undefined;
}

/** Puts value at key unless it is undefined or zero (Go's omitempty). */
function put(o: Obj, key: string, value: U64 | unknown[] | Obj | undefined): void {
  if (value === undefined || value === 0n) return;
  if (Array.isArray(value) && value.length === 0) return;
  o[key] = value;
}

/** "0-3,5" → [0, 1, 2, 3, 5]. */
function cpuList(text: string | undefined): number[] {
  const out: number[] = [];
  for (const part of (text ?? '').split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    for (let i = a!; i <= (b ?? a!); i++) out.push(i);
  }
  return out;
}

const USER_HZ = 100n; // cpuacct.stat is in USER_HZ ticks (runc assumes 100 as well)
const NS = 1_000_000_000n;

function cpuStats(p: Record<string, string>): Obj {
  const usage: Obj = {};
  const throttling: Obj = {};
  const acct = p.cpuacct;
  if (acct !== undefined && read(acct, 'cpuacct.usage') !== undefined) {
    put(usage, 'total', num(acct, 'cpuacct.usage'));
    const list = (f: string) => (read(acct, f) ?? '').split(/\s+/).filter(Boolean).map(BigInt);
    put(usage, 'percpu', list('cpuacct.usage_percpu'));
    put(usage, 'percpu_kernel', list('cpuacct.usage_percpu_sys'));
    put(usage, 'percpu_user', list('cpuacct.usage_percpu_user'));
    const st = keyed(acct, 'cpuacct.stat') ?? {};
    usage.kernel = ((st.system ?? 0n) * NS) / USER_HZ;
    usage.user = ((st.user ?? 0n) * NS) / USER_HZ;
    const cs = keyed(p.cpu, 'cpu.stat') ?? {};
    put(throttling, 'periods', cs.nr_periods);
    put(throttling, 'throttledPeriods', cs.nr_throttled);
    put(throttling, 'throttledTime', cs.throttled_time);
  } else {
    const cs = keyed(p[UNIFIED], 'cpu.stat') ?? {};
    put(usage, 'total', cs.usage_usec !== undefined ? cs.usage_usec * 1000n : undefined);
    usage.kernel = (cs.system_usec ?? 0n) * 1000n;
    usage.user = (cs.user_usec ?? 0n) * 1000n;
    put(throttling, 'periods', cs.nr_periods);
    put(throttling, 'throttledPeriods', cs.nr_throttled);
    put(throttling, 'throttledTime', cs.throttled_usec !== undefined ? cs.throttled_usec * 1000n : undefined);
  }
  return { usage, throttling };
}

function cpusetStats(p: Record<string, string>): Obj {
  const out: Obj = {};
  const v1 = p.cpuset;
  if (v1 !== undefined && read(v1, 'cpuset.cpus') !== undefined) {
    put(out, 'cpus', cpuList(read(v1, 'cpuset.cpus')));
    out.cpu_exclusive = num(v1, 'cpuset.cpu_exclusive') ?? 0n;
    put(out, 'mems', cpuList(read(v1, 'cpuset.mems')));
    for (const f of ['mem_hardwall', 'mem_exclusive', 'memory_migrate', 'memory_spread_page', 'memory_spread_slab', 'memory_pressure', 'sched_load_balance', 'sched_relax_domain_level']) {
      out[f] = num(v1, `cpuset.${f}`) ?? 0n;
    }
    return out;
  }
  put(out, 'cpus', cpuList(read(p[UNIFIED], 'cpuset.cpus.effective')));
  put(out, 'mems', cpuList(read(p[UNIFIED], 'cpuset.mems.effective')));
  return out;
}

/** One runc MemoryEntry: limit and failcnt always, usage and max when not zero. */
function memEntry(limit: U64 | undefined, usage: U64 | undefined, max: U64 | undefined, failcnt: U64 | undefined): Obj {
  const e: Obj = { limit: limit ?? 0n };
  put(e, 'usage', usage);
  put(e, 'max', max);
  e.failcnt = failcnt ?? 0n;
  return e;
}

function memoryStats(p: Record<string, string>): Obj {
  const out: Obj = {};
  const v1 = p.memory;
  if (v1 !== undefined && read(v1, 'memory.usage_in_bytes') !== undefined) {
    const raw = keyed(v1, 'memory.stat') ?? {};
    put(out, 'cache', raw.cache);
    const entry = (prefix: string) =>
      memEntry(num(v1, `${prefix}.limit_in_bytes`), num(v1, `${prefix}.usage_in_bytes`), num(v1, `${prefix}.max_usage_in_bytes`), num(v1, `${prefix}.failcnt`));
    out.usage = entry('memory');
    out.swap = entry('memory.memsw');
    out.kernel = entry('memory.kmem');
    out.kernelTCP = entry('memory.kmem.tcp');
    put(out, 'raw', sorted(raw));
    return out;
  }
  const dir = p[UNIFIED];
  const raw = keyed(dir, 'memory.stat') ?? {};
  put(out, 'cache', raw.file);
  const current = num(dir, 'memory.current');
  const limit = num(dir, 'memory.max');
  const events = keyed(dir, 'memory.events') ?? {};
  out.usage = memEntry(limit, current, num(dir, 'memory.peak'), events.max);
  // runc (cgroup v2): swap is reported as memory+swap, as cgroup v1's memsw.
  const swapCur = num(dir, 'memory.swap.current');
  const swapMax = num(dir, 'memory.swap.max');
  const plus = (a: U64 | undefined, b: U64 | undefined) => (a === undefined || b === undefined ? undefined : a === UNLIMITED || b === UNLIMITED ? UNLIMITED : a + b);
  out.swap = memEntry(plus(swapMax, limit), plus(swapCur, current), undefined, (keyed(dir, 'memory.swap.events') ?? {}).max);
  put(out, 'raw', sorted(raw));
  return out;
}

function pidsStats(p: Record<string, string>): Obj {
  const dir = read(p.pids, 'pids.current') !== undefined ? p.pids : p[UNIFIED];
  const out: Obj = {};
  put(out, 'current', num(dir, 'pids.current'));
  const max = num(dir, 'pids.max');
  put(out, 'limit', max === UNLIMITED ? undefined : max);
  return out;
}

/** One BlkioEntry: major, minor, op and value, each left out when empty. */
function blkEntry(major: U64, minor: U64, op: string, value: U64): Obj {
  const e: Obj = {};
  put(e, 'major', major);
  put(e, 'minor', minor);
  if (op) e.op = op;
  put(e, 'value', value);
  return e;
}

function blkioStats(p: Record<string, string>): Obj {
  const out: Obj = {};
  const v1 = p.blkio;
  if (read(v1, 'blkio.throttle.io_serviced') !== undefined) {
    // "MAJ:MIN Op value" lines; runc reads the CFQ/BFQ files and falls back to the throttle ones.
    const entries = (file: string): Obj[] => (read(v1, file) ?? '').split('\n').flatMap((line) => {
      const m = /^(\d+):(\d+) (\S+) (\d+)$/.exec(line);
      return m ? [blkEntry(BigInt(m[1]!), BigInt(m[2]!), m[3]!, BigInt(m[4]!))] : [];
    });
    const pick = (name: string) => {
      const own = entries(`blkio.${name}_recursive`);
      return own.length ? own : entries(`blkio.throttle.${name}`);
    };
    put(out, 'ioServiceBytesRecursive', pick('io_service_bytes'));
    put(out, 'ioServicedRecursive', pick('io_serviced'));
    return out;
  }
  // cgroup v2 io.stat: "MAJ:MIN rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…".
  const bytes: Obj[] = [];
  const ios: Obj[] = [];
  for (const line of (read(p[UNIFIED], 'io.stat') ?? '').split('\n')) {
    const [dev, ...kv] = line.split(' ');
    const mm = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!mm) continue;
    const f = Object.fromEntries(kv.map((x) => x.split('=')).map(([k, v]) => [k, BigInt(v ?? 0)]));
    const [major, minor] = [BigInt(mm[1]!), BigInt(mm[2]!)];
    bytes.push(blkEntry(major, minor, 'Read', f.rbytes ?? 0n), blkEntry(major, minor, 'Write', f.wbytes ?? 0n));
    ios.push(blkEntry(major, minor, 'Read', f.rios ?? 0n), blkEntry(major, minor, 'Write', f.wios ?? 0n));
  }
  put(out, 'ioServiceBytesRecursive', bytes);
  put(out, 'ioServicedRecursive', ios);
  return out;
}

function hugetlbStats(p: Record<string, string>): Obj {
  const out: Obj = {};
  const v1 = p.hugetlb;
  const dir = v1 ?? p[UNIFIED];
  let files: string[] = [];
  try { files = readdirSync(dir ?? '/nonexistent'); } catch { /* no hierarchy */ }
  for (const f of files) {
    const m = v1 !== undefined ? /^hugetlb\.([^.]+)\.usage_in_bytes$/.exec(f) : /^hugetlb\.([^.]+)\.current$/.exec(f);
    if (!m) continue;
    const size = m[1]!;
    const e: Obj = {};
    if (v1 !== undefined) {
      put(e, 'usage', num(dir, `hugetlb.${size}.usage_in_bytes`));
      put(e, 'max', num(dir, `hugetlb.${size}.max_usage_in_bytes`));
      e.failcnt = num(dir, `hugetlb.${size}.failcnt`) ?? 0n;
    } else {
      put(e, 'usage', num(dir, `hugetlb.${size}.current`));
      e.failcnt = (keyed(dir, `hugetlb.${size}.events`) ?? {}).max ?? 0n;
    }
    out[size] = e;
  }
  return out;
}

/** runc's Stats for the cgroup directories of a container (controller → dir, 'unified'). */
export function containerStats(paths: Record<string, string>): Obj {
  return {
    cpu: cpuStats(paths),
    cpuset: cpusetStats(paths),
    memory: memoryStats(paths),
    pids: pidsStats(paths),
    blkio: blkioStats(paths),
    hugetlb: hugetlbStats(paths),
    intel_rdt: {},
    network_interfaces: null,
  };
}

/** How many times the container ran out of memory so far (for `events`' "oom" events). */
export function oomCount(paths: Record<string, string>): U64 {
  const v1 = keyed(paths.memory, 'memory.oom_control');
  if (v1?.oom_kill !== undefined) return v1.oom_kill;
  return (keyed(paths[UNIFIED], 'memory.events') ?? {}).oom_kill ?? 0n;
}

/** JSON with every bigint printed as the exact integer (uint64 counters exceed 2^53). */
export function statsJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000big${v}\u0000` : v))
    .replace(/"\\u0000big(-?\d+)\\u0000"/g, '$1');
}
