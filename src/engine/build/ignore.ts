/**
 * `.dockerignore` / `.containerignore`: which files of the build context COPY and ADD can see.
 * The rules are docker's (moby/patternmatcher and its ignorefile reader): one pattern a line,
 * `#` comments, white space trimmed, each pattern cleaned as Go's filepath.Clean does with a
 * leading `/` dropped; Go filepath.Match syntax (`*` and `?` never cross `/`, `[…]` classes,
 * `\` escapes) plus `**` for any number of directories; `!` re-includes; a pattern that matches
 * a directory matches everything under it; the last matching pattern wins.
 */
import { lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BerthError } from '../../base/errors.js';

/** Go's path.Clean for slash paths. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(part);
  }
  const s = out.join('/');
  return rooted ? `/${s}` : s === '' ? '.' : s;
}

/** The patterns of an ignore file (moby/patternmatcher/ignorefile ReadAll). */
export function parseIgnoreFile(text: string): string[] {
  const out: string[] = [];
  for (let line of text.replace(/^\uFEFF/, '').split('\n')) {
    if (line.startsWith('#')) continue;
    line = line.trim();
    if (line === '') continue;
    let invert = false;
    if (line.startsWith('!')) {
      invert = true;
      line = line.slice(1).trim();
    }
    if (line.length > 0) {
      line = cleanPath(line);
      if (line.length > 1 && line.startsWith('/')) line = line.slice(1);
    }
    out.push(invert ? `!${line}` : line);
  }
  return out;
}

/** Go filepath.Match's syntax check: well-formed `[…]` classes and no trailing `\`. */
function wellFormed(pattern: string): boolean {
  const chars = Array.from(pattern);
  let i = 0;
  const classChar = (): boolean => {
    if (i >= chars.length) return false;
    let ch = chars[i]!;
    if (ch === '-' || ch === ']') return false;
    if (ch === '\\') {
      i++;
      if (i >= chars.length) return false;
      ch = chars[i]!;
    }
    i++;
    return true;
  };
  while (i < chars.length) {
    const ch = chars[i]!;
    if (ch === '\\') {
      if (i + 1 >= chars.length) return false;
      i += 2;
    } else if (ch === '[') {
      i++;
      if (chars[i] === '^') i++;
      let n = 0;
      for (;;) {
        if (i >= chars.length) return false;
        if (chars[i] === ']' && n > 0) {
          i++;
          break;
        }
        if (!classChar()) return false;
        if (chars[i] === '-') {
          i++;
          if (!classChar()) return false;
        }
        n++;
      }
    } else i++;
  }
  return true;
}

type Kind = 'exact' | 'prefix' | 'suffix' | 'regexp';

const REGEXP_SPECIAL = new Set([...'.+()|{}$']);

class Pattern {
  readonly exclusion: boolean;
  readonly cleaned: string;
  private kind: Kind = 'exact';
  private re?: RegExp;

  constructor(raw: string) {
    let p = cleanPath(raw.trim());
    this.exclusion = p.startsWith('!');
    if (this.exclusion) {
      if (p.length === 1) throw new BerthError('USAGE', 'illegal exclusion pattern "!" in the ignore file: write !PATTERN');
      p = p.slice(1);
    }
    this.cleaned = p;
    if (!wellFormed(p)) throw new BerthError('USAGE', `bad pattern ${JSON.stringify(p)} in the ignore file: check its [ ] classes and \\ escapes`);
    this.compile();
  }

  /** patternmatcher.go compile: the cheap match kinds first, a regular expression otherwise. */
  private compile(): void {
    let re = '^';
    let kind: Kind = 'exact';
    const chars = Array.from(this.cleaned);
    // `step` counts loop turns as Go's loop does (a leading `**` makes a suffix match).
    for (let i = 0, step = 0; i < chars.length; i++, step++) {
      const ch = chars[i]!;
      if (ch === '*') {
        if (chars[i + 1] === '*') {
          i++;
          if (chars[i + 1] === '/') i++;
          if (i + 1 >= chars.length) {
            if (kind === 'exact') kind = 'prefix';
            else {
              re += '.*';
              kind = 'regexp';
            }
          } else {
            re += '(.*/)?';
            kind = 'regexp';
          }
          if (step === 0) kind = 'suffix';
        } else {
          re += '[^/]*';
          kind = 'regexp';
        }
      } else if (ch === '?') {
        re += '[^/]';
        kind = 'regexp';
      } else if (REGEXP_SPECIAL.has(ch)) {
        re += `\\${ch}`;
      } else if (ch === '\\') {
        if (i + 1 < chars.length) {
          const next = chars[++i]!;
          re += /[a-zA-Z0-9]/.test(next) ? next : `\\${next}`;
          kind = 'regexp';
        } else re += '\\\\';
      } else if (ch === '[' || ch === ']') {
        re += ch;
        kind = 'regexp';
      } else re += ch;
    }
    this.kind = kind;
    if (kind === 'regexp') {
      try {
        this.re = new RegExp(`${re}$`, 's');
      } catch {
        throw new BerthError('USAGE', `bad pattern ${JSON.stringify(this.cleaned)} in the ignore file: check its [ ] classes and \\ escapes`);
      }
    }
  }

