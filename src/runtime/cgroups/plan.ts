/**
 * linux.resources → the cgroup files to write, for v1 or v2 per controller (config-linux.md
 * "Control groups"; kernel Documentation/admin-guide/cgroup-v1/*.rst and cgroup-v2.rst).
 * Pure: the caller supplies where each controller lives and writes the files in order.
 * What the chosen cgroup version cannot express is an UNSUPPORTED error, never skipped.
 */
import { BerthError } from '../../base/errors.js';
import type { CgroupVersion } from './host.js';
import type { LinuxBlockIO, LinuxCPU, LinuxMemory, LinuxResources, LinuxThrottleDevice } from '../spec/types.js';

export interface CgroupWrite {
  /** The controller whose hierarchy holds the file (the v1 name; v2 writes go to the unified dir). */
  controller: string;
  version: CgroupVersion;
  file: string;
  value: string;
  /** Written instead when `file` does not exist in the cgroup (kernel or scheduler lacks it). */
  fallback?: { file: string; value: string };
}

export type VersionOf = (controller: string) => CgroupVersion | undefined;

function unsupported(field: string, message: string): BerthError {
  return new BerthError('UNSUPPORTED', `linux.resources.${field}: ${message}`);
}

function invalid(field: string, message: string): BerthError {
  return new BerthError('RUNTIME_CONFIG_INVALID', `linux.resources.${field}: ${message}`);
}

/** The version serving `controller`, or an error naming the field that needs it. */
function need(versionOf: VersionOf, controller: string, field: string): CgroupVersion {
  const v = versionOf(controller);
  if (v === undefined) {
    throw unsupported(field, `the ${controller} cgroup controller is not available on this host (neither a cgroup v1 hierarchy nor cgroup2 offers it); remove the setting`);
  }
  return v;
}

/** cgroup v1 shares (2-262144) → v2 cpu.weight (1-10000), as runc and crun convert. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

/** blkio.weight (10-1000) → io.weight (1-10000), as runc converts. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return Math.floor(1 + ((weight - 10) * 9999) / 990);
}

/** OCI memory.swap is memory+swap; v2 memory.swap.max is swap alone. */
export function swapToV2(swap: number, limit: number | undefined): string {
  if (swap === -1) return 'max';
  if (limit === undefined || limit === -1) {
    throw invalid('memory.swap', 'a swap limit needs a memory limit on cgroup v2 (swap is memory+swap); set memory.limit too');
  }
  if (swap < limit) {
    throw invalid('memory.swap', `memory+swap (${swap}) is smaller than the memory limit (${limit}); swap must be at least limit`);
  }
  return String(swap - limit);
}

const maxOr = (n: number): string => (n === -1 ? 'max' : String(n));
const v1Value = (n: number): string => String(n);

/**
 * runc and crun read 0 as "not set" for these fields (a 0-byte memory limit or 0 CPU
 * shares cannot be meant); berth does the same so that engines' configs mean the same.
 */
function zeroAsUnset(r: LinuxResources): LinuxResources {
  const drop = <T extends object>(o: T | undefined, keys: (keyof T)[]): T | undefined => {
    if (o === undefined) return undefined;
    const copy = { ...o };
    for (const k of keys) if ((copy[k] as unknown) === 0) delete copy[k];
    return copy;
  };
  return {
    ...r,
    memory: drop(r.memory, ['limit', 'reservation', 'swap', 'kernel', 'kernelTCP']),
    cpu: drop(r.cpu, ['shares', 'quota', 'period']),
    blockIO: drop(r.blockIO, ['weight', 'leafWeight']),
  };
}

export interface PlanOptions {
  /**
   * The caller attaches the cgroup v2 device filter itself (compileDeviceFilter in
   * devices.ts, loaded with bpf(2) by the executor): devices produce no writes.
   */
  devicesByBpf?: boolean;
}

