/**
 * `berth pause` and `unpause`, as docker's: the container's processes frozen in their freezer
 * cgroup (/berth/ID, whatever the runtime), and what other commands do with a paused
 * container: ps and inspect show it, exec is refused, stop, kill and rm -f thaw it first (so
 * that the signal is taken at once, as docker's end it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupManagerFor } from '../../runtime/cgroups/manager.js';
import { BerthError } from '../../base/errors.js';
import type { Container } from './store.js';

function manager(c: Container) {
  return cgroupManagerFor(`/berth/${c.id}`, c.id);
}

/** Whether a running container's processes are frozen (or being frozen). */
export function isPaused(c: Container): boolean {
  if (c.state.status !== 'running') return false;
  const paths = manager(c).paths;
  try {
    if (paths.freezer) return readFileSync(join(paths.freezer, 'freezer.state'), 'utf8').trim() !== 'THAWED';
    if (paths.unified) return readFileSync(join(paths.unified, 'cgroup.freeze'), 'utf8').trim() === '1';
  } catch { /* no cgroup: not frozen */ }
  return false;
}

/** `running`: the container's process is alive. docker's refusals (status 1). */
export async function setPaused(c: Container, running: boolean, pause: boolean): Promise<void> {
  if (!running) throw new BerthError('CONTAINER_STATE', `container ${c.name} is not running`);
  const paused = isPaused(c);
  if (pause && paused) throw new BerthError('CONTAINER_STATE', `container ${c.name} is already paused; berth unpause ${c.name} resumes it`);
  if (!pause && !paused) throw new BerthError('CONTAINER_STATE', `container ${c.name} is not paused`);
  if (pause) await manager(c).freeze();
  else await manager(c).thaw();
}

/** Before a signal: a frozen container would take it only once thawed. */
export async function thawIfPaused(c: Container): Promise<void> {
  if (isPaused(c)) await manager(c).thaw();
}
