/**
 * berth-runtime: an OCI runtime-spec runtime with runc's command line. The native front end
 * (native/berth-runtime.c) runs start/state/kill/delete itself and execs this module (bundled
 * into dist/berth-runtime.cjs) for everything else. Kept free of the rest of berth's CLI so
 * the bundle stays small.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BerthError } from '../base/errors.js';
import { berthVersion } from '../base/package.js';
import { createContainer, loadBundleConfig } from '../runtime/create.js';
import { execInContainer } from '../runtime/exec.js';
import { features } from '../runtime/features.js';
import { nativeBinary } from '../base/package.js';
import { freezeContainer, listContainers, containerPids, statsEvent, streamEvents } from '../runtime/manage.js';
import { defaultSpec } from '../runtime/spec/default.js';
import { updateContainer } from '../runtime/update.js';
import { resourcesFromFlags, UPDATE_FLAG_NAMES, type UpdateFlags } from './update-flags.js';
import type { Process } from '../runtime/spec/types.js';
import { DEFAULT_ROOT } from '../runtime/state.js';
import { OCI_VERSION } from '../runtime/spec/version.js';

interface Global { root: string; log?: string; logJson: boolean; debug: boolean; rootless: boolean }

/** runc's --rootless: "true", "false" or "auto" (rootless when not running as root). */
function rootlessFlag(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (value === 'auto') return process.geteuid?.() !== 0;
  throw new BerthError('USAGE', `--rootless ${JSON.stringify(value)}: give true, false or auto`);
}

type FlagSpec = Record<string, { value: boolean; short?: string; multi?: boolean }>;
interface Parsed { flags: Record<string, string | boolean | string[]>; positionals: string[] }

/** urfave/cli-style parsing as runc has it: -x, --x, --x=v, --x v; flags stop at the first positional for exec/run args. */
function parseFlags(argv: string[], spec: FlagSpec, stopAtPositional = false): Parsed {
  const flags: Parsed['flags'] = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      if (stopAtPositional) { positionals.push(...argv.slice(i + 1)); break; }
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    let name = eq >= 0 ? body.slice(0, eq) : body;
    const short = Object.entries(spec).find(([, s]) => s.short === name);
    if (short) name = short[0];
    const s = spec[name];
    if (!s) throw new BerthError('USAGE', `unknown flag ${a}`);
    let value: string | boolean = true;
    if (s.value) {
      if (eq >= 0) value = body.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i]!;
      else throw new BerthError('USAGE', `flag ${a} needs a value`);
    } else if (eq >= 0) value = body.slice(eq + 1) !== 'false';
    if (s.multi) flags[name] = [...((flags[name] as string[] | undefined) ?? []), String(value)];
    else flags[name] = value;
  }
  return { flags, positionals };
}

const str = (p: Parsed, k: string): string | undefined => (typeof p.flags[k] === 'string' ? (p.flags[k] as string) : undefined);
const bool = (p: Parsed, k: string): boolean => p.flags[k] === true;

function oneId(p: Parsed, usage: string): string {
  if (p.positionals.length !== 1) throw new BerthError('USAGE', `usage: berth-runtime ${usage}`);
  return p.positionals[0]!;
}

const CREATE_FLAGS: FlagSpec = {
  bundle: { value: true, short: 'b' }, 'pid-file': { value: true }, 'console-socket': { value: true },
  'no-pivot': { value: false }, 'no-new-keyring': { value: false }, 'preserve-fds': { value: true },
  detach: { value: false, short: 'd' }, keep: { value: false },
};

/** Flags runc has that berth-runtime cannot honour: an error, not a silent no-op. */
function refuseIgnoredFlags(p: Parsed, names: string[]): void {
  for (const n of names) {
    const v = p.flags[n];
    if (v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0)) {
      throw new BerthError('UNSUPPORTED', `--${n} is not supported by berth-runtime; leave it out`);
    }
  }
  const fds = p.flags['preserve-fds'];
  if (typeof fds === 'string' && fds !== '0') throw new BerthError('UNSUPPORTED', '--preserve-fds is not supported by berth-runtime (only stdio is passed to the container)');
}

