// berth-runtime vs runc and crun: sequential create + start + wait + delete of a busybox
// /bin/true bundle, 50 cycles each (interleaved), median and p90 per cycle and the ratios;
// then the peak memory (max RSS) of one `create`.
// Needs root, runc and crun. NODE_EXTRA_CA_CERTS is unset for every runtime (users rarely set
// it; the berth-runtime front end also drops it, as the runtime makes no TLS connections).
// crun refuses hybrid cgroup hosts, so the whole benchmark runs in one private mount namespace
// where the cgroup2 controller list reads empty (docs/ARCHITECTURE.md "Tests and peers"); all three runtimes see the same host.
import { spawnSync } from 'node:child_process';
import { ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeBusyboxBundle } from '../test/helpers/bundle.js';

const CYCLES = Number(process.env.BERTH_BENCH_CYCLES ?? 50);
const FRONT = join(import.meta.dirname, '..', '..', 'native', 'build', 'berth-runtime');

const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;

if (!process.env.BERTH_BENCH_IN_NS) {
  const empty = join(mkdtempSync(join(tmpdir(), 'berth-bench-ns-')), 'empty');
  writeFileSync(empty, '');
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
    `mount --bind ${empty} /sys/fs/cgroup/unified/cgroup.controllers && exec "$0" "$1"`, process.execPath, import.meta.filename],
  { stdio: 'inherit', env: { ...env, BERTH_BENCH_IN_NS: '1' } });
  rmSync(join(empty, '..'), { recursive: true, force: true });
  process.exit(r.status ?? 1);
}

// BERTH_BENCH_COMPARE=<another build's native/build/berth-runtime> adds it as "berth-other",
// interleaved with the rest: an A/B comparison on the same (possibly busy) machine.
const OTHER = process.env.BERTH_BENCH_COMPARE;
type Name = 'berth-runtime' | 'berth-other' | 'runc' | 'crun';
const binaries: Record<Name, string> = { 'berth-runtime': FRONT, 'berth-other': OTHER ?? FRONT, runc: 'runc', crun: 'crun' };

// State roots under /run (tmpfs), where the runtimes keep them by default.
const work = mkdtempSync('/run/berth-bench-rt-');
const bundle = makeBusyboxBundle(['/bin/true']);
bundle.spec.ociVersion = '1.0.2'; // crun 1.8 accepts only 1.0.x
bundle.save();

// stderr goes to a file, not a pipe: the container inherits create's stdio, and a pipe would
// keep spawnSync waiting until the container exits.
const errFile = join(work, 'stderr');
const errFd = openSync(errFile, 'w+');
function verb(name: Name, args: string[]): void {
  ftruncateSync(errFd, 0);
  const r = spawnSync(binaries[name], ['--root', join(work, name), ...args], { stdio: ['ignore', 'ignore', errFd], env });
  if (r.status !== 0) throw new Error(`${name} ${args.join(' ')} failed: ${readFileSync(errFile, 'utf8')}`);
}

function waitExit(pid: number): void {
  for (;;) {
    let stat: string;
    try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return; }
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return; // PID 1 reaps orphans only every few seconds
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }
}

type Step = 'create' | 'start' | 'wait' | 'delete';
const noSteps = (): Record<Step, number[]> => ({ create: [], start: [], wait: [], delete: [] });
const steps: Record<Name, Record<Step, number[]>> = { 'berth-runtime': noSteps(), 'berth-other': noSteps(), runc: noSteps(), crun: noSteps() };

let seq = 0;
function cycle(name: Name): number {
  const id = `bench-${process.pid}-${++seq}`;
  const pidFile = join(work, `${id}.pid`);
  const t: number[] = [performance.now()];
  verb(name, ['create', '--bundle', bundle.dir, '--pid-file', pidFile, id]);
  t.push(performance.now());
  verb(name, ['start', id]);
  t.push(performance.now());
  waitExit(Number(readFileSync(pidFile, 'utf8')));
  t.push(performance.now());
  verb(name, ['delete', id]);
  t.push(performance.now());
  (['create', 'start', 'wait', 'delete'] as const).forEach((s, i) => steps[name][s].push(t[i + 1]! - t[i]!));
  return t[4]! - t[0]!;
}

