/**
 * The build plan: the stages, what each depends on (FROM an earlier stage, COPY --from, RUN
 * --mount from=), which stages the target needs (the others are not built), the waves of
 * stages that can build in parallel, and the cache key of every step.
 */
import { createHash } from 'node:crypto';
import { BerthError } from '../../base/errors.js';
import { ArgScope, type ArgOptions } from './expand.js';
import { parseRunMount } from './flags.js';
import type { Dockerfile, Instruction, Stage } from './instructions.js';

/** Where a stage, a COPY --from or a mount's from= takes its files. */
export type SourceRef = { kind: 'scratch' } | { kind: 'stage'; index: number } | { kind: 'image'; ref: string };

export interface StagePlan {
  stage: Stage;
  /** FROM after substitution. */
  base: SourceRef;
  platform?: string;
  /** Indices of the stages this one reads. */
  deps: number[];
  /** Images read by COPY --from / mount from= (not stages). */
  images: string[];
}

export interface BuildPlan {
  dockerfile: Dockerfile;
  stages: StagePlan[];
  /** Index of the stage built last (--target, else the last stage). */
  target: number;
  /** Stages to build, in dependency order. */
  needed: number[];
  /** The needed stages in waves: every stage of a wave depends only on earlier waves. */
  waves: number[][];
  args: ArgScope;
}

export interface PlanOptions extends ArgOptions {
  /** --target: the stage to build (ArgOptions.target is the target platform). */
  targetStage?: string;
}

/**
 * A `--from=` value (or FROM's image) as a stage or an image: a stage name of an earlier stage
 * (names are case-insensitive), a stage index (not for FROM), `scratch`, else an image.
 */
export function resolveSourceRef(df: Dockerfile, value: string, before: number, allowIndex: boolean): SourceRef {
  if (value.toLowerCase() === 'scratch') return { kind: 'scratch' };
  const lower = value.toLowerCase();
  const named = df.stages.findIndex((s, i) => i < before && s.name === lower);
  if (named >= 0) return { kind: 'stage', index: named };
  if (allowIndex && /^\d+$/.test(value)) {
    const index = Number(value);
    if (index >= before) {
      throw new BerthError('USAGE', `--from=${value} refers to stage ${index}, which is not an earlier stage: stages can read only the stages before them`);
    }
    return { kind: 'stage', index };
  }
  return { kind: 'image', ref: value };
}

/** The --from values an instruction reads, substituted with the stage's args (declared so far). */
function fromValues(ins: Instruction, word: (s: string) => string): string[] {
  if (ins.kind === 'COPY' && ins.from !== undefined) return [word(ins.from)];
  if (ins.kind === 'RUN') {
    const out: string[] = [];
    for (const m of ins.mounts) {
      const mount = parseRunMount(m, (what, todo) => new BerthError('USAGE', `${ins.loc.file}:${ins.loc.line}:${ins.loc.column}: ${what}: ${todo}`), word);
      if (mount.from !== undefined) out.push(mount.from);
    }
    return out;
  }
  return [];
}

/** Plans a build of `df`. */
export function planBuild(df: Dockerfile, opts: PlanOptions): BuildPlan {
  const args = new ArgScope(opts, df.metaArgs);
  const stages: StagePlan[] = df.stages.map((stage, i) => {
    const from = args.expandFrom(stage.from, df.directives.escape);
    const base = resolveSourceRef(df, from.image, i, false);
    const plan: StagePlan = { stage, base, deps: [], images: [], ...(from.platform !== undefined ? { platform: from.platform } : {}) };
    if (base.kind === 'stage') plan.deps.push(base.index);
    // --from values may use the stage's ARGs; the base image's ENV is not known yet and is not consulted.
    const scope = args.stage([], df.directives.escape);
    for (const ins of stage.instructions) {
      if (ins.kind === 'ARG') {
        scope.declare(ins);
        continue;
      }
      for (const v of fromValues(ins, (s) => scope.word(s, ins.loc).value)) {
        const ref = resolveSourceRef(df, v, i, true);
        if (ref.kind === 'stage' && !plan.deps.includes(ref.index)) plan.deps.push(ref.index);
        if (ref.kind === 'image' && !plan.images.includes(ref.ref)) plan.images.push(ref.ref);
      }
    }
    plan.deps.sort((a, b) => a - b);
    return plan;
  });

  let target = stages.length - 1;
  if (opts.targetStage !== undefined) {
    target = df.stages.findIndex((s) => s.name === opts.targetStage!.toLowerCase());
    if (target < 0) {
      const names = df.stages.map((s) => s.name).filter(Boolean);
      throw new BerthError('USAGE', `target stage ${JSON.stringify(opts.targetStage)} could not be found in ${df.file}: ${names.length ? `it has ${names.join(', ')}` : 'it names no stages (FROM … AS NAME)'}`);
    }
  }

  const needed = new Set<number>();
  const visit = (i: number): void => {
    if (needed.has(i)) return;
    needed.add(i);
    for (const d of stages[i]!.deps) visit(d);
  };
  visit(target);
  const order = [...needed].sort((a, b) => a - b);

  // Deps always point backwards, so one pass in index order assigns each stage its wave.
  const wave = new Map<number, number>();
  for (const i of order) wave.set(i, Math.max(-1, ...stages[i]!.deps.map((d) => wave.get(d)!)) + 1);
  const waves: number[][] = [];
  for (const i of order) (waves[wave.get(i)!] ??= []).push(i);

  return { dockerfile: df, stages, target, needed: order, waves, args };
}

/** What a step's cache key is made of (the issue's rule). */
export interface StepKeyParts {
  /** The previous step's key, or the base image's manifest digest, or "scratch". */
  parent: string;
  /** The instruction after substitution, as history shows it. */
  instruction: string;
  /** NAME=VALUE of the build args the step uses (for RUN: all in scope). */
  args: string[];
  /** COPY/ADD: the content hash of what it reads; COPY --from a stage: that stage's key too. */
  content?: string;
  platform: string;
}

/** A step's cache key: sha256 over its parts, in a fixed order. */
export function stepKey(p: StepKeyParts): string {
  const doc = JSON.stringify({ v: 1, parent: p.parent, instruction: p.instruction, args: [...p.args].sort(), content: p.content ?? null, platform: p.platform });
  return `sha256:${createHash('sha256').update(doc).digest('hex')}`;
}
