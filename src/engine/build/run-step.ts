/**
 * The seam between the builder and the engine: a RUN step is handed to a RunStepExecutor,
 * which runs it in a container over a snapshot of the stage's root filesystem and returns the
 * overlay upper directory it wrote; the builder turns that into the step's layer. Without an
 * executor, a build that has RUN steps fails before it starts, saying why.
 */
import type { Writable } from 'node:stream';
import { BerthError } from '../../base/errors.js';
import type { Descriptor, ImageConfig, Platform } from '../../base/types.js';
import type { OciLayout } from '../../image/layout.js';
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
   * The stage so far as an image: its layers (blobs in `layout`) and config. An engine with a
   * snapshot store may prepare its own root filesystem from these (chain IDs of diffIds)
   * instead of reading the `rootfs` the builder offers.
   */
  image: { layout: OciLayout; layers: Descriptor[]; diffIds: string[]; config: ImageConfig };
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
  /**
   * The directory a --mount=type=bind reads: `from` a stage (its root filesystem) or an image
   * (unpacked), or the build context when there is no from=.
   */
  mountRoot(from: string | undefined): Promise<string>;
  /** --secret id=…,src=… given to the build: id → file. */
  secrets: Map<string, string>;
}

/**
 * The changes a RUN made: an overlay upper directory (overlayfs whiteouts: 0/0 character
 * devices, opaque directories marked trusted.overlay.opaque=y), or, where overlayfs was not
 * available, the whole root as the step left it (diffed against the stage's rootfs). `release` is
 * called once the layer is made.
 */
export type RunStepResult = ({ upperDir: string } | { rootDir: string }) & { release?: () => Promise<void> };

export interface RunStepExecutor {
  /**
   * Runs `step` over the stage's files and returns its changes. `rootfs()` gives them as a
   * directory (read it, never write it), made only when called: an executor that prepares its
   * own root from `step.image` need not. A non-zero exit rejects with a BerthError whose message
   * carries the exit code.
   */
  run(step: RunStep, rootfs: () => Promise<string>, opts: RunStepOptions): Promise<RunStepResult>;
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
