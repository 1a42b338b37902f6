/** list, ps, pause, resume and events: verbs that read the recorded state and the cgroups. */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import { cgroupManagerFor } from './cgroups/manager.js';
import { containerStats, oomCount, statsJson } from './cgroups/stats.js';
import { listIds, readRecord, statusOf } from './state.js';
import { OCI_VERSION } from './spec/version.js';

export interface ListedContainer {
  ociVersion: string; id: string; pid: number; status: string; bundle: string; rootfs: string; created: string; owner: string;
}

export function listContainers(root: string): ListedContainer[] {
  const out: ListedContainer[] = [];
  for (const id of listIds(root)) {
    let rec;
    try { rec = readRecord(root, id); } catch { continue; } // still being created
    const status = statusOf(root, rec);
    let owner = 'root';
    try { owner = statSync(join(root, id)).uid === 0 ? 'root' : String(statSync(join(root, id)).uid); } catch { /* raced with delete */ }
    out.push({ ociVersion: OCI_VERSION, id, pid: status === 'stopped' ? 0 : rec.pid, status, bundle: rec.bundle, rootfs: rec.rootfs, created: rec.created, owner });
  }
  return out;
}

export function containerPids(root: string, id: string): number[] {
  const rec = readRecord(root, id);
  for (const dir of new Set(Object.values(rec.cgroupPaths))) {
    try {
      const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      if (pids.length) return pids;
    } catch { /* hierarchy gone */ }
  }
  return [];
}

export async function freezeContainer(root: string, id: string, freeze: boolean): Promise<void> {
  const rec = readRecord(root, id);
  const status = statusOf(root, rec);
  if (status !== 'running' && status !== 'created') {
    throw new BerthError('CONTAINER_STATE', `cannot ${freeze ? 'pause' : 'resume'} container ${id}: it is ${status}`);
  }
  const mgr = cgroupManagerFor(rec.cgroupsPath, id);
  if (freeze) await mgr.freeze(); else await mgr.thaw();
}

/** A running (or created, paused) container's record: events has nothing to say of others. */
function liveRecord(root: string, id: string) {
  const rec = readRecord(root, id);
  const status = statusOf(root, rec);
  if (status === 'stopped') throw new BerthError('CONTAINER_STATE', `container ${id} is not running (it is stopped): events are only for a live container`);
  return rec;
}

/** `events --stats`: one line, runc's {"type":"stats","id":…,"data":{cpu,memory,pids,blkio,…}}. */
export function statsEvent(root: string, id: string): string {
  return statsJson({ type: 'stats', id, data: containerStats(liveRecord(root, id).cgroupPaths) });
}

/**
 * `events`: a stats line every `intervalMs`, and an {"type":"oom"} line whenever the
 * container's OOM kill count grows, until the container stops (then it returns).
 */
export async function streamEvents(root: string, id: string, intervalMs: number, write: (line: string) => void): Promise<void> {
  const paths = liveRecord(root, id).cgroupPaths;
  let ooms = oomCount(paths);
  for (;;) {
    const rec = readRecord(root, id);
    if (statusOf(root, rec) === 'stopped') return;
    const now = oomCount(paths);
    if (now > ooms) write(JSON.stringify({ type: 'oom', id }) + '\n');
    ooms = now;
    write(statsJson({ type: 'stats', id, data: containerStats(paths) }) + '\n');
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
