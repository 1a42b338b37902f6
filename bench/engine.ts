/**
 * The engine against podman (and docker when a dockerd can be started here), on one busybox
 * image built from busybox-static:
 *   - warm start: `run --rm IMAGE true` with the image local and unpacked (median of N runs),
 *     berth through bin/berth (the native front end replaying the run plan its first run wrote)
 *     and, for reference, through the TypeScript CLI alone (berth-cli)
 *   - 50 concurrent `run -d IMAGE sleep 600`, then `rm -f` of all of them (total time)
 *   - the per-container monitor's RSS (berth-monitor vs podman's conmon), and `ps` with 50
 *     containers vs none
 *   - cold start (issue 13, section 5): `run --rm REG/IMAGE true` of a four-layer image of
 *     ~260 MB not on the machine (a fresh root or storage each time), from `berth serve` on
 *     127.0.0.1: berth vs podman (its pull + run) vs docker (the image removed first); best of
 *     BENCH_COLD_RUNS (default 2); then the disk check: a second image sharing three of the
 *     layers adds only its own (`system df`)
 * podman 4.3 is configured as the peers notes say (runc, cgroupfs, no network), with docker's
 * capability set; docker (20.10) runs with a dockerd in a temp dir (--bridge none).
 *
 *   node dist/bench/engine.js     (as root; BENCH_RUNS=N warm runs, default 15;
 *                                  BENCH_ONLY=warm, fifty or cold for one part)
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBusyboxRootfs } from '../test/helpers/busybox.js';
import { addBusyboxImage } from '../test/helpers/engine.js';
import { DOCKER, DOCKERD, startDockerd } from '../test/helpers/dockerd.js';
import { serveColdImages, type ColdImages } from './lib/cold-image.js';
import { better, timed, type Timing } from './lib/usr-layers.js';

/** Only one part: BENCH_ONLY=warm (warm start), fifty (50 containers) or cold (cold start and disk). */
const ONLY = process.env.BENCH_ONLY;
const BERTH_BIN = join(import.meta.dirname, '..', '..', 'bin', 'berth.cjs');
/** What `npm install` puts on the PATH: the native front end, which replays a run it has a plan for. */
const BERTH_FRONT = join(import.meta.dirname, '..', '..', 'bin', 'berth');

interface Engine {
  name: string;
  cmd: string[];
  env: NodeJS.ProcessEnv;
  image: string;
}

