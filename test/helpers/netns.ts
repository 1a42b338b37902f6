/**
 * Network namespaces for network tests: made with `ip netns add` under names unique to the test
 * run, with processes started inside by `ip netns exec`, and everything removed afterwards.
 * `/etc/netns/NAME/hosts` and `resolv.conf` are what `ip netns exec` mounts on /etc/hosts and
 * /etc/resolv.conf inside, so a test can hand them to berth as the container's files.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

export class Netns {
  readonly name: string;
  private children: ChildProcess[] = [];

  constructor(name: string) {
    this.name = name;
    execFileSync('ip', ['netns', 'add', name]);
    mkdirSync(this.etcDir, { recursive: true });
    writeFileSync(this.hostsPath, '');
    // Until a test writes its own: a name server no packet can reach, so no query leaves the machine.
    writeFileSync(this.resolvPath, 'nameserver 127.0.0.1\n');
  }

  /** The file `ip netns exec` mounts on /etc/resolv.conf. */
  get resolvPath(): string {
    return `${this.etcDir}/resolv.conf`;
  }

  get path(): string {
    return `/run/netns/${this.name}`;
  }

  get etcDir(): string {
    return `/etc/netns/${this.name}`;
  }

  /** The file `ip netns exec` mounts on /etc/hosts. */
  get hostsPath(): string {
    return `${this.etcDir}/hosts`;
  }

  /**
   * Runs a command inside to completion; resolves with its status and output (never rejects for
   * a status). Asynchronous, so that servers of the test process can answer meanwhile.
   */
  exec(args: string[], timeoutMs = 10_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', this.name, ...args], { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
        const status = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
        resolve({ status, stdout, stderr });
      });
    });
  }

  /** Starts a long-running process inside (stopped by destroy). */
  start(args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  destroy(): void {
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGKILL');
    try {
      const pids = execFileSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
      for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone already */
    }
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      /* gone already */
    }
    rmSync(this.etcDir, { recursive: true, force: true });
  }
}

/** A prefix for names of links, namespaces and bridges unique to this test run (bridge-name safe). */
export function runTag(): string {
  return 'bt' + randomBytes(2).toString('hex');
}

/** A random /24 in 10.200.0.0/13 (test networks): the store refuses one that overlaps a host route, so callers retry. */
export function randomSubnet24(): string {
  return `10.${200 + Math.floor(Math.random() * 8)}.${Math.floor(Math.random() * 256)}.0/24`;
}
