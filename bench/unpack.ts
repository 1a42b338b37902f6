/**
 * Unpacking a 4-layer image (~275 MB uncompressed, gzip layers made with `tar -cz` from this
 * machine's /usr) into a fresh root: berth's unpackLayers vs `umoci unpack` vs `tar -xzf` of the
 * same layers one after another. Same input, one run each (BENCH_RUNS=n for best of n), page cache
 * warm for the blobs, `sync` before each timed run so no run pays for the previous one's writeback.
 *
 *   node dist/bench/unpack.js            (as root: umoci unpack and ownership need it)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unpackLayers } from '../src/layer/unpack-layers.js';
import { MediaType } from '../src/base/media-types.js';
import { writeOciLayout, type FixtureLayer } from '../test/layer/oci-fixture.js';
import { LAYER_DIRS, better, tarDigest, timed, type Timing } from './lib/usr-layers.js';

/** A digest of the tree's paths, types, modes, owners, sizes and link targets: the three results must agree. */
function treeDigest(dir: string): string {
  const listing = execFileSync('sh', ['-c', `cd '${dir}' && find . -printf '%p %y %m %U:%G %s %l\\n' | LC_ALL=C sort`], {
    maxBuffer: 1 << 28,
  });
  return createHash('sha256').update(listing).digest('hex').slice(0, 16);
}

function settle(...dirs: string[]): void {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  execFileSync('sync');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench/unpack: run as root (umoci unpack and ownership need it)');
    process.exit(2);
  }
  const runs = Number(process.env.BENCH_RUNS ?? 1);
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-unpack-'));
  try {
    const layers: FixtureLayer[] = [];
    let uncompressed = 0;
    for (const [i, dirs] of LAYER_DIRS.entries()) {
      const present = dirs.filter((d) => existsSync(`/${d}`));
      const file = join(work, `layer${i}.tar.gz`);
      execFileSync('tar', ['-C', '/', '-czf', file, ...present]);
      layers.push({ mediaType: MediaType.layerTarGzip, file, diffId: await tarDigest(file) });
      uncompressed += Number(execFileSync('sh', ['-c', `gzip -dc '${file}' | wc -c`], { encoding: 'utf8' }).trim());
    }
    const layout = join(work, 'layout');
    const sources = await writeOciLayout(layout, 'bench', layers, { move: true });
    const blobs = sources.map((s) => join(layout, 'blobs', 'sha256', s.digest.slice(7)));
    const compressed = sources.reduce((n, s) => n + s.size, 0);
    console.log(
      `image: ${layers.length} gzip layers, ${(compressed / 1e6).toFixed(0)} MB compressed, ${(uncompressed / 1e6).toFixed(0)} MB uncompressed`,
    );

    const best: { berth?: Timing; umoci?: Timing; tar?: Timing } = {};
    const trees = new Map<string, string>();
    for (let r = 0; r < runs; r++) {
      const berthRoot = join(work, 'berth-root');
      settle(berthRoot);
      mkdirSync(berthRoot);
      best.berth = better(best.berth, await timed(() => unpackLayers(berthRoot, sources)));
      trees.set('berth', treeDigest(berthRoot));
      settle(berthRoot);

      const bundle = join(work, 'umoci-bundle');
      settle(bundle);
      best.umoci = better(best.umoci, await timed(() => execFileSync('umoci', ['unpack', '--image', `${layout}:bench`, bundle], { stdio: 'pipe' })));
      trees.set('umoci', treeDigest(join(bundle, 'rootfs')));
      settle(bundle);

      const tarRoot = join(work, 'tar-root');
      settle(tarRoot);
      mkdirSync(tarRoot);
      const script = blobs.map((b) => `tar -xzf '${b}' -C '${tarRoot}'`).join(' && ');
      best.tar = better(best.tar, await timed(() => execFileSync('sh', ['-c', script])));
      trees.set('tar', treeDigest(tarRoot));
      settle(tarRoot);
    }
    const { berth, umoci, tar } = best as Required<typeof best>;
    const row = (name: string, t: Timing) => console.log(`${name.padEnd(24)}${t.wall.toFixed(2).padStart(7)} s wall ${t.cpu.toFixed(2).padStart(7)} s cpu`);
    row('berth unpackLayers', berth);
    row('umoci unpack', umoci);
    row('tar -xzf (sequential)', tar);
    console.log(`berth / umoci = ${(berth.wall / umoci.wall).toFixed(2)}x wall, ${(berth.cpu / umoci.cpu).toFixed(2)}x cpu   (target <= 0.70x)`);
    console.log(`berth / tar   = ${(berth.wall / tar.wall).toFixed(2)}x wall, ${(berth.cpu / tar.cpu).toFixed(2)}x cpu   (target <= 1.00x)`);
    console.log(`berth peak RSS (whole bench process): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
    const same = new Set(trees.values()).size === 1;
    console.log(`resulting trees identical: ${same ? 'yes' : `NO ${JSON.stringify(Object.fromEntries(trees))}`}`);
    console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')} on this machine's cores (other work skews wall times)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