/** Node.js alone: start, run an empty script, exit (what a create through Node cannot beat). */
function nodeAlone(): number {
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore', env });
  return performance.now() - t0;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

const names: Name[] = OTHER ? ['berth-runtime', 'berth-other', 'runc', 'crun'] : ['berth-runtime', 'runc', 'crun'];
const times: Record<Name, number[]> = { 'berth-runtime': [], 'berth-other': [], runc: [], crun: [] };
try {
  for (const n of names) for (let i = 0; i < 3; i++) cycle(n); // warm-up
  const node: number[] = [];
  for (let i = 0; i < CYCLES; i++) {
    for (const n of names) times[n].push(cycle(n));
    node.push(nodeAlone());
  }

  console.log(`create + start + wait + delete of busybox /bin/true, ${CYCLES} cycles each (interleaved), NODE_EXTRA_CA_CERTS unset`);
  for (const n of names) console.log(`${n.padEnd(14)} median ${pct(times[n], 0.5).toFixed(1).padStart(6)} ms   p90 ${pct(times[n], 0.9).toFixed(1).padStart(6)} ms`);
  if (OTHER) console.log(`berth-other is ${OTHER}`);
  for (const n of names) {
    console.log(`  ${n.padEnd(14)} per verb (median): ${(['create', 'start', 'wait', 'delete'] as const).map((st) => `${st} ${pct(steps[n][st], 0.5).toFixed(1)}`).join('  ')} ms`);
  }
  console.log(`  node -e 0 (start, empty script, exit): median ${pct(node, 0.5).toFixed(1)} ms`);
  const b = pct(times['berth-runtime'], 0.5);
  console.log(`ratio (median) berth-runtime/runc ${(b / pct(times.runc, 0.5)).toFixed(2)}   berth-runtime/crun ${(b / pct(times.crun, 0.5)).toFixed(2)}`);
  console.log(`ratio (p90)    berth-runtime/runc ${(pct(times['berth-runtime'], 0.9) / pct(times.runc, 0.9)).toFixed(2)}   berth-runtime/crun ${(pct(times['berth-runtime'], 0.9) / pct(times.crun, 0.9)).toFixed(2)}`);

  // Peak memory of one container start: max RSS of `create` (with its children) under GNU time.
  // berth-runtime's front end returns before Node has exited (Node is then not its waited-for
  // child): BERTH_RUNTIME_WAIT_NODE makes it wait, so that Node's RSS is counted.
  for (const n of names) {
    const id = `mem-${process.pid}-${n}`;
    const out = join(work, 'time.out');
    spawnSync('/usr/bin/time', ['-o', out, '-f', '%M', binaries[n], '--root', join(work, n), 'create', '--bundle', bundle.dir, id], { env: { ...env, BERTH_RUNTIME_WAIT_NODE: '1' }, stdio: ['ignore', 'ignore', errFd] });
    const kb = Number(readFileSync(out, 'utf8').trim().split('\n').pop());
    console.log(`peak RSS of one create: ${n.padEnd(14)} ${(kb / 1024).toFixed(1)} MiB`);
    verb(n, ['delete', '--force', id]);
  }
} finally {
  for (const n of names) {
    const r = spawnSync(binaries[n], ['--root', join(work, n), 'list', '-q'], { env, encoding: 'utf8' });
    for (const id of (r.stdout ?? '').split('\n').filter(Boolean)) spawnSync(binaries[n], ['--root', join(work, n), 'delete', '--force', id], { env });
  }
  bundle.cleanup();
  rmSync(work, { recursive: true, force: true });
}