export function planResourceWrites(resources: LinuxResources | undefined, versionOf: VersionOf, opts: PlanOptions = {}): CgroupWrite[] {
  if (resources === undefined) return [];
  resources = zeroAsUnset(resources);
  const out: CgroupWrite[] = [];
  if (resources.memory !== undefined) planMemory(resources.memory, versionOf, out);
  if (resources.cpu !== undefined) planCpu(resources.cpu, versionOf, out);
  if (resources.pids !== undefined) {
    const v = need(versionOf, 'pids', 'pids');
    const limit = resources.pids.limit;
    // config-linux.md: -1 is "max"; 0 is a valid limit.
    out.push({ controller: 'pids', version: v, file: 'pids.max', value: limit < 0 ? 'max' : String(limit) });
  }
  if (resources.blockIO !== undefined) planBlockIO(resources.blockIO, versionOf, out);
  for (const [i, h] of (resources.hugepageLimits ?? []).entries()) {
    if (!/^[1-9][0-9]*[KMG]B$/.test(h.pageSize)) {
      throw invalid(`hugepageLimits[${i}].pageSize`, `${JSON.stringify(h.pageSize)} is not <size><K|M|G>B (e.g. 2MB)`);
    }
    const v = need(versionOf, 'hugetlb', `hugepageLimits[${i}]`);
    // Reservation accounting when the kernel has it (config-linux.md "Huge page limits").
    const [rsvd, plain] =
      v === 1
        ? [`hugetlb.${h.pageSize}.rsvd.limit_in_bytes`, `hugetlb.${h.pageSize}.limit_in_bytes`]
        : [`hugetlb.${h.pageSize}.rsvd.max`, `hugetlb.${h.pageSize}.max`];
    const value = String(h.limit);
    out.push({ controller: 'hugetlb', version: v, file: rsvd, value, fallback: { file: plain, value } });
  }
  const v1Devices = versionOf('devices') === 1;
  if (resources.devices !== undefined && resources.devices.length > 0 && !v1Devices) {
    // cgroup v2 has no devices files: an eBPF program (devices.ts) does the job.
    if (versionOf('') !== 2) need(versionOf, 'devices', 'devices');
    if (!opts.devicesByBpf) {
      throw unsupported('devices', 'on cgroup v2, device access control is an eBPF program that the executor must attach (compileDeviceFilter); this caller does not, so remove linux.resources.devices or run where the v1 devices controller is mounted');
    }
  }
  if (resources.devices !== undefined && resources.devices.length > 0 && v1Devices) {
    for (const [i, d] of resources.devices.entries()) {
      const type = d.type ?? 'a';
      if (!['a', 'c', 'b'].includes(type)) throw invalid(`devices[${i}].type`, `${JSON.stringify(type)} is not a, c or b`);
      const access = d.access ?? 'rwm';
      if (!/^[rwm]{1,3}$/.test(access)) throw invalid(`devices[${i}].access`, `${JSON.stringify(access)} is not made of r, w and m`);
      const num = (n: number | undefined): string => (n === undefined || n === -1 ? '*' : String(n));
      out.push({
        controller: 'devices',
        version: 1,
        file: d.allow ? 'devices.allow' : 'devices.deny',
        value: `${type} ${num(d.major)}:${num(d.minor)} ${access}`,
      });
    }
  }
  if (resources.network !== undefined) {
    const net = resources.network;
    if (net.classID !== undefined) {
      const v = need(versionOf, 'net_cls', 'network.classID');
      if (v === 2) throw unsupported('network.classID', 'net_cls exists only in cgroup v1');
      out.push({ controller: 'net_cls', version: 1, file: 'net_cls.classid', value: String(net.classID) });
    }
    for (const [i, p] of (net.priorities ?? []).entries()) {
      const v = need(versionOf, 'net_prio', `network.priorities[${i}]`);
      if (v === 2) throw unsupported(`network.priorities[${i}]`, 'net_prio exists only in cgroup v1');
      out.push({ controller: 'net_prio', version: 1, file: 'net_prio.ifpriomap', value: `${p.name} ${p.priority}` });
    }
  }
  for (const [dev, r] of Object.entries(resources.rdma ?? {})) {
    const v = need(versionOf, 'rdma', `rdma.${dev}`);
    const parts = [`${dev}`];
    if (r.hcaHandles !== undefined) parts.push(`hca_handle=${r.hcaHandles}`);
    if (r.hcaObjects !== undefined) parts.push(`hca_object=${r.hcaObjects}`);
    if (parts.length > 1) out.push({ controller: 'rdma', version: v, file: 'rdma.max', value: parts.join(' ') });
  }
  for (const [key, value] of Object.entries(resources.unified ?? {})) {
    out.push(planUnified(key, value, versionOf));
  }
  return out;
}

