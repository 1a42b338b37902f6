/**
 * Starts native/build/berth-init, sends it a plan and drives the sync protocol: "pid N",
 * "mounted", "ready", "net" (after a "net" record, at any point after "pid") and "error MSG"
 * from the executor; "go" from us.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, readSync, rmdirSync, writeSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { nativeBinary } from '../base/package.js';
import { encodePlan, encodeRecords, type Plan, type PlanRecord } from './plan.js';
import { procStat } from './state.js';


export interface InitEvents {
  /** The container process exists (host pid); id maps and cgroups go here. */
  onPid(pid: number): Promise<void>;
  /** Mounts are done, pivot_root is next: hooks run here (create only). Returns the state
   * document for the startContainer hooks. */
  onMounted?(): Promise<string>;
  /** Every write to berth-init's channel (a run plan repeats those before "pid"). */
  sent?(data: Buffer): void;
}

export interface StartedInit {
  pid: number;
  /** Stage 1 when this process spawned it: exits at once, or with `keep` when the container
   * process exits. */
  child?: ChildProcess;
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

/** The sync socket to berth-init. */
interface Channel {
  write(data: string | Buffer): void;
  next(): Promise<string | null>;
  close(): void;
}

/** A started berth-init waiting for its plan (records may be sent ahead of it). */
export interface SpawnedInit {
  /** Set when this process spawned it (absent when the front end started it ahead). */
  child?: ChildProcess;
  pid: number;
  channel: Channel;
  spawnError: Promise<never>;
  /** The front end's guess of the "cgroup" records, already sent (hex), and which of their
   * directories did not exist before ('1'/'0' per record). */
  guess?: { records: string; made: string };
}

/** Sync I/O on an inherited socket fd: nothing else runs while create waits for berth-init. */
class FdChannel implements Channel {
  private buf = '';
  private closed = false;
  private fdClosed = false;
  constructor(private readonly fd: number) {}
  write(data: string | Buffer): void {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      for (let off = 0; off < b.length;) off += writeSync(this.fd, b, off);
    } catch { /* berth-init is gone: next() reports what it said */ }
  }
  async next(): Promise<string | null> {
    const chunk = Buffer.alloc(4096);
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        return line;
      }
      if (this.closed) return null;
      let n = 0;
      try { n = readSync(this.fd, chunk, 0, chunk.length, null); } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') { await new Promise((r) => setTimeout(r, 1)); continue; }
      }
      if (n <= 0) { this.closed = true; continue; }
      this.buf += chunk.toString('utf8', 0, n);
    }
  }
  close(): void {
    this.closed = true;
    if (this.fdClosed) return;
    this.fdClosed = true;
    try { closeSync(this.fd); } catch { /* closed */ }
  }
}

class SocketChannel implements Channel {
  private readonly reader: SyncReader;
  constructor(private readonly sock: Duplex) { this.reader = new SyncReader(sock); }
  write(data: string | Buffer): void { this.sock.write(data); }
  next(): Promise<string | null> { return this.reader.next(); }
  close(): void { this.sock.destroy(); }
}

/**
 * What the front end says of the berth-init it started: "PID\nGUESS-HEX\nMADE" on the pipe
 * BERTH_INIT_INFO_FD names, written once berth-init is up (after this process was started),
 * and read to its end here (a pid of 0: none was started).
 */
function readInitInfo(fd: number): { pid: number; guess: string; made: string } {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(64 << 10);
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) chunks.push(Buffer.from(buf.subarray(0, n)));
  } catch {
    /* a broken pipe: no berth-init */
  } finally {
    try { closeSync(fd); } catch { /* closed */ }
  }
  const [pid = '0', guess = '', made = ''] = Buffer.concat(chunks).toString('latin1').split('\n');
  return { pid: Number(pid), guess, made };
}

/** The berth-init the front end started for this create (native/berth-runtime.c), taken once. */
function takePrestarted(): SpawnedInit | undefined {
  const fd = Number(process.env.BERTH_INIT_FD);
  const infoFd = Number(process.env.BERTH_INIT_INFO_FD);
  for (const v of ['BERTH_INIT_FD', 'BERTH_INIT_INFO_FD']) delete process.env[v];
  if (!Number.isInteger(infoFd) || infoFd < 3) return undefined;
  const { pid, guess, made } = readInitInfo(infoFd);
  if (!Number.isInteger(fd) || fd < 3) return undefined;
  if (!Number.isInteger(pid) || pid <= 0) {
    try { closeSync(fd); } catch { /* closed */ }
    return undefined;
  }
  const never = new Promise<never>(() => undefined);
  return { pid, channel: new FdChannel(fd), spawnError: never, ...(guess ? { guess: { records: guess, made } } : {}) };
}

