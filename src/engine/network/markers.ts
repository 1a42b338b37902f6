/**
 * Which containers have (or are getting) network endpoints, outside SQLite: one small file per
 * container in ROOT/network/attached/, named by its id. Every command's sweep reads this
 * directory instead of opening the network database (loading SQLite and opening its WAL cost
 * 12–34 ms under load), and opens the database only when a marker says something needs cleaning.
 *
 * A marker holds `PID START` of the process that holds the container's network namespace (its
 * init; `0 0` when unknown, e.g. a /run/netns path: then only its detach removes it), or
 * `pending PID START` of the berth process attaching it, written before any link or rule is
 * made and replaced once the records are committed. The invariant: a container with endpoints
 * in the records has a marker (markers are written before, and removed after, the records
 * change). So the sweep has work when a holder or an attaching berth died (kill -9), when the
 * host rebooted since (`.boot` holds the boot id), or when the directory is missing (a root from
 * before the markers, or never cleaned).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, procStat, writeAtomic } from '../../runtime/state.js';

export interface Marker {
  pending: boolean;
  pid: number;
  start: number;
}

export function markersDir(netDir: string): string {
  return join(netDir, 'attached');
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** Makes the directory valid for this boot (after a full cleanup, or when first used). */
export function validateMarkers(netDir: string): void {
  const dir = markersDir(netDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeAtomic(join(dir, '.boot'), bootId() + '\n', 0o600, false);
}

/** Whether the directory can be trusted: it exists and a full cleanup validated it in this boot. */
export function markersTrusted(netDir: string): boolean {
  try {
    return readFileSync(join(markersDir(netDir), '.boot'), 'utf8').trim() === bootId();
  } catch {
    return false;
  }
}

/** The markers by container id (none when the directory is missing). */
export function readMarkers(netDir: string): Map<string, Marker> {
  const dir = markersDir(netDir);
  const out = new Map<string, Marker>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (n.startsWith('.') || n.includes('.tmp-')) continue;
    const m = readMarker(netDir, n);
    if (m) out.set(n, m);
  }
  return out;
}

export function readMarker(netDir: string, id: string): Marker | undefined {
  try {
    const f = readFileSync(join(markersDir(netDir), id), 'utf8').trim().split(' ');
    const pending = f[0] === 'pending';
    return { pending, pid: Number(f[pending ? 1 : 0]), start: Number(f[pending ? 2 : 1]) };
  } catch {
    return undefined; // none, or removed meanwhile
  }
}

/** A marker whose process died: its container's endpoints (or a killed attach's links and rules) need cleaning. */
export function isStale(m: Marker): boolean {
  return m.pid !== 0 && !isAlive(m.pid, m.start);
}

/** True when the sweep has network work: a stale marker, or markers that cannot be trusted. */
export function cleanupNeeded(netDir: string): boolean {
  if (!markersTrusted(netDir)) return true;
  for (const m of readMarkers(netDir).values()) if (isStale(m)) return true;
  return false;
}

/** Writes a marker; its directory is made on first use but not trusted (no `.boot`) until a full cleanup has run. */
export function writeMarker(netDir: string, id: string, m: Marker): void {
  const dir = markersDir(netDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeAtomic(join(dir, id), `${m.pending ? 'pending ' : ''}${m.pid} ${m.start}\n`, 0o600, false);
}

/** Before an attach changes links or rules: this process is attaching `id`. */
export function markPending(netDir: string, id: string): void {
  writeMarker(netDir, id, { pending: true, pid: process.pid, start: procStat(process.pid)?.startTime ?? 0 });
}

/** After the attach's records are committed: `netnsPath`'s holder (for /proc/PID/ns/net) keeps the endpoints alive. */
export function markAttached(netDir: string, id: string, netnsPath: string): void {
  const pid = Number(/^\/proc\/(\d+)\/ns\/net$/.exec(netnsPath)?.[1] ?? 0);
  // A holder gone already: -1 never matches, so the next sweep cleans.
  writeMarker(netDir, id, { pending: false, pid, start: pid ? (procStat(pid)?.startTime ?? -1) : 0 });
}

/** After the container's last endpoint's release is committed. */
export function unmark(netDir: string, id: string): void {
  rmSync(join(markersDir(netDir), id), { force: true });
}

/** Whether `id` has no marker in a directory that can be trusted (then it has no endpoints). */
export function surelyUnattached(netDir: string, id: string): boolean {
  return markersTrusted(netDir) && !existsSync(join(markersDir(netDir), id));
}
