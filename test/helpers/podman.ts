/**
 * podman (Debian's 4.3) for a test, configured as the peers notes say: its own containers.conf
 * and storage.conf in the test's temp dir (runc, cgroupfs, no network, docker's ulimits, events
 * to a file), so that the host's podman state is never touched; and its removal: podman's
 * containers and storage, then every mount left under the temp dir (containers/storage keeps
 * graph/overlay bind-mounted, and each container's merged root), then the dir itself.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PodmanConf {
  /** More lines for containers.conf's [containers] table (default_capabilities = [...]). */
  containers?: string[];
  /** More tables, whole: ['[network]', 'network_config_dir = "..."']. */
  tables?: string[];
  /** The [engine] runtime (default runc); null leaves it out. */
  runtime?: string | null;
}

/** Writes the configuration into `work` and returns the environment podman runs with. */
export function podmanEnv(work: string, extra: NodeJS.ProcessEnv = {}, conf: PodmanConf = {}): NodeJS.ProcessEnv {
  const file = join(work, 'containers.conf');
  const runtime = conf.runtime === undefined ? 'runc' : conf.runtime;
  writeFileSync(file, [
    '[containers]', 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]', 'netns = "none"', ...(conf.containers ?? []),
    ...(conf.tables ?? []),
    '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', `events_logfile_path = "${join(work, 'events.log')}"`,
    `tmp_dir = "${join(work, 'tmp')}"`, ...(runtime ? [`runtime = "${runtime}"`] : []), '',
  ].join('\n'));
  const storage = join(work, 'storage.conf');
  writeFileSync(storage, `[storage]\ndriver = "overlay"\ngraphroot = "${join(work, 'graph')}"\nrunroot = "${join(work, 'run')}"\n`);
  return { ...process.env, CONTAINERS_CONF: file, CONTAINERS_STORAGE_CONF: storage, XDG_RUNTIME_DIR: join(work, 'xdg'), TMPDIR: work, ...extra };
}

/** The mount points at or under `dir`, deepest (and latest) first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .reverse()
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything at or under `dir` (lazily when busy; a mount stacked twice is met twice). Never throws. */
export function unmountUnder(dir: string): void {
  for (let round = 0; round < 3; round++) {
    const mounts = mountsUnder(dir);
    if (!mounts.length) break;
    for (const m of mounts) {
      if (spawnSync('umount', [m], { stdio: 'ignore' }).status !== 0) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
    }
  }
}

/** unmountUnder, then `dir` goes. Never throws: a test's cleanup must run to its end. */
export function removeMountedTree(dir: string): void {
  unmountUnder(dir);
  // podman's storage may still be letting go of graph/ as it exits: retry as rm -rf would not.
  try { rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }); } catch { /* reported by the leftovers check */ }
}

/** Removes podman's containers and storage made with `env` (podmanEnv's), then all of `work`. */
export function removePodmanWork(work: string, env: NodeJS.ProcessEnv | undefined, runtimeArgs: string[] = []): void {
  if (env) {
    spawnSync('podman', [...runtimeArgs, 'rm', '-af', '-t', '0'], { env, stdio: 'ignore', timeout: 60_000 });
    spawnSync('podman', ['system', 'reset', '-f'], { env, stdio: 'ignore', timeout: 60_000 });
  }
  removeMountedTree(work);
}
