/**
 * Serialises read-modify-write of a layout's index.json: a promise chain within the process and
 * an O_EXCL lock file between processes. A lock file whose owner process is gone is taken over.
 */
import { open, readFile, unlink } from 'node:fs/promises';
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
      await unlink(lockPath).catch(() => undefined); // stale: its owner died holding it
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
