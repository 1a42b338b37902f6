/**
 * Which cgroup hierarchy serves each controller on this host: cgroup v1 hierarchies,
 * a cgroup2 hierarchy, or both ("hybrid": v1 controllers under /sys/fs/cgroup/<name> and
 * cgroup2 at /sys/fs/cgroup/unified holding whatever no v1 hierarchy took). Decided from
 * /proc/self/mountinfo, /proc/cgroups and the cgroup2 root's cgroup.controllers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMountinfo, selfMounts, type MountinfoEntry } from '../mountinfo.js';

export interface CgroupLayout {
  /** v1 controller → the mount point of the hierarchy it is attached to. */
  v1: Record<string, string>;
  /** The cgroup2 mount point and the controllers its root offers. */
  v2?: { mountPoint: string; controllers: string[] };
  /**
   * The calling process's own cgroup (from /proc/self/cgroup): per v1 controller, and the
   * cgroup2 one under the key ''. Relative cgroupsPath values are resolved against it.
   */
  own: Record<string, string>;
}

/** Kernel controller names that can be bound to a v1 hierarchy (named hierarchies excluded). */
export const V1_CONTROLLERS = [
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'devices',
  'freezer',
  'blkio',
  'pids',
  'hugetlb',
  'net_cls',
  'net_prio',
  'perf_event',
  'rdma',
  'misc',
] as const;

/** /proc/self/cgroup: "id:controllers:path" → controller → path ('' for the cgroup2 line). */
export function parseProcCgroup(text: string): Record<string, string> {
  const own: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (m === null) continue;
    const [, id, controllers, path] = m;
    if (id === '0' && controllers === '') own[''] = path!;
    else for (const c of controllers!.split(',')) own[c] = path!;
  }
  return own;
}

/** Builds the layout from the texts of mountinfo and /proc/self/cgroup (pure; for tests). */
export function layoutFrom(
  mountinfo: string | readonly MountinfoEntry[],
  procSelfCgroup: string,
  readV2Controllers: (mountPoint: string) => string[],
): CgroupLayout {
  const layout: CgroupLayout = { v1: {}, own: parseProcCgroup(procSelfCgroup) };
  for (const m of typeof mountinfo === 'string' ? parseMountinfo(mountinfo) : mountinfo) {
    if (m.fsType === 'cgroup') {
      for (const opt of m.superOptions) {
        if ((V1_CONTROLLERS as readonly string[]).includes(opt) && layout.v1[opt] === undefined) {
          layout.v1[opt] = m.mountPoint;
        }
      }
    } else if (m.fsType === 'cgroup2' && layout.v2 === undefined) {
      layout.v2 = { mountPoint: m.mountPoint, controllers: readV2Controllers(m.mountPoint) };
    }
  }
  return layout;
}

let cached: CgroupLayout | undefined;

/** This host's layout (read once per process). */
export function hostCgroupLayout(): CgroupLayout {
  cached ??= layoutFrom(selfMounts(), readFileSync('/proc/self/cgroup', 'utf8'), (mp) => {
    try {
      return readFileSync(join(mp, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  });
  return cached;
}

/** The v2 name of a v1 controller where they differ. */
export function v2Name(controller: string): string {
  return controller === 'blkio' ? 'io' : controller === 'cpuacct' ? 'cpu' : controller;
}

export type CgroupVersion = 1 | 2;

/**
 * Where a controller lives: v1 when a v1 hierarchy has it, else v2 when the cgroup2 root
 * offers it, else nowhere. 'freezer' on v2 is the core cgroup.freeze file (always there).
 */
export function versionOf(layout: CgroupLayout, controller: string): CgroupVersion | undefined {
  if (layout.v1[controller] !== undefined) return 1;
  if (layout.v2 === undefined) return undefined;
  if (controller === 'freezer') return 2;
  return layout.v2.controllers.includes(v2Name(controller)) ? 2 : undefined;
}

export interface CgroupHierarchy {
  mountpoint: string;
  type: 'cgroup' | 'cgroup2';
  /** Super options of a v1 hierarchy: its controllers (e.g. "cpu,cpuacct" or "name=systemd"). */
  options: string;
}

let hierarchies: CgroupHierarchy[] | undefined;

/** The cgroup hierarchies mounted on this host (v1, v2 or both: hybrid), in mount order. */
export function cgroupMounts(): CgroupHierarchy[] {
  hierarchies ??= selfMounts().flatMap((m): CgroupHierarchy[] => {
    if (m.fsType !== 'cgroup' && m.fsType !== 'cgroup2') return [];
    const options = m.superOptions.filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('nsdelegate') && !o.startsWith('memory_')).join(',');
    return [{ mountpoint: m.mountPoint, type: m.fsType, options }];
  });
  return hierarchies;
}
