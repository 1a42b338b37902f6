/**
 * The container engine without a daemon: create (image → rootfs + runtime config + record),
 * start (berth-init planned in this process, or a runc-compatible runtime), stop, kill, wait,
 * remove. Every command works from the records in ContainerStore; detached containers are
 * held by native/berth-monitor, not by a Node process.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, writeSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { dirname, join } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { loadImage, type LoadedImage } from '../../image/load-image.js';
import type { OciLayout } from '../../image/layout.js';
import { resolveInRoot } from '../../image/passwd.js';
import { parsePlatform } from '../../image/platform.js';
import { parseReference } from '../../image/reference.js';
import { cgroupManagerFor } from '../../runtime/cgroups/manager.js';
import { nativeBinary } from '../../base/package.js';
import { sleepSync } from '../../base/sleep-sync.js';
import { waitGone, type InitStdio, type Launcher } from '../../runtime/init-process.js';
import { isAlive, readRecord as readRuntimeRecord, removeContainerDir, writeAtomic } from '../../runtime/state.js';
import type { Spec } from '../../runtime/spec/types.js';
import type { ImageRoot } from '../image-root.js';
import { detachRootfs, overlayMountOf, prepareRootfs, releaseRootfs } from '../rootfs.js';
import { openImageStore, storeRefName } from '../store.js';
import { resolveVolume } from '../volumes.js';
import { attachContainer, attachedAt, cleanupLeftovers, cleanupNeededFor, detachContainer, inspectNetwork, prepareAttach, publishExposed, rewriteInPlace, type AttachOptions, type Attachment, type PlugSpec } from '../network/index.js';
import { createNetnsFile, netnsFileIds, removeNetnsFile } from '../network/netns.js';
import { networkDir } from '../network/store.js';
import { fillEmptyVolume, makeAnonymousVolumes, removeVolumes, volumeDirs } from './anon-volumes.js';
import { attachSocketPath, PROXIED_SIGNALS } from './attach.js';
import { runtimeCommand } from './runtime-command.js';
import { writeHostFiles } from './hostfiles.js';
import { signalNumber, usesBridge, type RunOptions } from './options.js';
import { buildSpec } from './spec.js';
import { runPlan, type RunPlanCapture } from './run-plan.js';
import { ContainerStore, readExitFile, writeExitFile, type Container, type ContainerRecord, type ContainerState } from './store.js';

const CONSOLE_DIR = '/run/berth';

/** An error with the exit status docker gives it (125 engine, 126 cannot invoke, 127 not found). */
export class EngineError extends BerthError {
  constructor(readonly exitCode: number, message: string, cause?: unknown) {
    super('RUNTIME_ERROR', message, cause === undefined ? undefined : { cause });
  }
}

export function refuseRootless(): void {
  if (process.getuid?.() !== 0) {
    throw new EngineError(125, 'berth run needs root for now (rootless containers are not supported yet): run it with sudo or as root');
  }
}

export interface ImageSource {
  /** Makes sure the store has `ref` (per --pull); returns the store's name for it. */
  ensure(store: OciLayout, ref: string, name: string, platform: string | undefined): Promise<void>;
}

export class Engine {
  readonly store: ContainerStore;
  /** The runtime's state (berth-init records), one directory per container id. */
  readonly runtimeRoot: string;

  constructor(readonly root: string) {
    this.store = new ContainerStore(root);
    this.runtimeRoot = join(root, 'run');
  }

