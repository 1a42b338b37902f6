/**
 * Debian's dockerd for a test, with its data, exec root and socket in a temp dir (the host's own
 * docker, if any, is never touched): no bridge and no iptables rules, docker's usual ulimits.
 * With `netns` (a namespace of `ip netns add`), dockerd runs inside it with docker's own
 * defaults (docker0, iptables rules, the userland proxy for published ports): what it changes
 * stays in that namespace and goes with it. stop() ends it and removes the mounts it left under
 * the temp dir.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeMountedTree } from './podman.js';

// Another, unrelated docker client may come first in PATH: use Debian's.
export const DOCKER = '/usr/bin/docker';
export const DOCKERD = '/usr/sbin/dockerd';

export interface Dockerd {
  dir: string;
  /** docker ARGS against this daemon; the exit code and both outputs. */
  run(args: string[], input?: string | Buffer): { code: number; stdout: string; stderr: string };
  /** As run, but throws with docker's stderr unless it exits 0; returns stdout. */
  docker(...args: string[]): string;
  stop(): Promise<void>;
}

export async function startDockerd(opts: { extraArgs?: string[]; netns?: string } = {}): Promise<Dockerd> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-dockerd-'));
  const sock = join(dir, 'docker.sock');
  const args = [
    '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'), '-H', `unix://${sock}`,
    '--storage-driver', 'overlay2',
    ...(opts.netns ? [] : ['--bridge', 'none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--userland-proxy=false']),
    '--default-ulimit', 'nofile=1024:1024', '--default-ulimit', 'nproc=4096:4096',
    ...(opts.extraArgs ?? []),
  ];
  // nsenter, not `ip netns exec` (which mounts a new /sys, without the cgroup mounts dockerd
  // needs); it execs dockerd, so stop's signal reaches dockerd itself.
  const daemon = opts.netns
    ? spawn('nsenter', [`--net=/run/netns/${opts.netns}`, DOCKERD, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(DOCKERD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const run = (args: string[], input?: string | Buffer) => {
    const r = spawnSync(DOCKER, ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20, ...(input !== undefined ? { input } : {}) });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const stop = async () => {
    if (daemon.exitCode === null) {
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      daemon.kill('SIGTERM');
      const t = setTimeout(() => daemon.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    }
    // dockerd leaves mounts under its data root
    removeMountedTree(dir);
  };
  for (let i = 0; ; i++) {
    if (run(['version']).code === 0) break;
    if (i > 120 || daemon.exitCode !== null) {
      await stop();
      throw new Error(`dockerd did not start: ${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return {
    dir,
    run,
    docker(...args) {
      const r = run(args);
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
    stop,
  };
}