// child_process is loaded only when needed: create does without it (it is a few ms of Node's start-up).
async function native(g: Global, args: string[]): Promise<number> {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(nativeBinary('berth-runtime'), ['--root', g.root, ...(g.log ? ['--log', g.log] : []), ...(g.logJson ? ['--log-format', 'json'] : []), ...args], { stdio: 'inherit' });
  return r.status ?? 1;
}

async function cmdCreate(g: Global, argv: string[]): Promise<number> {
  const p = parseFlags(argv, CREATE_FLAGS);
  const id = oneId(p, 'create <container-id> [--bundle DIR] [--pid-file F] [--console-socket S]');
  refuseIgnoredFlags(p, []);
  const { init } = await createContainer({
    root: g.root, id, bundle: str(p, 'bundle') ?? '.',
    ...(str(p, 'pid-file') ? { pidFile: str(p, 'pid-file')! } : {}),
    ...(str(p, 'console-socket') ? { consoleSocket: str(p, 'console-socket')! } : {}),
    noPivot: bool(p, 'no-pivot'), rootless: g.rootless,
  });
  init?.unref();
  return 0;
}

async function cmdRun(g: Global, argv: string[]): Promise<number> {
  const p = parseFlags(argv, CREATE_FLAGS);
  const id = oneId(p, 'run <container-id> [--bundle DIR] [--detach] [--pid-file F] [--console-socket S]');
  refuseIgnoredFlags(p, []);
  const detach = bool(p, 'detach');
  const { init } = await createContainer({
    root: g.root, id, bundle: str(p, 'bundle') ?? '.', keep: !detach,
    ...(str(p, 'pid-file') ? { pidFile: str(p, 'pid-file')! } : {}),
    ...(str(p, 'console-socket') ? { consoleSocket: str(p, 'console-socket')! } : {}),
    noPivot: bool(p, 'no-pivot'), rootless: g.rootless,
  });
  const exited = detach || !init ? undefined : new Promise<number>((res) => init.on('exit', (code, sig) => res(code ?? 128 + (sig ? 9 : 0))));
  // Forward the usual signals to stage 1, which forwards them to the container.
  const forward = (sig: NodeJS.Signals) => { try { init?.kill(sig); } catch { /* gone */ } };
  if (!detach) for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const) process.on(s, forward);
  const started = await native(g, ['start', id]);
  if (started !== 0) {
    await native(g, ['delete', '--force', id]);
    return started;
  }
  if (!exited) { init?.unref(); return 0; }
  const code = await exited;
  await native(g, ['delete', '--force', id]);
  return code;
}

