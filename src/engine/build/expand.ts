/**
 * Variable substitution in a Dockerfile as docker does it: which instructions substitute (ADD
 * COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR, ONBUILD's trigger when it fires, and
 * RUN --mount options; never the shell text of RUN/CMD/ENTRYPOINT/HEALTHCHECK), and ARG
 * scoping: ARGs before the first FROM are seen only by FROM lines unless a stage redeclares them;
 * a stage's ARG takes its --build-arg, else its default, else the global value; ENV wins over
 * ARG; the predefined platform args are global and must be declared in a stage to be used there;
 * the proxy args need no declaration.
 */
import { BerthError } from '../../base/errors.js';
import { formatPlatform } from '../../image/platform.js';
import type { Platform } from '../../base/types.js';
import { parseRunMount, type RunMount } from './flags.js';
import type { ArgInstruction, CopyInstruction, FromInstruction, Instruction, Location } from './instructions.js';
import { processHeredoc, processWord, processWords, SubstitutionError, type Lookup } from './lexer.js';

/** Build args docker passes through without an ARG, and keeps out of history and cache keys. */
export const PROXY_ARGS: readonly string[] = [
  'HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy',
];

/** TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT and the BUILD* four. */
export function platformArgs(target: Platform, build: Platform): Record<string, string> {
  const four = (prefix: string, p: Platform): Record<string, string> => ({
    [`${prefix}PLATFORM`]: formatPlatform(p),
    [`${prefix}OS`]: p.os,
    [`${prefix}ARCH`]: p.architecture,
    [`${prefix}VARIANT`]: p.variant ?? '',
  });
  return { ...four('TARGET', target), ...four('BUILD', build) };
}

function envLookup(env: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of env) {
    const eq = e.indexOf('=');
    if (eq < 0) m.set(e, '');
    else m.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return m;
}

function substitutionError(loc: Location, err: unknown): BerthError {
  if (err instanceof SubstitutionError) {
    return new BerthError('USAGE', `${loc.file}:${loc.line}:${loc.column}: ${err.message}: fix the variable reference`, { detail: loc });
  }
  return err as BerthError;
}

export interface ArgOptions {
  /** --build-arg NAME=VALUE (a NAME without a value takes it from `env`). */
  buildArgs?: Record<string, string | undefined>;
  target: Platform;
  build: Platform;
  /** Where `--build-arg NAME` without a value is looked up (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** The ARGs of one build: global values, and which build args were consumed. */
export class ArgScope {
  readonly buildArgs = new Map<string, string>();
  /** Global (meta) args: declared before the first FROM, plus the predefined platform args. */
  readonly global = new Map<string, string | undefined>();
  readonly consumed = new Set<string>();
  private readonly predefined: Record<string, string>;

  constructor(opts: ArgOptions, metaArgs: ArgInstruction[] = []) {
    const env = opts.env ?? process.env;
    for (const [k, v] of Object.entries(opts.buildArgs ?? {})) {
      const value = v ?? env[k];
      if (value !== undefined) this.buildArgs.set(k, value);
    }
    this.predefined = platformArgs(opts.target, opts.build);
    for (const [k, v] of Object.entries(this.predefined)) this.global.set(k, v);
    for (const ins of metaArgs) {
      for (const a of ins.args) {
        const given = this.buildArgs.get(a.name);
        let value = given;
        if (given !== undefined) this.consumed.add(a.name);
        else if (a.default !== undefined) value = this.word(a.default, ins.loc, this.globalLookup).value;
        this.global.set(a.name, value);
      }
    }
  }

  private readonly globalLookup: Lookup = (name) => this.global.get(name);

  word(word: string, loc: Location, lookup: Lookup, escape = '\\'): { value: string; used: Set<string> } {
    try {
      return processWord(word, lookup, escape);
    } catch (err) {
      throw substitutionError(loc, err);
    }
  }

  /** FROM's image and --platform, with the global args only. */
  expandFrom(from: FromInstruction, escape = '\\'): FromInstruction {
    const out: FromInstruction = { ...from, image: this.word(from.image, from.loc, this.globalLookup, escape).value };
    if (from.platform !== undefined) out.platform = this.word(from.platform, from.loc, this.globalLookup, escape).value;
    if (out.image === '') throw new BerthError('USAGE', `${from.loc.file}:${from.loc.line}:${from.loc.column}: FROM ${from.image} names no image once args are substituted: give the arg a value (--build-arg or a default)`);
    return out;
  }

  /** Build args given but used by no ARG (docker warns about them). */
  unconsumed(): string[] {
    return [...this.buildArgs.keys()].filter((k) => !this.consumed.has(k) && !PROXY_ARGS.includes(k)).sort();
  }

  stage(env: readonly string[], escape = '\\'): StageScope {
    return new StageScope(this, env, escape);
  }
}

/** A stage's view: the image's Env (updated by ENV) over the ARGs it declared. */
export class StageScope {
  /** Declared args in declaration order, with their values (undefined: declared, no value). */
  readonly args = new Map<string, string | undefined>();
  private env: Map<string, string>;

