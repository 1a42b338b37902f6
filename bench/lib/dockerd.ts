/**
 * A dockerd from Debian's docker.io in a temp dir (its own data root, exec root and socket; no
 * bridge, no iptables), for benchmarks that compare with docker. Undefined where docker.io is
 * not installed or the daemon does not answer within 20 s.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface Dockerd {
  /** The docker CLI against this daemon: argv prefix. */
  cmd: string[];
  stop(): void;
}

export async function startDockerd(dir: string): Promise<Dockerd | undefined> {
  if (!existsSync('/usr/sbin/dockerd') || !existsSync('/usr/bin/docker')) return undefined;
  const sock = join(dir, 'docker.sock');
  const d = spawn('/usr/sbin/dockerd', ['--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'), '-H', `unix://${sock}`,
    '--storage-driver', 'overlay2', '--bridge', 'none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--userland-proxy=false',
    '--default-ulimit', 'nofile=1024:1024', '--default-ulimit', 'nproc=4096:4096'], { stdio: 'ignore' });
  const cmd = ['/usr/bin/docker', '-H', `unix://${sock}`];
  for (let i = 0; i < 100; i++) {
    if (spawnSync(cmd[0]!, [...cmd.slice(1), 'info'], { stdio: 'ignore' }).status === 0) {
      return {
        cmd,
        stop() {
          d.kill('SIGTERM');
          spawnSync('sh', ['-c', `sleep 2; umount -R ${join(dir, 'data')} 2>/dev/null; true`]);
        },
      };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  d.kill('SIGKILL');
  return undefined;
}
