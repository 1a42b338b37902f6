/**
 * What a `berth build` killed mid-step (kill -9, a crash) leaves behind, found and removed by
 * the next build and by `berth system check` (--repair): its scratch directories, named with
 * its pid, with the read-only overlay views of its stages still mounted in them; the container
 * of the RUN it was running (named and labelled with the pid), whose process still runs; the temporary
 * tag of that step's image in the store. Nothing half-written is ever used: layer blobs are
 * renamed into place only once verified (a killed write leaves a temporary file that layout gc
 * removes), snapshots are unpacked under tmp-PID names and renamed, cache records are written
 * atomically after their layer.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { processAlive } from '../../image/layout-lock.js';
import { parseMountinfo } from '../../runtime/mountinfo.js';
import { openImageStore } from '../store.js';
import { unmount } from '../snapshots.js';

/** The label of a RUN step's container: the pid of the build that runs it. */
export const BUILD_PID_LABEL = 'io.berth.build.pid';
/** The repository of the step images' temporary tags (`localhost/berth-build-step:PID-HEX`). */
export const STEP_IMAGE_REPO = 'localhost/berth-build-step';

/** The prefix of a build's scratch directory (mkdtemp adds the rest): the pid tells whether its build still runs. */
export function scratchPrefix(kind: 'build' | 'run-step'): string {
  return `berth-${kind}-${process.pid}-`;
}

export interface BuildLeftover {
  kind: 'scratch' | 'container' | 'tag';
  /** The directory, container id or tag. */
  what: string;
  /** The build's pid, gone. */
  pid: number;
}

const SCRATCH = /^berth-(?:build|run-step)-(\d+)-/;
const STEP_TAG = new RegExp(`^${STEP_IMAGE_REPO}:(\\d+)-`);
const STEP_CONTAINER = /^berth-build-(\d+)-[0-9a-f]+$/;

function gone(pid: number): boolean {
  return pid > 0 && pid !== process.pid && !processAlive(pid);
}

function mountsUnder(dir: string): string[] {
  const root = resolve(dir);
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((m) => m.mountPoint)
    .filter((p) => p === root || p.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * The leftovers of builds whose process is gone, in `workDirs` (where builds make their scratch
 * directories) and, with `root`, in that berth root's containers and store; removed unless
 * `dryRun`. A scratch directory is removed only once nothing is mounted under it.
 */
export async function sweepInterruptedBuilds(opts: { root?: string; workDirs: string[]; dryRun?: boolean }): Promise<BuildLeftover[]> {
  const found: BuildLeftover[] = [];
  for (const dir of new Set(opts.workDirs.map((d) => resolve(d)))) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const pid = Number(SCRATCH.exec(name)?.[1] ?? 0);
      if (!gone(pid)) continue;
      const path = join(dir, name);
      found.push({ kind: 'scratch', what: path, pid });
      if (opts.dryRun) continue;
      for (const m of mountsUnder(path)) if (!unmount(m, false).ok) unmount(m, true);
      // Never a recursive remove across a mount that is still there.
      if (mountsUnder(path).length === 0) await rm(path, { recursive: true, force: true });
    }
  }
  if (opts.root === undefined) return found;
  // Step containers are named berth-build-PID-…: only a dead build's name opens the engine.
  const names = await readdir(join(opts.root, 'containers', 'names')).catch(() => [] as string[]);
  const dead = names.filter((n) => gone(Number(STEP_CONTAINER.exec(n)?.[1] ?? 0)));
  if (dead.length > 0) {
    const { Engine } = await import('../containers/engine.js');
    const engine = new Engine(opts.root);
    for (const name of dead) {
      const c = engine.store.list().find((x) => x.name === name);
      const pid = Number(c?.config.labels?.[BUILD_PID_LABEL] ?? 0);
      if (!c || !gone(pid)) continue;
      found.push({ kind: 'container', what: c.id, pid });
      if (!opts.dryRun) await engine.remove(c, true);
    }
  }
  // Step image tags, in the store's index.json (read as it is: no store is created for this).
  const index = await readFile(join(opts.root, 'images', 'index.json'), 'utf8').catch(() => '');
  if (!index.includes(STEP_IMAGE_REPO)) return found;
  const store = await openImageStore({ root: opts.root });
  for (const tag of await store.tags()) {
    const pid = Number(STEP_TAG.exec(tag)?.[1] ?? 0);
    if (!gone(pid)) continue;
    found.push({ kind: 'tag', what: tag, pid });
    if (!opts.dryRun) await store.untag(tag).catch(() => undefined);
  }
  return found;
}

/** The name of a RUN step's container: the pid of its build, and a random part. */
export function stepContainerName(): string {
  return `berth-build-${process.pid}-${randomBytes(6).toString('hex')}`;
}