function planMemory(m: LinuxMemory, versionOf: VersionOf, out: CgroupWrite[]): void {
  const v = need(versionOf, 'memory', 'memory');
  const w = (file: string, value: string): void => {
    out.push({ controller: 'memory', version: v, file, value });
  };
  if (m.swappiness !== undefined && (m.swappiness < 0 || m.swappiness > 100)) {
    throw invalid('memory.swappiness', `${m.swappiness} is outside 0-100`);
  }
  if (v === 1) {
    // memory.limit_in_bytes must stay ≤ memory.memsw.limit_in_bytes: the writer retries
    // in the other order when the kernel refuses (see CgroupManager.apply).
    if (m.limit !== undefined) w('memory.limit_in_bytes', v1Value(m.limit));
    if (m.swap !== undefined) w('memory.memsw.limit_in_bytes', v1Value(m.swap));
    if (m.reservation !== undefined) w('memory.soft_limit_in_bytes', v1Value(m.reservation));
    if (m.kernel !== undefined) w('memory.kmem.limit_in_bytes', v1Value(m.kernel));
    if (m.kernelTCP !== undefined) w('memory.kmem.tcp.limit_in_bytes', v1Value(m.kernelTCP));
    if (m.swappiness !== undefined) w('memory.swappiness', String(m.swappiness));
    if (m.disableOOMKiller === true) w('memory.oom_control', '1');
    if (m.useHierarchy !== undefined) w('memory.use_hierarchy', m.useHierarchy ? '1' : '0');
    return;
  }
  if (m.kernel !== undefined) throw unsupported('memory.kernel', 'cgroup v2 has no kernel memory limit (kernel memory is part of memory.max); remove it');
  if (m.kernelTCP !== undefined) throw unsupported('memory.kernelTCP', 'cgroup v2 has no separate TCP buffer limit; remove it');
  if (m.swappiness !== undefined) throw unsupported('memory.swappiness', 'cgroup v2 has no per-cgroup swappiness; remove it');
  if (m.disableOOMKiller === true) throw unsupported('memory.disableOOMKiller', 'cgroup v2 cannot disable the OOM killer per cgroup; remove it');
  if (m.useHierarchy === false) throw unsupported('memory.useHierarchy', 'cgroup v2 accounting is always hierarchical');
  if (m.reservation !== undefined) w('memory.low', maxOr(m.reservation));
  if (m.limit !== undefined) w('memory.max', maxOr(m.limit));
  if (m.swap !== undefined) w('memory.swap.max', swapToV2(m.swap, m.limit));
}

function planCpu(c: LinuxCPU, versionOf: VersionOf, out: CgroupWrite[]): void {
  if (c.quota !== undefined && c.quota > 0 && c.burst !== undefined && c.burst > c.quota) {
    throw invalid('cpu.burst', `burst (${c.burst}) is larger than quota (${c.quota}); config-linux.md requires burst ≤ quota`);
  }
  const cfs =
    c.shares !== undefined || c.quota !== undefined || c.period !== undefined || c.burst !== undefined || c.idle !== undefined ||
    c.realtimePeriod !== undefined || c.realtimeRuntime !== undefined;
  if (cfs) {
    const v = need(versionOf, 'cpu', 'cpu');
    const w = (file: string, value: string): void => {
      out.push({ controller: 'cpu', version: v, file, value });
    };
    if (v === 1) {
      if (c.shares !== undefined) w('cpu.shares', String(c.shares));
      // Period before quota: a quota is checked against the current period.
      if (c.period !== undefined) w('cpu.cfs_period_us', String(c.period));
      if (c.quota !== undefined) w('cpu.cfs_quota_us', String(c.quota));
      if (c.burst !== undefined) w('cpu.cfs_burst_us', String(c.burst));
      if (c.realtimePeriod !== undefined) w('cpu.rt_period_us', String(c.realtimePeriod));
      if (c.realtimeRuntime !== undefined) w('cpu.rt_runtime_us', String(c.realtimeRuntime));
      if (c.idle !== undefined) w('cpu.idle', String(c.idle));
    } else {
      if (c.realtimePeriod !== undefined || c.realtimeRuntime !== undefined) {
        throw unsupported('cpu.realtimeRuntime', 'cgroup v2 has no realtime CPU bandwidth control; remove realtimePeriod/realtimeRuntime');
      }
      if (c.shares !== undefined) w('cpu.weight', String(sharesToWeight(c.shares)));
      if (c.quota !== undefined || c.period !== undefined) {
        // cpu.max "$MAX $PERIOD"; an unset or non-positive quota is "max".
        const quota = c.quota === undefined || c.quota <= 0 ? 'max' : String(c.quota);
        w('cpu.max', c.period !== undefined ? `${quota} ${c.period}` : quota);
      }
      if (c.burst !== undefined) w('cpu.max.burst', String(c.burst));
      if (c.idle !== undefined) w('cpu.idle', String(c.idle));
    }
  }
  if (c.cpus !== undefined || c.mems !== undefined) {
    const v = need(versionOf, 'cpuset', 'cpu.cpus');
    for (const [key, file] of [['cpus', 'cpuset.cpus'], ['mems', 'cpuset.mems']] as const) {
      const value = c[key];
      if (value === undefined) continue;
      if (!/^[0-9,\- ]*$/.test(value)) throw invalid(`cpu.${key}`, `${JSON.stringify(value)} is not a list like 0-3,7`);
      out.push({ controller: 'cpuset', version: v, file, value });
    }
  }
}

