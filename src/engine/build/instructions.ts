/**
 * The Dockerfile parser, second half: nodes → typed instructions, grouped into stages, as
 * BuildKit's frontend/dockerfile/instructions/parse.go does it. Values stay as written (quotes,
 * `$VAR`): expand.ts substitutes them in the instructions docker substitutes in.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { nodeError, parseFlags, parseGoDuration, parseRunMount, type RunMount } from './flags.js';
import {
  chompHeredoc,
  parseDockerfileText,
  parseHeredocMarker,
  parseJsonArray,
  parseWords,
  WHITESPACE,
  type Directives,
  type Heredoc,
  type Location,
  type Node,
} from './parser.js';

export type { Location, Heredoc, RunMount };

interface Base {
  loc: Location;
  /** The instruction as written (continuations joined), for history and errors. */
  original: string;
}

export interface KeyValue {
  key: string;
  value: string;
}

/** CMD, ENTRYPOINT, RUN, HEALTHCHECK CMD: exec form is a JSON array, shell form is one string. */
export interface CommandLine {
  json: boolean;
  /** exec form: the argv; shell form: [the text]. */
  args: string[];
}

export interface FromInstruction extends Base {
  kind: 'FROM';
  image: string;
  stageName?: string;
  platform?: string;
}
export interface RunInstruction extends Base, CommandLine {
  kind: 'RUN';
  mounts: string[];
  network?: string;
  security?: string;
  heredocs: Heredoc[];
}
export interface CmdInstruction extends Base, CommandLine {
  kind: 'CMD' | 'ENTRYPOINT';
}
export interface ShellInstruction extends Base {
  kind: 'SHELL';
  shell: string[];
}
/** A COPY/ADD source given inline by a heredoc. */
export interface InlineSource {
  name: string;
  data: string;
  expand: boolean;
}
export interface CopyInstruction extends Base {
  kind: 'COPY' | 'ADD';
  sources: string[];
  inline: InlineSource[];
  dest: string;
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  /** ADD only. */
  checksum?: string;
  keepGitDir?: boolean;
  unpack?: boolean;
}
export interface EnvInstruction extends Base {
  kind: 'ENV' | 'LABEL';
  pairs: KeyValue[];
}
export interface ArgInstruction extends Base {
  kind: 'ARG';
  args: { name: string; default?: string }[];
}
export interface ValueInstruction extends Base {
  kind: 'WORKDIR' | 'USER' | 'STOPSIGNAL' | 'MAINTAINER';
  value: string;
}
export interface ListInstruction extends Base {
  kind: 'EXPOSE' | 'VOLUME';
  values: string[];
}
export interface HealthcheckInstruction extends Base {
  kind: 'HEALTHCHECK';
  /** ["NONE"], ["CMD", argv…] or ["CMD-SHELL", text] as the image config's Healthcheck.Test. */
  test: string[];
  /** Nanoseconds, 0 = inherit the default. */
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}
export interface OnbuildInstruction extends Base {
  kind: 'ONBUILD';
  /** The trigger instruction as written, e.g. "COPY . /app". */
  trigger: string;
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CmdInstruction
  | ShellInstruction
  | CopyInstruction
  | EnvInstruction
  | ArgInstruction
  | ValueInstruction
  | ListInstruction
  | HealthcheckInstruction
  | OnbuildInstruction;

export interface Stage {
  index: number;
  /** Lower-cased `AS name`. */
  name?: string;
  from: FromInstruction;
  instructions: Instruction[];
}

export interface Dockerfile {
  file: string;
  directives: Directives;
  /** ARG instructions before the first FROM. */
  metaArgs: ArgInstruction[];
  stages: Stage[];
  warnings: string[];
}

// BuildKit instructions/parse.go: validStageName (stage names are lower-cased first).
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

function fail(node: Node, what: string, todo: string, offset = node.restOffset): Error {
  return nodeError(node, offset, what, todo);
}

/** RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD: parseMaybeJSON. */
function commandLine(node: Node, rest: string): CommandLine {
  const json = parseJsonArray(rest);
  if (json === 'not-strings') throw fail(node, 'a JSON array (exec form) must hold strings only', 'quote every element, or use the shell form');
  if (json !== undefined) return { json: true, args: json };
  return { json: false, args: [rest] };
}

/** COPY/ADD/VOLUME: parseMaybeJSONToList. */
function list(node: Node): string[] {
  const json = parseJsonArray(node.rest);
  if (json === 'not-strings') throw fail(node, 'a JSON array must hold strings only', 'quote every element');
  if (json !== undefined) return json;
  return node.rest === '' ? [] : node.rest.split(WHITESPACE);
}

function noFlags(node: Node): void {
  parseFlags(node, {});
}

/** ENV/LABEL parseNameVal: `KEY value` (one pair, old form) or `K=V K2="v 2"…`. */
function nameValues(node: Node, escape: string): KeyValue[] {
  const kw = node.command.toUpperCase();
  const words = parseWords(node.rest, escape);
  if (words.length === 0) throw fail(node, `${kw} needs a name and a value`, `write ${kw} NAME=VALUE`);
  if (!words[0]!.includes('=')) {
    const parts = node.rest.split(WHITESPACE);
    if (parts.length < 2) throw fail(node, `${kw} ${parts[0]} has no value`, `write ${kw} ${parts[0]}=VALUE`);
    const key = parts[0]!;
    return [{ key, value: node.rest.slice(key.length).replace(/^[\t\v\f\r ]+/, '') }];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) throw fail(node, `can't find = in ${JSON.stringify(w)}`, `write ${kw} name=value`, node.original.indexOf(w));
    if (eq === 0) throw fail(node, `${kw} names can not be blank`, `write ${kw} name=value`, node.original.indexOf(w));
    return { key: w.slice(0, eq), value: w.slice(eq + 1) };
  });
}