/**
 * Lets go of a prestarted berth-init this process will not use. One that was sent the front
 * end's guess of the cgroups may sit in them: it is killed and waited for, and the cgroup
 * directories the guess made are removed, so that they neither leak nor look busy.
 */
async function releasePrestarted(init: SpawnedInit): Promise<void> {
  if (!init.guess) { init.channel.close(); return; }
  await abandonInit(init);
  const dirs = guessedDirs(init.guess.records);
  for (let i = dirs.length - 1; i >= 0; i--) {
    if (init.guess.made[i] !== '1') continue;
    try { rmdirSync(dirs[i]!); } catch { /* not empty, or gone */ }
  }
}

/** Lets go of the berth-init the front end started, if this process has not taken it (create failed early). */
export async function releaseUnusedInit(): Promise<void> {
  const init = takePrestarted();
  if (init) await releasePrestarted(init);
}

/** The cgroup directories named in the front end's guess (hex of "cgroup" records). */
function guessedDirs(hex: string): string[] {
  const bytes = Buffer.from(hex, 'hex'); // lengths in the records count bytes
  const dirs: string[] = [];
  for (let off = 0; off < bytes.length;) {
    const nl = bytes.indexOf(0x0a, off);
    if (nl < 0) break;
    const len = Number(bytes.toString('latin1', off, nl).split(' ')[1]);
    const body = bytes.subarray(nl + 1, nl + 1 + len);
    dirs.push(body.subarray(body.indexOf(0) + 1).toString('utf8'));
    off = nl + 1 + len + 1;
  }
  return dirs;
}

/**
 * Starts berth-init (or takes the one the front end started, if `prestarted` allows it);
 * `early` records (e.g. "cgroup") are sent at once, the plan follows in runInit. A prestarted
 * berth-init that was already sent the front end's guess of these records is kept only if
 * the guess is exactly what this process decided.
 */
/**
 * A program berth-init runs under (an engine's monitor, native/berth-monitor.c): started as
 * `command ...args berth-init`, it passes fd 3 on to berth-init and exits with its status.
 * `detached`: in a session of its own, not waited for by this process.
 */
export interface Launcher { command: string; args: string[]; detached?: boolean }

/** Where berth-init's stdin, stdout and stderr go: all three alike, or each its own. */
export type InitStdio = 'inherit' | 'ignore' | ['inherit' | 'ignore', 'inherit' | 'ignore', 'inherit' | 'ignore'];

export async function spawnInit(stdio: InitStdio = 'inherit', early: PlanRecord[] = [], prestarted = false, launcher?: Launcher): Promise<SpawnedInit> {
  const mine = early.length ? encodeRecords(early) : undefined;
  let init = takePrestarted();
  const adopt = init !== undefined && prestarted && stdio === 'inherit' && !launcher && (init.guess === undefined || init.guess.records === mine?.toString('hex'));
  if (init?.guess && process.env.BERTH_RUNTIME_TRACE) {
    process.stderr.write(`berth-runtime: the front end's guess of the cgroups was ${adopt ? 'right: kept' : 'wrong: replaced'}\n`);
  }
  if (init && !adopt) {
    await releasePrestarted(init);
    init = undefined;
  }
  if (!init) {
    const { spawn } = await import('node:child_process');
    const three = typeof stdio === 'string' ? [stdio, stdio, stdio] : stdio;
    const child = launcher
      ? spawn(launcher.command, [...launcher.args, nativeBinary('berth-init')], { stdio: [...three, 'pipe'], detached: launcher.detached ?? false })
      : spawn(nativeBinary('berth-init'), [], { stdio: [...three, 'pipe'] });
    const spawnError = new Promise<never>((_, reject) => child.once('error', (err) => reject(new BerthError('RUNTIME_ERROR', `cannot start berth-init: ${err.message}`, { cause: err }))));
    spawnError.catch(() => undefined);
    init = { child, pid: child.pid ?? 0, channel: new SocketChannel(child.stdio[3] as Duplex), spawnError };
  }
  if (mine && !init.guess) init.channel.write(mine);
  return init;
}

