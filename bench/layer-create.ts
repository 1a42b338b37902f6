/**
 * Layer creation: berth writeLayerFromDir vs `tar -C DIR -cf - . | gzip` / `| zstd` on the
 * same ~200 MB tree (copied from this machine's /usr), and `umoci repack` of that tree.
 * Prints each median time and berth/reference ratios (below 1 means berth is faster).
 *
 *   node dist/bench/layer-create.js          BERTH_BENCH_RUNS=5 BERTH_BENCH_TREE=/some/dir to override
 */
import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeLayerFromDir, type LayerOptions } from '../src/layer/create.js';

const RUNS = Number(process.env.BERTH_BENCH_RUNS ?? 3);
const TARGET_BYTES = 200 * 1024 * 1024;
// Mixed content: binaries, text, many small files. Taken in order until ~200 MB.
const CANDIDATES = ['/usr/lib/gcc', '/usr/share/doc', '/usr/share/man', '/usr/lib/python3.11', '/usr/share/perl', '/usr/share/locale', '/usr/lib/x86_64-linux-gnu'];

function sh(script: string, args: string[] = []): void {
  const r = spawnSync('sh', ['-c', script, 'sh', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`failed: ${script} ${args.join(' ')}`);
}

function duBytes(dir: string): number {
  const r = spawnSync('du', ['-sb', dir]);
  return Number(r.stdout.toString().split('\t')[0]);
}

function buildTree(work: string): string {
  const tree = join(work, 'tree');
  mkdirSync(tree);
  for (const src of CANDIDATES) {
    try {
      statSync(src);
    } catch {
      continue;
    }
    const dest = join(tree, src.slice(1).replace(/\//g, '_'));
    sh('cp -a "$1" "$2"', [src, dest]);
    if (duBytes(tree) >= TARGET_BYTES) break;
  }
  return tree;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Wall-clock and CPU (user + system, all threads) seconds of one measurement. */
interface Timing {
  wall: number;
  cpu: number;
}

async function berth(tree: string, out: string, opts: LayerOptions): Promise<Timing> {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await writeLayerFromDir(tree, createWriteStream(out), opts);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { wall, cpu: (cpu.user + cpu.system) / 1e6 };
}

/** Runs a shell pipeline; CPU time from the shell's `times` builtin (its children's line). */
function reference(script: string, args: string[]): Timing {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', `{ ${script}; } && times`, 'sh', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`failed: ${script}`);
  const children = r.stdout.toString().trim().split('\n').pop()!;
  const secs = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { wall, cpu: secs.reduce((a, b) => a + b, 0) };
}

interface Case {
  label: string;
  opts: LayerOptions;
  reference: string;
  refLabel: string;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-layer-'));
  try {
    const tree = process.env.BERTH_BENCH_TREE ?? buildTree(work);
    const files = Number(spawnSync('sh', ['-c', 'find "$1" | wc -l', 'sh', tree]).stdout.toString().trim());
    console.log(`tree: ${tree}, ${(duBytes(tree) / 1024 / 1024).toFixed(0)} MiB, ${files} entries; median of ${RUNS} runs; 2 cores`);
    // Warm the page cache (GNU tar skips reading when writing to /dev/null, hence cat).
    sh('tar -C "$1" -cf - . | cat > /dev/null', [tree]);

    const out = join(work, 'out');
    const cases: Case[] = [
      { label: 'gzip -6', opts: { compression: 'gzip', level: 6 }, reference: 'tar -C "$1" -cf - . | gzip -6 > "$2"', refLabel: 'tar | gzip -6' },
      { label: 'gzip -1', opts: { compression: 'gzip', level: 1 }, reference: 'tar -C "$1" -cf - . | gzip -1 > "$2"', refLabel: 'tar | gzip -1' },
      { label: 'zstd -3', opts: { compression: 'zstd', level: 3 }, reference: 'tar -C "$1" -cf - . | zstd -3 -q > "$2"', refLabel: 'tar | zstd -3' },
      { label: 'none', opts: { compression: 'none' }, reference: 'tar -C "$1" -cf - . > "$2"', refLabel: 'tar' },
    ];
    const results: Record<string, { berth: Timing; ref: Timing; size: number; refSize: number }> = {};
    const fmt = (t: Timing): string => `${t.wall.toFixed(2)} s (cpu ${t.cpu.toFixed(2)} s)`;
    for (const c of cases) {
      const b: Timing[] = [];
      const r: Timing[] = [];
      let size = 0;
      for (let i = 0; i < RUNS; i++) {
        b.push(await berth(tree, out, c.opts));
        size = statSync(out).size;
        r.push(reference(c.reference, [tree, `${out}.ref`]));
      }
      const med = (ts: Timing[]): Timing => ({ wall: median(ts.map((t) => t.wall)), cpu: median(ts.map((t) => t.cpu)) });
      const res = { berth: med(b), ref: med(r), size, refSize: statSync(`${out}.ref`).size };
      results[c.label] = res;
      console.log(
        `${c.label.padEnd(8)} berth ${fmt(res.berth)} ${(res.size / 1048576).toFixed(1)} MiB | ` +
          `${c.refLabel} ${fmt(res.ref)} ${(res.refSize / 1048576).toFixed(1)} MiB | ` +
          `berth/ref wall ${(res.berth.wall / res.ref.wall).toFixed(2)}x, cpu ${(res.berth.cpu / res.ref.cpu).toFixed(2)}x`,
      );
    }
    const zstd = results['zstd -3']!;
    const gz = results['gzip -6']!;
    console.log(`berth zstd -3 vs tar | gzip -6: ${(zstd.berth.wall / gz.ref.wall).toFixed(2)}x the wall time (target: below 1)`);
    console.log(`target berth gzip within 1.2x of tar | gzip (wall): ${gz.berth.wall / gz.ref.wall <= 1.2 ? 'met' : 'NOT met'}`);
    console.log(`load average during the run: ${loadavg().map((l) => l.toFixed(1)).join(' ')} (other work on the machine skews wall times; cpu times less so)`);

    // umoci repack of the same tree: init, new, unpack, copy the tree into rootfs, time repack.
    if (spawnSync('sh', ['-c', 'command -v umoci'], { stdio: 'ignore' }).status === 0 && process.getuid?.() === 0) {
      const times: Timing[] = [];
      for (let i = 0; i < Math.min(RUNS, 2); i++) {
        const layout = join(work, `umoci-layout-${i}`);
        const bundle = join(work, `umoci-bundle-${i}`);
        sh('umoci init --layout "$1" && umoci new --image "$1:t" && umoci unpack --image "$1:t" "$2" && cp -a "$3"/. "$2/rootfs/"', [layout, bundle, tree]);
        sh('sync');
        times.push(reference('umoci repack --image "$1:t" "$2"', [layout, bundle]));
        rmSync(layout, { recursive: true, force: true });
        rmSync(bundle, { recursive: true, force: true });
      }
      const t = { wall: median(times.map((x) => x.wall)), cpu: median(times.map((x) => x.cpu)) };
      console.log(`umoci repack (gzip) ${fmt(t)}; berth gzip -6 / umoci wall ${(gz.berth.wall / t.wall).toFixed(2)}x, berth zstd -3 / umoci wall ${(zstd.berth.wall / t.wall).toFixed(2)}x`);
    } else {
      console.log('umoci repack: skipped (needs umoci and root)');
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
