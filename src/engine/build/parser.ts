/**
 * The Dockerfile (Containerfile) parser, first half: text → nodes, as BuildKit's
 * frontend/dockerfile/parser does it. Parser directives (`# escape=`, `# syntax=`, `# check=`),
 * comments, line continuations with the escape character, the instruction keyword, its
 * `--flags`, JSON (exec) form versus shell form, and heredocs in RUN, COPY and ADD.
 * instructions.ts turns the nodes into typed instructions.
 */
import { BerthError } from '../../base/errors.js';

export interface Location {
  file: string;
  /** 1-based line and column of the instruction keyword (or of the offending text). */
  line: number;
  column: number;
  /** Last line the instruction spans (continuations, heredocs). */
  endLine: number;
}

export interface Heredoc {
  name: string;
  /** The body, each line ending in "\n"; leading tabs are still there for `<<-` (see chompHeredoc). */
  content: string;
  /** False when the delimiter was quoted: no variable expansion in the body. */
  expand: boolean;
  /** `<<-`: leading tabs are stripped from the body and the terminator. */
  chomp: boolean;
  /** The file descriptor before `<<` (`3<<EOF`), 0 when none. */
  fd: number;
}

export interface Node {
  /** Lower-case instruction keyword, e.g. "run". */
  command: string;
  /** The logical line (continuations joined), without heredoc bodies. */
  original: string;
  /** Raw `--name=value` words that came before the arguments. */
  flags: string[];
  /** The text after the keyword and flags, trimmed. */
  rest: string;
  /** Offset of `rest` within `original`. */
  restOffset: number;
  heredocs: Heredoc[];
  loc: Location;
  /** Comment lines directly above the instruction. */
  comments: string[];
  /** Maps an offset in `original` to its line and column in the file. */
  position(offset: number): { line: number; column: number };
}

export interface Directives {
  escape: '\\' | '`';
  syntax?: string;
  check?: string;
}

export interface ParsedFile {
  file: string;
  directives: Directives;
  nodes: Node[];
  /** Things worth saying that are not errors (ignored directives, empty continuation lines). */
  warnings: string[];
}

/** A parse error that names the file, line and column (BuildKit: "dockerfile parse error on line N"). */
export function parseError(loc: { file: string; line: number; column: number }, what: string, todo: string): BerthError {
  return new BerthError('USAGE', `${loc.file}:${loc.line}:${loc.column}: ${what}: ${todo}`, { detail: loc });
}

// BuildKit parser/directives.go: reDirective
const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const VALID_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const HEREDOC_COMMANDS = new Set(['run', 'copy', 'add']);
// parser.go reWhitespace
export const WHITESPACE = /[\t\v\f\r ]+/;

function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\v' || ch === '\f' || ch === '\r' || ch === '\n' || ch === '\u0085' || ch === '\u00a0';
}

function trimLeft(s: string): string {
  let i = 0;
  while (i < s.length && isSpace(s[i]!)) i++;
  return s.slice(i);
}

function isComment(line: string): boolean {
  return trimLeft(line).startsWith('#');
}

interface Segment {
  offset: number;
  line: number;
  column: number;
}

function positionIn(segments: Segment[], offset: number): { line: number; column: number } {
  let seg = segments[0]!;
  for (const s of segments) if (s.offset <= offset) seg = s;
  return { line: seg.line, column: seg.column + (offset - seg.offset) };
}

/**
 * BuildKit parser.go extractBuilderFlags: the leading `--name[=value]` words (quotes and
 * backslashes handled) and the rest of the line. A lone `--` ends the flags.
 */
