/** Facts about this host the planner needs (read from /proc). */
import { selfMountinfo } from './cgroups-host.js';

export interface CgroupHierarchy {
  mountpoint: string;
  type: 'cgroup' | 'cgroup2';
  /** Super options of a v1 hierarchy: its controllers (e.g. "cpu,cpuacct" or "name=systemd"). */
  options: string;
}

let cached: CgroupHierarchy[] | undefined;

/** The cgroup hierarchies mounted on this host (v1, v2 or both: hybrid). */
export function cgroupMounts(): CgroupHierarchy[] {
  if (cached) return cached;
  const out: CgroupHierarchy[] = [];
  for (const line of selfMountinfo().split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const type = post[0];
    if (type !== 'cgroup' && type !== 'cgroup2') continue;
    const mountpoint = pre[4]!.replace(/\\040/g, ' ');
    const options = (post[2] ?? '').split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('nsdelegate') && !o.startsWith('memory_')).join(',');
    out.push({ mountpoint, type, options });
  }
  cached = out;
  return out;
}
