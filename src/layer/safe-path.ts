/**
 * Resolving archive paths inside a root directory, chroot-style: every component is looked up
 * with lstat, symlinks are followed as if the root were `/` (an absolute target restarts at the
 * root, `..` never climbs above it), so no path an archive names can reach outside the root.
 * The final component is never followed: callers replace or remove it.
 *
 * Resolutions are cached for the life of one layer (directories seen or created), and the cache
 * is dropped whenever the caller removes a directory or a symlink, the only changes that can
 * alter how a cached path resolves. All operations are synchronous, so nothing in this process
 * can change the tree between a check and its use; the root must not be modified concurrently
 * by another process while a layer is applied (as with umoci and containerd).
 */
import { chmodSync, lstatSync, mkdirSync, readlinkSync } from 'node:fs';
import { BerthError } from '../base/errors.js';

/** Symlinks followed while resolving one path before giving up (Linux's MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

/**
 * The components of an archive entry name: a leading `/` and `.` components are dropped (an
 * absolute name is rooted at the root, as tar does); `..` is refused with UNSAFE_PATH.
 * An empty result means the root itself.
 */
export function entryComponents(name: string): string[] {
  if (name.includes('\0')) throw new BerthError('UNSAFE_PATH', `archive entry name ${JSON.stringify(name)} contains a NUL byte`);
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      throw new BerthError(
        'UNSAFE_PATH',
        `archive entry ${JSON.stringify(name)} has a ".." component, which could escape the root: refusing the layer`,
      );
    }
    out.push(c);
  }
  return out;
}

export function joinRel(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`;
}

export class SafeRoot {
  /** archive directory path → resolved real path (relative to the root). */
  private readonly resolved = new Map<string, string>();
  /** Resolved relative paths known to be real directories (every prefix is one too). */
  private readonly dirs = new Set<string>(['']);

  /** @param root an absolute, symlink-free path (realpath) to an existing directory. */
  constructor(readonly root: string) {}

  abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  /** Forgets every cached resolution: call after removing a directory or a symlink. */
  invalidate(): void {
    this.resolved.clear();
    this.dirs.clear();
    this.dirs.add('');
  }

  /** Records a directory the caller just created at a resolved path. */
  noteDir(rel: string): void {
    this.dirs.add(rel);
  }

  /**
   * Resolves the directory named by `components` (archive names, already checked by
   * entryComponents) to a real directory inside the root. Missing directories are created
   * (mode 0755) when `create` is set, reporting each to `onCreate`; otherwise undefined is
   * returned. A component that exists and is not a directory (after following symlinks inside
   * the root) yields undefined, or LAYER_INVALID when `create` is set.
   */
  resolveDir(components: readonly string[], create: boolean, onCreate?: (rel: string) => void): string | undefined {
    const key = components.join('/');
    const hit = this.resolved.get(key);
    if (hit !== undefined) return hit;
    const result = this.walk(components, create, onCreate, key);
    if (result !== undefined) this.resolved.set(key, result);
    return result;
  }

  private walk(
    components: readonly string[],
    create: boolean,
    onCreate: ((rel: string) => void) | undefined,
    original: string,
  ): string | undefined {
    const current: string[] = [];
    const todo = components.slice().reverse(); // a stack: next component last
    let links = 0;
    while (todo.length > 0) {
      const c = todo.pop()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        // Only symlink targets get here: `..` of the root is the root (chroot semantics).
        current.pop();
        continue;
      }
      const parentRel = current.join('/');
      const rel = joinRel(parentRel, c);
      if (this.dirs.has(rel)) {
        current.push(c);
        continue;
      }
      const st = lstatSync(this.abs(rel), { throwIfNoEntry: false });
      if (st === undefined) {
        if (!create) return undefined;
        mkdirSync(this.abs(rel), 0o755);
        chmodSync(this.abs(rel), 0o755); // whatever the umask: parents the archive omits get tar's default
        this.dirs.add(rel);
        onCreate?.(rel);
        current.push(c);
        continue;
      }
      if (st.isDirectory()) {
        this.dirs.add(rel);
        current.push(c);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) {
          throw new BerthError(
            'UNSAFE_PATH',
            `too many levels of symbolic links resolving ${JSON.stringify(original)} inside the root: refusing the layer`,
          );
        }
        const target = readlinkSync(this.abs(rel), 'utf8');
        if (target.startsWith('/')) current.length = 0;
        const parts = target.split('/');
        for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]!);
        continue;
      }
      if (!create) return undefined;
      throw new BerthError(
        'LAYER_INVALID',
        `cannot apply ${JSON.stringify(original)}: /${rel} is not a directory in the root (the layer expects one)`,
      );
    }
    return current.join('/');
  }
}
