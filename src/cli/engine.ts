/**
 * Container commands (docker's names, flags and exit codes): run, create, start, stop, kill,
 * restart, rm, ps, logs, exec, wait, inspect, top, cp, commit, container prune.
 * Exit status: the container's own for run/start -a/exec/wait; 125 when berth fails,
 * 126 when the command cannot be invoked, 127 when it is not found.
 */
import { BerthError } from '../base/errors.js';
import { flag, printJson, printLine, str, strs, type CommandGroup, type CommandSpec, type ParsedCommand } from './common.js';
import type { Container } from '../engine/containers/store.js';
import type { Engine, ImageSource } from '../engine/containers/engine.js';
import type { RunOptions } from '../engine/containers/options.js';
import { isPaused, listedAsPaused, setPaused, thawIfPaused } from '../engine/containers/pause.js';
import { beginRunPlan, runPlan, type RunPlanCapture } from '../engine/containers/run-plan.js';
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';

type EngineModule = typeof import('../engine/containers/engine.js');

async function engineOf(p: ParsedCommand): Promise<{ engine: Engine; mod: EngineModule }> {
  const mod = await import('../engine/containers/engine.js');
  const { berthRoot } = await import('../engine/store.js');
  return { engine: new mod.Engine(berthRoot({ root: str(p, 'root') })), mod };
}

/** Runs a command body; errors print one line and give docker's exit status (125 unless said). */
/**
 * Exit statuses as docker's: run and create (`makes: true`) exit 125 when berth fails; the other
 * commands exit 1 on any failure (126 and 127 stay: a command exec could not run or find), and
 * so does each container a command names that fails (forEachContainer).
 */
function failureStatus(err: unknown, makes: boolean): number {
  const code = (err as { exitCode?: number }).exitCode;
  if (makes) return code ?? 125;
  return code === 126 || code === 127 ? code : 1;
}

function engineCommand(spec: Omit<CommandSpec, 'run'> & { run(p: ParsedCommand): Promise<number>; makes?: boolean }): CommandSpec {
  return {
    ...spec,
    async run(p) {
      try {
        return await spec.run(p);
      } catch (err) {
        const code = failureStatus(err, spec.makes === true);
        const msg = err instanceof Error ? err.message : String(err);
        process.stderr.write(`berth: ${err instanceof BerthError ? msg : (err as Error).stack ?? msg}\n`);
        return code;
      }
    },
  };
}

const ROOT_OPTION = { root: { type: 'string' as const } };

const RUN_OPTIONS = {
  ...ROOT_OPTION,
  rm: { type: 'boolean' as const },
  detach: { type: 'boolean' as const, short: 'd' },
  interactive: { type: 'boolean' as const, short: 'i' },
  tty: { type: 'boolean' as const, short: 't' },
  name: { type: 'string' as const },
  env: { type: 'string' as const, short: 'e', multiple: true },
  'env-file': { type: 'string' as const, multiple: true },
  volume: { type: 'string' as const, short: 'v', multiple: true },
  mount: { type: 'string' as const, multiple: true },
  tmpfs: { type: 'string' as const, multiple: true },
  workdir: { type: 'string' as const, short: 'w' },
  user: { type: 'string' as const, short: 'u' },
  entrypoint: { type: 'string' as const },
  hostname: { type: 'string' as const, short: 'h' },
  network: { type: 'string' as const },
  net: { type: 'string' as const },
  publish: { type: 'string' as const, short: 'p', multiple: true },
  'publish-all': { type: 'boolean' as const, short: 'P' },
  'network-alias': { type: 'string' as const, multiple: true },
  ip: { type: 'string' as const },
  dns: { type: 'string' as const, multiple: true },
  'dns-search': { type: 'string' as const, multiple: true },
  'dns-option': { type: 'string' as const, multiple: true },
  'add-host': { type: 'string' as const, multiple: true },
  pull: { type: 'string' as const },
  platform: { type: 'string' as const },
  'read-only': { type: 'boolean' as const },
  'cap-add': { type: 'string' as const, multiple: true },
  'cap-drop': { type: 'string' as const, multiple: true },
  privileged: { type: 'boolean' as const },
  'security-opt': { type: 'string' as const, multiple: true },
  memory: { type: 'string' as const, short: 'm' },
  cpus: { type: 'string' as const },
  'pids-limit': { type: 'string' as const },
  ulimit: { type: 'string' as const, multiple: true },
  init: { type: 'boolean' as const },
  'stop-signal': { type: 'string' as const },
  'stop-timeout': { type: 'string' as const },
  restart: { type: 'string' as const },
  label: { type: 'string' as const, short: 'l', multiple: true },
  runtime: { type: 'string' as const },
  cidfile: { type: 'string' as const },
  'log-opt': { type: 'string' as const, multiple: true },
};

const RUN_HELP = `Options:
  --rm                  remove the container when it exits
  -d, --detach          run in the background (held by berth-monitor) and print the id
  -i, --interactive     keep stdin open;  -t, --tty  a pseudo-terminal (its size follows yours)
                        -it on a terminal: ctrl-p ctrl-q detaches (run: --detach-keys KEYS)
  --name NAME           a unique name (default: berth_XXXXXXXX)
  -e, --env K=V|K       environment (K alone: from this environment); --env-file FILE
  -v, --volume HOST:CTR[:ro|rw]   bind a host path; --mount type=bind|tmpfs,source=,target=[,readonly]
  --tmpfs PATH[:OPTS]   a tmpfs (noexec,nosuid,nodev by default)
  -w, --workdir DIR     -u, --user USER[:GROUP]   --entrypoint CMD ("" to clear)   -h, --hostname NAME
  --network MODE        bridge (default: berth0, its own address, a route out), none, host,
                        NAME (a network made by berth network create: names resolve), container:NAME
  -p, --publish [IP:][HOSTPORT:]PORT[/tcp|udp]   publish a port (on 127.0.0.1 too); -P: the image's EXPOSE
  --network-alias NAME  --ip IP   --add-host NAME:IP|host-gateway
  --dns IP   --dns-search DOMAIN   --dns-option OPT   what /etc/resolv.conf says (not with container:NAME)
  --pull always|missing|never (default missing)   --platform OS/ARCH[/VARIANT]
  --read-only           read-only root filesystem
  --cap-add CAP, --cap-drop CAP (ALL allowed)   --privileged
  --security-opt no-new-privileges | seccomp=unconfined | seccomp=PROFILE.json
  -m, --memory SIZE     --cpus N   --pids-limit N   --ulimit NAME=SOFT[:HARD]
  --init                a tiny reaper as PID 1 (berth-reaper)
  --stop-signal SIG     --stop-timeout SECONDS (stop's default wait, 10)   -l, --label K=V   --cidfile FILE
  --restart no          (the only policy: berth has no daemon to restart containers)
  --log-opt max-size=SIZE   rotate the json-file log at SIZE (default 10m)
  --runtime berth|runc|crun|PATH   (default berth: planned in this process, berth-init executes)
  --root DIR            berth root (default $BERTH_ROOT, else /var/lib/berth)
State: containers live in ROOT/containers (one directory each; names in ROOT/containers/names).`;

