// Container networking: (1) what attaching a namespace to a bridge costs (attach + detach, with
// and without a published port; median and p90 of the wall time, and the CPU time of the
// `ip`/`nft` processes per attach, which load on the machine does not inflate), and (2) the
// throughput of a published port on 127.0.0.1: wrk against busybox httpd in a namespace, through
// berth's DNAT, and in a container (`berth run -d -p 127.0.0.1:P:80`, which has a cgroup of its
// own as podman's and docker's have), vs podman's `--network bridge -p 127.0.0.1:P:80` (netavark),
// interleaved rounds, req/s and p99 latency, and the ratio. Needs root, iproute2, nftables, wrk, podman.
// (3) what the network adds to a whole `berth run --rm busybox true` (--network bridge against none,
// interleaved pairs, medians and the median of the per-pair difference), and the same for docker.
// docker (Debian's 20.10) runs with its own defaults (docker0, iptables rules, the userland proxy
// that answers its published ports on 127.0.0.1), which change a host's firewall and sysctls:
// so its dockerd runs inside a network namespace of the bench's own (wrk against it runs there
// too), and all it changed goes with that namespace. NODE_EXTRA_CA_CERTS is unset for berth
// (it costs Node ~50 ms per start; users rarely set it).
// BERTH_BENCH_CYCLES (attach cycles and run pairs, default 30), BERTH_BENCH_SECONDS (wrk per round, default 10),
// BERTH_BENCH_DOCKER=0 leaves docker out (its runs take minutes under load).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachContainer, detachContainer, parsePublishAll, removeDefaultBridge, type NetworkDefaults } from '../src/engine/network/index.js';
import { makeRootfs } from '../test/helpers/bundle.js';
import { addBusyboxImage } from '../test/helpers/engine.js';
import { DOCKER, DOCKERD, startDockerd, type Dockerd } from '../test/helpers/dockerd.js';

const CYCLES = Number(process.env.BERTH_BENCH_CYCLES ?? 30);
const SECONDS = Number(process.env.BERTH_BENCH_SECONDS ?? 10);
const work = mkdtempSync(join(tmpdir(), 'berth-bench-net-'));
const defaults: NetworkDefaults = { defaultName: 'bridge', defaultBridge: 'bbench0', defaultSubnet: '10.209.0.0/24', userPool: '10.210.0.0/16' };
const ref = { root: join(work, 'root'), defaults };
const ns = `bbench${process.pid}`;

const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
const median = (a: number[]) => sorted(a)[a.length >> 1]!;
const p90 = (a: number[]) => sorted(a)[Math.floor(a.length * 0.9)]!;
/** CPU time (ms) of this process's waited-for children so far: cutime + cstime of /proc/self/stat. */
function childCpuMs(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1000) / 100; // fields 16 and 17, USER_HZ = 100
}

