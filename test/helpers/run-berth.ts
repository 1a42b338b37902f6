/** Runs the built CLI (node bin/berth.cjs) as a user would, collecting its output. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const BERTH_BIN = join(import.meta.dirname, '..', '..', '..', 'bin', 'berth.cjs');

export interface BerthRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `berth ARGS` with `env` (default: this process's) and `input` on stdin; killed after `timeoutMs` (60 s). */
export function runBerth(args: string[], env: NodeJS.ProcessEnv = process.env, input?: string | Buffer, timeoutMs = 60_000): Promise<BerthRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BERTH_BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    // A command may end without reading all its input (EPIPE): that is its answer, not an error here.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}