  match(path: string): boolean {
    switch (this.kind) {
      case 'exact':
        return path === this.cleaned;
      case 'prefix':
        return path.startsWith(this.cleaned.slice(0, -2));
      case 'suffix': {
        const suffix = this.cleaned.slice(2);
        if (path.endsWith(suffix)) return true;
        // "**/foo" matches "foo"
        return suffix.startsWith('/') && path === suffix.slice(1);
      }
      default:
        return this.re!.test(path);
    }
  }
}

/** Per-pattern results for a directory, handed to its children (MatchesUsingParentResults). */
export type ParentMatches = boolean[];

export class PatternMatcher {
  private readonly patterns: Pattern[];
  readonly hasExclusions: boolean;

  constructor(patterns: string[]) {
    this.patterns = patterns.filter((p) => p.trim() !== '').map((p) => new Pattern(p));
    this.hasExclusions = this.patterns.some((p) => p.exclusion);
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /**
   * Whether `path` (slash-separated, relative to the context) is ignored. `parent` holds the
   * per-pattern results of its directory; without it every parent directory is tried.
   */
  matches(path: string, parent?: ParentMatches): { ignored: boolean; info: ParentMatches } {
    const file = cleanPath(path);
    let matched = false;
    const info: ParentMatches = new Array(this.patterns.length).fill(false);
    this.patterns.forEach((p, i) => {
      let match = parent?.[i] ?? false;
      if (!match) {
        if (p.exclusion !== matched) return;
        match = p.match(file);
        if (!match && parent === undefined) {
          const dirs = dirname(file) === '.' ? [] : dirname(file).split('/');
          for (let j = 0; j < dirs.length && !match; j++) match = p.match(dirs.slice(0, j + 1).join('/'));
        }
      }
      info[i] = match;
      if (match) matched = !p.exclusion;
    });
    return { ignored: matched, info };
  }
}

/** A file of the context that COPY may read. */
export interface ContextEntry {
  /** Slash-separated, relative to the context root. */
  rel: string;
  abs: string;
  stat: Stats;
}

/**
 * The ignore file of a build: `<Dockerfile>.dockerignore` beside the Dockerfile (BuildKit), else
 * `.containerignore`, else `.dockerignore` in the context root (buildah looks for both).
 */
export function readIgnoreFile(contextDir: string, dockerfile?: string): { file?: string; patterns: string[] } {
  const candidates = [
    ...(dockerfile ? [join(dirname(dockerfile), `${basename(dockerfile)}.dockerignore`)] : []),
    join(contextDir, '.containerignore'),
    join(contextDir, '.dockerignore'),
  ];
  for (const file of candidates) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new BerthError('USAGE', `cannot read the ignore file ${file}: ${(err as Error).message}`, { cause: err });
    }
    return { file, patterns: parseIgnoreFile(text) };
  }
  return { patterns: [] };
}

/**
 * The files of the context the matcher lets through, depth first in name order. An ignored
 * directory is skipped whole unless a `!` pattern could bring something under it back; then it
 * is listed only when something under it is.
 */
export function* walkContext(root: string, matcher: PatternMatcher, under = ''): Generator<ContextEntry> {
  function* walk(dirRel: string, parent: ParentMatches | undefined): Generator<ContextEntry> {
    const dirAbs = dirRel === '' ? root : join(root, dirRel);
    const names = readdirSync(dirAbs).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      const abs = join(dirAbs, name);
      const stat = lstatSync(abs);
      const m = matcher.empty ? { ignored: false, info: [] } : matcher.matches(rel, parent);
      if (stat.isDirectory()) {
        if (m.ignored && !matcher.hasExclusions) continue;
        if (m.ignored) {
          const inner = [...walk(rel, m.info)];
          if (inner.length) yield { rel, abs, stat }, yield* inner;
          continue;
        }
        yield { rel, abs, stat };
        yield* walk(rel, m.info);
      } else if (!m.ignored) yield { rel, abs, stat };
    }
  }
  const start = cleanPath(under);
  if (start === '.') {
    yield* walk('', undefined);
    return;
  }
  yield* walk(start, matcher.empty ? undefined : matcher.matches(start).info);
}
