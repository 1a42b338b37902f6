/**
 * sha256 of a 1 GiB file: berth's streaming digest (node:crypto over 1 MiB reads) vs
 * `sha256sum`, both on a warm page cache. Prints throughputs and the ratio
 * (berth throughput / sha256sum throughput; target ≥ 0.9).
 *
 *   node dist/bench/digest.js          BERTH_BENCH_RUNS=5 BERTH_BENCH_MIB=1024 to override
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createReadStream, mkdtempSync, openSync, closeSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestStream } from '../src/base/digest.js';

const RUNS = Number(process.env.BERTH_BENCH_RUNS ?? 3);
const MIB = Number(process.env.BERTH_BENCH_MIB ?? 1024);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-digest-'));
  try {
    const file = join(work, 'blob');
    const fd = openSync(file, 'w');
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < MIB; i++) writeSync(fd, randomFillSync(chunk));
    closeSync(fd);
    spawnSync('cat', [file], { stdio: ['ignore', 'ignore', 'ignore'] }); // warm the page cache

    const berth: { wall: number; cpu: number }[] = [];
    const ref: { wall: number; cpu: number }[] = [];
    let berthDigest = '';
    let refDigest = '';
    for (let i = 0; i < RUNS; i++) {
      const cpu0 = process.cpuUsage();
      let t = process.hrtime.bigint();
      const r = await digestStream(createReadStream(file, { highWaterMark: 1024 * 1024 }));
      const wall = Number(process.hrtime.bigint() - t) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      berth.push({ wall, cpu: (cpu.user + cpu.system) / 1e6 });
      berthDigest = r.digest;

      t = process.hrtime.bigint();
      // `times` prints the shell's own and its children's user/system CPU times.
      const s = spawnSync('sh', ['-c', 'sha256sum "$1" && times', 'sh', file]);
      const lines = s.stdout.toString().trim().split('\n');
      const secs = [...lines.pop()!.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
      ref.push({ wall: Number(process.hrtime.bigint() - t) / 1e9, cpu: secs.reduce((a, b) => a + b, 0) });
      refDigest = `sha256:${lines[0]!.split(' ')[0]}`;
    }
    if (berthDigest !== refDigest) throw new Error(`digests differ: berth ${berthDigest}, sha256sum ${refDigest}`);
    const rate = (xs: { wall: number; cpu: number }[], k: 'wall' | 'cpu'): number => MIB / median(xs.map((x) => x[k]));
    console.log(
      `sha256 of ${MIB} MiB (median of ${RUNS}): berth ${rate(berth, 'wall').toFixed(0)} MiB/s (per cpu-second ${rate(berth, 'cpu').toFixed(0)}), ` +
        `sha256sum ${rate(ref, 'wall').toFixed(0)} MiB/s (per cpu-second ${rate(ref, 'cpu').toFixed(0)}), ` +
        `ratio ${(rate(berth, 'wall') / rate(ref, 'wall')).toFixed(2)}x wall, ${(rate(berth, 'cpu') / rate(ref, 'cpu')).toFixed(2)}x cpu (target ≥ 0.9)`,
    );
    console.log(`load average: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