async function runOptions(p: ParsedCommand, command: string[]): Promise<RunOptions> {
  const o = await import('../engine/containers/options.js');
  const network = o.parseNetworkMode(str(p, 'network') ?? str(p, 'net') ?? 'bridge');
  const { parsePublishAll } = await import('../engine/network/ports.js');
  const publish = parsePublishAll(strs(p, 'publish'));
  if (network.startsWith('container:')) {
    // docker: "conflicting options: dns and the network mode" (the other container's file is used)
    for (const f of ['dns', 'dns-search', 'dns-option'] as const) {
      if (p.values[f] !== undefined) throw new BerthError('USAGE', `--${f} cannot be used with --network ${network}: the container shares ${network.slice(10)}'s /etc/resolv.conf`);
    }
  }
  if (!o.usesBridge(network)) {
    // docker: "conflicting options: port publishing and the container type network mode"
    for (const f of ['publish', 'publish-all', 'network-alias', 'ip', 'add-host'] as const) {
      if (p.values[f] !== undefined) throw new BerthError('USAGE', `--${f} cannot be used with --network ${network}: it needs a bridge network (bridge or a network's name)`);
    }
  }
  // Checked now, not at the attach: the lines they become in /etc/resolv.conf.
  (await import('../engine/network/hosts.js')).resolvConfContent({ dns: strs(p, 'dns'), dnsSearch: strs(p, 'dns-search'), dnsOptions: strs(p, 'dns-option'), hostResolvConf: '' });
  const sec = o.parseSecurityOpts(strs(p, 'security-opt'));
  let logMaxSize = 10 << 20;
  for (const lo of strs(p, 'log-opt')) {
    const m = /^max-size=(.+)$/.exec(lo);
    if (!m) throw new BerthError('USAGE', `--log-opt ${lo}: only max-size=SIZE is supported`);
    logMaxSize = o.parseSize('log-opt max-size', m[1]!);
  }
  const runtime = str(p, 'runtime') ?? 'berth';
  const pids = str(p, 'pids-limit');
  if (pids !== undefined && !/^-?\d+$/.test(pids)) throw new BerthError('USAGE', `--pids-limit ${pids}: an integer`);
  const stopSignal = str(p, 'stop-signal');
  if (stopSignal) o.signalNumber(stopSignal);
  const stopTimeout = str(p, 'stop-timeout');
  if (stopTimeout !== undefined && !/^\d+$/.test(stopTimeout)) throw new BerthError('USAGE', `--stop-timeout ${stopTimeout}: whole seconds`);
  const restart = str(p, 'restart');
  if (restart !== undefined && restart !== 'no') {
    throw new BerthError('USAGE', `--restart ${restart}: berth has no daemon to restart containers; only --restart no is supported (use a service manager such as systemd to restart one)`);
  }
  return {
    ...(str(p, 'name') !== undefined ? { name: str(p, 'name')! } : {}),
    command,
    ...(str(p, 'entrypoint') !== undefined ? { entrypoint: str(p, 'entrypoint')! } : {}),
    env: o.parseEnv(strs(p, 'env'), strs(p, 'env-file')),
    ...(str(p, 'workdir') ? { workdir: str(p, 'workdir')! } : {}),
    ...(str(p, 'user') ? { user: str(p, 'user')! } : {}),
    ...(str(p, 'hostname') ? { hostname: str(p, 'hostname')! } : {}),
    network,
    publish,
    publishAll: flag(p, 'publish-all'),
    networkAliases: strs(p, 'network-alias'),
    ...(str(p, 'ip') ? { ip: str(p, 'ip')! } : {}),
    dns: strs(p, 'dns'),
    dnsSearch: strs(p, 'dns-search'),
    dnsOptions: strs(p, 'dns-option'),
    addHosts: strs(p, 'add-host'),
    mounts: [...strs(p, 'volume').map(o.parseVolume), ...strs(p, 'mount').map(o.parseMount), ...strs(p, 'tmpfs').map(o.parseTmpfs)],
    readOnly: flag(p, 'read-only'),
    capAdd: strs(p, 'cap-add'),
    capDrop: strs(p, 'cap-drop'),
    privileged: flag(p, 'privileged'),
    noNewPrivileges: sec.noNewPrivileges,
    ...(sec.seccomp !== undefined ? { seccomp: sec.seccomp } : {}),
    ...(str(p, 'memory') ? { memory: o.parseSize('memory', str(p, 'memory')!) } : {}),
    ...(str(p, 'cpus') ? { cpus: o.parseCpus(str(p, 'cpus')!) } : {}),
    ...(pids !== undefined ? { pidsLimit: Number(pids) } : {}),
    ulimits: strs(p, 'ulimit').map(o.parseUlimit),
    init: flag(p, 'init'),
    ...(stopSignal ? { stopSignal } : {}),
    ...(stopTimeout !== undefined ? { stopTimeout: Number(stopTimeout) } : {}),
    labels: o.parseLabels(strs(p, 'label')),
    tty: flag(p, 'tty'),
    interactive: flag(p, 'interactive'),
    stdinOnce: flag(p, 'interactive') && !flag(p, 'detach'),
    ...(flag(p, 'tty') && process.stdout.isTTY && process.stdout.rows ? { consoleSize: { height: process.stdout.rows, width: process.stdout.columns } } : {}),
    autoRemove: flag(p, 'rm'),
    runtime,
    logMaxSize,
  };
}

