/**
 * A writer lock between processes, synchronous (the network code runs between an engine's
 * awaits and must not yield): `ROOT/network/lock`, made whole by link(2) of a file holding the
 * owner's pid and start time, so it never exists empty. A lock whose owner died (kill -9) is
 * removed by one waiter at a time (breakStale). Re-entrant within a process. No flock(2): Node has none, and an addon for it would cost
 * the run path what SQLite did.
 */
import { closeSync, linkSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { BerthError } from '../../base/errors.js';
import { sleepSync } from '../../base/sleep-sync.js';
import { isAlive, procStat } from '../../runtime/state.js';

const depth = new Map<string, number>();
let self: string | undefined;

function me(): string {
  return (self ??= `${process.pid} ${procStat(process.pid)?.startTime ?? 0}\n`);
}


function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** True when `owner` (a lock's content) names a process that is gone. */
function dead(owner: string): boolean {
  const m = /^(\d+) (-?\d+)\n$/.exec(owner);
  return !!m && !isAlive(Number(m[1]), Number(m[2]));
}

/**
 * Removes a dead owner's lock. Breakers take turns through `PATH.break` (made as the lock is):
 * only a breaker removes a lock that is not its own, so while it holds `.break` the dead
 * owner's file cannot be replaced, and the check and the unlink below see the same file.
 * (Renaming a lock aside to check it could move a live one: an owner that released, a new one
 * that took the lock, both between a waiter's read and its rename.) A `.break` whose breaker
 * died is removed as such: only a breaker that dies inside these few lines can leave one.
 */
function breakStale(path: string, owner: string): void {
  const brk = `${path}.break`;
  if (!tryTake(brk)) {
    let b = '';
    try {
      b = readFileSync(brk, 'utf8');
    } catch { /* gone */ }
    if (dead(b)) rmSync(brk, { force: true });
    return; // another waiter is breaking it: look again
  }
  try {
    let now = '';
    try {
      now = readFileSync(path, 'utf8');
    } catch { /* released meanwhile */ }
    if (now === owner) rmSync(path, { force: true });
  } finally {
    rmSync(brk, { force: true });
  }
}

function tryTake(path: string): boolean {
  const tmp = `${path}.${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, me());
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if (errno(err) !== 'EEXIST') throw err;
    return false;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function acquire(path: string, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    if (tryTake(path)) return;
    let owner = '';
    try {
      owner = readFileSync(path, 'utf8');
    } catch (err) {
      if (errno(err) === 'ENOENT') continue; // released meanwhile
      throw err;
    }
    if (owner === me()) throw new BerthError('NETWORK', `the network lock ${path} is already held by this process (a bug: report it)`);
    if (dead(owner)) {
      breakStale(path, owner);
      continue;
    }
    if (Date.now() > deadline) {
      throw new BerthError('NETWORK', `timed out waiting for the network lock ${path} (held by pid ${owner.split(' ')[0]}); if no berth command is running, remove the file`);
    }
    sleepSync(delay);
    delay = Math.min(delay * 2, 20);
  }
}

/**
 * Runs `fn` holding the lock at `path` (nested calls in this process run under the held lock).
 * The wait is long (a dead owner's lock is broken at once, so only live holders are waited
 * for): 50 concurrent runs on one network, at load 45 on two cores, queued for over 120 s.
 */
export function withLockSync<T>(path: string, fn: () => T, timeoutMs = 600_000): T {
  const d = depth.get(path) ?? 0;
  if (d === 0) acquire(path, timeoutMs);
  depth.set(path, d + 1);
  try {
    return fn();
  } finally {
    depth.set(path, d);
    if (d === 0) {
      depth.delete(path);
      try {
        unlinkSync(path);
      } catch { /* taken over as stale: cannot happen while we live */ }
    }
  }
}