/** Waits (up to 2 s) until pid has exited; a zombie counts, PID 1 may take seconds to reap it. */
export async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const st = procStat(pid);
    if (!st || st.state === 'Z' || st.state === 'X') return;
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Kills a berth-init that will not get (or finish) its plan, and waits until it is gone. */
export async function abandonInit(init: SpawnedInit): Promise<void> {
  init.channel.close();
  const { child } = init;
  if (!child) {
    // Not our child as far as Node knows: it stays a zombie (out of its cgroups) until we exit.
    try { process.kill(init.pid, 'SIGKILL'); } catch { /* gone */ }
    await waitGone(init.pid);
    return;
  }
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await Promise.race([exited, new Promise<void>((r) => setTimeout(r, 2000))]);
}

/**
 * Sends the plan and drives berth-init to "ready". With `body`, plan.records is only the head
 * (plan.ts buildInitPlanHead): it goes first with a "fork" record, so that stage 1 clones
 * while body() builds the rest, which stage 2 reads.
 */
export async function runInit(plan: Plan, events: InitEvents, stdio: InitStdio = 'inherit', spawned?: SpawnedInit, body?: () => PlanRecord[], launcher?: Launcher): Promise<StartedInit> {
  const init = spawned ?? await spawnInit(stdio, [], false, launcher);
  const { spawnError } = init;
  const channel: Channel = events.sent ? {
    write: (d) => { events.sent!(typeof d === 'string' ? Buffer.from(d) : d); init.channel.write(d); },
    next: () => init.channel.next(),
    close: () => init.channel.close(),
  } : init.channel;
  channel.write(body ? encodeRecords([...plan.records, ['fork', '']]) : encodePlan(plan.records));
  let pid = 0;
  // A "net" record: stage 1 plugs the network namespace after "pid" and says "net" whenever it
  // is done, between the other messages; the container may not run before it.
  let netPending = plan.records.some(([k]) => k === 'net');
  const expect = async (what: string): Promise<string> => {
    for (;;) {
      const line = await Promise.race([channel.next(), spawnError]);
      if (line === null) throw new BerthError('RUNTIME_ERROR', `berth-init exited before "${what}" (see its message above)`);
      if (line.startsWith('error ')) throw new BerthError('RUNTIME_ERROR', line.slice(6), { detail: { pid } });
      if (line === 'net' && netPending) {
        netPending = false;
        if (what !== 'net') continue;
      }
      return line;
    }
  };
  try {
    let bodyError: unknown;
    if (body) {
      try { channel.write(encodePlan(body())); } catch (err) { bodyError = err; }
    }
    const first = await expect('pid');
    const m = /^pid (\d+)$/.exec(first);
    if (!m) throw new BerthError('RUNTIME_ERROR', `berth-init: unexpected message ${JSON.stringify(first)}`);
    pid = Number(m[1]);
    if (bodyError !== undefined) throw bodyError; // the container process, waiting for its body, is killed below
    await events.onPid(pid);
    channel.write('go\n');
    if (events.onMounted && plan.straight) {
      await events.onMounted(); // records the state while berth-init carries on
    } else if (events.onMounted) {
      const mounted = await expect('mounted');
      if (mounted !== 'mounted') throw new BerthError('RUNTIME_ERROR', `berth-init: unexpected message ${JSON.stringify(mounted)}`);
      const state = Buffer.from(await events.onMounted());
      channel.write(Buffer.concat([Buffer.from(`state ${state.length}\n`), state, Buffer.from('go\n')]));
    }
    const ready = await expect('ready');
    if (ready !== 'ready') throw new BerthError('RUNTIME_ERROR', `berth-init: unexpected message ${JSON.stringify(ready)}`);
    if (netPending && (await expect('net')) !== 'net') throw new BerthError('RUNTIME_ERROR', 'berth-init: expected "net"');
  } catch (err) {
    if (pid) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      await waitGone(pid); // out of its cgroups before the caller removes them
    }
    if (init.child) init.child.kill('SIGKILL');
    else { try { process.kill(init.pid, 'SIGKILL'); } catch { /* gone */ } }
    channel.close();
    if (err instanceof BerthError && pid) (err as BerthError & { pid?: number }).pid = pid;
    throw err;
  }
  channel.close();
  return { pid, ...(init.child ? { child: init.child } : {}) };
}
