/**
 * How a runc-compatible runtime (--runtime runc|crun|PATH) is invoked. crun 1.x refuses hosts
 * with hybrid cgroups (v1 controllers plus a v2 hierarchy at /sys/fs/cgroup/unified: "cgroups in
 * hybrid mode not supported, drop all controllers from cgroupv2"). There it runs in a private
 * mount namespace where the v2 hierarchy's controller list reads empty, so that it uses the v1
 * controllers as runc does; the mount namespace is the runtime's own, the container's rootfs
 * mount (made before) is seen in it as it is.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';

const UNIFIED_CONTROLLERS = '/sys/fs/cgroup/unified/cgroup.controllers';

function hybridCgroups(): boolean {
  return existsSync(UNIFIED_CONTROLLERS) && !existsSync('/sys/fs/cgroup/cgroup.controllers');
}

/** The command line that runs `runtime` (its arguments follow). */
export function runtimeCommand(runtime: string): string[] {
  if (basename(runtime) !== 'crun' || !hybridCgroups()) return [runtime];
  // unshare execs (no fork), and sh execs crun: the runtime keeps the pid its caller spawned.
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount --bind /dev/null ${UNIFIED_CONTROLLERS} && exec "$0" "$@"`, runtime];
}
