/**
 * The volumes a container gets without naming them, as docker makes them: one per VOLUME of its
 * image (the config's Volumes) and per `-v /path` or `--mount type=volume` without a source, each
 * a volume with a random name marked anonymous (`volume ls` lists it, `volume prune` takes it
 * once unused). A volume still empty when a container is made gets the image's content at its
 * path (docker's copy on first use; named volumes too). `rm -v` and `run --rm` remove the
 * container's anonymous volumes; named ones stay.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { resolveInRoot } from '../../image/passwd.js';
import { Volumes, volumesDir } from '../volumes.js';
import type { MountSpec } from './options.js';

export interface ContainerVolumes {
  /** The mounts with every volume named (anonymous ones made), the image's VOLUMEs added. */
  mounts: MountSpec[];
  /** The names of the anonymous volumes made for the container. */
  anonymous: string[];
}

/** Makes the anonymous volumes of a container about to be created. */
export async function makeAnonymousVolumes(berthRoot: string, imageVolumes: Record<string, unknown> | undefined, mounts: MountSpec[]): Promise<ContainerVolumes> {
  const volumes = new Volumes(berthRoot);
  const anonymous: string[] = [];
  const anon = async (destination: string, options: string[]): Promise<MountSpec> => {
    const v = await volumes.create(undefined, { anonymous: true });
    anonymous.push(v.name);
    return { type: 'volume', source: v.name, destination, options };
  };
  try {
    const out: MountSpec[] = [];
    for (const m of mounts) out.push(m.type === 'volume' && m.source === '' ? await anon(m.destination, m.options) : m);
    // A mount the user asked for at the same path takes the VOLUME's place (as docker).
    const taken = new Set(out.map((m) => posix.normalize(m.destination)));
    for (const path of Object.keys(imageVolumes ?? {})) {
      const dest = posix.normalize(posix.join('/', path));
      if (taken.has(dest)) continue;
      taken.add(dest);
      out.push(await anon(dest, ['rbind', 'rprivate']));
    }
    return { mounts: out, anonymous };
  } catch (err) {
    await removeVolumes(berthRoot, anonymous);
    throw err;
  }
}

/**
 * Docker's copy on first use: a volume whose directory is empty gets what the image has at its
 * path (ownership, modes and all), read through the container's root before it runs.
 */
export async function fillEmptyVolume(rootfs: string, destination: string, dataDir: string): Promise<void> {
  if (readdirSync(dataDir).length > 0) return;
  const src = await resolveInRoot(rootfs, destination);
  if (!src || !statSync(src).isDirectory() || readdirSync(src).length === 0) return;
  const r = spawnSync('cp', ['-a', '--', `${src}/.`, dataDir], { encoding: 'utf8' });
  if (r.status !== 0) throw new BerthError('RUNTIME_ERROR', `cannot copy the image's ${destination} into its volume: ${(r.stderr || r.error?.message || '').trim()}`);
}

/** The directories the monitor removes after a `--rm` container (the volumes, whole). */
export function volumeDirs(berthRoot: string, names: string[]): string[] {
  return names.map((n) => join(volumesDir(berthRoot), n));
}

/** Removes volumes (those already gone are skipped). */
export async function removeVolumes(berthRoot: string, names: string[]): Promise<void> {
  const volumes = new Volumes(berthRoot);
  for (const n of names) {
    try {
      await volumes.remove(n);
    } catch (err) {
      if ((err as BerthError).code !== 'NOT_FOUND') throw err;
    }
  }
}
