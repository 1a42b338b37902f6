/** Atomic file replacement: write a temp file beside the target, fsync it, rename it over, fsync the dir. */
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** Prefix of every temp file berth leaves beside its targets while writing. */
export const TEMP_PREFIX = '.berth-tmp-';

export function tempPathBeside(target: string): string {
  return join(dirname(target), `${TEMP_PREFIX}${basename(target)}-${randomBytes(6).toString('hex')}`);
}

/** fsync a directory so that a rename inside it survives a crash (best effort: some filesystems refuse). */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Directories cannot be fsynced on every filesystem; the rename itself is still atomic.
  } finally {
    await fh?.close();
  }
}

/** Replaces `target` with `data` so that readers see either the old or the new content, never a mix. */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempPathBeside(target);
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(target));
}
