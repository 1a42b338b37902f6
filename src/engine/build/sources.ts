/**
 * What a COPY/ADD reads and where it lands, with docker's semantics: sources relative to the
 * context (or to another stage's root with --from), `..` never leaving it; Go filepath.Match
 * wildcards per path component; a directory source copies its contents, not itself; several
 * sources (or a wildcard) need a directory destination ending in `/` unless it already is a
 * directory; a relative destination is under WORKDIR; a top-level symlink source is followed,
 * symlinks inside directories are copied as links. Plus the content hash of all that for the
 * cache key: names, types, modes, link targets and contents; never mtimes.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../image/atomic-file.js';
import { resolveInRootSync } from '../../image/passwd.js';
import { posix } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { cleanPath, walkContext, type PatternMatcher } from './ignore.js';

/** One thing to create in the image. */
export interface CopyEntry {
  /** Host path to read. */
  abs: string;
  /** Absolute path in the image, no trailing slash. */
  dest: string;
  kind: 'file' | 'dir' | 'symlink';
  stat: Stats;
  linkname?: string;
}

export interface CopyRoot {
  /** The directory the sources are relative to (the context, or a stage's root filesystem). */
  dir: string;
  /** The context's ignore rules (none for another stage). */
  matcher?: PatternMatcher;
  /** How errors name it: "the build context", "stage build". */
  label: string;
}

/** Go filepath.Match's special characters (BuildKit containsWildcards). */
export function hasWildcards(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const ch = p[i]!;
    if (ch === '\\') i++;
    else if (ch === '*' || ch === '?' || ch === '[') return true;
  }
  return false;
}

