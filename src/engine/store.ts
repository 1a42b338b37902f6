/**
 * The local image store that `berth pull`/`push` fill and read and `berth run` uses: an OCI
 * image layout under `$BERTH_ROOT/images` (or `--root`), by default `/var/lib/berth/images`
 * as root and `$XDG_DATA_HOME/berth/images` (`~/.local/share/berth/images`) otherwise.
 * Images are tagged with their full reference, e.g. `docker.io/library/busybox:latest`.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OciLayout } from '../image/layout.js';
import { formatReference, type Reference } from '../image/reference.js';

export interface StoreOptions {
  /** Overrides the berth root directory (the store is its `images` subdirectory). */
  root?: string;
  env?: NodeJS.ProcessEnv;
}

export function berthRoot(opts: StoreOptions = {}): string {
  const env = opts.env ?? process.env;
  if (opts.root) return opts.root;
  if (env.BERTH_ROOT) return env.BERTH_ROOT;
  if (process.getuid?.() === 0) return '/var/lib/berth';
  return join(env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share'), 'berth');
}

export function imageStorePath(opts: StoreOptions = {}): string {
  return join(berthRoot(opts), 'images');
}

/** Opens the store, creating it on first use. */
export function openImageStore(opts: StoreOptions = {}): Promise<OciLayout> {
  return OciLayout.open(imageStorePath(opts), { create: true });
}

/** The name an image has in the store: its full reference (registry/repository[:tag][@digest]). */
export function storeRefName(ref: Reference): string {
  return formatReference(ref);
}