function planBlockIO(b: LinuxBlockIO, versionOf: VersionOf, out: CgroupWrite[]): void {
  const v = need(versionOf, 'blkio', 'blockIO');
  const w = (file: string, value: string, fallback?: { file: string; value: string }): void => {
    out.push({ controller: 'blkio', version: v, file, value, ...(fallback ? { fallback } : {}) });
  };
  const dev = (d: { major: number; minor: number }): string => `${d.major}:${d.minor}`;
  if (v === 1) {
    if (b.weight !== undefined) {
      w('blkio.weight', String(b.weight), { file: 'blkio.bfq.weight', value: String(b.weight) });
    }
    if (b.leafWeight !== undefined) w('blkio.leaf_weight', String(b.leafWeight));
    for (const [i, d] of (b.weightDevice ?? []).entries()) {
      if (d.weight === undefined && d.leafWeight === undefined) {
        throw invalid(`blockIO.weightDevice[${i}]`, 'needs weight or leafWeight (config-linux.md)');
      }
      if (d.weight !== undefined) {
        const line = `${dev(d)} ${d.weight}`;
        w('blkio.weight_device', line, { file: 'blkio.bfq.weight_device', value: line });
      }
      if (d.leafWeight !== undefined) w('blkio.leaf_weight_device', `${dev(d)} ${d.leafWeight}`);
    }
    const throttles: [LinuxThrottleDevice[] | undefined, string][] = [
      [b.throttleReadBpsDevice, 'blkio.throttle.read_bps_device'],
      [b.throttleWriteBpsDevice, 'blkio.throttle.write_bps_device'],
      [b.throttleReadIOPSDevice, 'blkio.throttle.read_iops_device'],
      [b.throttleWriteIOPSDevice, 'blkio.throttle.write_iops_device'],
    ];
    for (const [list, file] of throttles) for (const d of list ?? []) w(file, `${dev(d)} ${d.rate}`);
    return;
  }
  if (b.leafWeight !== undefined || (b.weightDevice ?? []).some((d) => d.leafWeight !== undefined)) {
    throw unsupported('blockIO.leafWeight', 'cgroup v2 has no leaf weights; remove leafWeight');
  }
  // io.bfq.weight takes the v1 range (1-1000) as is; io.weight (1-10000) needs the conversion.
  if (b.weight !== undefined) {
    w('io.bfq.weight', String(b.weight), { file: 'io.weight', value: String(blkioWeightToIoWeight(b.weight)) });
  }
  for (const [i, d] of (b.weightDevice ?? []).entries()) {
    if (d.weight === undefined) throw invalid(`blockIO.weightDevice[${i}]`, 'needs weight');
    w('io.bfq.weight', `${dev(d)} ${d.weight}`, { file: 'io.weight', value: `${dev(d)} ${blkioWeightToIoWeight(d.weight)}` });
  }
  // io.max: one line per device and key.
  const keys: [LinuxThrottleDevice[] | undefined, string][] = [
    [b.throttleReadBpsDevice, 'rbps'],
    [b.throttleWriteBpsDevice, 'wbps'],
    [b.throttleReadIOPSDevice, 'riops'],
    [b.throttleWriteIOPSDevice, 'wiops'],
  ];
  for (const [list, key] of keys) for (const d of list ?? []) w('io.max', `${dev(d)} ${key}=${d.rate}`);
}

/** A linux.resources.unified entry: only for a controller served by cgroup v2. */
function planUnified(key: string, value: string, versionOf: VersionOf): CgroupWrite {
  const field = `unified[${JSON.stringify(key)}]`;
  if (key === '' || key.includes('/') || key.startsWith('.') || key.includes('\0')) {
    throw invalid(field, 'must name a file in the container\'s cgroup directory (no "/", not starting with ".")');
  }
  const dot = key.indexOf('.');
  const prefix = dot > 0 ? key.slice(0, dot) : key;
  const v1Equivalent = prefix === 'io' ? 'blkio' : prefix;
  if (prefix === 'cgroup') {
    if (versionOf('') !== 2) throw unsupported(field, 'there is no cgroup2 hierarchy on this host');
    return { controller: '', version: 2, file: key, value };
  }
  const v = versionOf(v1Equivalent);
  if (v !== 2) {
    // config-linux.md "Unified": MUST error for a controller that is not present.
    throw unsupported(
      field,
      v === 1
        ? `the ${prefix} controller is on a cgroup v1 hierarchy on this host, so unified (cgroup v2) settings cannot apply; use the v1 resource fields`
        : `the ${prefix} controller is not available in cgroup2 on this host`,
    );
  }
  return { controller: v1Equivalent, version: 2, file: key, value };
}