function healthcheck(node: Node, base: Base, escape: string): HealthcheckInstruction {
  const f = parseFlags(node, { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' });
  const m = /^(\S+)(?:[\t\v\f\r ]+([\s\S]*))?$/.exec(node.rest);
  const type = m?.[1]?.toUpperCase();
  if (type === 'NONE') {
    if (m?.[2] || node.flags.length) throw fail(node, 'HEALTHCHECK NONE takes no arguments', 'write HEALTHCHECK NONE alone');
    return { kind: 'HEALTHCHECK', ...base, test: ['NONE'] };
  }
  if (type !== 'CMD') throw fail(node, `unknown type ${JSON.stringify(m?.[1] ?? '')} in HEALTHCHECK`, 'use HEALTHCHECK CMD … or HEALTHCHECK NONE');
  const text = (m?.[2] ?? '').trim();
  if (text === '') throw fail(node, 'missing command after HEALTHCHECK CMD', 'write HEALTHCHECK CMD command');
  const cmd = commandLine(node, text);
  void escape;
  const h: HealthcheckInstruction = { kind: 'HEALTHCHECK', ...base, test: cmd.json ? ['CMD', ...cmd.args] : ['CMD-SHELL', cmd.args[0]!] };
  const dur = (flag: string): number | undefined => {
    const v = f.strings.get(flag);
    if (v === undefined) return undefined;
    const ns = parseGoDuration(v);
    if (ns === undefined || ns < 0) throw fail(node, `--${flag}=${v} is not a duration`, `write --${flag}=30s (units ns, us, ms, s, m, h)`, node.original.indexOf(`--${flag}`));
    // BuildKit parseOptInterval: 0 means "inherit"; anything else must be at least 1ms.
    if (ns !== 0 && ns < 1e6) throw fail(node, `--${flag} cannot be less than 1ms`, `give --${flag}=1ms or more`, node.original.indexOf(`--${flag}`));
    return ns;
  };
  const interval = dur('interval');
  const timeout = dur('timeout');
  const startPeriod = dur('start-period');
  const startInterval = dur('start-interval');
  if (interval) h.interval = interval;
  if (timeout) h.timeout = timeout;
  if (startPeriod) h.startPeriod = startPeriod;
  if (startInterval) h.startInterval = startInterval;
  const retries = f.strings.get('retries');
  if (retries !== undefined) {
    const n = Number(retries);
    if (!Number.isSafeInteger(n)) throw fail(node, `--retries=${retries} is not an integer`, 'write --retries=3');
    if (n < 0) throw fail(node, '--retries cannot be negative', 'give --retries=0 or more');
    if (n) h.retries = n;
  }
  return h;
}

function copyLike(node: Node, base: Base): CopyInstruction {
  const add = node.command === 'add';
  const f = parseFlags(
    node,
    add
      ? { chown: 'string', chmod: 'string', link: 'bool', checksum: 'string', 'keep-git-dir': 'bool', exclude: 'list', unpack: 'bool' }
      : { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'list' },
  );
  const kw = node.command.toUpperCase();
  const args = list(node);
  if (args.length < 2) {
    throw fail(node, `${kw} needs at least two arguments, but ${args.length === 0 ? 'none was' : 'only one was'} given`, `write ${kw} SOURCE… DEST`);
  }
  const dest = args[args.length - 1]!;
  if (parseHeredocMarker(dest)) throw fail(node, `${kw} cannot take a heredoc as its destination`, 'put the heredoc before the destination');
  const docs = new Map(node.heredocs.map((h) => [h.name, h]));
  const sources: string[] = [];
  const inline: InlineSource[] = [];
  for (const src of args.slice(0, -1)) {
    const marker = parseHeredocMarker(src);
    const doc = marker && docs.get(marker.name);
    if (marker && doc) inline.push({ name: marker.name, data: doc.chomp ? chompHeredoc(doc.content) : doc.content, expand: doc.expand });
    else sources.push(src);
  }
  const out: CopyInstruction = {
    kind: add ? 'ADD' : 'COPY',
    ...base,
    sources,
    inline,
    dest,
    link: f.bools.get('link') ?? false,
    parents: f.bools.get('parents') ?? false,
    exclude: f.lists.get('exclude') ?? [],
  };
  const from = f.strings.get('from');
  if (from !== undefined) {
    if (from === '') throw fail(node, '--from needs a stage name, index or image', 'write --from=NAME');
    out.from = from;
  }
  const chown = f.strings.get('chown');
  if (chown !== undefined) out.chown = chown;
  const chmod = f.strings.get('chmod');
  if (chmod !== undefined) out.chmod = chmod;
  if (add) {
    const checksum = f.strings.get('checksum');
    if (checksum !== undefined) out.checksum = checksum;
    if (f.bools.has('keep-git-dir')) out.keepGitDir = f.bools.get('keep-git-dir')!;
    if (f.bools.has('unpack')) out.unpack = f.bools.get('unpack')!;
  }
  return out;
}

function argInstruction(node: Node, base: Base, escape: string): ArgInstruction {
  noFlags(node);
  const words = parseWords(node.rest, escape);
  if (words.length === 0) throw fail(node, 'ARG needs a name', 'write ARG NAME or ARG NAME=default');
  return {
    kind: 'ARG',
    ...base,
    args: words.map((w) => {
      const eq = w.indexOf('=');
      const name = eq < 0 ? w : w.slice(0, eq);
      if (name === '') throw fail(node, 'ARG names can not be blank', 'write ARG NAME=default', node.original.indexOf(w));
      return eq < 0 ? { name } : { name, default: w.slice(eq + 1) };
    }),
  };
}

const FORBIDDEN_TRIGGERS = new Set(['onbuild', 'from', 'maintainer']);

/** One node as a typed instruction. */
export function toInstruction(node: Node, directives: Directives): Instruction {
  const base: Base = { loc: node.loc, original: node.original };
  const kw = node.command.toUpperCase();
  const escape = directives.escape;
  switch (node.command) {
    case 'from': {
      const f = parseFlags(node, { platform: 'string' });
      const args = node.rest === '' ? [] : node.rest.split(WHITESPACE);
      if (args.length !== 1 && !(args.length === 3 && args[1]!.toLowerCase() === 'as')) {
        throw fail(node, 'FROM requires either one or three arguments', 'write FROM IMAGE or FROM IMAGE AS NAME');
      }
      const from: FromInstruction = { kind: 'FROM', ...base, image: args[0]! };
      if (args.length === 3) {
        const name = args[2]!.toLowerCase();
        if (!STAGE_NAME.test(name)) {
          throw fail(node, `invalid name for build stage: ${JSON.stringify(args[2])}`, 'a stage name starts with a letter and holds only letters, digits, -, _ and .', node.original.lastIndexOf(args[2]!));
        }
        from.stageName = name;
      }
      const platform = f.strings.get('platform');
      if (platform !== undefined) from.platform = platform;
      return from;
    }
    case 'run': {
      const f = parseFlags(node, { mount: 'list', network: 'string', security: 'string' });
      if (node.rest === '') throw fail(node, 'RUN needs a command', 'write RUN command');
      const cmd = commandLine(node, node.rest);
      const run: RunInstruction = { kind: 'RUN', ...base, ...cmd, mounts: f.lists.get('mount') ?? [], heredocs: node.heredocs };
      const network = f.strings.get('network');
      if (network !== undefined) {
        if (!['default', 'none', 'host'].includes(network)) throw fail(node, `unsupported RUN --network=${network}`, 'use default, none or host', node.original.indexOf('--network'));
        run.network = network;
      }
      const security = f.strings.get('security');
      if (security !== undefined) {
        if (security !== 'sandbox' && security !== 'insecure') throw fail(node, `unsupported RUN --security=${security}`, 'use sandbox or insecure', node.original.indexOf('--security'));
        run.security = security;
      }
      // The mounts are checked now so that a typo is reported with its line; expand.ts reads them again with args substituted.
      for (const m of run.mounts) parseRunMount(m, (what, todo) => fail(node, what, todo, node.original.indexOf(m)));
      return run;
    }
    case 'cmd':
    case 'entrypoint': {
      noFlags(node);
      return { kind: kw as 'CMD' | 'ENTRYPOINT', ...base, ...commandLine(node, node.rest) };
    }
    case 'shell': {
      noFlags(node);
      const json = parseJsonArray(node.rest);
      if (!Array.isArray(json)) throw fail(node, 'SHELL requires the arguments to be in JSON form', 'write SHELL ["/bin/sh", "-c"]');
      if (json.length === 0) throw fail(node, 'SHELL requires at least one argument', 'write SHELL ["/bin/sh", "-c"]');
      return { kind: 'SHELL', ...base, shell: json };
    }
    case 'copy':
    case 'add':
      return copyLike(node, base);
    case 'env':
    case 'label':
      noFlags(node);
      return { kind: kw as 'ENV' | 'LABEL', ...base, pairs: nameValues(node, escape) };
    case 'arg':
      return argInstruction(node, base, escape);
    case 'workdir':
    case 'user':
    case 'stopsignal':
    case 'maintainer': {
      noFlags(node);
      if (node.rest === '') throw fail(node, `${kw} needs an argument`, `write ${kw} VALUE`);
      if (node.command === 'stopsignal' && node.rest.split(WHITESPACE).length !== 1) throw fail(node, 'STOPSIGNAL takes exactly one argument', 'write STOPSIGNAL SIGTERM');
      return { kind: kw as ValueInstruction['kind'], ...base, value: node.rest };
    }
    case 'expose':
    case 'volume': {
      noFlags(node);
      const values = node.command === 'volume' ? list(node) : node.rest === '' ? [] : node.rest.split(WHITESPACE);
      if (values.length === 0) throw fail(node, `${kw} needs at least one argument`, `write ${kw} ${node.command === 'volume' ? '/data' : '8080'}`);
      if (node.command === 'volume' && values.some((v) => v.trim() === '')) throw fail(node, 'VOLUME specified can not be an empty string', 'give each volume a path');
      return { kind: kw as 'EXPOSE' | 'VOLUME', ...base, values };
    }
    case 'healthcheck':
      return healthcheck(node, base, escape);
    case 'onbuild': {
      noFlags(node);
      const sub = /^(\S+)/.exec(node.rest)?.[1]?.toLowerCase();
      if (!sub) throw fail(node, 'ONBUILD needs an instruction', 'write ONBUILD INSTRUCTION …');
      if (FORBIDDEN_TRIGGERS.has(sub)) throw fail(node, `${sub.toUpperCase()} isn't allowed as an ONBUILD trigger`, 'use another instruction');
      // The trigger must itself parse; it is applied when an image built from this one is used in FROM.
      parseTrigger(node.rest, directives, node.loc);
      return { kind: 'ONBUILD', ...base, trigger: node.rest };
    }
    default:
      throw fail(node, `unknown instruction ${kw}`, 'see the Dockerfile reference for the instructions there are', 0);
  }
}

/** An ONBUILD trigger as an instruction (reported at the ONBUILD's location). */
export function parseTrigger(trigger: string, directives: Directives, loc: Location): Instruction {
  const parsed = parseDockerfileText(trigger, loc.file);
  const node = parsed.nodes[0];
  if (!node || parsed.nodes.length !== 1) throw new BerthError('USAGE', `${loc.file}:${loc.line}:${loc.column}: ONBUILD trigger ${JSON.stringify(trigger)} is not one instruction: write ONBUILD INSTRUCTION …`);
  const sub = node.command;
  if (FORBIDDEN_TRIGGERS.has(sub)) throw new BerthError('USAGE', `${loc.file}:${loc.line}:${loc.column}: ${sub.toUpperCase()} isn't allowed as an ONBUILD trigger: use another instruction`);
  node.loc = { ...loc };
  node.position = () => ({ line: loc.line, column: loc.column });
  return toInstruction(node, directives);
}

/** Parses a Dockerfile's text into stages of typed instructions. */
export function parseDockerfile(text: string, file = 'Dockerfile'): Dockerfile {
  const parsed = parseDockerfileText(text, file);
  const df: Dockerfile = { file, directives: parsed.directives, metaArgs: [], stages: [], warnings: parsed.warnings };
  const names = new Set<string>();
  for (const node of parsed.nodes) {
    const ins = toInstruction(node, parsed.directives);
    if (ins.kind === 'FROM') {
      if (ins.stageName !== undefined) {
        if (names.has(ins.stageName)) throw fail(node, `duplicate stage name ${JSON.stringify(ins.stageName)}`, 'give every stage its own name', node.original.lastIndexOf(' ') + 1);
        names.add(ins.stageName);
      }
      df.stages.push({ index: df.stages.length, ...(ins.stageName !== undefined ? { name: ins.stageName } : {}), from: ins, instructions: [] });
      continue;
    }
    const stage = df.stages[df.stages.length - 1];
    if (stage === undefined) {
      if (ins.kind !== 'ARG') throw fail(node, `${ins.kind} comes before any FROM`, 'start the Dockerfile with FROM (only ARG may come before it)', 0);
      df.metaArgs.push(ins);
      continue;
    }
    if (ins.kind === 'MAINTAINER') df.warnings.push(`${file}:${ins.loc.line}: MAINTAINER is deprecated: use LABEL maintainer=…`);
    stage.instructions.push(ins);
  }
  if (df.stages.length === 0) throw new BerthError('USAGE', `${file}: the Dockerfile has no FROM instruction: add FROM IMAGE (or FROM scratch)`);
  return df;
}

/** Reads and parses a Dockerfile; the name in errors is the file's base name. */
export async function readDockerfile(path: string): Promise<Dockerfile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BerthError('USAGE', `cannot read the Dockerfile ${path}: ${(err as Error).message}: give its path with -f`, { cause: err });
  }
  return parseDockerfile(text, basename(path));
}