  /** Cleans what interrupted commands left (see ContainerStore.sweep). */
  sweep(): void {
    this.store.sweep((id, dir) => {
      detachRootfs(dir);
      this.cleanupRuntime(id, undefined);
    });
    // Namespaces the engine made for --runtime containers that are gone or stopped (--rm by the monitor).
    for (const id of netnsFileIds(this.root)) {
      const c = this.store.load(id);
      if (c && (c.state.status === 'running' || c.state.status === 'created')) continue;
      try {
        removeNetnsFile(this.root, id);
        detachContainer(id, { root: this.root, namespaceGone: true });
      } catch (err) {
        process.stderr.write(`berth: cleaning the network namespace of ${id.slice(0, 12)}: ${(err as Error).message}\n`);
      }
    }
    // Network leftovers of containers gone (--rm by the monitor, kill -9) or stopped on their
    // own; nothing to do (and no records read) unless a network marker says so.
    if (!cleanupNeededFor(this.root, (id) => this.store.load(id) !== undefined)) return;
    const store = this.store;
    // Listed inside the allocator's lock: a container starting meanwhile is already 'running'.
    const live = { *[Symbol.iterator]() { for (const c of store.list()) if (c.state.status === 'running' || c.state.status === 'created') yield c.id; } };
    try {
      cleanupLeftovers(live, { root: this.root });
    } catch (err) {
      process.stderr.write(`berth: cleaning network leftovers: ${(err as Error).message}\n`);
    }
  }

  /** Releases a container's addresses, ports and rules (its process is gone unless `live`). */
  detachNetwork(c: ContainerRecord, live = false): void {
    if (!usesBridge(c.config.network)) return;
    // The namespace a --runtime container had from the engine goes first: its veth goes with it.
    if (c.config.runtime !== 'berth' && !live) removeNetnsFile(this.root, c.id);
    detachContainer(c.id, { root: this.root, namespaceGone: !live });
  }

  /** --network container:NAME: NAME's network namespace, which must be live. */
  peerNetns(network: string): { path: string; peer: Container } {
    const peer = this.store.find(network.slice('container:'.length));
    const pid = this.livePid(peer);
    if (!pid) throw new EngineError(125, `--network ${network}: container ${peer.name} is not running; start it first (its network namespace lives as long as its process)`);
    if (peer.config.network === 'host') throw new EngineError(125, `--network ${network}: container ${peer.name} uses the host's network; use --network host`);
    return { path: `/proc/${pid}/ns/net`, peer };
  }

  async loadImage(ref: string, platform: string | undefined, source?: ImageSource): Promise<{ layout: OciLayout; image: LoadedImage; name: string }> {
    const layout = await openImageStore({ root: this.root });
    const name = storeRefName(parseReference(ref));
    if (source) await source.ensure(layout, ref, name, platform);
    try {
      return { layout, image: await loadImage(layout, name, platform ? parsePlatform(platform) : undefined), name };
    } catch (err) {
      if (err instanceof BerthError && err.code === 'NOT_FOUND') {
        throw new EngineError(125, `unable to find image '${ref}' locally: pull it first (berth pull ${ref}) or use --pull missing`, err);
      }
      throw err;
    }
  }

