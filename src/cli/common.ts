/** Small helpers shared by the command modules: argument parsing, help, output. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BerthError } from '../base/errors.js';

export interface CommandSpec {
  /** One-line summary shown in `berth --help`. */
  summary: string;
  /** Full usage text with examples, shown by `berth CMD --help`. */
  usage: string;
  options?: ParseArgsConfig['options'];
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
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, ...(spec.options ?? {}) },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new BerthError('USAGE', `${(err as Error).message}\n\n${spec.usage}`);
  }
  if (parsed.values.help) return 'help';
  const format = parsed.values.format;
  if (format !== undefined && format !== 'json' && format !== 'text') {
    throw new BerthError('USAGE', `berth ${name}: --format must be "json" or "text", got ${JSON.stringify(format)}`);
  }
  return { values: parsed.values as ParsedCommand['values'], positionals: parsed.positionals, json: format === 'json' };
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
