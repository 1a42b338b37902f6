/**
 * What `create` asks of an image's root before anything runs (the accounts in /etc/passwd and
 * /etc/group, whether the working directory exists, where the command is and whether it may
 * run), answered without mounting the root when an earlier container of the same chain asked
 * the same. A snapshot chain never changes once unpacked, so its answers are kept beside its
 * top snapshot (SNAPSHOTS/<chain>/facts.json, a cache: deleted with the snapshot, rebuilt when
 * unreadable). A question not answered there mounts the container's root (once) and looks.
 *
 * Why: the mount costs a process start in the middle of `run` (Node has no mount(2)); on a
 * warm run the container's monitor mounts the root instead, in the process it starts anyway.
 */
import { lstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRootFile, resolveInRootSync } from '../image/passwd.js';

/** A path of the image's root, symlinks resolved inside it: what exec and chdir would find. */
export type PathKind = 'missing' | 'dir' | 'exec' | 'file';

export interface Facts {
  /** An overlay of this chain mounted here before (so a monitor may mount the next one). */
  overlay?: boolean;
  kinds: Record<string, PathKind>;
  /** Small text files (the account databases): null when absent or not a regular file. */
  files: Record<string, string | null>;
}

/** Files larger than this are read from the mounted root each time, not kept in the cache. */
const MAX_CACHED_FILE = 64 * 1024;

export class ImageRoot {
  private facts: Facts;
  private changed = false;
  private mounting?: Promise<string>;

  /**
   * @param path the container's root (CONTAINER/rootfs), mounted or not yet
   * @param factsFile where this chain's answers are kept (undefined: no cache, always mount)
   * @param mount mounts the root at `path` (called at most once, on the first question the
   *   cache cannot answer); `mountedAlready` when the caller mounted it before
   */
  constructor(readonly path: string, private readonly factsFile: string | undefined, facts: Facts | undefined, private readonly mount: () => Promise<string>, mountedAlready: boolean) {
    this.facts = facts ?? { kinds: {}, files: {} };
    if (mountedAlready) this.mounting = Promise.resolve(path);
  }

  /** The root was mounted as an overlay here: the next container of the chain may leave it to its monitor. */
  noteOverlay(): void {
    if (this.facts.overlay) return;
    this.facts.overlay = true;
    this.changed = true;
  }

  /** Whether this process mounted the root (otherwise whoever starts the container must). */
  get mounted(): boolean {
    return this.mounting !== undefined;
  }

  /** The root, mounted: for the questions the cache cannot answer and for writes. */
  mountNow(): Promise<string> {
    this.mounting ??= this.mount();
    return this.mounting;
  }

  async kind(path: string): Promise<PathKind> {
    const known = this.facts.kinds[path];
    if (known) return known;
    const root = await this.mountNow();
    const host = resolveInRootSync(root, path);
    let kind: PathKind = 'missing';
    if (host !== undefined) {
      const st = lstatSync(host);
      kind = st.isDirectory() ? 'dir' : st.mode & 0o111 ? 'exec' : 'file';
    }
    this.facts.kinds[path] = kind;
    this.changed = true;
    return kind;
  }

  async readFile(path: string): Promise<string | undefined> {
    const known = this.facts.files[path];
    if (known !== undefined) return known ?? undefined;
    const text = await readRootFile(await this.mountNow(), path);
    if (text === undefined || Buffer.byteLength(text) <= MAX_CACHED_FILE) {
      this.facts.files[path] = text ?? null;
      this.changed = true;
    }
    return text;
  }

  /** Keeps what was learnt for the next container of this chain (temp + rename; a lost race only loses answers). */
  save(): void {
    if (!this.changed || !this.factsFile) return;
    const merged = readFacts(this.factsFile);
    if (this.facts.overlay) merged.overlay = true;
    Object.assign(merged.kinds, this.facts.kinds);
    Object.assign(merged.files, this.facts.files);
    const tmp = `${this.factsFile}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, JSON.stringify(merged));
      renameSync(tmp, this.factsFile);
    } catch {
      /* a read-only or vanished snapshot: no cache, the next run mounts and looks */
    }
    this.changed = false;
  }
}

const KINDS: ReadonlySet<string> = new Set<PathKind>(['missing', 'dir', 'exec', 'file']);

/** A chain's facts file; what does not have the expected shape is dropped (asked again). */
export function readFacts(file: string): Facts {
  const facts: Facts = { kinds: {}, files: {} };
  let f: { overlay?: unknown; kinds?: Record<string, unknown>; files?: Record<string, unknown> };
  try {
    f = JSON.parse(readFileSync(file, 'utf8')) as typeof f;
  } catch {
    return facts; // none yet, or unreadable: start afresh
  }
  if (f?.overlay === true) facts.overlay = true;
  for (const [k, v] of Object.entries(f?.kinds ?? {})) if (typeof v === 'string' && KINDS.has(v)) facts.kinds[k] = v as PathKind;
  for (const [k, v] of Object.entries(f?.files ?? {})) if (typeof v === 'string' || v === null) facts.files[k] = v;
  return facts;
}

/** The facts file of a chain whose top snapshot's `fs` dir is `topDir`. */
export function factsFileOf(topDir: string): string {
  return join(topDir, '..', 'facts.json');
}
