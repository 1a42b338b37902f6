/**
 * What containers use, read from their records (BERTH_ROOT/containers/<id>/, written by the
 * container store): the image (manifest digest), the snapshots under their root (rootfs.json,
 * written by SnapshotStore.mountRootfs), the named volumes they mount. rmi, prune and df ask
 * here before removing or counting anything. Records being created or removed count as users
 * (better a prune that keeps too much than a container whose image vanished).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { processAlive } from '../image/layout-lock.js';
import { diskUsage } from '../layer/walk.js';

export interface ContainerUse {
  id: string;
  name: string;
  dir: string;
  /** The image as the user named it, and the manifest digest the container was made from. */
  image?: string;
  imageDigest?: string;
  running: boolean;
  /** Chain IDs of the snapshots under its root filesystem. */
  chains: string[];
  /** Names of the volumes it mounts. */
  volumes: string[];
}

interface Record_ {
  id?: string;
  name?: string;
  config?: { image?: string; imageDigest?: string; mounts?: { type?: string; source?: string }[] };
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export function containersDir(berthRoot: string): string {
  return join(berthRoot, 'containers');
}

/** Every container record (complete or not) with what it uses. */
export function containerUses(berthRoot: string): ContainerUse[] {
  const dir = containersDir(berthRoot);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: ContainerUse[] = [];
  for (const id of names) {
    if (!/^[0-9a-f]{12,64}$/.test(id)) continue; // names/, .removing-<id> (already going away)
    const cdir = join(dir, id);
    const rec = readJson<Record_>(join(cdir, 'container.json')) ?? {};
    const state = readJson<{ status?: string; pid?: number }>(join(cdir, 'state.json'));
    const rootfs = readJson<{ dirs?: string[] }>(join(cdir, 'rootfs.json'));
    const running = state?.status === 'running' && typeof state.pid === 'number' && state.pid > 0 && processAlive(state.pid);
    out.push({
      id,
      name: rec.name ?? id.slice(0, 12),
      dir: cdir,
      ...(rec.config?.image !== undefined ? { image: rec.config.image } : {}),
      ...(rec.config?.imageDigest !== undefined ? { imageDigest: rec.config.imageDigest } : {}),
      running,
      chains: (rootfs?.dirs ?? []).map((d) => `sha256:${basename(dirname(d))}`),
      volumes: (rec.config?.mounts ?? []).filter((m) => m.type === 'volume' && typeof m.source === 'string').map((m) => m.source!),
    });
  }
  return out;
}

/** The containers made from the image with this manifest digest (the hook rmi asks). */
export function imageInUse(berthRoot: string, manifestDigest: string): ContainerUse[] {
  return containerUses(berthRoot).filter((c) => c.imageDigest === manifestDigest);
}

/** Bytes a container's own changes take: its upper dir (overlay) or its copied root (vfs). */
export function containerDiskBytes(c: ContainerUse): number {
  for (const sub of ['upper', 'rootfs']) {
    const path = join(c.dir, sub);
    try {
      if (!statSync(path).isDirectory()) continue;
    } catch {
      continue;
    }
    // An overlay rootfs is a mount of shared snapshots: only a copy counts as the container's.
    if (sub === 'rootfs' && readJson<{ driver?: string }>(join(c.dir, 'rootfs.json'))?.driver === 'overlay') continue;
    return diskUsage(path).bytes;
  }
  return 0;
}
