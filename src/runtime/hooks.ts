/** Runs lifecycle hooks from the runtime namespace (config.md "POSIX-platform Hooks"). */
import { BerthError } from '../base/errors.js';
import type { Hook, State } from './spec/types.js';

export async function runHook(kind: string, hook: Hook, state: State): Promise<void> {
  const args = hook.args ?? [hook.path];
  const { spawn } = await import('node:child_process'); // loaded only when a hook runs
  await new Promise<void>((resolve, reject) => {
    const child = spawn(hook.path, args.slice(1), { argv0: args[0], env: Object.fromEntries((hook.env ?? []).map((e) => {
      const i = e.indexOf('=');
      return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)];
    })), stdio: ['pipe', 'inherit', 'inherit'] });
    let timer: NodeJS.Timeout | undefined;
    if (hook.timeout) {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new BerthError('RUNTIME_ERROR', `${kind} hook ${hook.path} timed out after ${hook.timeout} s`));
      }, hook.timeout * 1000);
    }
    child.stdin.on('error', () => { /* a hook need not read its stdin */ });
    child.stdin.end(JSON.stringify(state));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new BerthError('RUNTIME_ERROR', `${kind} hook ${hook.path} could not run: ${err.message}`, { cause: err }));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new BerthError('RUNTIME_ERROR', `${kind} hook ${hook.path} failed (${signal ? `signal ${signal}` : `exit code ${code}`})`));
    });
  });
}

/** Runs hooks in order; the first failure stops the operation (runtime.md lifecycle). */
export async function runHooks(kind: string, hooks: Hook[] | undefined, state: State): Promise<void> {
  for (const h of hooks ?? []) await runHook(kind, h, state);
}
