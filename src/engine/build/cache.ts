/**
 * The build cache: a step's layer kept under the step's cache key (plan.ts stepKey), so that
 * a later build with the same parent, instruction, build args in use and COPY contents reuses
 * it instead of copying or running again. It survives between builds: an OCI layout holding the
 * layer blobs plus one small JSON record per key, written atomically; `prune` removes records
 * (all, or those unused for a while) and the blobs no record needs any more.
 */
import { link, readdir, readFile, rm, stat, utimes, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { encodedOf, isValidDigest } from '../../base/digest.js';
import type { Descriptor } from '../../base/types.js';
import { writeFileAtomic } from '../../image/atomic-file.js';
import { OciLayout } from '../../image/layout.js';

export interface CachedStep {
  key: string;
  /** The layer the step made; none for a step that changed nothing (WORKDIR of an existing directory). */
  layer?: { desc: Descriptor; diffId: string };
  /** The history text, for `berth builder` listings. */
  createdBy: string;
}

/**
 * Puts a blob of one of the build's own layouts (its output, the cache, the store) into another:
 * a hard link where both are on one file system (a layout never writes a blob in place, and
 * `from` verified it when it was written), else a copy whose digest is verified on the way. Not
 * for layouts a user named: their blobs are copied and verified.
 */
export async function shareBlob(from: OciLayout, to: OciLayout, desc: Descriptor): Promise<void> {
  if (await to.exists(desc)) return;
  const target = to.blobPath(desc.digest);
  try {
    await mkdir(dirname(target), { recursive: true });
    await link(from.blobPath(desc.digest), target);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    // EXDEV (another file system), EPERM…: copy instead
  }
  await to.push(desc, await from.fetch(desc));
}

export class BuildCache {
  private constructor(
    readonly dir: string,
    readonly layout: OciLayout,
  ) {}

  static async open(dir: string): Promise<BuildCache> {
    await mkdir(join(dir, 'steps'), { recursive: true });
    return new BuildCache(dir, await OciLayout.open(join(dir, 'layout'), { create: true }));
  }

  private file(key: string): string {
    if (!isValidDigest(key)) throw new BerthError('INTERNAL', `cache key ${key} is not a digest`);
    return join(this.dir, 'steps', `${encodedOf(key)}.json`);
  }

  /** The step cached under `key` whose layer is still there (and has `mediaType`), or undefined. */
  async get(key: string, mediaType: string): Promise<CachedStep | undefined> {
    let rec: CachedStep;
    try {
      rec = JSON.parse(await readFile(this.file(key), 'utf8')) as CachedStep;
    } catch {
      return undefined;
    }
    if (rec.key !== key) return undefined;
    if (rec.layer && (rec.layer.desc.mediaType !== mediaType || !(await this.layout.exists(rec.layer.desc)))) return undefined;
    // The record's mtime says when it was last used (prune keeps what was used recently).
    const now = new Date();
    await utimes(this.file(key), now, now).catch(() => undefined);
    return rec;
  }

  /** Records a step; its layer blob is shared from `from` when the cache does not hold it yet. */
  async put(step: CachedStep, from: OciLayout): Promise<void> {
    if (step.layer) await shareBlob(from, this.layout, step.layer.desc);
    await writeFileAtomic(this.file(step.key), JSON.stringify(step));
  }

  /** Removes records (all, or those unused for `olderThanMs`) and the blobs left without one. */
  async prune(opts: { olderThanMs?: number } = {}): Promise<{ records: number; blobs: number; bytes: number }> {
    const stepsDir = join(this.dir, 'steps');
    const keep = new Set<string>();
    let records = 0;
    const cutoff = opts.olderThanMs === undefined ? Infinity : Date.now() - opts.olderThanMs;
    for (const name of await readdir(stepsDir)) {
      if (!name.endsWith('.json')) continue;
      const path = join(stepsDir, name);
      const st = await stat(path).catch(() => undefined);
      if (!st) continue;
      if (st.mtimeMs < cutoff) {
        await rm(path, { force: true });
        records++;
        continue;
      }
      try {
        const rec = JSON.parse(await readFile(path, 'utf8')) as CachedStep;
        if (rec.layer) keep.add(rec.layer.desc.digest);
      } catch {
        await rm(path, { force: true });
        records++;
      }
    }
    let blobs = 0;
    let bytes = 0;
    const blobDir = join(this.dir, 'layout', 'blobs', 'sha256');
    for (const name of await readdir(blobDir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{64}$/.test(name) || keep.has(`sha256:${name}`)) continue;
      const st = await stat(join(blobDir, name)).catch(() => undefined);
      if (!st?.isFile()) continue;
      await rm(join(blobDir, name), { force: true });
      blobs++;
      bytes += st.size;
    }
    return { records, blobs, bytes };
  }
}
