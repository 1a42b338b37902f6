/**
 * `<data>/serve.pid` records the `berth serve` process using a data directory, so that
 * `berth registry gc` (another process, without the server's digest locks) refuses to delete
 * while a server runs there; inside the server, `--gc-interval` collects safely.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const FILE = 'serve.pid';

export function writeServePid(dataDir: string): void {
  writeFileSync(join(dataDir, FILE), `${process.pid}\n`);
}

export function removeServePid(dataDir: string): void {
  try {
    if (readFileSync(join(dataDir, FILE), 'utf8').trim() === String(process.pid)) rmSync(join(dataDir, FILE), { force: true });
  } catch {
    // already gone
  }
}

/** The pid of a live `berth serve` on this data directory, if any. */
export function runningServer(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dataDir, FILE), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}