export function extractBuilderFlags(line: string): { flags: string[]; rest: string; restOffset: number } {
  const flags: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= line.length; pos++) {
    const ch = pos < line.length ? line[pos]! : '';
    if (phase === 'spaces') {
      if (pos === line.length) break;
      if (isSpace(ch)) continue;
      if (ch !== '-' || pos + 1 === line.length || line[pos + 1] !== '-') return { flags, rest: line.slice(pos), restOffset: pos };
      phase = 'word';
    }
    if (pos === line.length) {
      if (word !== '--' && (blankOK || word.length > 0)) flags.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return { flags, rest: trimLeft(line.slice(pos)), restOffset: line.length - trimLeft(line.slice(pos)).length };
        if (blankOK || word.length > 0) flags.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue;
        pos++;
        word += line[pos];
        continue;
      }
      word += ch;
      continue;
    }
    // in a quote
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    if (ch === '\\') {
      if (pos + 1 === line.length) {
        phase = 'word';
        continue;
      }
      pos++;
      word += line[pos];
      continue;
    }
    word += ch;
  }
  return { flags, rest: '', restOffset: line.length };
}

/**
 * BuildKit parser/line_parsers.go parseWords: whitespace-separated words, quotes and escapes
 * kept in the words (the shell lexer removes them when the word is expanded).
 */
export function parseWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  const chars = Array.from(rest);
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = pos < chars.length ? chars[pos]! : '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isSpace(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === escape) {
        if (pos + 1 === chars.length) continue;
        word += ch;
        pos++;
        ch = chars[pos]!;
      }
      word += ch;
      continue;
    }
    if (ch === quote) phase = 'word';
    if (ch === escape && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      pos++;
      ch = chars[pos]!;
    }
    word += ch;
  }
  return words;
}

// BuildKit parser.go reHeredoc
const HEREDOC = /^(\d*)<<(-?)([^<]*)$/;