function attachCost(): void {
  const t: Record<'plain' | 'gone' | 'detach' | 'ports' | 'detachPorts' | 'exec', number[]> = { plain: [], gone: [], detach: [], ports: [], detachPorts: [], exec: [] };
  const cpu = { plain: 0, ports: 0, self: 0 };
  const netns = (i: number) => `${ns}-${i}`;
  const timed = (a: number[], f: () => void) => {
    const t0 = performance.now();
    f();
    a.push(performance.now() - t0);
  };
  // the first attach makes the bridge and its rules: not counted
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    attachContainer({ ...ref, id: 'warm', name: 'warm', netnsPath: `/run/netns/${ns}` });
    detachContainer('warm', ref);
    for (let i = 0; i < CYCLES; i++) {
      // as `run --rm`: attach, the container exits (its namespace goes), detach
      execFileSync('ip', ['netns', 'add', netns(i)]);
      let c0 = childCpuMs();
      const u0 = process.cpuUsage();
      timed(t.plain, () => attachContainer({ ...ref, id: `g${i}`, name: 'g', netnsPath: `/run/netns/${netns(i)}` }));
      const u = process.cpuUsage(u0);
      cpu.self += (u.user + u.system) / 1000;
      cpu.plain += childCpuMs() - c0;
      execFileSync('ip', ['netns', 'del', netns(i)]);
      timed(t.gone, () => detachContainer(`g${i}`, { ...ref, namespaceGone: true }));
      // a namespace that stays (network disconnect): the veth is deleted here
      attachContainer({ ...ref, id: `k${i}`, name: 'k', netnsPath: `/run/netns/${ns}` });
      timed(t.detach, () => detachContainer(`k${i}`, ref));
      c0 = childCpuMs();
      timed(t.ports, () => attachContainer({ ...ref, id: `p${i}`, name: 'p', netnsPath: `/run/netns/${ns}`, publish: parsePublishAll(['127.0.0.1::80']) }));
      timed(t.detachPorts, () => detachContainer(`p${i}`, ref));
      cpu.ports += childCpuMs() - c0;
      timed(t.exec, () => spawnSync('/bin/true'));
    }
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
  const row = (label: string, a: number[]) => console.log(`${label.padEnd(44)} median ${median(a).toFixed(1).padStart(6)} ms   p90 ${p90(a).toFixed(1).padStart(6)} ms`);
  console.log(`attach and detach, ${CYCLES} cycles (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}):`);
  row('attach (no published port)', t.plain);
  row('detach after the namespace went (run --rm)', t.gone);
  row('attach + detach as run --rm', t.plain.map((x, i) => x + t.gone[i]!));
  row('detach, namespace kept (veth deleted here)', t.detach);
  row('attach -p 127.0.0.1::80 (+ nft)', t.ports);
  row('detach with the port (+ nft)', t.detachPorts);
  row('one spawnSync(/bin/true) from Node, for scale', t.exec);
  console.log(`CPU of berth-net/nft per attach: ${(cpu.plain / CYCLES).toFixed(1)} ms without a port, ${(cpu.ports / CYCLES).toFixed(1)} ms with one (attach + detach); ` +
    `of this process per attach without a port (the fork for berth-net, SQLite, files): ${(cpu.self / CYCLES).toFixed(1)} ms`);
}

interface WrkResult { rps: number; p99: number }
/** wrk against 127.0.0.1:PORT, of this namespace or of `netns`. */
function wrk(port: number, netns?: string): WrkResult {
  const cmd = ['wrk', '-t2', '-c16', `-d${SECONDS}s`, '--latency', `http://127.0.0.1:${port}/`];
  const r = netns ? spawnSync('ip', ['netns', 'exec', netns, ...cmd], { encoding: 'utf8' }) : spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
  const m = /99%\s+([\d.]+)(us|ms|s)/.exec(r.stdout);
  const p99 = m ? Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1) : NaN;
  const errors = /Non-2xx|Socket errors: (.*)/.exec(r.stdout);
  if (!rps) throw new Error(`wrk gave no rate: ${r.stdout}`);
  if (errors) console.log(`  (wrk: ${errors[0]})`);
  return { rps, p99 };
}

