// `berth-runtime events` as containerd's shim calls it (`events --stats`) and as a stream
// (`events --interval`): runc's JSON, read from the container's cgroup files (v1 or v2,
// whichever holds each controller). Also the global flags runc has that concern it:
// --rootless (true/false/auto) and --criu, checkpoint and restore (refused).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import { peer, root, skipOrFail, skipUnless } from '../helpers/requirements.js';
import { FRONT, Runtime } from './runtime-cli.js';

const MEMORY = 64 << 20;
const SCRIPT = ['/bin/sh', '-c', 'sleep 60 & exec sleep 60'];

/** Parses one `events` line, keeping uint64 counters above 2^53 exact (as strings). */
function parseEvent(line: string): { type: string; id: string; data?: Record<string, any> } {
  return JSON.parse(line.replace(/:(\d{16,})/g, ':"$1"'));
}

/** The container's cgroup directory for a v1 controller, or its cgroup2 directory. */
function cgroupDir(pid: number, controller: string): { dir: string; v2: boolean } {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  const v1 = lines.find((l) => l.split(':')[1]?.split(',').includes(controller));
  if (v1) return { dir: `/sys/fs/cgroup/${v1.split(':')[1]}${v1.split(':')[2]}`, v2: false };
  const v2 = lines.find((l) => l.startsWith('0::'))!.slice(3);
  const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup2')![4]!;
  return { dir: join(mount, v2), v2: true };
}

const file = (dir: string, name: string) => readFileSync(join(dir, name), 'utf8').trim();

/** The keys of an object, for shape comparisons. */
const keys = (o: unknown) => Object.keys((o ?? {}) as object).sort();

