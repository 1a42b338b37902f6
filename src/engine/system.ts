/**
 * `berth system df` and `berth system check`: what the berth root holds, and whether it is whole.
 *
 * df counts every byte once: blobs of the store (compressed layers, configs, manifests),
 * snapshots (unpacked layers), containers' own changes (upper dirs, or copied roots), volumes.
 * Per image, SIZE is its blobs plus its snapshots; SHARED the part another image also has; a
 * second image on the same base layers adds only its own layers to the totals.
 *
 * check verifies the store (index.json, every blob's digest, manifests, configs), the
 * snapshots (complete, with their record) and the leftovers of interrupted commands; with
 * `repair` it removes what cannot be used (half snapshots, stale temp dirs, locks and leases,
 * dangling index entries, corrupt blobs: the next pull fetches them again) and orphans.
 */
import { readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyLayout, gcLayout } from '../image/layout-verify.js';
import { REF_NAME_ANNOTATION } from '../image/layout.js';
import { processAlive } from '../image/layout-lock.js';
import { LocalImages, usesImage, type LocalImage } from './images.js';
import { liveLeases } from './leases.js';
import { containerDiskBytes, containerUses } from './usage.js';
import { Volumes } from './volumes.js';
import { sweepInterruptedBuilds } from './build/interrupted.js';
import { tmpdir } from 'node:os';

export interface DfRow {
  total: number;
  active: number;
  size: number;
  reclaimable: number;
}

export interface DfImage {
  id: string;
  names: string[];
  created?: string;
  size: number;
  shared: number;
  unique: number;
  containers: number;
}

export interface DiskUsageReport {
  images: DfRow;
  snapshots: DfRow;
  containers: DfRow;
  volumes: DfRow;
  perImage: DfImage[];
}

async function blobSizes(storeDir: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const blobs = join(storeDir, 'blobs');
  for (const alg of await readdir(blobs).catch(() => [] as string[])) {
    for (const f of await readdir(join(blobs, alg)).catch(() => [] as string[])) {
      const st = await stat(join(blobs, alg, f)).catch(() => undefined);
      if (st?.isFile()) sizes.set(`${alg}:${f}`, st.size);
    }
  }
  return sizes;
}

export async function diskUsageReport(berthRoot: string): Promise<DiskUsageReport> {
  const images = new LocalImages(berthRoot);
  const layout = await images.layout();
  const list = await images.list();
  const containers = containerUses(berthRoot);
  const blobFiles = await blobSizes(layout.dir);
  const snaps = new Map((await images.snapshots.list()).map((m) => [m.chainId, m]));

  // What each image holds: its blobs and the snapshots of its chain (by key, counted once).
  const holds = (img: LocalImage): Map<string, number> => {
    const m = new Map<string, number>();
    for (const b of img.blobs) if (blobFiles.has(b.digest)) m.set(`blob:${b.digest}`, blobFiles.get(b.digest)!);
    for (const c of img.chain) {
      const s = snaps.get(c);
      if (s) m.set(`snap:${c}`, s.diskBytes);
    }
    return m;
  };
  const held = list.map(holds);
  const holders = new Map<string, number>();
  for (const h of held) for (const k of h.keys()) holders.set(k, (holders.get(k) ?? 0) + 1);
  const activeImages = list.map((img) => containers.some((c) => usesImage(c, img)));

  const perImage: DfImage[] = list.map((img, i) => {
    let size = 0;
    let shared = 0;
    for (const [k, v] of held[i]!) {
      size += v;
      if ((holders.get(k) ?? 0) > 1) shared += v;
    }
    return {
      id: img.id,
      names: img.names,
      ...(img.config?.created ? { created: img.config.created } : {}),
      size,
      shared,
      unique: size - shared,
      containers: containers.filter((c) => usesImage(c, img)).length,
    };
  });

  // Blobs: reclaimable unless an image in use holds them.
  const activeKeys = new Set(held.filter((_, i) => activeImages[i]).flatMap((h) => [...h.keys()]));
  const blobTotal = [...blobFiles.values()].reduce((a, b) => a + b, 0);
  const blobActive = [...blobFiles].filter(([d]) => activeKeys.has(`blob:${d}`)).reduce((a, [, s]) => a + s, 0);
  const containerChains = new Set(containers.flatMap((c) => c.chains));
  const snapTotal = [...snaps.values()].reduce((a, s) => a + s.diskBytes, 0);
  const snapActive = [...snaps.values()].filter((s) => activeKeys.has(`snap:${s.chainId}`) || containerChains.has(s.chainId));
  const containerSizes = containers.map((c) => containerDiskBytes(c));
  const volumes = new Volumes(berthRoot);
  const vols = await volumes.list();
  const usedVolumes = new Set(containers.flatMap((c) => c.volumes));
  const volSizes = vols.map((v) => volumes.size(v));
  return {
    images: { total: list.length, active: activeImages.filter(Boolean).length, size: blobTotal, reclaimable: blobTotal - blobActive },
    snapshots: {
      total: snaps.size,
      active: snapActive.length,
      size: snapTotal,
      reclaimable: snapTotal - snapActive.reduce((a, s) => a + s.diskBytes, 0),
    },
    containers: {
      total: containers.length,
      active: containers.filter((c) => c.running).length,
      size: containerSizes.reduce((a, b) => a + b, 0),
      reclaimable: containers.reduce((a, c, i) => a + (c.running ? 0 : containerSizes[i]!), 0),
    },
    volumes: {
      total: vols.length,
      active: vols.filter((v) => usedVolumes.has(v.name)).length,
      size: volSizes.reduce((a, b) => a + b, 0),
      reclaimable: vols.reduce((a, v, i) => a + (usedVolumes.has(v.name) ? 0 : volSizes[i]!), 0),
    },
    perImage,
  };
}

