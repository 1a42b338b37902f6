/**
 * Serialises read-modify-write of a layout's index.json: a promise chain within the process and
 * an O_EXCL lock file between processes. A lock file whose owner process is gone is taken over.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { BerthError } from '../base/errors.js';

const inProcess = new Map<string, Promise<unknown>>();

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function acquireFile(lockPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o644);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && !processAlive(owner)) {
      await takeOverStale(lockPath, owner); // stale: its owner died holding it
      continue;
    }
    if (Date.now() > deadline) {
      throw new BerthError(
        'LAYOUT_INVALID',
        `timed out waiting for the lock ${lockPath} (held by pid ${Number.isNaN(owner) ? 'unknown' : owner}); if no berth process is using the layout, remove the file`,
      );
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

/**
 * Removes a lock file whose owner died, and only while it still is that one. A plain unlink
 * after reading the pid could delete the lock a third process took meanwhile (two holders: lost
 * index.json updates, seen with 8 concurrent `berth tag` under load). So every removal of a
 * lock that is not one's own happens under a second O_EXCL file, after reading the pid again:
 * the owner is dead, so nothing else can replace its file while the guard is held. A guard older
 * than 5 s was left by a process that died in these few lines: it goes.
 */
async function takeOverStale(lockPath: string, owner: number): Promise<void> {
  const guard = `${lockPath}.takeover`;
  try {
    await (await open(guard, 'wx', 0o644)).close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const st = await stat(guard).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 5000) await unlink(guard).catch(() => undefined);
    return; // another process is taking it over: look again
  }
  try {
    const pid = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    if (pid === owner && !processAlive(owner)) await unlink(lockPath).catch(() => undefined);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

/** Runs `fn` holding the lock named by `lockPath`, in this process and between processes. */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const previous = inProcess.get(lockPath) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    await acquireFile(lockPath, timeoutMs);
    try {
      return await fn();
    } finally {
      await unlink(lockPath).catch(() => undefined);
    }
  });
  const tail = run.catch(() => undefined);
  inProcess.set(lockPath, tail);
  void tail.then(() => {
    if (inProcess.get(lockPath) === tail) inProcess.delete(lockPath);
  });
  return run;
}