function execProcess(g: Global, id: string, p: Parsed): Process {
  const file = str(p, 'process');
  if (file) {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Process;
    } catch (err) {
      throw new BerthError('USAGE', `--process ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (p.positionals.length < 2) throw new BerthError('USAGE', 'usage: berth-runtime exec <container-id> [--process FILE | COMMAND [ARG...]]');
  const rec = JSON.parse(readFileSync(join(g.root, id, 'state.json'), 'utf8')) as { bundle: string };
  const base = loadBundleConfig(rec.bundle).process ?? { user: { uid: 0, gid: 0 }, cwd: '/' };
  const proc: Process = { ...base, args: p.positionals.slice(1), terminal: bool(p, 'tty') };
  if (str(p, 'cwd')) proc.cwd = str(p, 'cwd')!;
  const env = (p.flags.env as string[] | undefined) ?? [];
  if (env.length) proc.env = [...(proc.env ?? []), ...env];
  const user = str(p, 'user');
  if (user) {
    const [uid, gid] = user.split(':');
    proc.user = { uid: Number(uid), gid: Number(gid ?? 0) };
    if (!Number.isInteger(proc.user.uid) || !Number.isInteger(proc.user.gid)) throw new BerthError('USAGE', `--user must be UID[:GID], got ${user}`);
  }
  if (bool(p, 'no-new-privs')) proc.noNewPrivileges = true;
  return proc;
}

async function cmdUpdate(g: Global, argv: string[]): Promise<number> {
  const spec: FlagSpec = { resources: { value: true, short: 'r' } };
  for (const n of UPDATE_FLAG_NAMES) spec[n] = { value: true };
  const p = parseFlags(argv, spec);
  const id = oneId(p, 'update [--resources FILE|-] [--memory SIZE] [--cpu-quota N] [--pids-limit N] … <container-id>');
  const flags: UpdateFlags = {};
  for (const n of UPDATE_FLAG_NAMES) if (str(p, n) !== undefined) flags[n] = str(p, n)!;
  const file = str(p, 'resources');
  let resources: unknown;
  if (file !== undefined) {
    // runc ignores the other flags when --resources is given; saying so is kinder.
    if (Object.keys(flags).length) throw new BerthError('USAGE', `--resources cannot be combined with --${Object.keys(flags).join(', --')}: put everything in the resources document`);
    let text: string;
    try {
      text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
    } catch (err) {
      throw new BerthError('USAGE', `--resources ${file}: cannot read it: ${(err as Error).message}`);
    }
    try {
      resources = JSON.parse(text);
    } catch (err) {
      throw new BerthError('USAGE', `--resources ${file === '-' ? '(stdin)' : file} is not JSON: ${(err as Error).message}`);
    }
  } else {
    resources = resourcesFromFlags(flags);
  }
  await updateContainer(g.root, id, resources);
  return 0;
}

async function cmdExec(g: Global, argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    process: { value: true, short: 'p' }, tty: { value: false, short: 't' }, detach: { value: false, short: 'd' },
    'pid-file': { value: true }, 'console-socket': { value: true }, cwd: { value: true }, env: { value: true, short: 'e', multi: true },
    user: { value: true, short: 'u' }, 'no-new-privs': { value: false }, 'preserve-fds': { value: true }, 'process-label': { value: true },
    'apparmor': { value: true }, cap: { value: true, short: 'c', multi: true }, 'ignore-paused': { value: false }, 'cgroup': { value: true, multi: true },
  }, true);
  const id = p.positionals[0];
  if (!id) throw new BerthError('USAGE', 'usage: berth-runtime exec <container-id> [--process FILE | COMMAND [ARG...]]');
  refuseIgnoredFlags(p, ['apparmor', 'process-label', 'cgroup']);
  const proc = execProcess(g, id, p);
  const caps = (p.flags.cap as string[] | undefined) ?? [];
  if (caps.length) {
    const c = proc.capabilities ?? {};
    for (const set of ['bounding', 'effective', 'permitted', 'ambient'] as const) c[set] = [...new Set([...(c[set] ?? []), ...caps])];
    proc.capabilities = c;
  }
  return execInContainer({
    root: g.root, id, process: proc, detach: bool(p, 'detach'),
    ...(str(p, 'pid-file') ? { pidFile: str(p, 'pid-file')! } : {}),
    ...(str(p, 'console-socket') ? { consoleSocket: str(p, 'console-socket')! } : {}),
  });
}

async function cmdList(g: Global, argv: string[]): Promise<number> {
  const p = parseFlags(argv, { format: { value: true, short: 'f' }, quiet: { value: false, short: 'q' } });
  const items = listContainers(g.root);
  if (bool(p, 'quiet')) { for (const c of items) process.stdout.write(c.id + '\n'); return 0; }
  if (str(p, 'format') === 'json') { process.stdout.write(JSON.stringify(items) + '\n'); return 0; }
  const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'], ...items.map((c) => [c.id, String(c.pid), c.status, c.bundle, c.created, c.owner])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]! + 2)).join('').trimEnd() + '\n');
  return 0;
}

async function cmdPs(g: Global, argv: string[]): Promise<number> {
  const p = parseFlags(argv, { format: { value: true, short: 'f' } });
  const id = p.positionals[0];
  if (!id) throw new BerthError('USAGE', 'usage: berth-runtime ps [--format table|json] <container-id>');
  const pids = containerPids(g.root, id);
  if (str(p, 'format') === 'json') { process.stdout.write(JSON.stringify(pids) + '\n'); return 0; }
  process.stdout.write('PID   CMD\n');
  for (const pid of pids) {
    let cmd = '';
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim(); } catch { /* exited */ }
    process.stdout.write(`${String(pid).padEnd(6)}${cmd}\n`);
  }
  return 0;
}

/** A Go duration as runc's --interval takes it: "5s", "500ms", "1m30s", "1.5s". */
function parseDuration(text: string): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let ms = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) { ms += Number(m[1]) * unit[m[2]!]!; end = re.lastIndex; }
  if (text === '' || end !== text.length || ms <= 0) throw new BerthError('USAGE', `--interval ${JSON.stringify(text)}: give a duration such as 5s or 500ms`);
  return ms;
}

async function cmdEvents(g: Global, argv: string[]): Promise<number> {
  const p = parseFlags(argv, { stats: { value: false }, interval: { value: true } });
  const id = oneId(p, 'events [--stats] [--interval 5s] <container-id>');
  if (bool(p, 'stats')) { process.stdout.write(statsEvent(g.root, id) + '\n'); return 0; }
  await streamEvents(g.root, id, parseDuration(str(p, 'interval') ?? '5s'), (line) => process.stdout.write(line));
  return 0;
}

async function cmdSpec(_g: Global, argv: string[]): Promise<number> {
  const p = parseFlags(argv, { bundle: { value: true, short: 'b' }, rootless: { value: false } });
  const path = join(resolve(str(p, 'bundle') ?? '.'), 'config.json');
  if (existsSync(path)) throw new BerthError('USAGE', `${path} already exists: remove it first`);
  writeFileSync(path, JSON.stringify(defaultSpec({ rootless: bool(p, 'rootless') }), null, '\t') + '\n');
  return 0;
}

const USAGE = `usage: berth-runtime [global flags] COMMAND [flags] ARGS

An OCI runtime (runtime-spec 1.x, Linux) with runc's command line.

Commands:
  create <id> --bundle DIR [--pid-file F] [--console-socket S]   create a container (process waits for start)
  start <id>                    run the user process of a created container
  state <id>                    print the state JSON (runtime.md)
  kill <id> [SIGNAL] [--all]    send a signal (default TERM)
  delete [--force] <id>         delete a stopped container (--force kills it first)
  run <id> --bundle DIR [--detach]   create + start (+ wait + delete)
  exec <id> [--process F | CMD ARG...] [--tty] [--detach] [--pid-file F] [--console-socket S]
  list [--format json] [-q]     list containers
  ps [--format json] <id>       processes in a container
  pause <id> / resume <id>      freeze / thaw a container's processes (freezer cgroup)
  update [--resources FILE|-] [--memory SIZE] [--pids-limit N] [--cpu-quota N] … <id>
                                new resource limits (runc's flags; only what is given changes)
  spec [--bundle DIR] [--rootless]   write a default config.json
  features                      print the features JSON (features.md)
  events [--stats] [--interval 5s] <id>   resource usage (runc's JSON): once, or every interval

Global flags: --root DIR (default ${DEFAULT_ROOT}), --log FILE, --log-format text|json, --debug,
  --rootless true|false|auto (runc's: ignore cgroup permission errors when no limits are set;
  auto: when not root), --systemd-cgroup and --criu (refused: berth-runtime drives cgroupfs
  directly and has no checkpoint/restore)
`;

async function main(argv: string[]): Promise<number> {
  const g: Global = { root: DEFAULT_ROOT, logJson: false, debug: false, rootless: rootlessFlag('auto') };
  let i = 0;
  for (; i < argv.length && argv[i]!.startsWith('-'); i++) {
    const a = argv[i]!;
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const takeValue = () => (eq >= 0 ? body.slice(eq + 1) : argv[++i] ?? '');
    if (name === 'root') g.root = resolve(takeValue());
    else if (name === 'log') g.log = takeValue();
    else if (name === 'log-format') g.logJson = takeValue() === 'json';
    else if (name === 'debug') { g.debug = true; process.env.BERTH_RUNTIME_TRACE = '1'; }
    else if (name === 'rootless') g.rootless = rootlessFlag(takeValue());
    else if (name === 'criu') throw new BerthError('UNSUPPORTED', `--criu is not supported: berth-runtime has no checkpoint/restore; leave --criu out`);
    else if (name === 'systemd-cgroup') {
      throw new BerthError('UNSUPPORTED', '--systemd-cgroup is not supported: berth-runtime manages cgroupfs directly; configure your engine with cgroup_manager = "cgroupfs"');
    } else if (name === 'help' || name === 'h') { process.stdout.write(USAGE); return 0; }
    else if (name === 'version' || name === 'v') { process.stdout.write(`berth-runtime version ${berthVersion()}\nspec: ${OCI_VERSION}\n`); return 0; }
    else throw new BerthError('USAGE', `unknown global flag ${a}\n\n${USAGE}`);
  }
  const verb = argv[i];
  const rest = argv.slice(i + 1);
  if (!verb) { process.stdout.write(USAGE); return 2; }
  if (rest.includes('--help') || rest.includes('-h')) { process.stdout.write(USAGE); return 0; }
  switch (verb) {
    case 'create': return cmdCreate(g, rest);
    case 'run': return cmdRun(g, rest);
    case 'exec': return cmdExec(g, rest);
    case 'list': return cmdList(g, rest);
    case 'ps': return cmdPs(g, rest);
    case 'pause': case 'resume': {
      const id = oneId(parseFlags(rest, {}), `${verb} <container-id>`);
      await freezeContainer(g.root, id, verb === 'pause');
      return 0;
    }
    case 'spec': return cmdSpec(g, rest);
    case 'update': return cmdUpdate(g, rest);
    case 'features': process.stdout.write(JSON.stringify(features(), null, 2) + '\n'); return 0;
    case 'events': return cmdEvents(g, rest);
    case 'checkpoint': case 'restore':
      throw new BerthError('UNSUPPORTED', `${verb} is not supported: berth-runtime has no checkpoint/restore (CRIU); use runc or crun for it`);
    case 'start': case 'state': case 'kill': case 'delete': return native(g, [verb, ...rest]);
    default: throw new BerthError('USAGE', `unknown command ${JSON.stringify(verb)}\n\n${USAGE}`);
  }
}

function logError(g: { log?: string; logJson: boolean }, msg: string): void {
  if (!g.log) return;
  try {
    const line = g.logJson ? JSON.stringify({ level: 'error', msg, time: new Date().toISOString() }) : `time="${new Date().toISOString()}" level=error msg=${JSON.stringify(msg)}`;
    appendFileSync(g.log, line + '\n');
  } catch { /* the log is best effort */ }
}

function globalLog(argv: string[]): { log?: string; logJson: boolean } {
  const out: { log?: string; logJson: boolean } = { logJson: false };
  for (let i = 0; i < argv.length && argv[i]!.startsWith('-'); i++) {
    const a = argv[i]!;
    if (a === '--log' || a === '-log') out.log = argv[++i];
    else if (a.startsWith('--log=')) out.log = a.slice(6);
    else if (a === '--log-format' || a === '-log-format') out.logJson = argv[++i] === 'json';
    else if (a.startsWith('--log-format=')) out.logJson = a.slice(13) === 'json';
    else if (a === '--root' || a === '-root') i++;
  }
  return out;
}

// The front end (native/berth-runtime.c) waits for create's exit status on this pipe and
// returns to the engine at once, without waiting for Node to tear itself down. Registered
// after the loader's code-cache writer, so the cache is written first.
const doneFd = Number(process.env.BERTH_DONE_FD);
delete process.env.BERTH_DONE_FD;
if (Number.isInteger(doneFd) && doneFd > 2) {
  process.once('exit', (code) => { try { writeSync(doneFd, Buffer.from([code & 255])); } catch { /* front end gone */ } });
}

const argv = process.argv.slice(2);
main(argv).then(
  // Exit at once: nothing is left to flush (stdout/stderr are synchronous for files and pipes
  // on Linux), and waiting for the released child handles only delays the engine.
  (code) => process.exit(code),
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`berth-runtime: ${msg}\n`);
    logError(globalLog(argv), msg);
    process.exitCode = err instanceof BerthError && err.code === 'USAGE' ? 2 : 1;
  },
);