describe('berth-runtime events (root)', { skip: skipUnless(root('containers and cgroups'), peer('/bin/busybox', 'busybox-static')) }, () => {
  let rt: Runtime;
  let bundle: Bundle;
  let pid: number;
  before(async () => {
    rt = new Runtime();
    bundle = makeBusyboxBundle(SCRIPT);
    bundle.spec.linux!.resources = { memory: { limit: MEMORY }, pids: { limit: 100 } };
    bundle.save();
    const r = rt.create('ev', bundle.dir, join(bundle.dir, 'out'));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(rt.run(['start', 'ev']).status, 0);
    pid = rt.state('ev').pid!;
    // Both sleeps started: the shell has forked and exec'ed (slow under load).
    const pidsFile = join(cgroupDir(pid, 'pids').dir, 'pids.current');
    for (let i = 0; i < 1000 && readFileSync(pidsFile, 'utf8').trim() !== '2'; i++) await new Promise((res) => setTimeout(res, 10));
  });
  after(() => {
    rt?.cleanup();
    bundle?.cleanup();
  });

  it('events --stats: runc\'s event with the values of the container\'s cgroup files', () => {
    const cpu = cgroupDir(pid, 'cpuacct');
    const cpuNs = () => (cpu.v2 ? BigInt(/usage_usec (\d+)/.exec(file(cpu.dir, 'cpu.stat'))![1]!) * 1000n : BigInt(file(cpu.dir, 'cpuacct.usage')));
    const cpuBefore = cpuNs();
    const r = rt.run(['events', '--stats', 'ev']);
    assert.equal(r.status, 0, r.stderr);
    const cpuAfter = cpuNs();
    assert.equal(r.stdout.trim().split('\n').length, 1, 'one line');
    const ev = parseEvent(r.stdout);
    assert.equal(ev.type, 'stats');
    assert.equal(ev.id, 'ev');
    const d = ev.data!;
    assert.deepEqual(keys(d), ['blkio', 'cpu', 'cpuset', 'hugetlb', 'intel_rdt', 'memory', 'network_interfaces', 'pids']);
    const total = BigInt(d.cpu.usage.total);
    assert.ok(total >= cpuBefore && total <= cpuAfter, `cpu total ${total} between ${cpuBefore} and ${cpuAfter}`);
    assert.equal(typeof d.cpu.usage.kernel, 'number');
    const pids = cgroupDir(pid, 'pids');
    assert.equal(d.pids.current, Number(file(pids.dir, 'pids.current')));
    assert.equal(d.pids.limit, 100);
    const mem = cgroupDir(pid, 'memory');
    assert.equal(d.memory.usage.limit, Number(file(mem.dir, mem.v2 ? 'memory.max' : 'memory.limit_in_bytes')));
    assert.equal(d.memory.usage.limit, MEMORY);
    assert.ok(d.memory.usage.usage > 0, 'memory in use');
    const statKeys = file(mem.dir, 'memory.stat').split('\n').map((l) => l.split(' ')[0]).sort();
    assert.deepEqual(keys(d.memory.raw), statKeys, 'raw is memory.stat');
    assert.equal(typeof d.memory.usage.failcnt, 'number');
    const cs = cgroupDir(pid, 'cpuset');
    const list = (t: string) => t.split(',').flatMap((r) => { const [x, y] = r.split('-').map(Number); return Array.from({ length: (y ?? x!) - x! + 1 }, (_, i) => x! + i); });
    assert.deepEqual(d.cpuset.cpus, list(file(cs.dir, cs.v2 ? 'cpuset.cpus.effective' : 'cpuset.cpus')), 'cpuset.cpus');
  });

  it('events --stats has the shape runc prints for the same container', async (t) => {
    const runc = spawnSync('runc', ['--version']);
    if (runc.status !== 0) return skipOrFail(t, 'runc is not installed (apt-get install -y runc)');
    const b = makeBusyboxBundle(SCRIPT);
    const dir = join(b.dir, 'runc-root');
    const id = `berth-ev-${process.pid}`;
    try {
      b.spec.linux!.resources = { memory: { limit: MEMORY }, pids: { limit: 100 } };
      b.spec.ociVersion = '1.0.2';
      b.save();
      // The container keeps runc's stdio: files, not pipes, or spawnSync would wait for it.
      const err = openSync(join(b.dir, 'runc-err'), 'w');
      const run = spawnSync('runc', ['--root', dir, 'run', '-d', '--bundle', b.dir, id], { stdio: ['ignore', err, err], timeout: 30_000 });
      closeSync(err);
      if (run.status !== 0) return skipOrFail(t, `runc cannot run a container here: ${readFileSync(join(b.dir, 'runc-err'), 'utf8').trim()}`, false);
      await new Promise((res) => setTimeout(res, 300)); // both sleeps started
      const theirs = parseEvent(spawnSync('runc', ['--root', dir, 'events', '--stats', id], { encoding: 'utf8' }).stdout).data!;
      const ours = parseEvent(rt.run(['events', '--stats', 'ev']).stdout).data!;
      assert.deepEqual(keys(ours), keys(theirs));
      for (const k of ['cpu', 'cpuset', 'pids', 'intel_rdt']) assert.deepEqual(keys(ours[k]), keys(theirs[k]), k);
      assert.deepEqual(keys(ours.cpu.usage).filter((k) => k !== 'user'), keys(theirs.cpu.usage).filter((k) => k !== 'user'), 'cpu.usage');
      // cache is left out when 0 (omitempty): compare the rest.
      assert.deepEqual(keys(ours.memory).filter((k) => k !== 'cache'), keys(theirs.memory).filter((k) => k !== 'cache'), 'memory');
      for (const k of ['usage', 'swap', 'kernel', 'kernelTCP'] as const) {
        if (theirs.memory[k]) assert.deepEqual(keys(ours.memory[k]).filter((x) => x === 'limit' || x === 'failcnt'), ['failcnt', 'limit'], `memory.${k}`);
      }
      assert.deepEqual(keys(ours.memory.raw), keys(theirs.memory.raw), 'memory.raw');
      assert.equal(ours.memory.usage.limit, theirs.memory.usage.limit);
      assert.equal(ours.pids.current, theirs.pids.current);
      assert.equal(ours.network_interfaces, theirs.network_interfaces);
    } finally {
      spawnSync('runc', ['--root', dir, 'delete', '--force', id]);
      b.cleanup();
    }
  });

  it('events --interval streams stats lines until the container stops', async () => {
    const b = makeBusyboxBundle(['/bin/sleep', '60']);
    try {
      const r = rt.create('short', b.dir, join(b.dir, 'out'));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(rt.run(['start', 'short']).status, 0);
      const child = spawn(FRONT, ['--root', rt.root, 'events', '--interval', '200ms', 'short'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
      // Three lines (however slow Node starts under load), then the container stops.
      await new Promise<void>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`only ${out.split('\n').length - 1} lines after 30 s`)), 30_000);
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.split('\n').length > 3) { clearTimeout(timer); res(); }
        });
      });
      assert.equal(rt.run(['kill', 'short', 'KILL']).status, 0);
      const code = await Promise.race([exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 15_000))]);
      if (code === 'timeout') child.kill();
      assert.equal(code, 0, 'events returns by itself once the container has stopped');
      const lines = out.trim().split('\n').map(parseEvent);
      assert.ok(lines.length >= 3, `${lines.length} lines`);
      for (const l of lines) assert.deepEqual([l.type, l.id], ['stats', 'short']);
      const stopped = rt.run(['events', '--stats', 'short']);
      assert.notEqual(stopped.status, 0);
      assert.match(stopped.stderr, /container short is not running/);
      assert.match(rt.run(['events', '--interval', 'soon', 'ev']).stderr, /--interval "soon": give a duration/);
    } finally {
      b.cleanup();
    }
  });

  it('--rootless takes runc\'s values; --criu, checkpoint and restore are refused clearly', () => {
    for (const v of ['true', 'false', 'auto']) {
      const r = spawnSync(FRONT, ['--rootless', v, '--root', rt.root, 'state', 'ev'], { encoding: 'utf8' });
      assert.equal(r.status, 0, `--rootless ${v}: ${r.stderr}`);
      const l = spawnSync(FRONT, [`--rootless=${v}`, '--root', rt.root, 'list', '-q'], { encoding: 'utf8' });
      assert.equal(l.status, 0, `--rootless=${v} list: ${l.stderr}`);
    }
    for (const verb of [['state', 'ev'], ['list']]) {
      const bad = spawnSync(FRONT, ['--rootless', 'maybe', '--root', rt.root, ...verb], { encoding: 'utf8' });
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /--rootless "maybe": give true, false or auto/);
      const criu = spawnSync(FRONT, ['--criu', '/usr/sbin/criu', '--root', rt.root, ...verb], { encoding: 'utf8' });
      assert.notEqual(criu.status, 0);
      assert.match(criu.stderr, /--criu is not supported: berth-runtime has no checkpoint\/restore/);
    }
    for (const verb of ['checkpoint', 'restore']) {
      const r = spawnSync(FRONT, ['--root', rt.root, verb, 'ev'], { encoding: 'utf8' });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, new RegExp(`${verb} is not supported: berth-runtime has no checkpoint/restore`));
    }
  });
});