/** --pull always|missing|never through the registry client into the store. */
function imageSource(p: ParsedCommand): ImageSource {
  const policy = str(p, 'pull') ?? 'missing';
  if (!['always', 'missing', 'never'].includes(policy)) throw new BerthError('USAGE', `--pull ${policy}: use always, missing or never`);
  return {
    async ensure(store, ref, name, platform) {
      if (policy === 'never') return;
      if (policy === 'missing') {
        try {
          await store.resolve(name);
          return;
        } catch (err) {
          if (!(err instanceof BerthError) || err.code !== 'NOT_FOUND') throw err;
        }
      }
      const { RegistryClient } = await import('../client/registry.js');
      const { pullImage } = await import('../engine/pull.js');
      const { dirname } = await import('node:path');
      const client = new RegistryClient({});
      try {
        // Into the store and the snapshots at once: each layer unpacks while it downloads.
        const pulled = await pullImage(ref, { berthRoot: dirname(store.dir), client, ...(platform ? { platform } : {}) });
        await pulled.prepared?.release();
      } catch (err) {
        throw new BerthError((err as BerthError).code ?? 'REGISTRY_ERROR', `cannot pull ${ref}: ${(err as Error).message}`, { cause: err });
      } finally {
        client.close();
      }
    },
  };
}

async function writeCidFile(path: string | undefined, id: string): Promise<void> {
  if (!path) return;
  const { openSync, writeSync, closeSync } = await import('node:fs');
  let fd;
  try {
    fd = openSync(path, 'wx', 0o644);
  } catch (err) {
    throw new BerthError('USAGE', `--cidfile ${path}: ${(err as NodeJS.ErrnoException).code === 'EEXIST' ? 'the file exists' : (err as Error).message}`);
  }
  writeSync(fd, id);
  closeSync(fd);
}

async function createFrom(p: ParsedCommand, usage: string, { deferMount = false } = {}): Promise<{ engine: Engine; c: Container }> {
  if (p.positionals.length < 1) throw new BerthError('USAGE', `an image is required\n\n${usage}`);
  const [image, ...command] = p.positionals as [string, ...string[]];
  const opts = await runOptions(p, command);
  if (opts.tty && !flag(p, 'detach') && !process.stdin.isTTY && opts.interactive) {
    throw new BerthError('USAGE', 'the input device is not a TTY: drop -t, or run on a terminal');
  }
  const { engine } = await engineOf(p);
  const c = await engine.create(image, opts, str(p, 'platform'), imageSource(p), { deferMount });
  await writeCidFile(str(p, 'cidfile'), c.id);
  return { engine, c };
}

/**
 * What a run plan (engine/containers/run-plan.ts) must check before the native front end repeats
 * this run, and what it repeats; refused for what it cannot check.
 */
function notePlanInputs(plan: RunPlanCapture, engine: Engine, c: Container, p: ParsedCommand): void {
  const cfg = c.config;
  if (str(p, 'cidfile') !== undefined || str(p, 'pull') === 'always') plan.refuse('--cidfile or --pull always');
  if (cfg.anonymousVolumes?.length || cfg.mounts.some((m) => m.type === 'volume')) plan.refuse('volumes');
  if (cfg.tty) plan.refuse('a terminal');
  for (const m of cfg.mounts) if (m.type === 'bind') plan.exists(m.source);
  for (const f of strs(p, 'env-file')) plan.hostFile(resolvePath(f));
  plan.fileIdentity(join(engine.root, 'images', 'index.json'));
  plan.hostFile('/etc/resolv.conf');
  if (cfg.network === 'host') {
    plan.hostFile('/etc/hosts');
    plan.hostFile('/proc/sys/kernel/hostname');
  }
  let dirs: string[] = [];
  try {
    const rec = JSON.parse(readFileSync(join(c.dir, 'rootfs.json'), 'utf8')) as { driver?: string; dirs?: string[] };
    if (rec.driver !== 'overlay' || !Array.isArray(rec.dirs)) plan.refuse('a root that is not an overlay');
    else dirs = rec.dirs;
  } catch {
    plan.refuse('no rootfs.json');
  }
  for (const d of dirs) plan.exists(d);
  plan.add('lease', JSON.stringify(dirs.map((d) => basename(dirname(d)))));
  plan.add('containers-dir', dirname(c.dir));
  plan.add('leases-dir', join(engine.root, 'leases'));
  plan.containerDir(c.dir, c.id, c.name, c.created);
  // The front end leaves the first --name's value out of the key (one plan for every name): it
  // must be the option's, not an argument of the command.
  const argv = process.argv.slice(2);
  const at = argv.findIndex((a, i) => i > 0 && (a === '--name' || a.startsWith('--name=')));
  if (at >= 0) {
    const given = argv[at] === '--name' ? argv[at + 1] : argv[at]!.slice('--name='.length);
    if (given === undefined || given.replace(/^\//, '') !== c.name || str(p, 'name') !== given) plan.refuse('the first --name is not the container\'s name');
    plan.add('name-given', '1');
  }
  // (positionals: the image, then the command: its name and arguments.)
  plan.command(p.positionals.slice(1));
  plan.add('detach', flag(p, 'detach') ? '1' : '0');
  plan.add('auto-remove', cfg.autoRemove ? '1' : '0');
  plan.add('sig-proxy', sigProxy(p) ? '1' : '0');
}

const RUN_USAGE = `Usage: berth run [OPTIONS] IMAGE [COMMAND [ARG...]]

Pulls IMAGE into the local store if needed, makes its root filesystem and runs COMMAND (the
image's ENTRYPOINT and CMD by default), in the foreground unless -d. Exit status: the
container's; 125 when berth fails, 126 when the command cannot run, 127 when it is not found.

${RUN_HELP}

Examples:
  berth run --rm 127.0.0.1:5000/demo/app:v1
  berth run --rm -it busybox sh
  berth run -d --name web -v /srv/www:/www:ro busybox httpd -f -h /www`;

function needOne(p: ParsedCommand, usage: string, min = 1): void {
  if (p.positionals.length < min) throw new BerthError('USAGE', `wrong number of arguments\n\n${usage}`);
}

function shortId(id: string): string {
  return id.slice(0, 12);
}

function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s <= 1 ? 'Less than a second' : `${s} seconds`;
  if (s < 3600) return Math.round(s / 60) === 1 ? 'About a minute' : `${Math.round(s / 60)} minutes`;
  if (s < 86400) return Math.round(s / 3600) === 1 ? 'About an hour' : `${Math.round(s / 3600)} hours`;
  return `${Math.round(s / 86400)} days`;
}

/** docker's state: a running container whose processes are frozen is paused. */
function stateOf(c: Container): string {
  return c.state.status === 'running' && isPaused(c) ? 'paused' : c.state.status;
}

function statusText(c: Container, exit: number | undefined, paused = isPaused(c)): string {
  if (c.state.status === 'running') return `Up ${ago(c.state.startedAt)}${paused ? ' (Paused)' : ''}`;
  if (c.state.status === 'exited') return `Exited (${exit ?? c.state.exitCode ?? 0}) ${ago(c.state.finishedAt)} ago`;
  return 'Created';
}

/** Columns padded to their widest cell; written at once (one write per line cost ps ~40 µs a row). */
function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stdout.write(rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd() + '\n').join(''));
}