/** One path component's pattern as a regular expression (`*` and `?` never match `/`). */
function componentRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new BerthError('USAGE', `bad wildcard ${JSON.stringify(pattern)}: unterminated [`);
      re += `[${pattern.slice(i + 1, end).replace(/^\^/, '^').replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (ch === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

function isIgnored(root: CopyRoot, rel: string, isDir: boolean): boolean {
  if (!root.matcher || root.matcher.empty) return false;
  const ignored = root.matcher.matches(rel).ignored;
  // An ignored directory may still hold files a `!` pattern brings back.
  return ignored && !(isDir && root.matcher.hasExclusions);
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/** Paths (relative, cleaned) a source names in the root: itself, or its wildcard matches in name order. */
function matchSource(root: CopyRoot, rel: string): string[] {
  if (!hasWildcards(rel)) return lstatOrUndefined(posix.join(root.dir, rel)) ? [rel] : [];
  let found = [''];
  for (const part of rel.split('/')) {
    const next: string[] = [];
    for (const base of found) {
      const dir = base === '' ? root.dir : posix.join(root.dir, base);
      if (!hasWildcards(part)) {
        const p = base === '' ? part : `${base}/${part.replace(/\\(.)/g, '$1')}`;
        if (lstatOrUndefined(posix.join(root.dir, p))) next.push(p);
        continue;
      }
      let names: string[];
      try {
        names = readdirSync(dir).sort();
      } catch {
        continue;
      }
      const re = componentRegExp(part);
      for (const n of names) if (re.test(n)) next.push(base === '' ? n : `${base}/${n}`);
    }
    found = next;
  }
  return found.filter((p) => !isIgnored(root, p, lstatOrUndefined(posix.join(root.dir, p))?.isDirectory() ?? false));
}

/** Follows a symlink inside the root (absolute targets and `..` stay in it); undefined if dangling. */
function followInRoot(root: string, rel: string): { rel: string; stat: Stats } | undefined {
  const host = resolveInRootSync(root, rel);
  if (host === undefined) return undefined;
  return { rel: posix.relative(root, host), stat: lstatSync(host) };
}

function entryKind(st: Stats): CopyEntry['kind'] | undefined {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  return undefined;
}

/** The image path of `dest` as docker reads it: relative to WORKDIR; `/` kept at the end when given. */
export function destinationPath(dest: string, workdir: string): { path: string; isDir: boolean } {
  const isDir = dest.endsWith('/') || dest === '.' || dest.endsWith('/.');
  const abs = posix.resolve('/', workdir || '/', dest);
  return { path: abs, isDir };
}

export interface ResolveCopyOptions {
  workdir: string;
  /** Whether a path already is a directory in the image being built (follows its symlinks). */
  isDirInImage: (path: string) => boolean;
  /** The instruction, for messages: "COPY", "ADD". */
  what: string;
  /** --parents: keep each source's path under the destination. */
  parents?: boolean;
  /** --exclude patterns (matched like .dockerignore). */
  exclude?: PatternMatcher;
}

/**
 * Every entry a COPY creates, parents before children, in a stable order. `sources` are the
 * instruction's sources after substitution.
 */
export function resolveCopy(root: CopyRoot, sources: string[], dest: string, opts: ResolveCopyOptions): CopyEntry[] {
  const d = destinationPath(dest, opts.workdir);
  const matched: { rel: string; given: string; keep?: string }[] = [];
  for (const src of sources) {
    const rel = cleanPath(`/${src}`).slice(1) || '.';
    const found = rel === '.' ? ['.'] : matchSource(root, rel);
    const visible = found.filter((p) => p === '.' || !isIgnored(root, p, lstatOrUndefined(posix.join(root.dir, p))?.isDirectory() ?? false));
    if (visible.length === 0) {
      throw new BerthError(
        'NOT_FOUND',
        `${opts.what} ${src}: ${hasWildcards(rel) ? 'no file matches it' : 'not found'} in ${root.label}${root.matcher && !root.matcher.empty ? ' (or excluded by the ignore file)' : ''}: check the path, which is relative to ${root.label}`,
      );
    }
    // --parents keeps the source's path (after a `/./` pivot when there is one) under the destination.
    const pivot = src.indexOf('/./');
    const drop = pivot < 0 ? '' : cleanPath(`/${src.slice(0, pivot)}`).slice(1);
    for (const p of visible) {
      const keep = opts.parents ? (drop && p.startsWith(`${drop}/`) ? p.slice(drop.length + 1) : p) : undefined;
      matched.push({ rel: p, given: src, ...(keep !== undefined ? { keep } : {}) });
    }
  }
  const intoDir = d.isDir || opts.isDirInImage(d.path) || opts.parents === true;
  const several = matched.length > 1 || sources.some(hasWildcards);
  if (several && !intoDir && matched.length > 1) {
    throw new BerthError('USAGE', `${opts.what} with more than one source file needs a directory destination ending in /: write ${dest}/`);
  }
  const out: CopyEntry[] = [];
  const seen = new Set<string>();
  const add = (e: CopyEntry): void => {
    if (seen.has(e.dest)) {
      const i = out.findIndex((x) => x.dest === e.dest);
      out[i] = e;
      return;
    }
    seen.add(e.dest);
    out.push(e);
  };
  for (const m of matched) {
    const target = m.keep !== undefined && m.keep !== '.' ? posix.join(d.path, m.keep) : d.path;
    const resolved = m.rel === '.' ? { rel: '', stat: statSync(root.dir) } : followInRoot(root.dir, m.rel);
    if (!resolved) throw new BerthError('NOT_FOUND', `${opts.what} ${m.given}: it is a symbolic link to nothing in ${root.label}`);
    const abs = resolved.rel === '' ? root.dir : posix.join(root.dir, resolved.rel);
    const kind = entryKind(resolved.stat);
    if (kind === undefined) throw new BerthError('UNSUPPORTED', `${opts.what} ${m.given}: only files, directories and symbolic links can be copied`);
    if (kind === 'dir') {
      // The directory's contents go to the destination, which takes the directory's attributes.
      add({ abs, dest: target, kind: 'dir', stat: resolved.stat });
      const direct = m.rel === '.' || resolved.rel === m.rel;
      const entries = root.matcher && direct ? walkContext(root.dir, root.matcher, resolved.rel) : walkPlain(abs, resolved.rel);
      const base = resolved.rel === '' ? '' : `${resolved.rel}/`;
      for (const e of entries) {
        const inner = base === '' ? e.rel : e.rel.slice(base.length);
        if (opts.exclude && !opts.exclude.empty && opts.exclude.matches(inner).ignored) continue;
        const k = entryKind(e.stat);
        if (k === undefined) continue;
        add({ abs: e.abs, dest: posix.join(target, inner), kind: k, stat: e.stat, ...(k === 'symlink' ? { linkname: readlinkSync(e.abs) } : {}) });
      }
      continue;
    }
    const name = posix.basename(m.rel);
    if (opts.exclude && !opts.exclude.empty && opts.exclude.matches(name).ignored) continue;
    add({ abs, dest: m.keep !== undefined ? target : intoDir ? posix.join(d.path, name) : d.path, kind, stat: resolved.stat });
  }
  return out;
}

function* walkPlain(abs: string, rel: string): Generator<{ rel: string; abs: string; stat: Stats }> {
  const names = readdirSync(abs).sort();
  for (const n of names) {
    const a = posix.join(abs, n);
    const r = rel === '' ? n : `${rel}/${n}`;
    const stat = lstatSync(a);
    yield { rel: r, abs: a, stat };
    if (stat.isDirectory()) yield* walkPlain(a, r);
  }
}

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

type MemoEntry = [dev: number, ino: number, size: number, mtimeMs: number, ctimeMs: number, digest: string];

/**
 * Content digests of context files remembered between builds, trusted while the file's
 * device, inode, size, mtime and ctime are unchanged (as git's index and BuildKit do), so that
 * a rebuild does not read every file again.
 */
export class DigestMemo {
  private changed = false;

  private constructor(
    private readonly file: string,
    private readonly map: Map<string, MemoEntry>,
  ) {}

  static async load(file: string): Promise<DigestMemo> {
    let map = new Map<string, MemoEntry>();
    try {
      map = new Map(Object.entries(JSON.parse(await readFile(file, 'utf8')) as Record<string, MemoEntry>));
    } catch {
      // absent or unreadable: start afresh
    }
    return new DigestMemo(file, map);
  }

  async digest(path: string, st: Stats): Promise<string> {
    const e = this.map.get(path);
    if (e && e[0] === st.dev && e[1] === st.ino && e[2] === st.size && e[3] === st.mtimeMs && e[4] === st.ctimeMs) return e[5];
    const d = await fileDigest(path);
    this.map.set(path, [st.dev, st.ino, st.size, st.mtimeMs, st.ctimeMs, d]);
    this.changed = true;
    return d;
  }

  async save(): Promise<void> {
    if (this.changed) await writeFileAtomic(this.file, JSON.stringify(Object.fromEntries(this.map)));
    this.changed = false;
  }
}

/**
 * The content hash of what a COPY reads, for its cache key: each entry's destination, type,
 * permission bits, link target and contents (mtimes and owners of the sources excluded:
 * the owner in the image comes from --chown, which is part of the instruction).
 */
export async function contentHash(entries: CopyEntry[], inline: { name: string; data: string }[] = [], memo?: DigestMemo): Promise<string> {
  const h = createHash('sha256');
  for (const e of entries) {
    const mode = (e.stat.mode & 0o7777).toString(8);
    let body = '';
    if (e.kind === 'file') body = memo ? await memo.digest(e.abs, e.stat) : await fileDigest(e.abs);
    else if (e.kind === 'symlink') body = e.linkname ?? readlinkSync(e.abs);
    h.update(`${JSON.stringify([e.dest, e.kind, mode, body])}\n`);
  }
  for (const f of inline) h.update(`${JSON.stringify(['inline', f.name, createHash('sha256').update(f.data).digest('hex')])}\n`);
  return `sha256:${h.digest('hex')}`;
}