  /**
   * `create`: the rootfs, host files, runtime config and record; no process yet. deferMount
   * (run, which starts the container next): the monitor mounts the root where it can.
   */
  async create(ref: string, opts: RunOptions, platform: string | undefined, source?: ImageSource, { deferMount = false } = {}): Promise<Container> {
    refuseRootless();
    this.sweep();
    const { layout, image, name: imageName } = await this.loadImage(ref, platform, source);
    // docker refuses a network that does not exist at create, not at start.
    if (usesBridge(opts.network) && opts.network !== 'bridge') inspectNetwork(opts.network, { root: this.root });
    const { id, name, dir } = this.store.reserve(opts.name);
    let anonymous: string[] = [];
    let rootfs: ImageRoot | undefined;
    try {
      rootfs = await prepareRootfs(this.root, layout, image, dir, { deferMount: deferMount && opts.runtime === 'berth' });
      const joined = opts.network.startsWith('container:') ? this.peerNetns(opts.network) : undefined;
      const hostname = opts.hostname ?? joined?.peer.config.hostname ?? (opts.network === 'host' ? osHostname() : id.slice(0, 12));
      const files = writeHostFiles(dir, hostname, opts.network, opts);
      // Sharing a network namespace shares its /etc/hosts and /etc/resolv.conf (as docker).
      if (joined) Object.assign(files, { netns: joined.path, hosts: join(joined.peer.dir, 'hosts'), resolvConf: join(joined.peer.dir, 'resolv.conf') });
      if (opts.init) files.init = nativeBinary('berth-reaper');
      // Volumes are bind mounts of their directories (named ones made on first use, anonymous
      // ones for the image's VOLUMEs and `-v /path`; an empty one gets the image's content).
      const vols = await makeAnonymousVolumes(this.root, opts.imageVolumes === false ? undefined : image.config.config?.Volumes, opts.mounts);
      anonymous = vols.anonymous;
      const specMounts = [];
      for (const m of vols.mounts) {
        if (m.type !== 'volume') { specMounts.push(m); continue; }
        const source = await resolveVolume(this.root, m.source, { create: true });
        await fillEmptyVolume(await rootfs.mountNow(), m.destination, source);
        specMounts.push({ ...m, type: 'bind' as const, source });
      }
      const built = await buildSpec(id, image.config, { ...opts, hostname, mounts: specMounts }, rootfs, files);
      await prepareWorkdir(rootfs, built.spec);
      await checkCommand(rootfs, built.spec, opts);
      mkdirSync(join(dir, 'bundle'), { mode: 0o700 });
      writeAtomic(join(dir, 'bundle', 'config.json'), JSON.stringify(built.spec), 0o600, false);
      const c = image.config.config ?? {};
      const publish = [...opts.publish, ...(opts.publishAll ? publishExposed(Object.keys(c.ExposedPorts ?? {})) : [])];
      const rec: ContainerRecord = {
        id, name, created: new Date().toISOString(),
        config: {
          image: imageName, imageDigest: image.manifestDesc.digest, args: built.args,
          ...(opts.entrypoint !== undefined ? { entrypoint: opts.entrypoint === '' ? [] : [opts.entrypoint] } : c.Entrypoint ? { entrypoint: c.Entrypoint } : {}),
          cmd: opts.command.length ? opts.command : opts.entrypoint !== undefined ? [] : (c.Cmd ?? []),
          env: built.env, user: built.user, workdir: built.workdir, hostname, labels: opts.labels,
          stopSignal: opts.stopSignal ?? c.StopSignal ?? 'SIGTERM', ...(opts.stopTimeout !== undefined ? { stopTimeout: opts.stopTimeout } : {}), tty: opts.tty, interactive: opts.interactive,
          ...(opts.stdinOnce ? { stdinOnce: true } : {}), autoRemove: opts.autoRemove, runtime: opts.runtime, network: opts.network, readOnly: opts.readOnly,
          mounts: vols.mounts, ...(anonymous.length ? { anonymousVolumes: anonymous } : {}), logMaxSize: opts.logMaxSize,
          ...(usesBridge(opts.network) ? { publish, networkAliases: opts.networkAliases, dns: opts.dns, dnsSearch: opts.dnsSearch, dnsOptions: opts.dnsOptions, addHosts: opts.addHosts, ...(opts.ip ? { ip: opts.ip } : {}) } : {}),
        },
      };
      this.store.complete(rec, { status: 'created', pid: 0, pidStart: 0, monitorPid: 0 });
      rootfs.save();
      return this.store.load(id)!;
    } catch (err) {
      rootfs?.save(); // a command that is not there is known the next time too
      await releaseRootfs(this.root, dir).catch(() => undefined);
      await removeVolumes(this.root, anonymous).catch(() => undefined);
      this.store.discard(id);
      this.store.sweep();
      throw err;
    }
  }

  bundleDir(c: ContainerRecord): string {
    return join(this.store.containerDir(c.id), 'bundle');
  }

  logPath(c: ContainerRecord): string {
    return join(this.store.containerDir(c.id), 'ctr.log');
  }

  /**
   * Where the monitor listens for the pty (unix socket paths are limited to 107 bytes, which a
   * deep BERTH_ROOT exceeds): /run/berth, one per container start.
   */
  consoleSocket(c: ContainerRecord): string {
    mkdirSync(CONSOLE_DIR, { recursive: true, mode: 0o700 });
    return join(CONSOLE_DIR, `${c.id.slice(0, 24)}-${process.pid}.sock`);
  }

