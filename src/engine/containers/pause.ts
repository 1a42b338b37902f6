/**
 * `berth pause` and `unpause`, as docker's: the container's processes frozen in their freezer
 * cgroup (/berth/ID, whatever the runtime), and what other commands do with a paused
 * container: ps and inspect show it, exec is refused, stop, kill and rm -f thaw it first (so
 * that the signal is taken at once, as docker's end it).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostCgroupLayout } from '../../runtime/cgroups/host.js';
import { cgroupManagerFor } from '../../runtime/cgroups/manager.js';
import { BerthError } from '../../base/errors.js';
import type { Container } from './store.js';

function manager(c: Container) {
  return cgroupManagerFor(`/berth/${c.id}`, c.id);
}

/**
 * CONTAINER/paused: made before `pause` freezes and removed after `unpause` thaws, so that a
 * container without it is not paused, whatever happened in between (a kill -9 of berth).
 */
const PAUSED_MARK = 'paused';

/**
 * Whether a running container's processes are frozen (or being frozen). The freezer's file is
 * found from the host's layout alone (as the manager's paths for /berth/ID).
 */
export function isPaused(c: Container): boolean {
  if (c.state.status !== 'running') return false;
  const layout = hostCgroupLayout();
  try {
    if (layout.v1.freezer !== undefined) return readFileSync(join(layout.v1.freezer, 'berth', c.id, 'freezer.state'), 'utf8').trim() !== 'THAWED';
    if (layout.v2 !== undefined) return readFileSync(join(layout.v2.mountPoint, 'berth', c.id, 'cgroup.freeze'), 'utf8').trim() === '1';
  } catch { /* no cgroup: not frozen */ }
  return false;
}

/**
 * isPaused for `ps`, which asks it of every running container: one without the mark was not
 * paused by `berth pause` (before the marks, a cgroup manager and the host's mountinfo per `ps`
 * cost it ~0.2 ms per container). pause, unpause, exec and the signals ask isPaused itself.
 */
export function listedAsPaused(c: Container): boolean {
  return c.state.status === 'running' && existsSync(`${c.dir}/${PAUSED_MARK}`) && isPaused(c);
}

/** `running`: the container's process is alive. docker's refusals (status 1). */
export async function setPaused(c: Container, running: boolean, pause: boolean): Promise<void> {
  if (!running) throw new BerthError('CONTAINER_STATE', `container ${c.name} is not running`);
  const paused = isPaused(c);
  if (pause && paused) throw new BerthError('CONTAINER_STATE', `container ${c.name} is already paused; berth unpause ${c.name} resumes it`);
  if (!pause && !paused) throw new BerthError('CONTAINER_STATE', `container ${c.name} is not paused`);
  if (pause) {
    writeFileSync(join(c.dir, PAUSED_MARK), '');
    await manager(c).freeze();
  } else {
    await thaw(c);
  }
}

async function thaw(c: Container): Promise<void> {
  await manager(c).thaw();
  rmSync(join(c.dir, PAUSED_MARK), { force: true });
}

/** Before a signal: a frozen container would take it only once thawed. */
export async function thawIfPaused(c: Container): Promise<void> {
  if (isPaused(c)) await thaw(c);
}
