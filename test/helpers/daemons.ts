/**
 * Long-running peer processes started by tests (Ceph's daemons, PostgreSQL): each logs to a
 * file in its temp dir, is stopped by its pid (SIGTERM, then SIGKILL), and is killed when the
 * test process exits or is interrupted without stopping it, so that no daemon outlives its test file.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';

const alive = new Set<number>();
function killAll(): void {
  for (const pid of alive) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.once('exit', killAll);
// Interrupted (Ctrl-C, a runner's timeout): the daemons go too, then the default action.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

export interface Daemon {
  pid: number;
  name: string;
  log: string;
  exited(): boolean;
  stop(): Promise<void>;
}

/** Starts `cmd args` in the foreground of a child process, stdout and stderr to `log`. */
export function startDaemon(name: string, cmd: string, args: string[], log: string, opts: SpawnOptions = {}): Daemon {
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: ${cmd} could not be started`);
  const pid = child.pid;
  alive.add(pid);
  let done = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      done = true;
      alive.delete(pid);
      resolve();
    });
  });
  return {
    pid,
    name,
    log,
    exited: () => done,
    stop: () => stopPid(pid, exit, () => done),
  };
}

/** SIGTERM, up to `graceMs` to exit, then SIGKILL. */
export async function stopPid(pid: number, exit: Promise<void>, done: () => boolean, graceMs = 10_000): Promise<void> {
  if (done()) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, graceMs);
  await exit;
  clearTimeout(timer);
}

/** Polls `probe` until it returns true; fails with the tail of the daemon's log. */
export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, daemon?: Daemon): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (daemon?.exited()) throw new Error(`${daemon.name} exited before ${what}: ${tail(daemon.log)}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen within ${timeoutMs / 1000} s${daemon ? `: ${tail(daemon.log)}` : ''}`);
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