function run(e: Engine, args: string[]): { code: number; stdout: string; ms: number } {
  const t = process.hrtime.bigint();
  const r = spawnSync(e.cmd[0]!, [...e.cmd.slice(1), ...args], { env: e.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${e.name} ${args.join(' ')}: ${r.stderr}`);
  return { code: r.status ?? -1, stdout: r.stdout, ms };
}

function runAsync(e: Engine, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(e.cmd[0]!, [...e.cmd.slice(1), ...args], { env: e.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d));
    c.on('exit', (code) => (code === 0 ? resolve(0) : reject(new Error(`${e.name} ${args.join(' ')}: ${err}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Resident set (KiB) of every process whose command line contains `needle`. */
function rssOf(needle: string, filter: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (!cmd.split('\0')[0]!.endsWith(needle) || !cmd.includes(filter)) continue;
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) out.push(Number(m[1]));
    } catch { /* gone */ }
  }
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench/engine: run as root');
    process.exit(2);
  }
  const runs = Number(process.env.BENCH_RUNS ?? 15);
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-engine-'));
  const stops: (() => void | Promise<void>)[] = [];
  try {
    await buildBusyboxRootfs(join(work, 'rootfs'));
    const tar = execFileSync('tar', ['-C', join(work, 'rootfs'), '-c', '.'], { maxBuffer: 64 << 20 });

    const berthRoot = join(work, 'berth');
    await addBusyboxImage(berthRoot, 'docker.io/library/busybox:latest', { cmd: ['sh'] });
    // Without NODE_EXTRA_CA_CERTS (as bench/runtime.ts and push-pull): Node parses that file at
    // every start (~50 ms here), a setting of this machine that users rarely have.
    const berthEnv: NodeJS.ProcessEnv = { ...process.env, BERTH_ROOT: berthRoot };
    if (berthEnv.NODE_EXTRA_CA_CERTS) {
      delete berthEnv.NODE_EXTRA_CA_CERTS;
      console.log('berth runs without NODE_EXTRA_CA_CERTS (set here; it costs each Node start ~50 ms)');
    }
    const engines: Engine[] = [{ name: 'berth', cmd: [BERTH_FRONT], env: berthEnv, image: 'busybox' }];
    // The same runs through the TypeScript CLI alone (every run planned in Node): for reference.
    const berthCli: Engine = { name: 'berth-cli', cmd: [process.execPath, BERTH_BIN], env: berthEnv, image: 'busybox' };

    const pd = join(work, 'podman');
    const penv: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: join(work, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(work, 'storage.conf') };
    writeFileSync(penv.CONTAINERS_CONF!, '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\nnetns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n');
    writeFileSync(penv.CONTAINERS_STORAGE_CONF!, `[storage]\ndriver = "overlay"\ngraphroot = "${pd}/graph"\nrunroot = "${pd}/run"\n`);
    if (spawnSync('podman', ['import', '-', 'localhost/bb:bench'], { env: penv, input: tar }).status === 0) {
      engines.push({ name: 'podman', cmd: ['podman'], env: penv, image: 'localhost/bb:bench' });
      stops.push(() => {
        spawnSync('podman', ['rm', '-af'], { env: penv });
        spawnSync('umount', ['-R', join(pd, 'graph', 'overlay')], { stdio: 'ignore' });
      });
    } else console.log('podman: not usable here (apt-get install -y podman); skipped');

    const dockerd = existsSync(DOCKERD) ? await startDockerd().catch((err: Error) => void console.log(`docker: ${err.message.split('\n')[0]}`)) : undefined;
    const docker = dockerd
      ? { engine: { name: 'docker', cmd: [DOCKER, '-H', `unix://${join(dockerd.dir, 'docker.sock')}`], env: process.env, image: 'bb:bench' } as Engine, stop: () => dockerd.stop() }
      : undefined;
    if (docker && spawnSync(docker.engine.cmd[0]!, [...docker.engine.cmd.slice(1), 'import', '-', 'bb:bench'], { input: tar }).status === 0) {
      engines.push(docker.engine);
      stops.push(docker.stop);
    } else if (docker) docker.stop();
    else console.log('docker: no dockerd here (apt-get install -y docker.io); skipped');

    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const warm = new Map<string, number>();
    for (const e of ONLY && ONLY !== 'warm' ? [] : [engines[0]!, berthCli, ...engines.slice(1)]) {
      const net = ['--network', 'none']; // each engine without a network (bench/network.ts: what bridge adds)
      // Warm-up: caches, first unpack; berth's front end has no plan for this command line yet,
      // so its CLI runs it and writes one (run-plan.ts), which the timed runs replay.
      const first = run(e, ['run', '--rm', ...net, e.image, 'true']).ms;
      if (e === engines[0]) console.log(`warm run --rm ${e.image} true   berth   first run (the CLI, writes the run plan) ${first.toFixed(0)} ms`);
      const times: number[] = [];
      for (let i = 0; i < runs; i++) times.push(run(e, ['run', '--rm', ...net, e.image, 'true']).ms);
      warm.set(e.name, median(times));
      console.log(`warm run --rm ${e.image} true   ${e.name.padEnd(7)} median ${median(times).toFixed(0)} ms (min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)}, ${runs} runs)`);
    }
    for (const e of ONLY && ONLY !== 'warm' ? [] : engines.slice(1)) {
      console.log(`  berth / ${e.name}: ${(warm.get('berth')! / warm.get(e.name)!).toFixed(2)}x (berth-cli / ${e.name}: ${(warm.get('berth-cli')! / warm.get(e.name)!).toFixed(2)}x)`);
    }

    for (const e of ONLY === 'cold' || ONLY === 'warm' ? [] : engines) {
      try {
        await fifty(e, berthRoot, pd);
      } catch (err) {
        console.log(`50 x run -d, then rm -f   ${e.name.padEnd(7)} failed: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    if (!ONLY || ONLY === 'cold') {
      const images = await serveColdImages(work);
      stops.push(() => void images.stop());
      await coldStart(engines, work, images);
    }
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    for (const s of stops) await s();
    spawnSync('umount', ['-R', join(work, 'podman', 'graph', 'overlay')], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
  }
}

/**
 * `run --rm REF true` with nothing local: berth in a fresh BERTH_ROOT (it pulls, unpacking each
 * layer as it downloads), podman in a fresh storage (--tls-verify=false: plain HTTP), docker
 * after removing the image (loopback registries are insecure to it by default). CPU is this
 * process's waited-for children: berth's and podman's own work, not dockerd's (n/a).
 */
async function coldStart(engines: Engine[], work: string, images: ColdImages): Promise<void> {
  const runs = Number(process.env.BENCH_COLD_RUNS ?? 2);
  console.log(`cold image: 4 gzip layers, ${(images.coldBytes / 1e6).toFixed(0)} MB compressed (~260 MB unpacked), from berth serve at ${images.registry.host}`);
  const best = new Map<string, Timing>();
  let berthRoot = '';
  for (let r = 0; r < runs; r++) {
    for (const e of engines) {
      let engine = e;
      const args = ['run', '--rm', '--network', 'none', images.cold, 'true'];
      if (e.name === 'berth') {
        berthRoot = join(work, `cold-berth-${r}`);
        engine = { ...e, env: { ...e.env, BERTH_ROOT: berthRoot } };
      } else if (e.name === 'podman') {
        const dir = join(work, `cold-podman-${r}`);
        const conf = join(work, `cold-storage-${r}.conf`);
        writeFileSync(conf, `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/graph"\nrunroot = "${dir}/run"\n`);
        engine = { ...e, env: { ...e.env, CONTAINERS_STORAGE_CONF: conf } };
        args.splice(1, 0, '--tls-verify=false');
      } else if (r === 0) removeDockerImage(e, images.cold);
      execFileSync('sync');
      try {
        const t = await timed(() => run(engine, args));
        best.set(e.name, better(best.get(e.name), t));
        console.log(`  cold run ${r + 1}: ${e.name.padEnd(7)} ${t.wall.toFixed(2)} s wall, ${e.name === 'docker' ? 'CPU n/a (in dockerd)' : `${t.cpu.toFixed(2)} s CPU`}, load ${loadavg()[0]!.toFixed(1)}`);
      } catch (err) {
        console.log(`  cold run ${r + 1}: ${e.name.padEnd(7)} failed: ${(err as Error).message.split('\n')[0]}`);
      }
      // Each engine's storage goes right after its own run (berth's last root stays for the disk
      // check): removing it just before the engine's next run would charge that run for it (ext4
      // without a journal skips inodes freed in the last minute, one by one, when it allocates).
      if (e.name === 'berth' && r < runs - 1) rmSync(berthRoot, { recursive: true, force: true });
      if (e.name === 'docker') removeDockerImage(e, images.cold);
      if (e.name === 'podman') {
        spawnSync('umount', ['-R', join(work, `cold-podman-${r}`, 'graph', 'overlay')], { stdio: 'ignore' });
        rmSync(join(work, `cold-podman-${r}`), { recursive: true, force: true });
      }
    }
  }
  const b = best.get('berth');
  for (const [name, t] of best) {
    const ratio = b && name !== 'berth' ? `  berth / ${name}: ${(b.wall / t.wall).toFixed(2)}x wall${name === 'docker' ? '' : `, ${(b.cpu / t.cpu).toFixed(2)}x CPU`}` : '';
    console.log(`cold run --rm REG/IMAGE true   ${name.padEnd(7)} best ${t.wall.toFixed(2)} s wall${name === 'docker' ? '' : `, ${t.cpu.toFixed(2)} s CPU`}${ratio}`);
  }
  if (b && berthRoot) diskCheck(engines[0]!, berthRoot, images);
}

