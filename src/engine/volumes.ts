/**
 * Named volumes (`berth volume create|ls|rm|inspect|prune`, `-v NAME:/path`): directories under
 * BERTH_ROOT/volumes, as docker's local driver keeps them:
 *
 *   <name>/_data         what containers mount
 *   <name>/volume.json   VolumeInfo
 *
 * A volume appears whole or not at all: it is made in `.tmp-<pid>-<rand>` and renamed to its
 * name (rename(2) of a directory onto an existing non-empty one fails, so of two concurrent
 * creates of one name exactly one makes it and the other finds it). Removal renames it to
 * `.removing-…` first. Leftovers of interrupted commands are removed by `berth system check`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import { writeFileAtomic } from '../image/atomic-file.js';
import { processAlive } from '../image/layout-lock.js';
import { diskUsage } from '../layer/walk.js';
import { containerUses } from './usage.js';

export interface VolumeInfo {
  name: string;
  driver: 'local';
  /** The host directory containers mount. */
  mountpoint: string;
  createdAt: string;
  labels: Record<string, string>;
  /** Made for a container without a name (`-v /path`): `volume prune` removes it without -a. */
  anonymous: boolean;
}

/** docker's rule for volume names. */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function volumesDir(berthRoot: string): string {
  return join(berthRoot, 'volumes');
}

function checkName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new BerthError('USAGE', `invalid volume name ${JSON.stringify(name)}: use at least two of [a-zA-Z0-9_.-], starting with a letter or digit`);
  }
}

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class Volumes {
  readonly dir: string;

  constructor(readonly berthRoot: string) {
    this.dir = volumesDir(berthRoot);
  }

  /** The volume, or undefined. */
  async get(name: string): Promise<VolumeInfo | undefined> {
    checkName(name);
    try {
      return JSON.parse(await readFile(join(this.dir, name, 'volume.json'), 'utf8')) as VolumeInfo;
    } catch (err) {
      if (isGone(err)) return undefined;
      throw err;
    }
  }

  async inspect(name: string): Promise<VolumeInfo> {
    const v = await this.get(name);
    if (!v) throw new BerthError('NOT_FOUND', `no volume ${JSON.stringify(name)}: create it with berth volume create ${name}`);
    return v;
  }

  /** Creates the volume (a random name when none is given); an existing one is returned as it is, as docker does. */
  async create(name?: string, opts: { labels?: Record<string, string>; anonymous?: boolean } = {}): Promise<VolumeInfo> {
    const chosen = name ?? randomBytes(32).toString('hex');
    checkName(chosen);
    const existing = await this.get(chosen);
    if (existing) return existing;
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const info: VolumeInfo = {
      name: chosen,
      driver: 'local',
      mountpoint: join(this.dir, chosen, '_data'),
      createdAt: new Date().toISOString(),
      labels: opts.labels ?? {},
      anonymous: opts.anonymous ?? name === undefined,
    };
    try {
      await mkdir(join(tmp, '_data'), { recursive: true, mode: 0o755 });
      await writeFileAtomic(join(tmp, 'volume.json'), JSON.stringify(info, null, 2) + '\n');
      await rename(tmp, join(this.dir, chosen));
      return info;
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return this.inspect(chosen); // made meanwhile by another process
      throw err;
    }
  }

  async list(): Promise<VolumeInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: VolumeInfo[] = [];
    for (const n of names.sort()) {
      if (!NAME_RE.test(n)) continue;
      const v = await this.get(n).catch(() => undefined);
      if (v) out.push(v);
    }
    return out;
  }

  /** The containers that mount the volume. */
  users(name: string): string[] {
    return containerUses(this.berthRoot)
      .filter((c) => c.volumes.includes(name))
      .map((c) => c.name);
  }

  /** Removes the volume and its data; refused while a container uses it (with `force`, only a running one refuses). */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.inspect(name);
    const users = containerUses(this.berthRoot).filter((c) => c.volumes.includes(name));
    const blocking = opts.force ? users.filter((c) => c.running) : users;
    if (blocking.length > 0) {
      throw new BerthError('USAGE', `volume ${name} is in use by container ${blocking.map((c) => c.name).join(', ')}: remove the container first`);
    }
    const trash = join(this.dir, `.removing-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await rename(join(this.dir, name), trash);
    } catch (err) {
      if (isGone(err)) throw new BerthError('NOT_FOUND', `no volume ${JSON.stringify(name)} (removed meanwhile)`);
      throw err;
    }
    await rm(trash, { recursive: true, force: true });
  }

  /** Removes the volumes no container uses: anonymous ones only, unless `all`. */
  async prune(opts: { all?: boolean } = {}): Promise<{ removed: string[]; bytes: number }> {
    const used = new Set(containerUses(this.berthRoot).flatMap((c) => c.volumes));
    const removed: string[] = [];
    let bytes = 0;
    for (const v of await this.list()) {
      if (used.has(v.name) || (!v.anonymous && !opts.all)) continue;
      const size = this.size(v);
      try {
        await this.remove(v.name);
      } catch (err) {
        if ((err as BerthError).code === 'NOT_FOUND') continue;
        throw err;
      }
      removed.push(v.name);
      bytes += size;
    }
    return { removed, bytes };
  }

  size(v: VolumeInfo): number {
    try {
      return diskUsage(v.mountpoint).bytes;
    } catch {
      return 0;
    }
  }

  /** Leftovers of interrupted creates and removals (their processes gone). */
  async leftovers(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    return names
      .filter((n) => {
        const m = /^\.(?:tmp|removing)-(\d+)-/.exec(n);
        return m !== null && !processAlive(Number(m[1]));
      })
      .map((n) => join(this.dir, n));
  }
}

/**
 * The host path of the named volume, for the engine to mount; with `create`, a volume that
 * does not exist is made (as `docker run -v NAME:/path` does), otherwise NOT_FOUND.
 */
export async function resolveVolume(berthRoot: string, name: string, opts: { create?: boolean } = {}): Promise<string> {
  const volumes = new Volumes(berthRoot);
  const v = opts.create ? await volumes.create(name, { anonymous: false }) : await volumes.inspect(name);
  return v.mountpoint;
}
