/**
 * Starts native/build/berth-init, sends it a plan and drives the sync protocol: "pid N",
 * "mounted", "ready" and "error MSG" from the executor; "go" from us.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { BerthError } from '../errors.js';
import { encodePlan, encodeRecords, type Plan, type PlanRecord } from './plan.js';

/** The package root: works from dist/src/runtime (tsc) and from dist/ (the esbuild bundle). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return dir;
    dir = dirname(dir);
  }
  throw new BerthError('INTERNAL', 'cannot find the berth package root (native/ next to package.json)');
}

export function nativeBinary(name: 'berth-init' | 'berth-runtime'): string {
  const path = join(packageRoot(), 'native', 'build', name);
  if (!existsSync(path)) throw new BerthError('RUNTIME_ERROR', `${path} is missing: build it with \`make -C native\` (npm install runs it)`);
  return path;
}

export interface InitEvents {
  /** The container process exists (host pid); id maps and cgroups go here. */
  onPid(pid: number): Promise<void>;
  /** Mounts are done, pivot_root is next: hooks run here (create only). Returns the state
   * document for the startContainer hooks. */
  onMounted?(): Promise<string>;
}

export interface StartedInit {
  pid: number;
  /** Stage 1: exits at once, or with `keep` when the container process exits. */
  child: ChildProcess;
}

/** Line reader over the sync socket. */
export class SyncReader {
  private buf = '';
  private waiters: ((line: string | null) => void)[] = [];
  private lines: string[] = [];
  private ended = false;
  constructor(sock: Duplex) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
    });
    const end = () => { this.ended = true; for (const w of this.waiters.splice(0)) w(null); };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
  }
  private push(line: string): void {
    const w = this.waiters.shift();
    if (w) w(line); else this.lines.push(line);
  }
  next(): Promise<string | null> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** A started berth-init waiting for its plan (records may be sent ahead of it). */
export interface SpawnedInit {
  child: ChildProcess;
  sock: Duplex;
  reader: SyncReader;
  spawnError: Promise<never>;
}

/** Starts berth-init; `early` records (e.g. "cgroup") are sent at once, the plan follows in runInit. */
export function spawnInit(stdio: 'inherit' | 'ignore' = 'inherit', early: PlanRecord[] = []): SpawnedInit {
  const child = spawn(nativeBinary('berth-init'), [], { stdio: [stdio, stdio, stdio, 'pipe'] });
  const sock = child.stdio[3] as Duplex;
  const reader = new SyncReader(sock);
  const spawnError = new Promise<never>((_, reject) => child.once('error', (err) => reject(new BerthError('RUNTIME_ERROR', `cannot start berth-init: ${err.message}`, { cause: err }))));
  spawnError.catch(() => undefined);
  if (early.length) sock.write(encodeRecords(early));
  return { child, sock, reader, spawnError };
}

/** Kills a berth-init that will not get (or finish) its plan, and waits until it is gone. */
export async function abandonInit(init: SpawnedInit): Promise<void> {
  init.sock.destroy();
  if (init.child.exitCode !== null || init.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => init.child.once('exit', () => r()));
  init.child.kill('SIGKILL');
  await Promise.race([exited, new Promise<void>((r) => setTimeout(r, 2000))]);
}

export async function runInit(plan: Plan, events: InitEvents, stdio: 'inherit' | 'ignore' = 'inherit', spawned?: SpawnedInit): Promise<StartedInit> {
  const { child, sock, reader, spawnError } = spawned ?? spawnInit(stdio);
  sock.write(encodePlan(plan.records));
  let pid = 0;
  const expect = async (what: string): Promise<string> => {
    const line = await Promise.race([reader.next(), spawnError]);
    if (line === null) throw new BerthError('RUNTIME_ERROR', `berth-init exited before "${what}" (see its message above)`);
    if (line.startsWith('error ')) throw new BerthError('RUNTIME_ERROR', line.slice(6), { detail: { pid } });
    return line;
  };
  try {
    const first = await expect('pid');
    const m = /^pid (\d+)$/.exec(first);
    if (!m) throw new BerthError('RUNTIME_ERROR', `berth-init: unexpected message ${JSON.stringify(first)}`);
    pid = Number(m[1]);
    await events.onPid(pid);
    sock.write('go\n');
    if (events.onMounted) {
      const mounted = await expect('mounted');
      if (mounted !== 'mounted') throw new BerthError('RUNTIME_ERROR', `berth-init: unexpected message ${JSON.stringify(mounted)}`);
      const state = Buffer.from(await events.onMounted());
      sock.write(Buffer.concat([Buffer.from(`state ${state.length}\n`), state, Buffer.from('go\n')]));
    }
    const ready = await expect('ready');
    if (ready !== 'ready') throw new BerthError('RUNTIME_ERROR', `berth-init: unexpected message ${JSON.stringify(ready)}`);
  } catch (err) {
    if (pid) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
    child.kill('SIGKILL');
    sock.destroy();
    if (err instanceof BerthError && pid) (err as BerthError & { pid?: number }).pid = pid;
    throw err;
  }
  sock.destroy();
  return { pid, child };
}