function removeDockerImage(e: Engine, ref: string): void {
  spawnSync(e.cmd[0]!, [...e.cmd.slice(1), 'rmi', '-f', ref], { env: e.env, stdio: 'ignore' });
  spawnSync(e.cmd[0]!, [...e.cmd.slice(1), 'image', 'prune', '-af'], { env: e.env, stdio: 'ignore' });
}

/** A second image sharing three layers with the cold one: the berth root grows by its own layer only. */
function diskCheck(berth: Engine, berthRoot: string, images: ColdImages): void {
  const e: Engine = { ...berth, env: { ...berth.env, BERTH_ROOT: berthRoot } };
  const du = () => Number(execFileSync('du', ['-sb', berthRoot], { encoding: 'utf8' }).split('\t')[0]);
  const before = du();
  run(e, ['pull', images.second]);
  run(e, ['run', '--rm', '--network', 'none', images.second, 'true']);
  const grown = du() - before;
  console.log(`disk: a second image sharing 3 of the 4 layers (its own: ${(images.ownBytes / 1e3).toFixed(0)} kB compressed, 4.2 MB unpacked): the berth root grew ${(grown / 1e6).toFixed(1)} MB (it holds ${(before / 1e6).toFixed(0)} MB for the first)`);
  console.log(run(e, ['system', 'df']).stdout.trimEnd().replace(/^/gm, '  '));
}