describe('--rootless: cgroups berth-runtime may not create are left out, as runc does (root)', {
  skip: skipUnless(root('mounts cgroupfs read-only in a throwaway mount namespace'), peer('unshare', 'util-linux'), peer('/bin/busybox', 'busybox-static')),
}, () => {
  it('runs without cgroups where it may not create them, and fails when a limit needs one or --rootless is false', () => {
    const rt = new Runtime();
    const plain = makeBusyboxBundle(['/bin/echo', 'ran']);
    const limited = makeBusyboxBundle(['/bin/echo', 'ran']);
    try {
      delete plain.spec.linux!.resources?.memory;
      plain.save();
      limited.spec.linux!.resources = { ...limited.spec.linux!.resources, memory: { limit: MEMORY } };
      limited.save();
      // Every cgroup hierarchy read-only (EROFS) in a mount namespace of our own.
      const script = [
        "for m in $(awk '{ for (i = 7; i <= NF; i++) if ($i == \"-\") { if ($(i + 1) ~ /^cgroup/) print $5; break } }' /proc/self/mountinfo); do mount -o remount,bind,ro \"$m\" || exit 9; done",
        'run() { id=$1; shift; "$RT" --root "$ROOT" "$@" </dev/null >"$OUT/$id.out" 2>"$OUT/$id.err"; echo $? >"$OUT/$id.rc"; }',
        `run r1 --rootless true run --bundle ${plain.dir} r1`,
        `run r2 --rootless false run --bundle ${plain.dir} r2`,
        `run r3 --rootless true run --bundle ${limited.dir} r3`,
      ].join('\n');
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', '/bin/sh', '-c', script], {
        encoding: 'utf8', env: { ...process.env, RT: FRONT, ROOT: rt.root, OUT: plain.dir }, timeout: 60_000,
      });
      assert.equal(r.status, 0, r.stderr);
      const got = (id: string) => ({ rc: Number(readFileSync(join(plain.dir, `${id}.rc`), 'utf8')), out: readFileSync(join(plain.dir, `${id}.out`), 'utf8'), err: readFileSync(join(plain.dir, `${id}.err`), 'utf8') });
      const r1 = got('r1');
      assert.equal(r1.rc, 0, r1.err);
      assert.equal(r1.out, 'ran\n');
      const r2 = got('r2');
      assert.notEqual(r2.rc, 0);
      assert.match(r2.err, /cannot create cgroup /);
      const r3 = got('r3');
      assert.notEqual(r3.rc, 0);
      assert.match(r3.err, /cannot set the memory limits: --rootless left out the memory hierarchy/);
    } finally {
      rt.cleanup();
      plain.cleanup();
      limited.cleanup();
    }
  });
});