  constructor(
    private readonly scope: ArgScope,
    env: readonly string[],
    readonly escape: string,
  ) {
    this.env = envLookup(env);
  }

  readonly lookup: Lookup = (name) => {
    if (this.env.has(name)) return this.env.get(name);
    if (this.args.has(name)) return this.args.get(name);
    return undefined;
  };

  /** The image's Env changed (ENV, or the base image's config). */
  setEnv(env: readonly string[]): void {
    this.env = envLookup(env);
  }

  declare(ins: ArgInstruction): void {
    for (const a of ins.args) {
      const given = this.scope.buildArgs.get(a.name);
      let value: string | undefined;
      if (given !== undefined) {
        value = given;
        this.scope.consumed.add(a.name);
      } else if (a.default !== undefined) value = this.word(a.default, ins.loc).value;
      else value = this.scope.global.get(a.name);
      this.args.set(a.name, value);
    }
  }

  word(word: string, loc: Location): { value: string; used: Set<string> } {
    return this.scope.word(word, loc, this.lookup, this.escape);
  }

  words(word: string, loc: Location): { words: string[]; used: Set<string> } {
    try {
      return processWords(word, this.lookup, this.escape);
    } catch (err) {
      throw substitutionError(loc, err);
    }
  }

  /**
   * The build args a RUN sees, NAME=VALUE in declaration order: every declared ARG with a value
   * not shadowed by ENV, plus the proxy args given with --build-arg (kept out of history).
   */
  runArgs(): { args: string[]; proxy: string[] } {
    const args: string[] = [];
    for (const [k, v] of this.args) if (v !== undefined && !this.env.has(k)) args.push(`${k}=${v}`);
    const proxy: string[] = [];
    for (const k of PROXY_ARGS) {
      const v = this.scope.buildArgs.get(k);
      if (v !== undefined && !this.args.has(k)) proxy.push(`${k}=${v}`);
    }
    return { args, proxy };
  }

  /** The values of the args among `names` (the cache key's "build args in use"). */
  argsIn(names: Iterable<string>): string[] {
    const out: string[] = [];
    for (const n of new Set(names)) if (this.args.has(n) && !this.env.has(n)) out.push(`${n}=${this.args.get(n) ?? ''}`);
    return out.sort();
  }
}

/** An instruction after substitution, with the args it read. */
export interface Expanded<T extends Instruction = Instruction> {
  ins: T;
  /** Variables the substitution referred to. */
  used: Set<string>;
  /** RUN: its --mount options with args substituted. */
  mounts?: RunMount[];
}

/**
 * Substitutes in one instruction of a stage (not ARG: call scope.declare; not FROM: ArgScope.expandFrom).
 * ENV is substituted against the values before it, all pairs at once, as docker does.
 */
export function expandInstruction<T extends Instruction>(ins: T, scope: StageScope): Expanded<T> {
  const used = new Set<string>();
  const w = (s: string): string => {
    const r = scope.word(s, ins.loc);
    for (const u of r.used) used.add(u);
    return r.value;
  };
  const ws = (s: string): string[] => {
    const r = scope.words(s, ins.loc);
    for (const u of r.used) used.add(u);
    return r.words;
  };
  const heredocText = (s: string): string => {
    try {
      const r = processHeredoc(s, scope.lookup);
      for (const u of r.used) used.add(u);
      return r.value;
    } catch (err) {
      throw substitutionError(ins.loc, err);
    }
  };
  switch (ins.kind) {
    case 'ENV':
    case 'LABEL':
      return { ins: { ...ins, pairs: ins.pairs.map((p) => ({ key: w(p.key), value: w(p.value) })) }, used };
    case 'WORKDIR':
    case 'USER':
    case 'STOPSIGNAL':
      return { ins: { ...ins, value: w(ins.value) }, used };
    case 'EXPOSE':
      return { ins: { ...ins, values: ins.values.flatMap(ws) }, used };
    case 'VOLUME':
      return { ins: { ...ins, values: ins.values.map(w) }, used };
    case 'COPY':
    case 'ADD': {
      const c: CopyInstruction = {
        ...ins,
        sources: ins.sources.map(w),
        dest: w(ins.dest),
        inline: ins.inline.map((s) => (s.expand ? { ...s, data: heredocText(s.data) } : s)),
        exclude: ins.exclude.map(w),
      };
      if (ins.from !== undefined) c.from = w(ins.from);
      if (ins.chown !== undefined) c.chown = w(ins.chown);
      if (ins.chmod !== undefined) c.chmod = w(ins.chmod);
      if (ins.checksum !== undefined) c.checksum = w(ins.checksum);
      return { ins: c as T, used };
    }
    case 'RUN': {
      const mounts = ins.mounts.map((m) =>
        parseRunMount(
          m,
          (what, todo) => new BerthError('USAGE', `${ins.loc.file}:${ins.loc.line}:${ins.loc.column}: ${what}: ${todo}`),
          w,
        ),
      );
      return { ins, used, mounts };
    }
    default:
      return { ins, used };
  }
}
