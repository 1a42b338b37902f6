/**
 * Pull + prepare of a four-layer image (gzip layers tarred from this machine's /usr, ~260 MB
 * uncompressed) from `berth serve` on 127.0.0.1 into a fresh berth root:
 *   - sequential: copy into the store, then unpack the snapshots from the store (before STEP 2)
 *   - overlapped: pullImage, each layer unpacked while it downloads, the layers side by side
 *   - podman pull into a temp overlay storage (the reference: it also stores and unpacks)
 * Best of BENCH_RUNS (default 2), `sync` and dropped roots between runs.
 *
 *   node dist/bench/engine-pull.js            (as root: overlay snapshots need it)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../src/client/registry.js';
import { copy } from '../src/content/copy.js';
import { pullImage } from '../src/engine/pull.js';
import { SnapshotStore } from '../src/engine/snapshots.js';
import { OciLayout } from '../src/image/layout.js';
import { MediaType } from '../src/base/media-types.js';
import { startBerthRegistry } from '../test/helpers/berth-registry.js';
import { writeOciLayout, type FixtureLayer } from '../test/layer/oci-fixture.js';
import { LAYER_DIRS, better, tarDigest, timed, type Timing } from './lib/usr-layers.js';

function settle(dir: string): void {
  spawnSync('umount', ['-R', join(dir, 'storage', 'overlay')], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
  execFileSync('sync');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench/engine-pull: run as root (overlay snapshots need it)');
    process.exit(2);
  }
  const runs = Number(process.env.BENCH_RUNS ?? 2);
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-engine-pull-'));
  const reg = await startBerthRegistry();
  const client = new RegistryClient();
  try {
    const layers: FixtureLayer[] = [];
    for (const [i, dirs] of LAYER_DIRS.entries()) {
      const file = join(work, `layer${i}.tar.gz`);
      execFileSync('tar', ['-C', '/', '-czf', file, ...dirs.filter((d) => existsSync(`/${d}`))]);
      layers.push({ mediaType: MediaType.layerTarGzip, file, diffId: await tarDigest(file) });
    }
    const sources = await writeOciLayout(join(work, 'layout'), 'bench', layers, { move: true });
    const compressed = sources.reduce((n, s) => n + s.size, 0);
    await copy(await OciLayout.open(join(work, 'layout')), 'bench', client.repository(reg.host, 'bench/app'), 'v1');
    const ref = `${reg.host}/bench/app:v1`;
    console.log(`image: ${layers.length} gzip layers, ${(compressed / 1e6).toFixed(0)} MB compressed, from berth serve at ${reg.host}`);

    const containersConf = join(work, 'containers.conf');
    writeFileSync(containersConf, '[containers]\nnetns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n');
    const best: { sequential?: Timing; overlapped?: Timing; podman?: Timing } = {};
    for (let r = 0; r < runs; r++) {
      const seqRoot = join(work, 'seq');
      settle(seqRoot);
      best.sequential = better(
        best.sequential,
        await timed(async () => {
          const pulled = await pullImage(ref, { berthRoot: seqRoot, client, unpack: false });
          const p = await new SnapshotStore(seqRoot).prepare(pulled.name);
          await p.release();
        }),
      );
      settle(seqRoot);

      const ovRoot = join(work, 'overlap');
      settle(ovRoot);
      best.overlapped = better(
        best.overlapped,
        await timed(async () => {
          const pulled = await pullImage(ref, { berthRoot: ovRoot, client });
          await pulled.prepared!.release();
        }),
      );
      settle(ovRoot);

      const podRoot = join(work, 'podman');
      settle(podRoot);
      mkdirSync(podRoot);
      const storageConf = join(podRoot, 'storage.conf');
      writeFileSync(storageConf, `[storage]\ndriver = "overlay"\ngraphroot = "${join(podRoot, 'storage')}"\nrunroot = "${join(podRoot, 'run')}"\n`);
      const env = { ...process.env, CONTAINERS_CONF: containersConf, CONTAINERS_STORAGE_CONF: storageConf };
      best.podman = better(
        best.podman,
        await timed(async () => {
          execFileSync('podman', ['pull', '-q', '--tls-verify=false', ref], { env, stdio: 'pipe' });
        }),
      );
      spawnSync('podman', ['rmi', '-a', '-f'], { env, stdio: 'ignore' });
      settle(podRoot);
    }
    const { sequential, overlapped, podman } = best as Required<typeof best>;
    const row = (name: string, t: Timing) => console.log(`${name.padEnd(38)}${t.wall.toFixed(2).padStart(7)} s wall ${t.cpu.toFixed(2).padStart(7)} s cpu`);
    row('berth sequential (copy, then unpack)', sequential);
    row('berth overlapped (pullImage)', overlapped);
    row('podman pull (overlay storage)', podman);
    const ratio = (a: Timing, b: Timing) => `${(a.wall / b.wall).toFixed(2)}x wall, ${(a.cpu / b.cpu).toFixed(2)}x cpu`;
    console.log(`overlapped / sequential = ${ratio(overlapped, sequential)}`);
    console.log(`overlapped / podman     = ${ratio(overlapped, podman)}   (issue 13 cold start: <= 0.5x podman's pull+run)`);
    console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  } finally {
    client.close();
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