async function waitHttp(port: number, netns?: string): Promise<void> {
  const curl = ['curl', '-sf', '-m', '1', '-o', '/dev/null', `http://127.0.0.1:${port}/`];
  for (let i = 0; i < 100; i++) {
    if ((netns ? spawnSync('ip', ['netns', 'exec', netns, ...curl]) : spawnSync(curl[0]!, curl.slice(1))).status === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answers on 127.0.0.1:${port}`);
}

function freePort(): number {
  return 20000 + Math.floor(Math.random() * 10000);
}

/** The busybox root filesystem with /www/index.html, made once. */
function benchRootfs(): string {
  const rootfs = join(work, 'rootfs');
  if (existsSync(rootfs)) return rootfs;
  makeRootfs(rootfs);
  mkdirSync(join(rootfs, 'www'));
  writeFileSync(join(rootfs, 'www', 'index.html'), 'hello from a container\n'.repeat(20));
  return rootfs;
}

interface Docker { d: Dockerd; netns: string; image: string }

/** A dockerd with docker's defaults inside a namespace of its own, the bench's image imported; undefined when docker is not installed. */
async function startDocker(): Promise<Docker | undefined> {
  if (!existsSync(DOCKERD) || !existsSync(DOCKER)) {
    console.log('docker: not installed (apt-get install -y docker.io): skipped');
    return undefined;
  }
  const netns = `bdock${process.pid}`;
  execFileSync('ip', ['netns', 'add', netns]);
  execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  try {
    const d = await startDockerd({ netns });
    const r = d.run(['import', '--change', 'CMD ["sh"]', '-', 'bbench:1'], execFileSync('tar', ['-C', benchRootfs(), '-c', '.'], { maxBuffer: 64 << 20 }));
    if (r.code !== 0) {
      await d.stop();
      throw new Error(`docker import: ${r.stderr}`);
    }
    return { d, netns, image: 'bbench:1' };
  } catch (err) {
    spawnSync('ip', ['netns', 'del', netns]);
    throw err;
  }
}

async function stopDocker(k: Docker): Promise<void> {
  k.d.run(['rm', '-f', ...k.d.run(['ps', '-aq']).stdout.split('\n').filter(Boolean)]);
  await k.d.stop();
  spawnSync('ip', ['netns', 'del', k.netns]);
}

async function throughput(docker: Docker | undefined): Promise<void> {
  const rootfs = benchRootfs();

  // berth: a namespace, busybox httpd inside, attached with a published port on 127.0.0.1
  execFileSync('ip', ['netns', 'add', ns]);
  const berthPort = freePort();
  const httpd = spawn('ip', ['netns', 'exec', ns, join(rootfs, 'bin', 'busybox'), 'httpd', '-f', '-p', '80', '-h', join(rootfs, 'www')], { stdio: 'ignore' });
  attachContainer({ ...ref, id: 'web', name: 'web', netnsPath: `/run/netns/${ns}`, publish: parsePublishAll([`127.0.0.1:${berthPort}:80`]) });

  // podman: the same root filesystem as an image, netavark's bridge and port forwarding
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: join(work, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(work, 'storage.conf') };
  delete env.NODE_EXTRA_CA_CERTS;
  writeFileSync(env.CONTAINERS_CONF!, ['[containers]', 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]', 'netns = "none"',
    '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', 'runtime = "runc"', ''].join('\n'));
  writeFileSync(env.CONTAINERS_STORAGE_CONF!, `[storage]\ndriver = "overlay"\ngraphroot = "${work}/graph"\nrunroot = "${work}/run"\n`);
  const podman = (args: string[], input?: Buffer) => {
    const r = spawnSync('podman', args, { env, encoding: 'utf8', timeout: 120_000, ...(input ? { input } : {}) });
    if (r.status !== 0) throw new Error(`podman ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const podmanPort = freePort() + 10000;
  // berth: also as a container (`berth run -d -p`), like podman's and docker's: its own cgroup,
  // seccomp and all. (The namespace above has the forwarding alone; its httpd shares the
  // bench's cgroup, which gets a smaller share of a loaded machine than a container's.)
  const cRoot = join(work, 'wrk-root');
  const cEnv: NodeJS.ProcessEnv = { ...process.env, BERTH_ROOT: cRoot, BERTH_NETWORK_BRIDGE: 'bbenchw0', BERTH_NETWORK_SUBNET: '10.209.2.0/24' };
  delete cEnv.NODE_EXTRA_CA_CERTS;
  const berthCli = (args: string[]) => {
    const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'berth.cjs'), ...args], { env: cEnv, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`berth ${args.join(' ')}: ${r.stderr}`);
  };
  const containerPort = freePort() + 30000;
  try {
    await addBusyboxImage(cRoot);
    berthCli(['run', '-d', '--name', 'berth-bench-httpd', '-p', `127.0.0.1:${containerPort}:80`, '-v', `${join(rootfs, 'www')}:/www:ro`, 'busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
    podman(['import', '-', 'localhost/berth-bench-httpd:1'], execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 64 << 20 }));
    podman(['run', '-d', '--name', 'berth-bench-httpd', '--network', 'bridge', '-p', `127.0.0.1:${podmanPort}:80`, 'localhost/berth-bench-httpd:1', 'httpd', '-f', '-p', '80', '-h', '/www']);
    await waitHttp(berthPort);
    await waitHttp(containerPort);
    await waitHttp(podmanPort);
    const dockerPort = freePort() + 20000;
    if (docker) {
      docker.d.docker('run', '-d', '--name', 'berth-bench-httpd', '-p', `127.0.0.1:${dockerPort}:80`, docker.image, 'httpd', '-f', '-p', '80', '-h', '/www');
      await waitHttp(dockerPort, docker.netns);
    }
    const results: Record<'berth' | 'container' | 'podman' | 'docker', WrkResult[]> = { berth: [], container: [], podman: [], docker: [] };
    for (let round = 0; round < 2; round++) {
      results.berth.push(wrk(berthPort));
      results.container.push(wrk(containerPort));
      results.podman.push(wrk(podmanPort));
      if (docker) results.docker.push(wrk(dockerPort, docker.netns));
    }
    const best = (a: WrkResult[]) => ({ rps: Math.max(...a.map((x) => x.rps)), p99: Math.min(...a.map((x) => x.p99)) });
    const b = best(results.berth);
    const p = best(results.podman);
    console.log(`\nwrk -t2 -c16 -d${SECONDS}s against busybox httpd through a published port on 127.0.0.1 (best of 2 interleaved rounds):`);
    console.log(`berth  (nft DNAT)        ${b.rps.toFixed(0).padStart(7)} req/s   p99 ${b.p99.toFixed(2)} ms   rounds: ${results.berth.map((r) => r.rps.toFixed(0)).join(', ')}`);
    const bc = best(results.container);
    console.log(`berth run -d (container) ${bc.rps.toFixed(0).padStart(7)} req/s   p99 ${bc.p99.toFixed(2)} ms   rounds: ${results.container.map((r) => r.rps.toFixed(0)).join(', ')}`);
    console.log(`podman (netavark)        ${p.rps.toFixed(0).padStart(7)} req/s   p99 ${p.p99.toFixed(2)} ms   rounds: ${results.podman.map((r) => r.rps.toFixed(0)).join(', ')}`);
    console.log(`ratio berth/podman: ${(b.rps / p.rps).toFixed(2)}x req/s, p99 ${(b.p99 / p.p99).toFixed(2)}x (namespace); ${(bc.rps / p.rps).toFixed(2)}x req/s, p99 ${(bc.p99 / p.p99).toFixed(2)}x (container)`);
    if (docker) {
      const k = best(results.docker);
      console.log(`docker (docker-proxy)    ${k.rps.toFixed(0).padStart(7)} req/s   p99 ${k.p99.toFixed(2)} ms   rounds: ${results.docker.map((r) => r.rps.toFixed(0)).join(', ')}`);
      console.log(`ratio berth/docker: ${(b.rps / k.rps).toFixed(2)}x req/s, p99 ${(b.p99 / k.p99).toFixed(2)}x`);
    }
  } finally {
    httpd.kill('SIGKILL');
    detachContainer('web', ref);
    try { berthCli(['rm', '-f', 'berth-bench-httpd']); } catch (err) { console.error((err as Error).message); }
    removeDefaultBridge({ root: cRoot, defaults: { ...defaults, defaultBridge: 'bbenchw0', defaultSubnet: '10.209.2.0/24' } });
    spawnSync('ip', ['netns', 'del', ns]);
    // stop first (podman tears its network down when the container has exited), then rm; under
    // load a `rm -f` alone was seen to leave the container running
    for (let i = 0; i < 3 && spawnSync('podman', ['ps', '-q', '--filter', 'name=berth-bench-httpd'], { env, encoding: 'utf8' }).stdout.trim(); i++) {
      spawnSync('podman', ['stop', '-t', '0', 'berth-bench-httpd'], { env });
    }
    const rm = spawnSync('podman', ['rm', '-f', '-t', '0', 'berth-bench-httpd'], { env, encoding: 'utf8' });
    if (rm.status !== 0) console.error(`podman rm failed: ${rm.stderr}`);
    spawnSync('podman', ['rmi', '-af'], { env });
    spawnSync('podman', ['system', 'reset', '-f'], { env });
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => !!m && m.startsWith(work));
    for (const m of mounts.sort((a, c) => c.length - a.length)) spawnSync('umount', ['-l', m]);
  }
}

