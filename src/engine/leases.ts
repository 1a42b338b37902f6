/**
 * Leases: what a running berth process is using or writing, so that a concurrent prune or gc
 * in another process leaves it alone. One file per lease under BERTH_ROOT/leases, named
 * `<pid>-<random>.json`; a lease ends when released or when its process is gone (a `kill -9`
 * leaves a file the next reader removes).
 *
 *   chains      snapshot chain IDs in use (prepare, until the container is recorded)
 *   writesBlobs the process is writing blobs into the store: gc keeps unreferenced blobs
 *               written since the lease was taken (a pull tags its image only at the end)
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../image/layout-lock.js';

export interface LeaseData {
  chains?: string[];
  writesBlobs?: boolean;
}

export interface Lease extends LeaseData {
  pid: number;
  /** Milliseconds since the epoch when the lease was taken. */
  created: number;
}

export function leasesDir(berthRoot: string): string {
  return join(berthRoot, 'leases');
}

/** Takes a lease; the returned function ends it. */
export async function takeLease(berthRoot: string, data: LeaseData): Promise<() => Promise<void>> {
  const dir = leasesDir(berthRoot);
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${process.pid}-${randomBytes(6).toString('hex')}.json`);
  const lease: Lease = { pid: process.pid, created: Date.now(), ...data };
  // Renamed into place so that a reader never sees half a lease (no fsync: a lease dies with its process).
  await writeFile(`${path}.tmp`, JSON.stringify(lease));
  await rename(`${path}.tmp`, path);
  return async () => {
    await unlink(path).catch(() => undefined);
  };
}

/** The live leases; those of processes that are gone are removed. */
export async function liveLeases(berthRoot: string): Promise<Lease[]> {
  const dir = leasesDir(berthRoot);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: Lease[] = [];
  for (const name of names) {
    const pid = Number.parseInt(name, 10);
    if (!(pid > 0) || !processAlive(pid)) {
      await unlink(join(dir, name)).catch(() => undefined);
      continue;
    }
    if (!name.endsWith('.json')) continue; // being written: nothing is in use before the rename
    try {
      out.push(JSON.parse(await readFile(join(dir, name), 'utf8')) as Lease);
    } catch {
      // released meanwhile
    }
  }
  return out;
}
