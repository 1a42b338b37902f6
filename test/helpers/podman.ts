/**
 * podman (Debian's 4.3) for a test, configured as the peers notes say: its own containers.conf
 * and storage.conf in the test's temp dir (runc, cgroupfs, no network, docker's ulimits, events
 * to a file), so that the host's podman state is never touched.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes the configuration into `work` and returns the environment podman runs with. */
export function podmanEnv(work: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const conf = join(work, 'containers.conf');
  writeFileSync(conf, [
    '[containers]', 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]', 'netns = "none"',
    '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', `events_logfile_path = "${join(work, 'events.log')}"`, 'runtime = "runc"', '',
  ].join('\n'));
  const storage = join(work, 'storage.conf');
  writeFileSync(storage, `[storage]\ndriver = "overlay"\ngraphroot = "${join(work, 'graph')}"\nrunroot = "${join(work, 'run')}"\n`);
  return { ...process.env, CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage, XDG_RUNTIME_DIR: join(work, 'xdg'), TMPDIR: work, ...extra };
}