  /** The runc-compatible command and its state root for --runtime (not berth). */
  private runcArgs(c: ContainerRecord, ...verb: string[]): string[] {
    return [...runtimeCommand(c.config.runtime), '--root', join(this.root, 'runtimes', c.config.runtime.replace(/[^A-Za-z0-9_.-]/g, '_')), ...verb];
  }

  /**
   * Starts the container's process. attach: in the foreground with our stdio (the exit status
   * is returned); otherwise under a detached monitor (0 is returned once it runs).
   */
  async start(c: Container, attach: boolean, onStarted?: (pid: number) => void, opts: { waitAttach?: boolean; sigProxy?: boolean; endsWithCaller?: boolean } = {}): Promise<number> {
    if (c.state.status === 'running') throw new EngineError(125, `container ${c.name} is already running`);
    this.cleanupRuntime(c.id, c);
    rmSync(join(c.dir, 'exit'), { force: true });
    const cfg = c.config;
    const sock = cfg.tty ? this.consoleSocket(c) : '';
    const monitorArgs = (): string[] => {
      const a: string[] = [];
      if (attach) a.push('-a');
      if (cfg.interactive) a.push('-i');
      if (cfg.tty) a.push('-t', sock);
      // The exit is recorded by the monitor even when attached: a berth killed meanwhile still
      // leaves the container's status behind.
      // The log is written in the foreground too (docker's logs shows a finished `run`), not for --rm.
      if (!attach || !cfg.autoRemove) a.push('-l', this.logPath(c), '-s', String(cfg.logMaxSize));
      // Detached: `berth attach` connects to the monitor (attach.ts); -W: start -a is coming.
      if (!attach) a.push('-A', attachSocketPath(c.id), ...(cfg.stdinOnce ? ['-o'] : []), ...(opts.waitAttach ? ['-W'] : []));
      a.push('-e', join(c.dir, 'exit'));
      // A build's RUN: killed with the build (kill -9 included), not left running.
      if (opts.endsWithCaller) a.push('-P', String(process.pid));
      // The root, where it is not mounted yet (run leaves it to the monitor; after a reboot).
      const overlay = overlayMountOf(this.root, c.dir);
      if (overlay && cfg.runtime === 'berth') a.push('-C', overlay.dir, '-O', overlay.options, '-T', overlay.target);
      // --rm: the monitor removes the container as it exits (in C: no umount(8) or tree walk here).
      if (cfg.autoRemove) {
        a.push('-r', c.dir, '-n', join(this.store.namesDir, c.name), '-R', join(this.runtimeRoot, c.id), '-m', join(c.dir, 'rootfs'));
        for (const d of new Set(Object.values(cgroupManagerFor(`/berth/${c.id}`, c.id).paths))) a.push('-g', d);
        for (const d of volumeDirs(this.root, cfg.anonymousVolumes ?? [])) a.push('-V', d);
      }
      return a;
    };
    const now = new Date().toISOString();
    if (cfg.network.startsWith('container:')) this.rejoinNetns(c);
    // A previous run's endpoints (stopped on its own, not swept yet) go before the new attach.
    this.detachNetwork(c);
    if (cfg.runtime !== 'berth') {
      if (usesBridge(cfg.network)) this.attachOwnNetns(c);
      return this.startWithRuntime(c, attach, !attach || cfg.tty ? monitorArgs() : undefined, now, sock, opts.sigProxy !== false);
    }

    // berth-init runs without keep under the monitor, a subreaper that inherits the container
    // process when berth-init exits: berth-init can then join the container's cgroups while
    // this process plans (each cgroup v1 write waits for an RCU grace period). Attached without
    // a terminal, the monitor hands our stdio straight to the container.
    const launcher: Launcher = { command: nativeBinary('berth-monitor'), args: ['-S', ...monitorArgs(), '--'], detached: !attach };
    const stdio: InitStdio = attach ? 'inherit' : 'ignore';
    const plan = runPlan();
    if (plan) {
      if (cfg.tty || cfg.network.startsWith('container:')) plan.refuse('a terminal or a network a plan does not repeat');
      // (The default network's attach is checked as it happens: bridgeAttach.)
      if (usesBridge(cfg.network) && (cfg.ip || cfg.publish?.length)) plan.refuse('a fixed address or published ports');
      plan.add('names-link', join(this.store.namesDir, c.name));
      plan.add('monitor', [launcher.command, ...launcher.args, nativeBinary('berth-init')].join('\0'));
      plan.add('attach', attach ? '1' : '0');
      if (!attach) plan.add('ensure-dir', dirname(attachSocketPath(c.id)));
    }
    // The network's records, rules and hosts file are made while berth-init starts (createContainer
    // asks for them as it plans); berth-init plugs the veth as it clones the container: no exec.
    const bridge = usesBridge(cfg.network);
    let created;
    try {
      // (Loaded here: ps, logs, rm and the other commands never plan a container.)
      const { createContainer } = await import('../../runtime/create.js');
      created = await createContainer({
        root: this.runtimeRoot, id: c.id, bundle: this.bundleDir(c), keep: false, stdio, ...(plan ? { observer: plan } : {}),
        ...(cfg.tty ? { consoleSocket: sock } : {}),
        launcher,
        ...(bridge ? { network: () => this.prepareNetwork(c, plan), onPid: (p: number) => attachedAt(c.id, `/proc/${p}/ns/net`, { root: this.root }) } : {}),
      });
    } catch (err) {
      if (bridge) { try { this.detachNetwork(c); } catch { /* the next sweep */ } }
      throw new EngineError(125, `cannot start container ${c.name}: ${(err as Error).message}`, err);
    }
    const init = created.init!;
    const pid = created.record.pid;
    const state: ContainerState = { status: 'running', pid, pidStart: created.record.startTime, monitorPid: init.pid ?? 0, startedAt: now };
    const exited = new Promise<number>((res) => init.once('exit', (code, sig) => res(code ?? 128 + (sig ? signalNumber(sig) : 0))));
    this.store.writeState(c.id, state);
    // Attached, signals go to the container's process; the window size to the monitor, which
    // holds the pty. Caught from before the process runs: a signal sent as soon as it prints
    // must not find Node's default action (exit) still in place.
    const forward = (sig: NodeJS.Signals) => {
      try { if (sig === 'SIGWINCH') init.kill(sig); else process.kill(pid, sig); } catch { /* gone */ }
    };
    // --sig-proxy=false: ours are not passed on (the window size still is).
    const sigs = attach ? [...(opts.sigProxy !== false ? PROXIED_SIGNALS : []), 'SIGWINCH' as const] : [];
    for (const s of sigs) process.on(s, forward);
    // runtime.md "start": the process runs once the exec fifo is written.
    const fifo = join(this.runtimeRoot, c.id, 'exec.fifo');
    try {
      const fd = openSync(fifo, 'w');
      writeSync(fd, '0');
      closeSync(fd);
      rmSync(fifo, { force: true });
    } catch (err) {
      for (const s of sigs) process.off(s, forward);
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      throw new EngineError(125, `cannot start container ${c.name}: ${(err as Error).message}`, err);
    }
    onStarted?.(pid);
    if (!attach) {
      init.unref();
      return 0;
    }
    const code = await exited;
    for (const s of sigs) process.off(s, forward);
    this.finish(c, code);
    return code;
  }

