/**
 * Network namespaces the engine owns, for runc-compatible runtimes (--runtime runc|crun|PATH):
 * berth cannot attach a namespace the runtime makes (it exists only inside `runc run`), so, as
 * podman and netavark do, the engine makes one first, kept by a bind mount of its nsfs file at
 * ROOT/netns/ID (util-linux's `unshare --net=FILE`), attaches it, and names the file in
 * config.json's network namespace (runtime-spec config-linux.md "Namespaces": a path joins it).
 * Removed (unmounted: the kernel deletes the veth with it) on rm, stop and the sweep.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.js';

export function netnsDir(root: string): string {
  return join(root, 'netns');
}

export function netnsFile(root: string, id: string): string {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new BerthError('USAGE', `container id ${JSON.stringify(id)} is invalid`);
  return join(netnsDir(root), id);
}

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path);
}

/** A new network namespace kept at ROOT/netns/ID (one that is there already is reused); returns its path. */
export function createNetnsFile(root: string, id: string): string {
  const path = netnsFile(root, id);
  if (mounted(path)) return path;
  mkdirSync(netnsDir(root), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, 'w', 0o600));
  const r = spawnSync('unshare', [`--net=${path}`, 'true'], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(path, { force: true });
    const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    throw new BerthError('NETWORK', missing ? 'the "unshare" command is missing: install util-linux' : `cannot make a network namespace at ${path}: ${(r.stderr || r.error?.message || '').trim()}`);
  }
  return path;
}

/** Unmounts and deletes ROOT/netns/ID; a missing one is fine. */
export function removeNetnsFile(root: string, id: string): void {
  const path = netnsFile(root, id);
  if (mounted(path)) {
    const r = spawnSync('umount', [path], { encoding: 'utf8' });
    if (r.status !== 0 && mounted(path)) throw new BerthError('NETWORK', `cannot unmount the network namespace ${path}: ${(r.stderr || '').trim()}`);
  }
  rmSync(path, { force: true });
}

/** The container ids that have a namespace file (none when the directory is missing). */
export function netnsFileIds(root: string): string[] {
  try {
    return readdirSync(netnsDir(root)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  } catch {
    return [];
  }
}
