/**
 * The word lexer docker substitutes variables with (BuildKit frontend/dockerfile/shell/lex.go):
 * quotes ('…' literal, "…" with $ and escapes), the escape character, `$VAR`, `${VAR}`,
 * `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`, `${VAR:?msg}`, `${VAR?msg}`, and the pattern
 * forms `${VAR#p}`, `${VAR##p}`, `${VAR%p}`, `${VAR%%p}`, `${VAR/p/r}`, `${VAR//p/r}`.
 * It is not a shell: no command substitution, no globbing, no arithmetic.
 */

export type Lookup = (name: string) => string | undefined;

export class SubstitutionError extends Error {}

interface Result {
  value: string;
  /** Words split on unquoted white space (ProcessWords). */
  words: string[];
  /** The variable names the word referred to, set or not. */
  used: Set<string>;
}

const EOF = '';

function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\v' || ch === '\f';
}

/** Shell glob (`*`, `?`, `[…]`) to a regular expression source, for ${VAR#pattern} and friends. */
function globSource(pattern: string, greedy: boolean): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') out += greedy ? '.*' : '.*?';
    else if (ch === '?') out += '.';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) out += '\\[';
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
        out += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (ch === '\\' && i + 1 < pattern.length) out += pattern[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    else out += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return out;
}

class Scanner {
  pos = 0;
  readonly chars: string[];
  constructor(text: string) {
    this.chars = Array.from(text);
  }
  peek(): string {
    return this.pos < this.chars.length ? this.chars[this.pos]! : EOF;
  }
  next(): string {
    return this.pos < this.chars.length ? this.chars[this.pos++]! : EOF;
  }
}

class WordLexer {
  private readonly s: Scanner;
  readonly used = new Set<string>();
  private words: string[] = [];
  private word = '';
  private inWord = false;

  constructor(
    text: string,
    private readonly lookup: Lookup,
    private readonly escape: string,
  ) {
    this.s = new Scanner(text);
  }

  private addRaw(text: string): void {
    this.word += text;
    this.inWord = true;
  }

  /** Unquoted text: white space ends a word. */
  private addSplitting(text: string): void {
    for (const ch of text) {
      if (isSpace(ch)) {
        if (this.inWord) this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      } else this.addRaw(ch);
    }
  }

  run(): Result {
    const value = this.until(EOF, true);
    if (this.inWord) this.words.push(this.word);
    return { value, words: this.words, used: this.used };
  }

  /** A heredoc body: only `$` substitutes, and `\` escapes only `$`, `\` and a backquote (as sh does). */
  heredoc(): string {
    let out = '';
    for (;;) {
      const ch = this.s.peek();
      if (ch === EOF) return out;
      if (ch === '$') {
        out += this.dollar();
        continue;
      }
      this.s.next();
      if (ch === '\\' && (this.s.peek() === '$' || this.s.peek() === '\\' || this.s.peek() === '`')) out += this.s.next();
      else out += ch;
    }
  }

  /** Reads up to `stop` (consumed) or the end; `top` collects words. */
  private until(stop: string, top: boolean): string {
    let result = '';
    for (;;) {
      const ch = this.s.peek();
      if (ch === EOF) {
        if (stop !== EOF) throw new SubstitutionError(`syntax error: missing '${stop}'`);
        return result;
      }
      if (stop !== EOF && ch === stop) {
        this.s.next();
        return result;
      }
      if (ch === "'") {
        const v = this.singleQuoted();
        result += v;
        if (top) this.addRaw(v);
      } else if (ch === '"') {
        const v = this.doubleQuoted();
        result += v;
        if (top) this.addRaw(v);
      } else if (ch === '$') {
        const v = this.dollar();
        result += v;
        if (top) this.addSplitting(v);
      } else {
        this.s.next();
        let c = ch;
        if (c === this.escape) {
          c = this.s.next();
          if (c === EOF) return result;
          result += c;
          if (top) this.addRaw(c);
          continue;
        }
        result += c;
        if (top) this.addSplitting(c);
      }
    }
  }

  private singleQuoted(): string {
    this.s.next();
    let out = '';
    for (;;) {
      const ch = this.s.next();
      if (ch === EOF) throw new SubstitutionError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return out;
      out += ch;
    }
  }

  private doubleQuoted(): string {
    this.s.next();
    let out = '';
    for (;;) {
      const ch = this.s.peek();
      if (ch === EOF) throw new SubstitutionError('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.s.next();
        return out;
      }
      if (ch === '$') {
        out += this.dollar();
        continue;
      }
      this.s.next();
      if (ch === this.escape) {
        const n = this.s.peek();
        if (n === EOF) continue;
        if (n === '"' || n === '$' || n === this.escape) {
          out += this.s.next();
          continue;
        }
      }
      out += ch;
    }
  }