  /** What attaching the container to its network takes (its records, rules and hosts files). */
  private attachOptions(c: Container): Omit<AttachOptions, 'netnsPath'> {
    const cfg = c.config;
    return {
      id: c.id, name: c.name, hostname: cfg.hostname, aliases: cfg.networkAliases ?? [], network: cfg.network,
      publish: cfg.publish ?? [], ...(cfg.ip ? { ip: cfg.ip } : {}),
      dns: cfg.dns ?? [], dnsSearch: cfg.dnsSearch ?? [], dnsOptions: cfg.dnsOptions ?? [], addHosts: cfg.addHosts ?? [], hostsPath: join(c.dir, 'hosts'), root: this.root,
    };
  }

  /** Writes what the attach produced: resolv.conf (in place: it may be bind-mounted already) and its warnings. */
  private attached(c: Container, a: Attachment): void {
    rewriteInPlace(join(c.dir, 'resolv.conf'), a.resolvConf);
    for (const w of a.warnings) process.stderr.write(`berth: ${w}\n`);
  }

  /** Connects a namespace that exists (the engine's own, for --runtime) to the container's network. */
  private attachNetwork(c: Container, netnsPath: string): void {
    this.attached(c, attachContainer({ ...this.attachOptions(c), netnsPath }));
  }