export interface CheckProblem {
  /** What is wrong, in one line. */
  problem: string;
  path?: string;
  /** Whether it breaks something (an image cannot run) or is only litter. */
  severity: 'error' | 'warning';
  repaired?: boolean;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Verifies the berth root; with `repair`, removes what cannot be used and what nothing uses. */
export async function checkSystem(berthRoot: string, opts: { repair?: boolean } = {}): Promise<CheckProblem[]> {
  const repair = opts.repair === true;
  const problems: CheckProblem[] = [];
  /** `fix` returns false when it left the problem as it was (it is then not reported repaired). */
  const note = async (p: CheckProblem, fix?: () => Promise<unknown>): Promise<void> => {
    if (repair && fix) p.repaired = (await fix()) !== false;
    problems.push(p);
  };
  const images = new LocalImages(berthRoot);
  const snapshots = images.snapshots;
  const layout = await images.layout();

  // Leases of processes that are gone (liveLeases removes them).
  await liveLeases(berthRoot);

  // The store: every problem verifyLayout finds.
  const found = await verifyLayout(layout);
  const index = await layout.index();
  for (const p of found) {
    const where = p.path ?? p.digest;
    const dangling = p.digest !== undefined && /^index\.json manifests\[\d+\]/.test(p.path ?? '') && !p.path!.includes('→') && /missing blob/.test(p.problem);
    const corrupt = p.digest !== undefined && /hashes to|size mismatch/.test(p.problem);
    const entry = index.manifests.find((d) => d.digest === p.digest);
    if (dangling && entry) {
      const name = entry.annotations?.[REF_NAME_ANNOTATION];
      await note({ problem: `${name ?? p.digest} names a manifest the store does not have (a dangling reference): pull it again`, path: where, severity: 'error' }, () =>
        layout.delete({ ...entry }).catch(() => undefined),
      );
    } else if (corrupt) {
      await note({ problem: `blob ${p.digest}: ${p.problem}; pull the images that use it again`, path: where, severity: 'error' }, () =>
        unlink(layout.blobPath(p.digest!)).catch(() => undefined),
      );
    } else if (/stray temporary file/.test(p.problem)) {
      // gc leaves a temporary file younger than its grace time (a writer may be at work): not repaired yet.
      await note({ problem: p.problem, path: where, severity: 'warning' }, async () => {
        await gcLayout(layout);
        return stat(join(layout.dir, where!)).then(() => false, () => true);
      });
    } else {
      await note({ problem: `${p.digest ? `${p.digest}: ` : ''}${p.problem}${p.severity === 'error' ? ' (pull the image again)' : ''}`, path: where, severity: p.severity });
    }
  }

  // Snapshots: half-unpacked or half-removed dirs, stale locks, dirs without their record.
  let names: string[] = [];
  try {
    names = await readdir(snapshots.dir);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  for (const name of names) {
    const path = join(snapshots.dir, name);
    const tmp = /^tmp-(\d+)-/.exec(name);
    if (tmp) {
      if (!processAlive(Number(tmp[1]))) {
        await note({ problem: 'half-unpacked (or half-removed) snapshot of an interrupted command', path, severity: 'warning' }, () => rm(path, { recursive: true, force: true }));
      }
      continue;
    }
    const lock = /^([0-9a-f]{64})\.lock$/.exec(name);
    if (lock) {
      const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
      if (!(owner > 0) || !processAlive(owner)) {
        await note({ problem: `stale lock of a process that is gone (pid ${owner || 'unknown'})`, path, severity: 'warning' }, () => unlink(path).catch(() => undefined));
      }
      continue;
    }
    if (/^[0-9a-f]{64}$/.test(name)) {
      const meta = await snapshots.meta(`sha256:${name}`).catch(() => undefined);
      if (!meta) {
        await note({ problem: 'snapshot without its record (meta.json): never used, unpacked again when needed', path, severity: 'warning' }, () =>
          rm(path, { recursive: true, force: true }),
        );
      }
    }
  }
  // Orphans: snapshots no image, container or lease uses.
  const keep = await images.keptChains();
  const leased = await snapshots.leasedChains();
  const byChain = new Map((await snapshots.list()).map((m) => [m.chainId, m]));
  const kept = new Set<string>();
  for (const c of [...keep, ...leased]) {
    for (let at: string | undefined = c; at !== undefined && !kept.has(at); at = byChain.get(at)?.parent) kept.add(at);
  }
  const orphans = [...byChain.values()].filter((m) => !kept.has(m.chainId));
  if (orphans.length > 0) {
    await note(
      { problem: `${orphans.length} snapshot(s) that no image or container uses (${orphans.reduce((a, m) => a + m.diskBytes, 0)} bytes)`, path: snapshots.dir, severity: 'warning' },
      () => snapshots.prune(keep),
    );
  }

  // Builds killed mid-step: their scratch directories (stage views mounted), RUN containers, step tags.
  for (const l of await sweepInterruptedBuilds({ root: berthRoot, workDirs: [tmpdir()], dryRun: true })) {
    await note({ problem: `leftover of a build that was killed (pid ${l.pid}): ${l.kind === 'scratch' ? 'its scratch directory and mounts' : l.kind === 'container' ? 'the container of its RUN step' : 'its step image tag'}`, path: l.what, severity: 'warning' }, async () => {
      await sweepInterruptedBuilds({ root: berthRoot, workDirs: [tmpdir()] });
    });
  }

  // Volumes: leftovers of interrupted creates and removals.
  for (const path of await new Volumes(berthRoot).leftovers()) {
    await note({ problem: 'leftover of an interrupted volume create or remove', path, severity: 'warning' }, () => rm(path, { recursive: true, force: true }));
  }
  return problems;
}