  private name(): string {
    let name = '';
    for (;;) {
      const ch = this.s.peek();
      if (ch === EOF) return name;
      if (name === '' && /[0-9]/.test(ch)) {
        while (/[0-9]/.test(this.s.peek()) && this.s.peek() !== EOF) name += this.s.next();
        return name;
      }
      if (name === '' && /[$?!#*@-]/.test(ch) && ch !== '-') return this.s.next();
      if (!/[\p{L}\p{Nd}_]/u.test(ch)) return name;
      name += this.s.next();
    }
  }

  private get(name: string): string | undefined {
    this.used.add(name);
    return this.lookup(name);
  }

  private dollar(): string {
    this.s.next();
    if (this.s.peek() !== '{') {
      const name = this.name();
      if (name === '') return '$';
      return this.get(name) ?? '';
    }
    this.s.next();
    if (this.s.peek() === EOF) throw new SubstitutionError("syntax error: missing '}'");
    const name = this.name();
    if (name === '') throw new SubstitutionError('bad substitution: ${} needs a variable name');
    const ch = this.s.peek();
    if (ch === EOF) throw new SubstitutionError("syntax error: missing '}'");
    if (ch === '}') {
      this.s.next();
      return this.get(name) ?? '';
    }
    const value = this.get(name);
    if (ch === ':' || ch === '-' || ch === '+' || ch === '?') {
      this.s.next();
      const colon = ch === ':';
      const mod = colon ? this.s.next() : ch;
      if (mod !== '-' && mod !== '+' && mod !== '?') throw new SubstitutionError(`unsupported modifier (${colon ? ':' : ''}${mod}) in substitution`);
      const word = this.until('}', false);
      const set = colon ? value !== undefined && value !== '' : value !== undefined;
      if (mod === '-') return set ? value! : word;
      if (mod === '+') return set ? word : '';
      if (!set) throw new SubstitutionError(`${name}: ${word || 'is not allowed to be unset'}`);
      return value!;
    }
    if (ch === '#' || ch === '%') {
      this.s.next();
      const greedy = this.s.peek() === ch;
      if (greedy) this.s.next();
      const pattern = this.until('}', false);
      const v = value ?? '';
      const src = globSource(pattern, greedy);
      if (ch === '#') return v.replace(new RegExp(`^${src}`, 's'), '');
      // Suffix: the shortest (or longest) matching tail.
      for (let i = greedy ? 0 : v.length; greedy ? i <= v.length : i >= 0; greedy ? i++ : i--) {
        if (new RegExp(`^${globSource(pattern, true)}$`, 's').test(v.slice(i))) return v.slice(0, i);
      }
      return v;
    }
    if (ch === '/') {
      this.s.next();
      const all = this.s.peek() === '/';
      if (all) this.s.next();
      let pattern = '';
      for (;;) {
        const c = this.s.peek();
        if (c === EOF) throw new SubstitutionError("syntax error: missing '}'");
        if (c === '/' || c === '}') break;
        pattern += this.s.next();
      }
      let replacement = '';
      if (this.s.peek() === '/') {
        this.s.next();
        replacement = this.until('}', false);
      } else this.s.next();
      const v = value ?? '';
      if (pattern === '') return v;
      return v.replace(new RegExp(globSource(pattern, true), all ? 'gs' : 's'), () => replacement);
    }
    throw new SubstitutionError(`unsupported modifier (${ch}) in substitution`);
  }
}

/** A word with quotes removed and variables substituted (BuildKit ProcessWord). */
export function processWord(word: string, lookup: Lookup, escape = '\\'): { value: string; used: Set<string> } {
  const r = new WordLexer(word, lookup, escape).run();
  return { value: r.value, used: r.used };
}

/** As processWord, split into words on unquoted white space (BuildKit ProcessWords). */
export function processWords(word: string, lookup: Lookup, escape = '\\'): { words: string[]; used: Set<string> } {
  const r = new WordLexer(word, lookup, escape).run();
  return { words: r.words, used: r.used };
}

/** An unquoted-delimiter heredoc body with variables substituted. */
export function processHeredoc(body: string, lookup: Lookup): { value: string; used: Set<string> } {
  const lx = new WordLexer(body, lookup, '\\');
  return { value: lx.heredoc(), used: lx.used };
}
