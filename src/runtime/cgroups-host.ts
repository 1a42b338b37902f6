/**
 * Which cgroup hierarchy serves each controller on this host: cgroup v1 hierarchies,
 * a cgroup2 hierarchy, or both ("hybrid": v1 controllers under /sys/fs/cgroup/<name> and
 * cgroup2 at /sys/fs/cgroup/unified holding whatever no v1 hierarchy took). Decided from
 * /proc/self/mountinfo, /proc/cgroups and the cgroup2 root's cgroup.controllers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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

interface MountinfoEntry {
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

/** /proc/self/mountinfo: "id parent maj:min root mountpoint opts [optional…] - fstype source superopts". */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0 || fields.length < sep + 4) continue;
    out.push({
      mountPoint: unescapeMountinfo(fields[4]!),
      fsType: fields[sep + 1]!,
      superOptions: fields[sep + 3]!.split(','),
    });
  }
  return out;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

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
  mountinfo: string,
  procSelfCgroup: string,
  readV2Controllers: (mountPoint: string) => string[],
): CgroupLayout {
  const layout: CgroupLayout = { v1: {}, own: parseProcCgroup(procSelfCgroup) };
  for (const m of parseMountinfo(mountinfo)) {
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

let mountinfo: string | undefined;

/** /proc/self/mountinfo, read once per process (the planner's cgroup mounts use it too). */
export function selfMountinfo(): string {
  mountinfo ??= readFileSync('/proc/self/mountinfo', 'utf8');
  return mountinfo;
}

let cached: CgroupLayout | undefined;

/** This host's layout (read once per process). */
export function hostCgroupLayout(): CgroupLayout {
  cached ??= layoutFrom(selfMountinfo(), readFileSync('/proc/self/cgroup', 'utf8'), (mp) => {
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
