/** Runs berth-runtime (the native front end) as an engine would, for the runtime tests. */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REPO = join(import.meta.dirname, '..', '..', '..');
export const FRONT = join(REPO, 'native', 'build', 'berth-runtime');

export interface Result { status: number; stdout: string; stderr: string }

const result = (r: SpawnSyncReturns<string>): Result => ({ status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' });

/** Our environment without NODE_EXTRA_CA_CERTS (the runtime never needs it; it slows Node's start). */
function runtimeEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** A runtime with its own --root in a temp dir. */
export class Runtime {
  readonly root: string;
  constructor(readonly binary: string = FRONT, readonly globalArgs: string[] = []) {
    this.root = mkdtempSync(join(tmpdir(), 'berth-rt-root-'));
  }
  /** Runs a verb and captures its output (for verbs that do not leave the container holding our pipes). */
  run(args: string[], timeout = 30_000): Result {
    return result(spawnSync(this.binary, [...this.globalArgs, '--root', this.root, ...args], { encoding: 'utf8', timeout, env: runtimeEnv() }));
  }
  /** create: the container's stdio goes to outFile so no pipe of ours stays open. */
  create(id: string, bundle: string, outFile: string, extra: string[] = []): Result {
    return this.withFiles(['create', '--bundle', bundle, ...extra, id], outFile);
  }
  /** create without waiting: for creates that race each other. */
  createAsync(id: string, bundle: string, outFile: string): Promise<Result> {
    const errFile = `${outFile}.create-err`;
    const fd = openSync(outFile, 'a');
    const efd = openSync(errFile, 'w');
    const child = spawn(this.binary, [...this.globalArgs, '--root', this.root, 'create', '--bundle', bundle, id], { stdio: ['ignore', fd, efd], env: runtimeEnv() });
    closeSync(fd);
    closeSync(efd);
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => resolve({ status: code ?? -1, stdout: '', stderr: readFileSync(errFile, 'utf8') }));
    });
  }
  /** Runs a verb whose processes outlive it (create, exec --detach) with stdio on files. */
  withFiles(args: string[], outFile: string, extraEnv: NodeJS.ProcessEnv = {}): Result {
    // The container inherits create's stdio: files, not pipes, or we would wait for it to exit.
    const errFile = `${outFile}.create-err`;
    const fd = openSync(outFile, 'a');
    const efd = openSync(errFile, 'w');
    try {
      const r = spawnSync(this.binary, [...this.globalArgs, '--root', this.root, ...args], {
        stdio: ['ignore', fd, efd], timeout: 30_000, env: { ...runtimeEnv(), ...extraEnv },
      });
      return { status: r.status ?? -1, stdout: '', stderr: readFileSync(errFile, 'utf8') };
    } finally {
      closeSync(fd);
      closeSync(efd);
    }
  }
  state(id: string): { status: string; pid?: number; [k: string]: unknown } {
    const r = this.run(['state', id]);
    if (r.status !== 0) throw new Error(`state ${id} failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }
  async waitStatus(id: string, status: string, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      const s = this.state(id).status;
      if (s === status) return;
      if (Date.now() > end) throw new Error(`container ${id} is ${s}, not ${status}, after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  ids(): string[] {
    return existsSync(this.root) ? readdirSync(this.root) : [];
  }
  cleanup(): void {
    for (const id of this.ids()) this.run(['delete', '--force', id]);
    rmSync(this.root, { recursive: true, force: true });
  }
}

export function readText(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