  /** Everything of the attach but the veth, which berth-init makes as it clones the container. */
  private prepareNetwork(c: Container, plan?: RunPlanCapture): PlugSpec {
    try {
      const a = prepareAttach(this.attachOptions(c));
      this.attached(c, a);
      plan?.bridgeAttach({ ...a, netDir: networkDir(this.root) });
      return a.plug;
    } catch (err) {
      if (err instanceof BerthError) throw new BerthError(err.code, `network ${c.config.network}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  /**
   * --runtime with a bridge network: the runtime would make the namespace inside `run`, where
   * berth cannot attach it; the engine makes one first, attaches it, and config.json joins it.
   */
  private attachOwnNetns(c: Container): void {
    try {
      const path = createNetnsFile(this.root, c.id);
      this.attachNetwork(c, path);
      this.setNetnsPath(c, path);
    } catch (err) {
      try { this.detachNetwork(c); } catch { /* the next sweep */ }
      throw new EngineError(125, `cannot start container ${c.name}: network ${c.config.network}: ${(err as Error).message}`, err);
    }
  }

  /** container:NAME: NAME's process may have changed since create; the config follows it. */
  private rejoinNetns(c: Container): void {
    this.setNetnsPath(c, this.peerNetns(c.config.network).path);
  }

  /** Points config.json's network namespace at `path` (runtime-spec config-linux.md "Namespaces"). */
  private setNetnsPath(c: Container, path: string): void {
    const file = join(this.bundleDir(c), 'config.json');
    const spec = JSON.parse(readFileSync(file, 'utf8')) as Spec;
    const ns = spec.linux?.namespaces?.find((n) => n.type === 'network');
    if (!ns || ns.path === path) return;
    ns.path = path;
    writeAtomic(file, JSON.stringify(spec), 0o600, false);
  }

  /** Records an attached container's exit (the monitor does this for detached ones). */
  finish(c: Container, code: number): void {
    try { this.detachNetwork(c); } catch (err) { process.stderr.write(`berth: ${(err as Error).message}\n`); }
    if (!existsSync(c.dir)) return; // removed by its monitor (--rm)
    writeExitFile(c.dir, code);
    const st = this.store.load(c.id)?.state;
    if (st) this.store.writeState(c.id, { ...st, status: 'exited', exitCode: code, finishedAt: new Date().toISOString() });
  }

  private async startWithRuntime(c: Container, attach: boolean, monitor: string[] | undefined, now: string, sock: string, sigProxy: boolean): Promise<number> {
    const args = this.runcArgs(c, 'run', '--bundle', this.bundleDir(c), c.id);
    const full = monitor ? [nativeBinary('berth-monitor'), ...monitor, '--', ...args] : args;
    if (monitor && c.config.tty) full.splice(full.indexOf('run') + 1, 0, '--console-socket', sock);
    const child = spawn(full[0]!, full.slice(1), {
      stdio: attach ? [c.config.interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'] : 'ignore',
      detached: !attach,
    });
    const exited = new Promise<number>((res, rej) => {
      child.once('error', (err) => rej(new EngineError(125, `cannot run ${c.config.runtime}: ${err.message}`, err)));
      child.once('exit', (code, sig) => res(code ?? 128 + (sig ? signalNumber(sig) : 0)));
    });
    this.store.writeState(c.id, { status: 'running', pid: 0, pidStart: 0, monitorPid: child.pid ?? 0, startedAt: now });
    if (!attach) {
      child.unref();
      // As docker's run -d: back only once the process runs (exec and kill work at once), or
      // once it has already ended; `RUNTIME run` has no other way to say so than its state.
      let ended = false;
      child.once('exit', () => (ended = true));
      for (let delay = 2, until = Date.now() + 30_000; !ended && !this.runtimeState(c) && Date.now() < until; delay = Math.min(delay * 2, 50)) {
        await new Promise((r) => setTimeout(r, delay));
      }
      return 0;
    }
    const forward = (sig: NodeJS.Signals) => { try { child.kill(sig); } catch { /* gone */ } };
    const sigs = sigProxy ? PROXIED_SIGNALS : [];
    for (const s of sigs) process.on(s, forward);
    const code = await exited;
    for (const s of sigs) process.off(s, forward);
    this.finish(c, code);
    return code;
  }

  /** The container's process (host pid) while it runs, or 0. */
  livePid(c: Container): number {
    if (c.state.status !== 'running') return 0;
    if (c.config.runtime === 'berth') return isAlive(c.state.pid, c.state.pidStart) ? c.state.pid : 0;
    return this.runtimeState(c);
  }

  /** --runtime RUNTIME: the pid `RUNTIME state` gives while the process runs, else 0. */
  private runtimeState(c: ContainerRecord): number {
    const r = spawnSync(this.runcArgs(c)[0]!, [...this.runcArgs(c).slice(1), 'state', c.id], { encoding: 'utf8' });
    try {
      const st = JSON.parse(r.stdout) as { pid?: number; status?: string };
      return st.status === 'running' && st.pid ? st.pid : 0;
    } catch {
      return 0;
    }
  }

  /** Sends a signal to the container's main process. */
  kill(c: Container, signal: string): void {
    if (c.state.status !== 'running') throw new EngineError(125, `cannot kill container ${c.name}: it is not running`);
    const sig = signalNumber(signal);
    const pid = this.livePid(c);
    if (!pid) throw new EngineError(125, `cannot kill container ${c.name}: it is not running`);
    try {
      process.kill(pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  /** Waits until the container is no longer running (up to timeoutMs); true when it stopped. */
  async waitStopped(id: string, timeoutMs = Infinity): Promise<Container | undefined> {
    const until = Date.now() + timeoutMs;
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      const c = this.store.load(id);
      if (!c || c.state.status !== 'running') return c;
      if (Date.now() > until) return undefined;
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** docker stop: the stop signal, then SIGKILL after `timeout` seconds. */
  async stop(c: Container, timeout: number): Promise<void> {
    if (c.state.status !== 'running') return;
    const pid = this.livePid(c);
    if (pid) {
      try { process.kill(pid, signalNumber(c.config.stopSignal)); } catch { /* gone */ }
      if (!(await this.waitStopped(c.id, timeout * 1000))) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    await this.waitStopped(c.id, 10_000);
    this.detachNetwork(c);
  }

  /** Removes the runtime's traces of the container: its cgroups and state directory. */
  cleanupRuntime(id: string, c: ContainerRecord | undefined): void {
    if (c && c.config.runtime !== 'berth') {
      spawnSync(this.runcArgs(c)[0]!, [...this.runcArgs(c).slice(1), 'delete', '--force', id], { stdio: 'ignore' });
      return;
    }
    let pid = 0;
    let start = 0;
    try {
      const rec = readRuntimeRecord(this.runtimeRoot, id);
      pid = rec.pid;
      start = rec.startTime;
    } catch { /* none */ }
    if (pid && isAlive(pid, start)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    removeContainerDir(this.runtimeRoot, id);
    const dirs = new Set(Object.values(cgroupManagerFor(`/berth/${id}`, id).paths));
    // What is left in the container's own cgroups is its own: a create killed after berth-init
    // cloned the process but before the pid was recorded leaves it waiting on the exec fifo
    // (holding its network namespace and veth) with no record to find it by.
    let killed = false;
    for (const dir of dirs) {
      let procs = '';
      try { procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8'); } catch { continue; }
      for (const p of procs.split('\n').filter(Boolean)) { try { process.kill(Number(p), 'SIGKILL'); killed = true; } catch { /* gone */ } }
    }
    // rmdir only (as the runtime's delete). A process killed just now leaves its cgroups a moment
    // later (EBUSY until then): waited for, up to a second, since nothing would retry the removal
    // of a container whose directory is gone (the sweep of a killed replay).
    for (const dir of dirs) {
      for (let i = 0; ; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || i >= (killed ? 100 : 10)) break;
          sleepSync(10);
        }
      }
    }
  }

  /** docker rm: refuses a running container unless force (then SIGKILL first). */
  async remove(c: Container, force: boolean): Promise<void> {
    if (c.state.status === 'running') {
      if (!force) throw new EngineError(125, `cannot remove container ${c.name}: it is running; stop it first or use rm -f`);
      const pid = this.livePid(c);
      if (pid) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } await waitGone(pid); }
      await this.waitStopped(c.id, 5000);
    }
    this.cleanupRuntime(c.id, c);
    this.detachNetwork(c);
    // Its monitor unlinks the attach socket as it exits; one killed (-9) left it behind.
    rmSync(attachSocketPath(c.id), { force: true });
    await releaseRootfs(this.root, c.dir).catch(() => undefined);
    this.store.remove(c);
  }

  /** docker container prune: removes every container that is not running; returns their ids. */
  async pruneStopped(): Promise<string[]> {
    this.sweep();
    const removed: string[] = [];
    for (const c of this.store.list()) {
      if (c.state.status === 'running') continue;
      await this.remove(c, false);
      removed.push(c.id);
    }
    return removed;
  }

  exitOf(c: Container): number | undefined {
    // load() already read the monitor's exit file into the state of a container it found exited.
    if (c.state.status === 'running' || c.state.status === 'created') return undefined;
    return c.state.exitCode ?? readExitFile(join(c.dir, 'exit'))?.code;
  }
}

/** Docker creates the working directory when the image lacks it. */
async function prepareWorkdir(root: ImageRoot, spec: Spec): Promise<void> {
  const cwd = spec.process!.cwd;
  if (cwd === '/' || (await root.kind(cwd)) !== 'missing') return;
  // Created below the deepest existing ancestor, resolved inside the root.
  const rootfs = await root.mountNow();
  const parts = cwd.split('/').filter(Boolean);
  let host = rootfs;
  for (let i = 0; i < parts.length; i++) {
    const next = await resolveInRoot(rootfs, '/' + parts.slice(0, i + 1).join('/'));
    if (next) { host = next; continue; }
    host = join(host, parts[i]!);
    mkdirSync(host, { mode: 0o755 });
  }
}

const PATH_DEFAULT = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Docker reports a command that is not there (127) or cannot run (126) at start, with these
 * messages; checked in the rootfs before anything runs. Paths under a mount are left to exec.
 */
async function checkCommand(root: ImageRoot, spec: Spec, opts: RunOptions): Promise<void> {
  const args = spec.process!.args!;
  const cmd = (opts.init ? args[args.indexOf('--') + 1] : args[0])!;
  const under = (p: string) => opts.mounts.some((m) => p === m.destination || p.startsWith(m.destination + '/'));
  if (cmd.includes('/')) {
    const path = cmd.startsWith('/') ? cmd : join(spec.process!.cwd, cmd);
    if (under(path)) return;
    const kind = await root.kind(path);
    if (kind === 'missing') throw new EngineError(127, `exec: "${cmd}": stat ${cmd}: no such file or directory: unknown`);
    if (kind !== 'exec') throw new EngineError(126, `exec: "${cmd}": permission denied: unknown`);
    return;
  }
  const pathEnv = (spec.process!.env ?? []).find((e) => e.startsWith('PATH='))?.slice(5) ?? PATH_DEFAULT;
  let denied = false;
  for (const dir of pathEnv.split(':').filter((d) => d.startsWith('/'))) {
    const path = `${dir}/${cmd}`;
    if (under(path)) return;
    const kind = await root.kind(path);
    if (kind === 'missing') continue;
    if (kind === 'exec') return;
    denied = true;
  }
  if (denied) throw new EngineError(126, `exec: "${cmd}": permission denied: unknown`);
  throw new EngineError(127, `exec: "${cmd}": executable file not found in $PATH: unknown`);
}
