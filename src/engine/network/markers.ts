/**
 * Which containers have (or are getting) network endpoints, outside the records: empty files in
 * ROOT/network/attached/ whose names say it all. Every command's sweep lists this directory
 * instead of reading the records under their lock, and reads them only when a marker says
 * something needs cleaning.
 *
 * `ID@PID.START` names the process that holds the container's network namespace (its init;
 * `ID@0.0` when unknown, e.g. a /run/netns path: then its detach removes it, or the sweep once
 * the container is gone); `ID@pending.PID.START` the berth process attaching it, made before any
 * link or rule is and replaced once the records are committed (for a prepared attach, once
 * berth-init plugged the namespace). Empty files, made and deleted whole: a reader never
 * sees half a marker, and no data is written (a rename over a file with fresh data made ext4
 * flush it, and the next unlink waited for that under load). The invariant: a container with
 * endpoints in the records has a marker (markers are made before, and removed after, the
 * records change). So the sweep has work when a holder or an attaching berth died (kill -9),
 * when the host rebooted since (`.boot` holds the boot id), or when the directory cannot be
 * trusted (a root from before the markers, or never cleaned).
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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

/** Makes the directory trusted for this boot (after a full cleanup). */
export function validateMarkers(netDir: string): void {
  const dir = markersDir(netDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeAtomic(join(dir, '.boot'), bootId() + '\n', 0o600, false);
}

/** Whether the directory can be trusted: a full cleanup validated it in this boot. */
export function markersTrusted(netDir: string): boolean {
  try {
    return readFileSync(join(markersDir(netDir), '.boot'), 'utf8').trim() === bootId();
  } catch {
    return false;
  }
}

function nameOf(id: string, m: Marker): string {
  return `${id}@${m.pending ? 'pending.' : ''}${m.pid}.${m.start}`;
}

function parse(name: string): { id: string; marker: Marker } | undefined {
  const r = /^([^@]+)@(pending\.)?(\d+)\.(-?\d+)$/.exec(name);
  return r ? { id: r[1]!, marker: { pending: r[2] !== undefined, pid: Number(r[3]), start: Number(r[4]) } } : undefined;
}

function names(netDir: string): string[] {
  try {
    return readdirSync(markersDir(netDir));
  } catch {
    return [];
  }
}

/** The markers by container id (none when the directory is missing). */
export function readMarkers(netDir: string): Map<string, Marker[]> {
  const out = new Map<string, Marker[]>();
  for (const n of names(netDir)) {
    const p = parse(n);
    if (p) out.set(p.id, [...(out.get(p.id) ?? []), p.marker]);
  }
  return out;
}

/** The markers of one container. */
export function readMarker(netDir: string, id: string): Marker[] {
  return readMarkers(netDir).get(id) ?? [];
}

/** A marker whose process died: its container's endpoints (or a killed attach's links and rules) need cleaning. */
export function isStale(m: Marker): boolean {
  return m.pid !== 0 && !isAlive(m.pid, m.start);
}

/**
 * True when the sweep has network work: a stale marker, markers that cannot be trusted, or
 * (given `exists`) a marker without a holder (`ID@0.0`) whose container no longer exists.
 */
export function cleanupNeeded(netDir: string, exists?: (id: string) => boolean): boolean {
  if (!markersTrusted(netDir)) return true;
  for (const [id, ms] of readMarkers(netDir)) {
    if (ms.some(isStale)) return true;
    if (exists && ms.every((m) => m.pid === 0) && !exists(id)) return true;
  }
  return false;
}

/** Makes a marker (its directory on first use; not trusted until a full cleanup has run). */
export function writeMarker(netDir: string, id: string, m: Marker): void {
  const dir = markersDir(netDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  closeSync(openSync(join(dir, nameOf(id, m)), 'w', 0o600));
}

/** Sets a container's markers to exactly `keep` (none: unmarked). */
export function setMarkers(netDir: string, id: string, keep: Marker[]): void {
  const wanted = new Set(keep.map((m) => nameOf(id, m)));
  for (const m of keep) writeMarker(netDir, id, m);
  for (const n of names(netDir)) if (parse(n)?.id === id && !wanted.has(n)) rmSync(join(markersDir(netDir), n), { force: true });
}

/** Before an attach changes links or rules: this process is attaching `id`. */
export function markPending(netDir: string, id: string): void {
  writeMarker(netDir, id, { pending: true, pid: process.pid, start: procStat(process.pid)?.startTime ?? 0 });
}

/** After the attach's records are committed: `netnsPath`'s holder (for /proc/PID/ns/net) keeps the endpoints alive. */
export function markAttached(netDir: string, id: string, netnsPath: string): void {
  const pid = Number(/^\/proc\/(\d+)\/ns\/net$/.exec(netnsPath)?.[1] ?? 0);
  // A holder gone already: -1 never matches, so the next sweep cleans.
  // One holder for all of a container's networks: its namespace's.
  setMarkers(netDir, id, [{ pending: false, pid, start: pid ? (procStat(pid)?.startTime ?? -1) : 0 }]);
}

/** After the container's last endpoint's release is committed. */
export function unmark(netDir: string, id: string): void {
  setMarkers(netDir, id, []);
}

/** Whether `id` has no marker in a directory that can be trusted (then it has no endpoints). */
export function surelyUnattached(netDir: string, id: string): boolean {
  return markersTrusted(netDir) && !names(netDir).some((n) => n.startsWith(`${id}@`));
}