/** 50 concurrent run -d, ps with them, the monitors' RSS, then rm -f in five batches. */
async function fifty(e: Engine, berthRoot: string, pd: string): Promise<void> {
  const net = ['--network', 'none']; // like for like: bench/network.ts measures what bridge adds
  // One container of the same shape first (every engine): berth's CLI writes the run plan that
  // the 50 then replay (the key leaves --name's value out).
  run(e, ['run', '-d', '--name', 'bench-warmup', ...net, e.image, 'sleep', '600']);
  run(e, ['rm', '-f', 'bench-warmup']);
  const psEmpty = median([0, 1, 2, 3, 4, 5, 6].map(() => run(e, ['ps']).ms));
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 50 }, (_, i) => runAsync(e, ['run', '-d', '--name', `bench${i}`, ...net, e.image, 'sleep', '600'])));
  const tRun = Number(process.hrtime.bigint() - t0) / 1e6;
  const listed = run(e, ['ps', '-q']).stdout.split('\n').filter(Boolean).length;
  // ps once the 50 have settled (berth's start in ~1 s, the others' in 10-25 s; the kernel's
  // work on new namespaces and cgroups goes on for a moment after).
  await new Promise((r) => setTimeout(r, 3000));
  const psFull = median([0, 1, 2, 3, 4, 5, 6].map(() => run(e, ['ps']).ms));
  const monitor = e.name === 'berth' ? rssOf('berth-monitor', berthRoot) : e.name === 'podman' ? rssOf('conmon', pd) : rssOf('containerd-shim-runc-v2', 'moby');
  const t1 = process.hrtime.bigint();
  const names = Array.from({ length: 50 }, (_, i) => `bench${i}`);
  await Promise.all([0, 1, 2, 3, 4].map((k) => runAsync(e, ['rm', '-f', ...names.slice(k * 10, k * 10 + 10)])));
  const tRm = Number(process.hrtime.bigint() - t1) / 1e6;
  const avg = monitor.length ? monitor.reduce((a, b) => a + b, 0) / monitor.length : 0;
  console.log(`50 x run -d, then rm -f   ${e.name.padEnd(7)} run ${(tRun / 1000).toFixed(1)} s + rm ${(tRm / 1000).toFixed(1)} s = ${((tRun + tRm) / 1000).toFixed(1)} s; listed ${listed}/50; ` +
    `ps ${psEmpty.toFixed(0)} ms empty, ${psFull.toFixed(0)} ms with 50; monitor RSS ${avg.toFixed(0)} KiB each (${monitor.length} seen)`);
}

await main();