/** docker inspect's shape, for the fields berth has. */
type InspectEndpoint = { network: string; networkId: string; ip: string; prefixLength: number; gateway: string; aliases: string[] };

function inspectDoc(engine: Engine, c: Container, ports: { containerPort: number; proto: string; hostIp: string; hostPort: number }[] = [], endpoints: InspectEndpoint[] = []): unknown {
  // docker's top-level IPAddress, IPPrefixLen and Gateway are the default network's.
  const onDefault = endpoints.find((x) => x.network === 'bridge');
  const exit = engine.exitOf(c);
  const running = c.state.status === 'running';
  return {
    Id: c.id,
    Created: c.created,
    Path: c.config.args[0],
    Args: c.config.args.slice(1),
    State: {
      Status: stateOf(c), Running: running, Paused: running && isPaused(c), Restarting: false, OOMKilled: false, Dead: false,
      Pid: running ? c.state.pid : 0, ExitCode: c.state.status === 'exited' ? exit ?? 0 : 0,
      StartedAt: c.state.startedAt ?? '0001-01-01T00:00:00Z', FinishedAt: c.state.finishedAt ?? '0001-01-01T00:00:00Z',
    },
    Image: c.config.imageDigest,
    Name: `/${c.name}`,
    LogPath: engine.logPath(c),
    HostConfig: {
      AutoRemove: c.config.autoRemove, ReadonlyRootfs: c.config.readOnly, NetworkMode: c.config.network, Runtime: c.config.runtime,
      LogConfig: { Type: 'json-file', Config: { 'max-size': String(c.config.logMaxSize) } },
    },
    // docker's NetworkSettings.Ports: "80/tcp": [{ HostIp, HostPort }] (from the network records).
    NetworkSettings: {
      Ports: ports.reduce<Record<string, { HostIp: string; HostPort: string }[]>>((acc, x) => {
        (acc[`${x.containerPort}/${x.proto}`] ??= []).push({ HostIp: x.hostIp, HostPort: String(x.hostPort) });
        return acc;
      }, {}),
      IPAddress: onDefault?.ip ?? '', IPPrefixLen: onDefault?.prefixLength ?? 0, Gateway: onDefault?.gateway ?? '',
      Networks: Object.fromEntries(endpoints.map((x) => [x.network, {
        NetworkID: x.networkId, Aliases: x.aliases.length ? x.aliases : null, IPAddress: x.ip, IPPrefixLen: x.prefixLength, Gateway: x.gateway,
      }])),
    },
    Mounts: c.config.mounts.map((m) => ({ Type: m.type, Source: m.source, Destination: m.destination, RW: !m.options.includes('ro') })),
    Config: {
      Hostname: c.config.hostname, User: c.config.user, Tty: c.config.tty, OpenStdin: c.config.interactive, Env: c.config.env,
      Cmd: c.config.cmd ?? null, Entrypoint: c.config.entrypoint ?? null, Image: c.config.image, WorkingDir: c.config.workdir,
      Labels: c.config.labels, StopSignal: c.config.stopSignal, ...(c.config.stopTimeout !== undefined ? { StopTimeout: c.config.stopTimeout } : {}),
    },
  };
}

/** stop's and restart's -t: seconds, or undefined (the container's --stop-timeout, else 10). */
function stopTime(p: ParsedCommand): number | undefined {
  const v = str(p, 'time');
  if (v === undefined) return undefined;
  const t = Number(v);
  if (!Number.isFinite(t) || t < 0) throw new BerthError('USAGE', `--time ${v}: seconds`);
  return t;
}

/** missingOk: a container that does not exist is reported but does not fail the command (docker's rm -f). */
async function forEachContainer(p: ParsedCommand, usage: string, fn: (engine: Engine, c: Container) => Promise<void>, missingOk = false): Promise<number> {
  needOne(p, usage);
  const { engine } = await engineOf(p);
  let status = 0;
  for (const ref of p.positionals) {
    try {
      await fn(engine, engine.store.find(ref));
    } catch (err) {
      process.stderr.write(`berth: ${(err as Error).message}\n`);
      if (missingOk && err instanceof BerthError && err.code === 'CONTAINER_NOT_FOUND') continue;
      status = failureStatus(err, false);
    }
  }
  return status;
}

/** docker's --sig-proxy[=true|false] (default true). */
function sigProxy(p: ParsedCommand): boolean {
  return p.values['sig-proxy'] !== false;
}

