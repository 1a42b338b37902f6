/** list, ps, pause and resume: verbs that read the recorded state and the cgroups. */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import { cgroupManagerFor } from './cgroups/manager.js';
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
