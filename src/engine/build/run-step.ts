/**
 * The seam between the builder and the engine: a RUN step is handed to a RunStepExecutor,
 * which runs it in a container over a snapshot of the stage's root filesystem and returns the
 * overlay upper directory it wrote; the builder turns that into the step's layer. Without an
 * executor, a build that has RUN steps fails before it starts, saying why.
 */
import type { Writable } from 'node:stream';
import { BerthError } from '../../base/errors.js';
import type { Platform } from '../../base/types.js';
import type { RunMount } from './flags.js';
import type { RunInstruction } from './instructions.js';

export interface RunStep {
  instruction: RunInstruction;
  /** What to execute: exec form as written, shell form under the stage's SHELL (heredocs appended as BuildKit does). */
  argv: string[];
  /** The image's Env, then the build args in scope (NAME=VALUE), proxy args last. */
  env: string[];
  /** The config's User ("" = root) and WorkingDir ("" = /). */
  user: string;
  workdir: string;
  /** --mount options with args substituted; `from` names a stage (see RunStepOptions.stageRoot) or an image. */
  mounts: RunMount[];
  network: 'default' | 'none' | 'host';
  security: 'sandbox' | 'insecure';
  platform: Platform;
  /**
   * `RUN <<EOF` whose body starts with `#!`: the executor writes `data` to `path` (mode 0755,
   * outside the image's layer) and argv runs it, as BuildKit does.
   */
  script?: { path: string; data: string };
  /** Stage index and name, for messages. */
  stage: { index: number; name?: string };
}

export interface RunStepOptions {
  stdout: Writable;
  stderr: Writable;
  signal?: AbortSignal;
  /** The root filesystem of an earlier stage, for --mount=type=bind,from=STAGE. */
  stageRoot(index: number): string;
  /** The build context directory, for --mount=type=bind without from=. */
  contextDir: string;
  /** --secret id=…,src=… given to the build: id → file. */
  secrets: Map<string, string>;
}

export interface RunStepExecutor {
  /**
   * Runs `step` over `rootfsSnapshot` (read it, never write it) and returns the overlay upper
   * directory holding the changes (overlayfs whiteouts: 0/0 character devices and opaque
   * directories marked with trusted.overlay.opaque=y). A non-zero exit rejects with a
   * BerthError whose message carries the exit code.
   */
  run(step: RunStep, rootfsSnapshot: string, opts: RunStepOptions): Promise<{ upperDir: string }>;
}

/**
 * The argv of a RUN as BuildKit builds it: a RUN that is only a heredoc runs its body (a body
 * with `#!` as a script file); otherwise heredoc bodies are appended for the shell to read.
 */
export function runArgv(ins: RunInstruction, shell: readonly string[]): { argv: string[]; script?: { path: string; data: string } } {
  if (ins.json) return { argv: [...ins.args] };
  const only = ins.heredocs.length === 1 ? ins.heredocs[0]! : undefined;
  if (only && new RegExp(`^\\d*<<-?(['"]?)${only.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\1$`).test(ins.args[0]!.trim())) {
    const body = only.chomp ? only.content.replace(/^\t+/gm, '') : only.content;
    if (body.startsWith('#!')) {
      const path = `/dev/pipes/berth-heredoc-${only.name}`;
      return { argv: [path], script: { path, data: body } };
    }
    return { argv: [...shell, body] };
  }
  let text = ins.args[0]!;
  for (const h of ins.heredocs) text += `\n${h.content}${h.name}`;
  return { argv: [...shell, text] };
}

/** The error of a build that has RUN steps and no engine to run them. */
export function noExecutorError(ins: RunInstruction): BerthError {
  return new BerthError(
    'UNSUPPORTED',
    `${ins.loc.file}:${ins.loc.line}:${ins.loc.column}: RUN needs the engine to run a container, and this build has none: build with berth's engine, or use only FROM, COPY, ADD and config instructions`,
  );
}
