/** `exec`: run another process in a running container's namespaces and cgroups. */
import { appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BerthError } from '../base/errors.js';
import { loadBundleConfig } from './create.js';
import { runInit } from './init-process.js';
import { buildExecPlan } from './plan.js';
import type { Process } from './spec/types.js';
import { readRecord, seccompCacheDir, statusOf, writeAtomic } from './state.js';

export interface ExecOptions {
  root: string;
  id: string;
  process: Process;
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
}

/** Returns the exit code of the process (0 at once with detach). */
export async function execInContainer(opts: ExecOptions): Promise<number> {
  const rec = readRecord(opts.root, opts.id);
  const status = statusOf(opts.root, rec);
  if (status !== 'running' && status !== 'created') {
    throw new BerthError('CONTAINER_STATE', `cannot exec in container ${opts.id}: it is ${status}`);
  }
  if (!opts.process.args?.length) throw new BerthError('USAGE', 'exec: the process needs args');
  const spec = loadBundleConfig(rec.bundle);
  const plan = buildExecPlan({
    process: opts.process, containerPid: rec.pid, namespaces: rec.namespaces, keep: !opts.detach, seccompCacheDir: seccompCacheDir(opts.root),
    ...(spec.linux ? { seccomp: spec.linux } : {}),
    ...(opts.consoleSocket ? { consoleSocket: resolve(opts.consoleSocket) } : {}),
  });
  const started = await runInit(plan, {
    onPid: async (pid) => {
      for (const dir of new Set(Object.values(rec.cgroupPaths))) appendFileSync(join(dir, 'cgroup.procs'), String(pid));
    },
  });
  if (opts.pidFile) writeAtomic(resolve(opts.pidFile), String(started.pid), 0o600, false);
  const child = started.child;
  if (!child) throw new BerthError('INTERNAL', 'exec: berth-init was not started by this process');
  if (opts.detach) { child.unref(); return 0; }
  return new Promise((res) => {
    if (child.exitCode !== null) res(child.exitCode);
    else child.on('exit', (code) => res(code ?? 1));
  });
}
