/** exec, top and cp: what acts on a container's running processes or its files. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, lstatSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { resolveInRoot, resolveUser } from '../../image/passwd.js';
import { mergeEnv } from '../../image/runtime-config.js';
import { execInContainer } from '../../runtime/exec.js';
import { nativeBinary } from '../../base/package.js';
import { containerPids } from '../../runtime/manage.js';
import type { Process, Spec } from '../../runtime/spec/types.js';
import type { Engine } from './engine.js';
import { EngineError } from './engine.js';
import { runtimeCommand } from './runtime-command.js';
import type { Container } from './store.js';

export interface ExecRequest {
  args: string[];
  env: string[];
  tty: boolean;
  interactive: boolean;
  detach: boolean;
  user?: string;
  workdir?: string;
}

function bundleSpec(engine: Engine, c: Container): Spec {
  return JSON.parse(readFileSync(join(engine.bundleDir(c), 'config.json'), 'utf8')) as Spec;
}

export async function execIn(engine: Engine, c: Container, req: ExecRequest): Promise<number> {
  if (c.state.status !== 'running' || !engine.livePid(c)) throw new EngineError(125, `container ${c.name} is not running: start it first`);
  const spec = bundleSpec(engine, c);
  const rootfs = spec.root!.path;
  const base = spec.process!;
  const proc: Process = {
    ...base,
    args: req.args,
    env: mergeEnv(base.env ?? [], req.env),
    terminal: req.tty,
    cwd: req.workdir ? posix.resolve('/', req.workdir) : base.cwd,
  };
  if (req.tty && !proc.env!.some((e) => e.startsWith('TERM='))) proc.env!.push('TERM=xterm');
  if (req.user) {
    const u = await resolveUser(rootfs, req.user);
    proc.user = { uid: u.uid, gid: u.gid, ...(u.additionalGids?.length ? { additionalGids: u.additionalGids } : {}) };
  }
  if (c.config.runtime !== 'berth') return execWithRuntime(engine, c, proc, req);
  const sock = engine.consoleSocket(c).replace(/\.sock$/, `-${randomBytes(4).toString('hex')}.sock`);
  return execInContainer({
    root: engine.runtimeRoot, id: c.id, process: proc, detach: req.detach,
    ...(req.tty ? { consoleSocket: sock, launcher: { command: nativeBinary('berth-monitor'), args: ['-a', ...(req.interactive ? ['-i'] : []), '-t', sock, '--'] } } : {}),
  });
}

function execWithRuntime(engine: Engine, c: Container, proc: Process, req: ExecRequest): Promise<number> {
  const root = join(engine.root, 'runtimes', c.config.runtime.replace(/[^A-Za-z0-9_.-]/g, '_'));
  const args = ['--root', root, 'exec', ...(req.tty ? ['--tty'] : []), ...(req.detach ? ['--detach'] : []), '--cwd', proc.cwd,
    '--user', `${proc.user.uid}:${proc.user.gid}`, ...(proc.env ?? []).flatMap((e) => ['--env', e]), c.id, ...req.args];
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = runtimeCommand(c.config.runtime);
    const child = spawn(cmd!, [...pre, ...args], { stdio: [req.interactive || req.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'] });
    child.once('error', (err) => reject(new EngineError(125, `cannot run ${c.config.runtime}: ${err.message}`, err)));
    child.once('exit', (code, sig) => resolve(code ?? (sig ? 137 : 1)));
  });
}

export interface ProcessInfo { uid: number; pid: number; ppid: number; cmd: string }

/** The processes in the container's cgroup (host pids). */
export function containerProcesses(engine: Engine, c: Container): ProcessInfo[] {
  let pids: number[] = [];
  try {
    pids = containerPids(engine.runtimeRoot, c.id);
  } catch {
    pids = [engine.livePid(c)].filter(Boolean);
  }
  const out: ProcessInfo[] = [];
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      out.push({ uid, pid, ppid, cmd });
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** "CONTAINER:PATH" → the container and the path, else undefined (a host path). */
function containerPath(engine: Engine, arg: string): { c: Container; path: string } | undefined {
  const colon = arg.indexOf(':');
  if (colon <= 0 || arg.startsWith('/') || arg.startsWith('.')) return undefined;
  return { c: engine.store.find(arg.slice(0, colon)), path: posix.resolve('/', arg.slice(colon + 1) || '/') };
}

/**
 * docker cp, for files and directories: CONTAINER:SRC → host, or host → CONTAINER:DEST.
 * Paths in the container resolve inside its rootfs (symlinks cannot lead out of it). As
 * docker's: a SRC that is a symbolic link is copied as the link, unless `follow` (-L) or SRC
 * ends with / (then what it points to is copied).
 */
export async function copyFiles(engine: Engine, src: string, dst: string, follow = false): Promise<void> {
  const from = containerPath(engine, src);
  const to = containerPath(engine, dst);
  const tarIn = src === '-';
  const tarOut = dst === '-';
  if (!!from === !!to || (tarIn && tarOut)) throw new BerthError('USAGE', 'berth cp copies between a container and the host: exactly one side must be CONTAINER:PATH (the other a host path, or - for a tar stream)');
  const rootOf = (c: Container) => (JSON.parse(readFileSync(join(engine.bundleDir(c), 'config.json'), 'utf8')) as Spec).root!.path;
  if (from && tarOut) {
    // A tar of the directory, its entries under its own name (as docker cp … - does).
    const host = await resolveInRoot(rootOf(from.c), from.path);
    if (!host) throw new BerthError('NOT_FOUND', `no such file or directory in container ${from.c.name}: ${from.path}`);
    if (!statSync(host).isDirectory()) throw new BerthError('UNSUPPORTED', `berth cp ${src} -: a tar stream is made of a directory; copy a file to a host path instead`);
    const { writeLayerFromDir } = await import('../../layer/create.js');
    await writeLayerFromDir(host, process.stdout, { compression: 'none', prefix: posix.basename(from.path) || '.' });
    return;
  }
  if (tarIn && to) {
    // Unpacked inside the container's root: paths and links in the archive cannot leave it.
    const dir = await resolveInRoot(rootOf(to.c), to.path);
    if (!dir || !statSync(dir).isDirectory()) throw new BerthError('NOT_FOUND', `no such directory in container ${to.c.name}: ${to.path}`);
    const { applyTarStream } = await import('../../layer/apply.js');
    await applyTarStream(dir, process.stdin);
    return;
  }
  if (from) {
    const target = existsSync(dst) && statSync(dst).isDirectory() ? join(dst, basename(from.path)) : dst;
    const link = follow || /\/\.?$/.test(src) ? undefined : await linkInRoot(rootOf(from.c), from.path);
    if (link !== undefined) {
      rmSync(target, { force: true });
      symlinkSync(link, target);
      return;
    }
    const host = await resolveInRoot(rootOf(from.c), from.path);
    if (!host) throw new BerthError('NOT_FOUND', `no such file or directory in container ${from.c.name}: ${from.path}`);
    cpSync(host, target, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    return;
  }
  const root = rootOf(to!.c);
  if (!existsSync(src)) throw new BerthError('NOT_FOUND', `no such file or directory: ${src}`);
  const existing = await resolveInRoot(root, to!.path);
  let target: string;
  if (existing && statSync(existing).isDirectory()) target = join(existing, basename(src));
  else {
    const parent = await resolveInRoot(root, posix.dirname(to!.path));
    if (!parent) throw new BerthError('NOT_FOUND', `no such directory in container ${to!.c.name}: ${posix.dirname(to!.path)}`);
    target = join(parent, posix.basename(to!.path));
  }
  // -L: a link given as SRC is copied as what it points to (links inside a directory stay links).
  cpSync(follow ? realpathSync(src) : src, target, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
}

/** What `path` (in the container's root) says when it is itself a symbolic link, else undefined. */
async function linkInRoot(root: string, path: string): Promise<string | undefined> {
  if (path === '/') return undefined;
  const parent = await resolveInRoot(root, posix.dirname(path));
  if (!parent) return undefined;
  try {
    const host = join(parent, posix.basename(path));
    return lstatSync(host).isSymbolicLink() ? readlinkSync(host) : undefined;
  } catch {
    return undefined;
  }
}