/** (3) `berth run --rm --network none|bridge busybox true`, interleaved: the cost of the network in a whole run. */
async function runCost(docker: Docker | undefined): Promise<void> {
  const root = join(work, 'run-root');
  const runDefaults: NetworkDefaults = { ...defaults, defaultBridge: 'bbenchr0', defaultSubnet: '10.209.1.0/24' };
  const env: NodeJS.ProcessEnv = { ...process.env, BERTH_ROOT: root, BERTH_NETWORK_BRIDGE: runDefaults.defaultBridge, BERTH_NETWORK_SUBNET: runDefaults.defaultSubnet };
  delete env.NODE_EXTRA_CA_CERTS;
  const bin = join(import.meta.dirname, '..', '..', 'bin', 'berth.cjs');
  // As users run it: npm's entry, the native front end that replays run plans (a repeated run,
  // the default network's too, starts no Node); the CLI alone for reference.
  const front = join(import.meta.dirname, '..', '..', 'bin', 'berth');
  await addBusyboxImage(root);
  const once = (mode: string, cli = false): number => {
    const t0 = performance.now();
    const r = cli ? spawnSync(process.execPath, [bin, 'run', '--rm', '--network', mode, 'busybox', 'true'], { env, encoding: 'utf8' })
      : spawnSync(front, ['run', '--rm', '--network', mode, 'busybox', 'true'], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`berth run --network ${mode}: ${r.stderr}`);
    return performance.now() - t0;
  };
  try {
    once('none');
    once('bridge'); // warm-up; the bridge and its rules are made
    spawnSync(process.execPath, [bin, 'ps'], { env }); // (its sweep checks the network's markers: a bridge run's plan is written after that)
    once('bridge');
    for (const cli of [false, true]) {
      const t = { none: [] as number[], bridge: [] as number[], diff: [] as number[] };
      for (let i = 0; i < CYCLES; i++) {
        const a = once('none', cli);
        const b = once('bridge', cli);
        t.none.push(a);
        t.bridge.push(b);
        t.diff.push(b - a);
      }
      console.log(`run --rm busybox true (${cli ? 'the CLI alone' : 'bin/berth, run plans'}), ${CYCLES} interleaved pairs: --network none median ${median(t.none).toFixed(1)} ms, bridge ${median(t.bridge).toFixed(1)} ms; ` +
        `bridge - none per pair: median ${median(t.diff).toFixed(1)} ms, p90 ${p90(t.diff).toFixed(1)} ms (target ≤ 15 ms)`);
    }
    if (docker) {
      const n = Math.min(CYCLES, 15);
      // A docker run that fails or hangs (seen under load: the client still waiting minutes
      // later, SIGTERM ignored) is killed after 60 s and drops its pair.
      const dk = (mode: string): number => {
        const t0 = performance.now();
        const r = spawnSync('timeout', ['-s', 'KILL', '60', DOCKER, '-H', `unix://${join(docker.d.dir, 'docker.sock')}`, 'run', '--rm', '--network', mode, docker.image, 'true'], { encoding: 'utf8' });
        if (r.status !== 0) {
          console.log(`  (docker run --network ${mode} failed, exit ${r.status}: ${(r.stderr ?? '').trim()}; pair dropped)`);
          return NaN;
        }
        return performance.now() - t0;
      };
      dk('none');
      dk('bridge');
      const d = { none: [] as number[], bridge: [] as number[], diff: [] as number[] };
      for (let i = 0; i < n; i++) {
        const a = dk('none');
        const b = dk('bridge');
        if (Number.isNaN(a + b)) continue;
        d.none.push(a);
        d.bridge.push(b);
        d.diff.push(b - a);
      }
      console.log(`docker run --rm busybox true, ${n} interleaved pairs: --network none median ${median(d.none).toFixed(1)} ms, bridge ${median(d.bridge).toFixed(1)} ms; ` +
        `bridge - none per pair: median ${median(d.diff).toFixed(1)} ms, p90 ${p90(d.diff).toFixed(1)} ms`);
    }
  } finally {
    removeDefaultBridge({ root, defaults: runDefaults });
  }
}

// BERTH_BENCH_PARTS=attach or =wrk runs one part (e.g. the attach part under `chrt -f 10`, which
// keeps the other work on a busy machine from inflating it; podman does not run under chrt).
const parts = (process.env.BERTH_BENCH_PARTS ?? 'attach,wrk,run').split(',');
let docker: Docker | undefined;
try {
  if (parts.includes('attach')) attachCost();
  if ((parts.includes('run') || parts.includes('wrk')) && process.env.BERTH_BENCH_DOCKER !== '0') docker = await startDocker();
  if (parts.includes('run')) await runCost(docker);
  if (parts.includes('wrk')) await throughput(docker);
} finally {
  if (docker) await stopDocker(docker);
  removeDefaultBridge(ref);
  rmSync(work, { recursive: true, force: true });
}