/** A word such as `<<EOF`, `<<-"EOF"`, `3<<'END'` as a heredoc marker, or undefined. */
export function parseHeredocMarker(word: string): Omit<Heredoc, 'content'> | undefined {
  const m = HEREDOC.exec(word);
  if (!m || m[3] === '') return undefined;
  const rest = m[3]!;
  // The delimiter is the word with its quotes removed; any quoting turns expansion off.
  let name = '';
  let quote = '';
  for (let i = 0; i < rest.length; i++) {
    const ch = rest[i]!;
    if (quote) {
      if (ch === quote) quote = '';
      else name += ch;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '\\' && i + 1 < rest.length) name += rest[++i];
    else name += ch;
  }
  if (quote || name === '' || /\s/.test(name)) return undefined;
  return { name, expand: !/['"\\]/.test(rest), chomp: m[2] === '-', fd: m[1] ? Number(m[1]) : 0 };
}

/** `<<-` bodies lose their leading tabs (BuildKit parser.ChompHeredocContent). */
export function chompHeredoc(content: string): string {
  return content.replace(/^\t+/gm, '');
}

function heredocMarkers(line: string): Omit<Heredoc, 'content'>[] {
  return parseWords(line, '\\')
    .map(parseHeredocMarker)
    .filter((h): h is Omit<Heredoc, 'content'> => h !== undefined);
}

/** True when `rest` is exec (JSON) form; used for heredocs (JSON forms have none). */
export function looksLikeJsonArray(rest: string): boolean {
  return parseJsonArray(rest) !== undefined;
}

/**
 * BuildKit parser/line_parsers.go parseJSON: `rest` is JSON form when it starts with `[` and
 * parses as a JSON array of strings. Invalid JSON is shell form (undefined); an array holding
 * anything but strings is an error ('not-strings').
 */
export function parseJsonArray(rest: string): string[] | 'not-strings' | undefined {
  const t = trimLeft(rest);
  if (!t.startsWith('[')) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!Array.isArray(doc)) return undefined;
  if (!doc.every((x) => typeof x === 'string')) return 'not-strings';
  return doc as string[];
}

/** Parses the text of a Dockerfile into nodes. */
export function parseDockerfileText(text: string, file = 'Dockerfile'): ParsedFile {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const directives: Directives = { escape: '\\' };
  const warnings: string[] = [];
  const seen = new Set<string>();
  let directivesDone = false;
  let continuation = /\\[ \t]*$/;
  const nodes: Node[] = [];
  let comments: string[] = [];
  let i = 0;

  const lineText = (n: number): string => lines[n]!.replace(/\r$/, '');

  const directive = (raw: string, lineNo: number): void => {
    if (directivesDone) return;
    const m = DIRECTIVE.exec(trimLeft(raw));
    const key = m?.[1]!.toLowerCase();
    if (!m || !VALID_DIRECTIVES.has(key!)) {
      directivesDone = true;
      return;
    }
    const at = { file, line: lineNo, column: raw.length - trimLeft(raw).length + 1 };
    if (seen.has(key!)) throw parseError(at, `only one ${key} parser directive can be used`, 'remove the repeated directive');
    seen.add(key!);
    const value = m[2]!;
    if (key === 'escape') {
      if (value !== '\\' && value !== '`') throw parseError(at, `invalid escape token ${JSON.stringify(value)}`, 'use `# escape=\\` or `# escape=``');
      directives.escape = value;
      continuation = value === '`' ? /`[ \t]*$/ : /\\[ \t]*$/;
    } else if (key === 'syntax') {
      directives.syntax = value;
      warnings.push(`${file}:${lineNo}: the syntax directive (${value}) is ignored: berth parses Dockerfiles itself`);
    } else {
      directives.check = value;
    }
  };

  while (i < lines.length) {
    const raw = lineText(i);
    const lineNo = i + 1;
    i++;
    directive(raw, lineNo);
    if (isComment(raw)) {
      const c = trimLeft(raw).slice(1).trim();
      comments = c === '' ? [] : [...comments, c];
      continue;
    }
    const trimmed = trimLeft(raw);
    if (trimmed === '') {
      continue;
    }
    directivesDone = true;
    const segments: Segment[] = [{ offset: 0, line: lineNo, column: raw.length - trimmed.length + 1 }];
    let line = trimmed;
    let ended = !continuation.test(line);
    if (!ended) line = line.replace(continuation, '');
    let emptyContinuation = false;
    let endLine = lineNo;
    while (!ended && i < lines.length) {
      const next = lineText(i);
      const nextNo = i + 1;
      i++;
      endLine = nextNo;
      if (isComment(next)) continue;
      if (trimLeft(next) === '') {
        emptyContinuation = true;
        continue;
      }
      segments.push({ offset: line.length, line: nextNo, column: 1 });
      ended = !continuation.test(next);
      line += ended ? next : next.replace(continuation, '');
    }
    if (emptyContinuation) warnings.push(`${file}:${lineNo}: empty continuation line in: ${line}`);

    const kw = /^(\S+)/.exec(line)![1]!;
    const afterKw = line.slice(kw.length);
    const { flags, rest: rawRest, restOffset } = extractBuilderFlags(afterKw);
    const rest = rawRest.trim();
    const node: Node = {
      command: kw.toLowerCase(),
      original: line,
      flags,
      rest,
      restOffset: kw.length + restOffset,
      heredocs: [],
      loc: { file, line: segments[0]!.line, column: segments[0]!.column, endLine },
      comments,
      position: (offset) => positionIn(segments, offset),
    };
    comments = [];
    if (HEREDOC_COMMANDS.has(node.command) && line.includes('<<') && parseJsonArray(rest) === undefined) {
      for (const marker of heredocMarkers(line)) {
        let content = '';
        let terminated = false;
        while (i < lines.length) {
          const body = lineText(i);
          i++;
          node.loc.endLine = i;
          const candidate = marker.chomp ? body.replace(/^\t+/, '') : body;
          if (candidate === marker.name) {
            terminated = true;
            break;
          }
          content += `${body}\n`;
        }
        if (!terminated) {
          throw parseError(node.loc, `unterminated heredoc <<${marker.name}`, `end it with a line that holds only ${marker.name}`);
        }
        node.heredocs.push({ ...marker, content });
      }
    }
    nodes.push(node);
  }
  return { file, directives, nodes, warnings };
}
