/** Small helpers shared by the command modules: argument parsing, help, output. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BerthError } from '../base/errors.js';

export interface CommandSpec {
  /** One-line summary shown in `berth --help`. */
  summary: string;
  /** Full usage text with examples, shown by `berth CMD --help`. */
  usage: string;
  options?: ParseArgsConfig['options'];
  /** Options end after this many positionals (`run IMAGE CMD -x`: the command's own flags). */
  optionsEndAfter?: number;
  run(parsed: ParsedCommand): Promise<number>;
}

export interface ParsedCommand {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
  /** True when output should be JSON (`--format json`). */
  json: boolean;
}

export type CommandGroup = Record<string, CommandSpec>;

const COMMON_OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  help: { type: 'boolean', short: 'h' },
  format: { type: 'string' },
};

/** Parses argv for one command; throws USAGE with the usage text on bad flags. */
export function parseCommand(name: string, spec: CommandSpec, argv: string[]): ParsedCommand | 'help' {
  let parsed;
  let rest: string[] = [];
  if (spec.optionsEndAfter !== undefined) {
    const at = optionsEnd(argv, { ...COMMON_OPTIONS, ...(spec.options ?? {}) }, spec.optionsEndAfter);
    rest = argv.slice(at);
    argv = argv.slice(0, at);
  }
  const bools = boolValues(argv, { ...COMMON_OPTIONS, ...(spec.options ?? {}) });
  argv = bools.argv;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, ...(spec.options ?? {}) },
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
  } catch (err) {
    // One line, as docker's: what was wrong, and where the options are (the usage is long).
    const e = err as Error & { code?: string };
    const flagName = /'(-[^']*)'/.exec(e.message)?.[1];
    const what = e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flagName ? `unknown flag: ${flagName}` : e.message.replace(/\.\s.*$/s, '');
    throw new BerthError('USAGE', `${what}; see 'berth ${name} --help'`);
  }
  const last = new Map<string, number>();
  for (const t of parsed.tokens) if (t.kind === 'option') last.set(t.name, t.index);
  for (const [name, index] of last) if (bools.off.has(index)) (parsed.values as Record<string, unknown>)[name] = false;
  if (parsed.values.help) return 'help';
  const format = parsed.values.format;
  // A command may give --format more values of its own (build: oci|docker); json still means JSON output.
  if (format !== undefined && format !== 'json' && format !== 'text' && spec.options?.format === undefined) {
    throw new BerthError('USAGE', `berth ${name}: --format must be "json" or "text", got ${JSON.stringify(format)}`);
  }
  return { values: parsed.values as ParsedCommand['values'], positionals: [...parsed.positionals, ...rest], json: format === 'json' };
}

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/**
 * docker's boolean flags also take a value (its flag parser's, strconv.ParseBool): `--rm=false`,
 * `-d=true`, `--sig-proxy=0`. Each becomes the bare flag; `off` holds the argv indexes of those
 * that said false (the last word for a flag wins). `--rm false` stays two words, as docker reads it.
 */
function boolValues(argv: string[], options: NonNullable<ParseArgsConfig['options']>): { argv: string[]; off: Set<number> } {
  const byShort = new Map(Object.entries(options).filter(([, o]) => o.short).map(([n, o]) => [o.short!, n]));
  const off = new Set<number>();
  const end = argv.indexOf('--');
  const out = argv.map((a, i) => {
    const m = end >= 0 && i > end ? null : /^(?:--([^=]+)|-([^-=]))=(.*)$/s.exec(a);
    const name = m ? m[1] ?? byShort.get(m[2]!) : undefined;
    if (!m || !name || options[name]?.type !== 'boolean') return a;
    const shown = m[1] ? `--${m[1]}` : `-${m[2]}`;
    if (FALSE.has(m[3]!)) off.add(i);
    else if (!TRUE.has(m[3]!)) throw new BerthError('USAGE', `invalid argument ${JSON.stringify(m[3])} for "${shown}" flag: use true or false`);
    return shown;
  });
  return { argv: out, off };
}

/** The index in argv just after the `count`-th positional (docker's parser stops there). */
function optionsEnd(argv: string[], options: NonNullable<ParseArgsConfig['options']>, count: number): number {
  const takesValue = (name: string) => options[name]?.type === 'string';
  const byShort = new Map(Object.entries(options).filter(([, o]) => o.short).map(([n, o]) => [o.short!, n]));
  let seen = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return argv.length; // parseArgs takes everything after it as positionals
    if (a.startsWith('--')) {
      if (!a.includes('=') && takesValue(a.slice(2))) i++;
    } else if (a.startsWith('-') && a !== '-') {
      if (a[2] === '=') continue; // -d=false: one flag and its value
      for (let k = 1; k < a.length; k++) {
        const name = byShort.get(a[k]!);
        if (name && takesValue(name)) { if (k === a.length - 1) i++; break; }
      }
    } else if (++seen === count) {
      return i + 1;
    }
  }
  return argv.length;
}

export function str(p: ParsedCommand, key: string): string | undefined {
  const v = p.values[key];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return String(v[v.length - 1]);
  return String(v);
}

export function strs(p: ParsedCommand, key: string): string[] {
  const v = p.values[key];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

export function flag(p: ParsedCommand, key: string): boolean {
  return p.values[key] === true;
}

export function needPositionals(p: ParsedCommand, min: number, max: number, usage: string): void {
  if (p.positionals.length < min || p.positionals.length > max) {
    throw new BerthError('USAGE', `wrong number of arguments\n\n${usage}`);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function printLine(line = ''): void {
  process.stdout.write(line + '\n');
}