/** Our stdio to the running container's, through its monitor, until it exits or we detach. */
async function attachTo(engine: Engine, c: Container, p: ParsedCommand, stdin: boolean): Promise<number> {
  const { attachTo: attach } = await import('../engine/containers/attach.js');
  if (stdin && c.config.tty && !process.stdin.isTTY) throw new BerthError('USAGE', 'the input device is not a TTY: use --no-stdin, or run on a terminal');
  return attach(c.id, c.name, {
    stdin, tty: c.config.tty, sigProxy: sigProxy(p), ...(str(p, 'detach-keys') ? { detachKeys: str(p, 'detach-keys')! } : {}),
    signal: (sig) => { try { engine.kill(engine.store.load(c.id) ?? c, sig); } catch { /* stopped meanwhile */ } },
    exitCode: () => { const done = engine.store.load(c.id); return done ? engine.exitOf(done) ?? 0 : 0; },
  });
}

const ATTACH_OPTIONS = { 'sig-proxy': { type: 'boolean' as const }, 'detach-keys': { type: 'string' as const } };

const commands: CommandGroup = {
  run: engineCommand({
    makes: true,
    summary: 'Run a command in a new container (pulls the image when missing)',
    usage: RUN_USAGE,
    options: { ...RUN_OPTIONS, ...ATTACH_OPTIONS },
    optionsEndAfter: 1,
    async run(p) {
      const detach = flag(p, 'detach');
      const plan = beginRunPlan();
      // The container starts next: its monitor can mount the root (create, on its own, mounts it).
      const { engine, c } = await createFrom(p, RUN_USAGE, { deferMount: true });
      if (plan) notePlanInputs(plan, engine, c, p);
      if (detach) {
        try {
          await engine.start(c, false);
        } catch (err) {
          if (c.config.autoRemove) await engine.remove(engine.store.load(c.id) ?? c, true).catch(() => undefined);
          throw err;
        }
        await runPlan()?.save();
        printLine(c.id);
        return 0;
      }
      // -it on a terminal: detached under its monitor (which also does --rm), then attached as
      // docker's client does, so that ctrl-p ctrl-q can detach and leave the container running.
      if (c.config.tty && c.config.interactive && process.stdin.isTTY) {
        try {
          await engine.start(c, false, undefined, { waitAttach: true });
        } catch (err) {
          if (c.config.autoRemove) await engine.remove(engine.store.load(c.id) ?? c, true).catch(() => undefined);
          throw err;
        }
        return attachTo(engine, engine.store.load(c.id) ?? c, p, true);
      }
      let code: number;
      try {
        // The plan is written as soon as the container runs (not for its exit), and before we exit.
        let saving: Promise<void> | undefined;
        code = await engine.start(c, true, () => { saving = runPlan()?.save(); }, { sigProxy: sigProxy(p) });
        await saving;
      } finally {
        if (c.config.autoRemove) {
          const now = engine.store.load(c.id);
          if (now) await engine.remove(now, true);
          // The monitor removes them when it removes the container; without one (runc), here.
          if (now && c.config.anonymousVolumes?.length) await (await import('../engine/containers/anon-volumes.js')).removeVolumes(engine.root, c.config.anonymousVolumes);
        }
      }
      return code;
    },
  }),

  create: engineCommand({
    makes: true,
    summary: 'Create a container (rootfs, config, name) without starting it; berth create DIR oci:… makes an image',
    usage: `Usage: berth create [OPTIONS] IMAGE [COMMAND [ARG...]]\n\nAs berth run, without starting the container (berth start does). Prints the id.\n(berth create DIR oci:LAYOUT:TAG still makes an image from a directory; its options: berth create DIR oci:LAYOUT --help.)\n\nExamples:\n  berth create --name web busybox httpd -f -p 8080 && berth start web\n  berth create ./rootfs oci:./images:v1 --cmd '["/bin/sh"]'   # an image, not a container\n\n${RUN_HELP}`,
    options: RUN_OPTIONS,
    optionsEndAfter: 1,
    async run(p) {
      const { c } = await createFrom(p, this.usage);
      printLine(c.id);
      return 0;
    },
  }),

  start: engineCommand({
    // (docker's start exits 1; start -a keeps 125 for a container that cannot start, as warm-run.test asserts.)
    makes: true,
    summary: 'Start one or more stopped containers',
    usage: 'Usage: berth start [-a [-i]] CONTAINER...\n\n  -a, --attach        pass the container\'s output (and its status) through, as berth attach\n  -i, --interactive   and our stdin to the container (made with -i)\n  --detach-keys KEYS  (with a terminal) detach with KEYS, default ctrl-p,ctrl-q',
    options: { ...ROOT_OPTION, ...ATTACH_OPTIONS, attach: { type: 'boolean', short: 'a' }, interactive: { type: 'boolean', short: 'i' } },
    async run(p) {
      const usage = this.usage;
      if (flag(p, 'attach') || flag(p, 'interactive')) {
        needOne(p, usage);
        const { engine } = await engineOf(p);
        const c = engine.store.find(p.positionals[0]!);
        const stdin = flag(p, 'interactive') && c.config.interactive;
        if (stdin && c.config.tty && !process.stdin.isTTY) throw new BerthError('USAGE', 'the input device is not a TTY: drop -i, or run on a terminal');
        // The monitor holds the output until we are connected: nothing printed is lost.
        if (c.state.status !== 'running') await engine.start(c, false, undefined, { waitAttach: true });
        return attachTo(engine, engine.store.load(c.id) ?? c, p, stdin);
      }
      return forEachContainer(p, usage, async (engine, c) => {
        if (c.state.status !== 'running') await engine.start(c, false);
        printLine(p.positionals.find((r) => r === c.name || c.id.startsWith(r)) ?? c.id);
      });
    },
  }),

  attach: engineCommand({
    summary: 'Attach our stdin, stdout and stderr to a running container (berth attach --artifact-type …: an artifact)',
    usage: `Usage: berth attach [--no-stdin] [--sig-proxy=true|false] [--detach-keys KEYS] CONTAINER

Passes the output of a running container (from now on) to ours and, when it was made with -i,
our input to it, until it exits (its status is ours). With a terminal (-t) ours is raw and its
size follows; ctrl-p ctrl-q (--detach-keys) detaches and leaves the container running.
  --no-stdin          do not pass our input
  --sig-proxy=false   do not pass the signals we get to the container (never with -t)
(berth attach --artifact-type T REF FILE... pushes an artifact instead: berth attach --artifact-type x --help.)`,
    options: { ...ROOT_OPTION, ...ATTACH_OPTIONS, 'no-stdin': { type: 'boolean' } },
    async run(p) {
      if (p.positionals.length !== 1) throw new BerthError('USAGE', `wrong number of arguments\n\n${this.usage}`);
      const { engine } = await engineOf(p);
      const c = engine.store.find(p.positionals[0]!);
      if (c.state.status !== 'running' || !engine.livePid(c)) throw new BerthError('CONTAINER_STATE', `cannot attach to container ${c.name}: it is not running; start it first (berth start -a ${c.name})`);
      return attachTo(engine, c, p, !flag(p, 'no-stdin') && c.config.interactive);
    },
  }),

  stop: engineCommand({
    summary: 'Stop running containers (the stop signal, then SIGKILL after -t seconds)',
    usage: 'Usage: berth stop [-t SECONDS] CONTAINER...\n\n  -t, --time N   seconds to wait before SIGKILL (default: the container\'s --stop-timeout, else 10)',
    options: { ...ROOT_OPTION, time: { type: 'string', short: 't' } },
    async run(p) {
      const t = stopTime(p);
      return forEachContainer(p, this.usage, async (engine, c) => {
        await thawIfPaused(c);
        await engine.stop(c, t ?? c.config.stopTimeout ?? 10);
        printLine(p.positionals.find((r) => r === c.name || c.id.startsWith(r)) ?? c.id);
      });
    },
  }),

  kill: engineCommand({
    summary: 'Send a signal to running containers (default SIGKILL)',
    usage: 'Usage: berth kill [-s SIGNAL] CONTAINER...',
    options: { ...ROOT_OPTION, signal: { type: 'string', short: 's' } },
    async run(p) {
      return forEachContainer(p, this.usage, async (engine, c) => {
        engine.kill(c, str(p, 'signal') ?? 'KILL');
        // As docker's: the signal is taken once the processes thaw.
        await thawIfPaused(c);
        printLine(p.positionals.find((r) => r === c.name || c.id.startsWith(r)) ?? c.id);
      });
    },
  }),

  restart: engineCommand({
    summary: 'Stop and start containers again',
    usage: 'Usage: berth restart [-t SECONDS] CONTAINER...',
    options: { ...ROOT_OPTION, time: { type: 'string', short: 't' } },
    async run(p) {
      const t = stopTime(p);
      return forEachContainer(p, this.usage, async (engine, c) => {
        await thawIfPaused(c);
        await engine.stop(c, t ?? c.config.stopTimeout ?? 10);
        await engine.start(engine.store.load(c.id) ?? c, false);
        printLine(p.positionals.find((r) => r === c.name || c.id.startsWith(r)) ?? c.id);
      });
    },
  }),

  pause: engineCommand({
    summary: 'Freeze the processes of running containers (their freezer cgroup)',
    usage: 'Usage: berth pause CONTAINER...\n\nThe processes stop where they are until berth unpause; stop, kill and rm -f still end them.',
    options: ROOT_OPTION,
    async run(p) {
      return forEachContainer(p, this.usage, async (engine, c) => {
        await setPaused(c, engine.livePid(c) > 0, true);
        printLine(p.positionals.find((r) => r === c.name || c.id.startsWith(r)) ?? c.id);
      });
    },
  }),

  unpause: engineCommand({
    summary: 'Thaw the processes of paused containers',
    usage: 'Usage: berth unpause CONTAINER...',
    options: ROOT_OPTION,
    async run(p) {
      return forEachContainer(p, this.usage, async (engine, c) => {
        await setPaused(c, engine.livePid(c) > 0, false);
        printLine(p.positionals.find((r) => r === c.name || c.id.startsWith(r)) ?? c.id);
      });
    },
  }),

  rename: engineCommand({
    summary: 'Rename a container',
    usage: 'Usage: berth rename CONTAINER NEW_NAME\n\nOn a user network, the others resolve the new name (and no longer the old one).',
    options: ROOT_OPTION,
    async run(p) {
      if (p.positionals.length !== 2) throw new BerthError('USAGE', `wrong number of arguments\n\n${this.usage}`);
      const { engine } = await engineOf(p);
      const c = engine.store.find(p.positionals[0]!);
      const name = engine.store.rename(c, p.positionals[1]!);
      // (Its networks: the one it was made with, or ones `network connect` added.)
      (await import('../engine/network/index.js')).renameEndpoints(c.id, name, { root: engine.root });
      return 0;
    },
  }),

  rm: engineCommand({
    summary: 'Remove containers (-f: running ones too)',
    usage: 'Usage: berth rm [-f] [-v] CONTAINER...\n\n  -f, --force     kill a running container first\n  -v, --volumes   remove its anonymous volumes too (the image\'s VOLUMEs, -v /path); named ones stay',
    options: { ...ROOT_OPTION, force: { type: 'boolean', short: 'f' }, volumes: { type: 'boolean', short: 'v' } },
    async run(p) {
      return forEachContainer(p, this.usage, async (engine, c) => {
        if (flag(p, 'force')) await thawIfPaused(c);
        await engine.remove(c, flag(p, 'force'));
        if (flag(p, 'volumes') && c.config.anonymousVolumes?.length) {
          const { removeVolumes } = await import('../engine/containers/anon-volumes.js');
          await removeVolumes(engine.root, c.config.anonymousVolumes);
        }
        printLine(p.positionals.find((r) => r === c.name || c.id.startsWith(r)) ?? c.id);
      }, flag(p, 'force'));
    },
  }),

  ps: engineCommand({
    summary: 'List containers',
    usage: 'Usage: berth ps [-a] [-q] [--no-trunc] [--filter KEY=VALUE]... [--format json|TEMPLATE]\n\nTEMPLATE as docker\'s: \'{{.Names}}\', \'table {{.ID}}\\t{{.Status}}\' (fields ID, Image, Command, CreatedAt,\nRunningFor, Ports, State, Status, Names, Labels, Label "K", Mounts, Networks).\n\nFilters (docker\'s: one key\'s values are alternatives, keys must all hold):\n  status=created|running|exited, name=REGEXP, id=PREFIX, label=K[=V], ancestor=IMAGE, exited=CODE,\n  before=CONTAINER, since=CONTAINER, network=NAME, volume=NAME|PATH, publish=PORT[/PROTO], expose=PORT[/PROTO]',
    options: { ...ROOT_OPTION, all: { type: 'boolean', short: 'a' }, quiet: { type: 'boolean', short: 'q' }, filter: { type: 'string', short: 'f', multiple: true }, 'no-trunc': { type: 'boolean' }, format: { type: 'string' } },
    async run(p) {
      const { engine } = await engineOf(p);
      engine.sweep();
      const { parsePsFilters } = await import('../engine/containers/ps-filter.js');
      const filter = parsePsFilters(strs(p, 'filter'), (ref) => engine.store.find(ref));
      const all = flag(p, 'all') || filter.all;
      // (Once each; only a container `berth pause` marked has its freezer read.)
      const states = new Map<Container, string>();
      const state = (c: Container) => states.get(c) ?? states.set(c, listedAsPaused(c) ? 'paused' : c.state.status).get(c)!;
      const list = engine.store.list().filter((c) => (all || c.state.status === 'running') && filter.matches(c, engine.exitOf(c), state(c)));
      const id = (c: Container) => (flag(p, 'no-trunc') ? c.id : shortId(c.id));
      if (flag(p, 'quiet')) { process.stdout.write(list.map((c) => `${id(c)}\n`).join('')); return 0; }
      if (p.json) {
        printJson(list.map((c) => ({
          Id: c.id, Names: [c.name], Image: c.config.image, ImageID: c.config.imageDigest, Command: c.config.args.join(' '),
          Created: c.created, State: state(c), Status: statusText(c, engine.exitOf(c), state(c) === 'paused'), Pid: c.state.status === 'running' ? c.state.pid : 0,
          ExitCode: c.state.status === 'exited' ? engine.exitOf(c) ?? 0 : undefined, Labels: c.config.labels,
        })));
        return 0;
      }
      const cmd = (c: Container) => { const s = JSON.stringify(c.config.args.join(' ')); return flag(p, 'no-trunc') || s.length <= 22 ? s : `${s.slice(0, 20)}…"`; };
      const format = str(p, 'format');
      if (format !== undefined && format !== 'table' && format !== 'text') {
        const { psTemplate } = await import('./ps-format.js');
        process.stdout.write(psTemplate(format, list.map((c) => ({ c, id: id(c), command: cmd(c), status: statusText(c, engine.exitOf(c), state(c) === 'paused'), state: state(c), created: ago(c.created) }))).map((l) => `${l}\n`).join(''));
        return 0;
      }
      table([['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'],
        ...list.map((c) => [id(c), c.config.image, cmd(c), `${ago(c.created)} ago`, statusText(c, engine.exitOf(c), state(c) === 'paused'), c.name])]);
      return 0;
    },
  }),

  logs: engineCommand({
    summary: 'Print a container\'s output (its json-file log)',
    usage: 'Usage: berth logs [-f] [--tail N] [-t] [--since TIME] [--until TIME] CONTAINER\n\n  -f, --follow       keep printing until the container exits\n  --tail N           only the last N lines\n  -t, --timestamps   prefix each line with its time\n  --since TIME       RFC 3339, Unix seconds, or a duration (10m: that long ago)\n  --until TIME       only what was written before TIME (as --since)',
    options: { ...ROOT_OPTION, follow: { type: 'boolean', short: 'f' }, tail: { type: 'string', short: 'n' }, timestamps: { type: 'boolean', short: 't' }, since: { type: 'string' }, until: { type: 'string' } },
    async run(p) {
      needOne(p, this.usage);
      const { engine } = await engineOf(p);
      const c = engine.store.find(p.positionals[0]!);
      const { readLogs, parseSince } = await import('../engine/containers/logs.js');
      const tail = str(p, 'tail');
      if (tail !== undefined && tail !== 'all' && !/^\d+$/.test(tail)) throw new BerthError('USAGE', `--tail ${tail}: a number of lines or "all"`);
      let since: number | undefined, until: number | undefined;
      try {
        since = str(p, 'since') ? parseSince(str(p, 'since')!) : undefined;
        until = str(p, 'until') ? parseSince(str(p, 'until')!, Date.now(), '--until') : undefined;
      } catch (err) { throw new BerthError('USAGE', (err as Error).message); }
      const ts = flag(p, 'timestamps');
      await readLogs(engine.logPath(c), {
        ...(tail !== undefined && tail !== 'all' ? { tail: Number(tail) } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        follow: flag(p, 'follow'),
        stopped: () => engine.store.load(c.id)?.state.status !== 'running',
      }, (e) => (e.stream === 'stderr' ? process.stderr : process.stdout).write(ts ? `${e.time} ${e.log}` : e.log));
      return 0;
    },
  }),

  exec: engineCommand({
    summary: 'Run a command in a running container',
    usage: 'Usage: berth exec [-i] [-t] [-d] [-e K=V] [-u USER] [-w DIR] CONTAINER COMMAND [ARG...]',
    options: {
      ...ROOT_OPTION, interactive: { type: 'boolean', short: 'i' }, tty: { type: 'boolean', short: 't' }, detach: { type: 'boolean', short: 'd' },
      env: { type: 'string', short: 'e', multiple: true }, user: { type: 'string', short: 'u' }, workdir: { type: 'string', short: 'w' },
      privileged: { type: 'boolean' },
    },
    optionsEndAfter: 1,
    async run(p) {
      needOne(p, this.usage, 2);
      const { engine } = await engineOf(p);
      const c = engine.store.find(p.positionals[0]!);
      if (isPaused(c)) throw new BerthError('CONTAINER_STATE', `container ${c.name} is paused: berth unpause ${c.name} before exec`);
      const { execIn } = await import('../engine/containers/exec.js');
      const { parseEnv } = await import('../engine/containers/options.js');
      return execIn(engine, c, {
        args: p.positionals.slice(1), env: parseEnv(strs(p, 'env'), []), tty: flag(p, 'tty'), interactive: flag(p, 'interactive'),
        detach: flag(p, 'detach'), ...(str(p, 'user') ? { user: str(p, 'user')! } : {}), ...(str(p, 'workdir') ? { workdir: str(p, 'workdir')! } : {}),
      });
    },
  }),

  wait: engineCommand({
    summary: 'Wait for containers to stop, then print their exit codes',
    usage: 'Usage: berth wait CONTAINER...',
    options: ROOT_OPTION,
    async run(p) {
      return forEachContainer(p, this.usage, async (engine, c) => {
        const done = await engine.waitStopped(c.id);
        printLine(String(done ? engine.exitOf(done) ?? 0 : 0));
      });
    },
  }),

  inspect: engineCommand({
    summary: 'Show a container (docker\'s inspect document); an image reference shows the image',
    usage: 'Usage: berth inspect [-f TEMPLATE] CONTAINER...|REF\n\nA container (name, id or id prefix) is shown as docker inspect shows it; anything else\nis an image reference or place (berth inspect --help of the image command).\n  -f, --format TEMPLATE   a Go template per container, as docker\'s: -f \'{{.State.Pid}}\', \'{{json .Config}}\'',
    options: { ...ROOT_OPTION, format: { type: 'string', short: 'f' } },
    async run(p) {
      // docker's: one JSON array for all, or -f TEMPLATE once per container.
      const format = str(p, 'format');
      const render = format && format !== 'json' ? (await import('./go-template.js')).compileTemplate(format) : undefined;
      const docs: unknown[] = [];
      const status = await forEachContainer(p, this.usage, async (engine, c) => {
        const { usesBridge } = await import('../engine/containers/options.js');
        const network = usesBridge(c.config.network) ? await import('../engine/network/index.js') : undefined;
        const doc = inspectDoc(engine, c, network?.containerPorts(c.id, { root: engine.root }), network?.containerEndpoints(c.id, { root: engine.root }));
        if (render) printLine(render(doc));
        else docs.push(doc);
      });
      if (!render) printJson(docs);
      return status;
    },
  }),

  top: engineCommand({
    summary: 'Show the processes of a container',
    usage: 'Usage: berth top CONTAINER',
    options: ROOT_OPTION,
    async run(p) {
      needOne(p, this.usage);
      const { engine } = await engineOf(p);
      const c = engine.store.find(p.positionals[0]!);
      if (c.state.status !== 'running') throw new BerthError('CONTAINER_STATE', `container ${c.name} is not running`);
      const { containerProcesses } = await import('../engine/containers/exec.js');
      table([['UID', 'PID', 'PPID', 'CMD'], ...containerProcesses(engine, c).map((x) => [String(x.uid), String(x.pid), String(x.ppid), x.cmd])]);
      return 0;
    },
  }),

  cp: engineCommand({
    summary: 'Copy files between a container and the host',
    usage: 'Usage: berth cp [-L] CONTAINER:SRC HOST-DEST | berth cp [-L] HOST-SRC CONTAINER:DEST\n\nA directory is copied with its contents; into an existing directory when DEST is one.\nA SRC that is a symbolic link is copied as the link (as docker\'s), unless it ends with /.\n  -L, --follow-link   copy what a symbolic link SRC points to',
    options: { ...ROOT_OPTION, 'follow-link': { type: 'boolean', short: 'L' } },
    async run(p) {
      if (p.positionals.length !== 2) throw new BerthError('USAGE', `wrong number of arguments\n\n${this.usage}`);
      const { engine } = await engineOf(p);
      const { copyFiles } = await import('../engine/containers/exec.js');
      await copyFiles(engine, p.positionals[0]!, p.positionals[1]!, flag(p, 'follow-link'));
      return 0;
    },
  }),

  diff: engineCommand({
    summary: 'List the files a container added (A), changed (C) or deleted (D) on top of its image',
    usage: 'Usage: berth diff CONTAINER',
    options: ROOT_OPTION,
    async run(p) {
      needOne(p, this.usage);
      const { engine } = await engineOf(p);
      const c = engine.store.find(p.positionals[0]!);
      const { containerChanges } = await import('../engine/containers/diff.js');
      for (const ch of await containerChanges(engine, c)) printLine(`${ch.kind} ${ch.path}`);
      return 0;
    },
  }),

  commit: engineCommand({
    summary: 'Make a new image from a container\'s changes (one more layer)',
    usage: 'Usage: berth commit [-m MESSAGE] CONTAINER [IMAGE[:TAG]]\n\nThe changes (with whiteouts for deletions) become a layer on the container\'s image, stored\nin the local store under IMAGE (default: the image id only).',
    options: { ...ROOT_OPTION, message: { type: 'string', short: 'm' }, author: { type: 'string', short: 'a' } },
    async run(p) {
      needOne(p, this.usage);
      const { engine } = await engineOf(p);
      const c = engine.store.find(p.positionals[0]!);
      const { commitContainer } = await import('../engine/containers/commit.js');
      const digest = await commitContainer(engine, c, p.positionals[1], str(p, 'message'));
      printLine(digest);
      return 0;
    },
  }),

  container: engineCommand({
    summary: 'Container commands: berth container prune|ls|create|start|stop|rm|inspect|…',
    usage: 'Usage: berth container prune [-f] | berth container COMMAND ... (as berth COMMAND)',
    options: { ...ROOT_OPTION, force: { type: 'boolean', short: 'f' } },
    optionsEndAfter: 1,
    async run(p) {
      const [sub, ...rest] = p.positionals;
      if (sub === 'prune') {
        const { engine } = await engineOf(p);
        const removed = await engine.pruneStopped();
        if (removed.length) printLine('Deleted Containers:');
        for (const id of removed) printLine(id);
        return 0;
      }
      const name = sub === 'ls' || sub === 'list' ? 'ps' : sub;
      const target = name ? commands[name] : undefined;
      if (!target || name === 'container') throw new BerthError('USAGE', `berth container ${sub ?? ''}: unknown command\n\n${this.usage}`);
      const { parseCommand } = await import('./common.js');
      const argv = [...rest];
      if (str(p, 'root')) argv.unshift('--root', str(p, 'root')!);
      const parsed = parseCommand(name!, target, argv);
      if (parsed === 'help') { printLine(target.usage); return 0; }
      return target.run(parsed);
    },
  }),
};

export { commands };
