/**
 * Run plans (engine/containers/run-plan.ts, native/berth.c): a `berth run` repeated through the
 * npm entry (bin/berth, the native front end) does what the TypeScript CLI did the first time,
 * without Node. A repeat is proven to skip Node by pointing BERTH_NODE (which the plan's key
 * leaves out) at /bin/false: a miss would then fail with "cannot run node". As root, on a
 * busybox image built in the test.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import type { BerthRun } from '../helpers/run-berth.js';
import { vethName } from '../../src/engine/network/link.js';
import { procStat } from '../../src/runtime/state.js';

const needs = skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'));
const FRONT = join(import.meta.dirname, '..', '..', '..', 'bin', 'berth');
const NO_NODE = { BERTH_NODE: '/bin/false' };

/** A run handed to the CLI while BERTH_NODE is /bin/false: status 1, no output. */
function assertMiss(r: BerthRun, why: string): void {
  assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', ''], `a miss: ${why}`);
}

/** `bin/berth ARGS` as a user runs it; `extra` is added to the root's environment. */
function front(e: EngineRoot, args: string[], extra: NodeJS.ProcessEnv = {}, input = '', onStart?: (pid: number, out: () => string) => void): Promise<BerthRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(FRONT, args, { env: { ...e.env, ...extra }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, stdout, stderr }); });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    onStart?.(child.pid!, () => stdout);
  });
}

function plans(e: EngineRoot): string[] {
  const dir = join(e.root, 'plans');
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.plan')).map((n) => join(dir, n)) : [];
}

/** The containers, names and runtime states of the root (not those being removed). */
function listed(e: EngineRoot): { containers: string[]; names: string[]; runtime: string[] } {
  const hexIds = (dir: string) => readdirSync(dir).filter((n) => /^[0-9a-f]{64}$/.test(n)).sort();
  return {
    containers: hexIds(join(e.root, 'containers')),
    names: readdirSync(join(e.root, 'containers', 'names')).sort(),
    runtime: existsSync(join(e.root, 'run')) ? hexIds(join(e.root, 'run')) : [],
  };
}

type Rec = [string, Buffer];

/** The plan's records ("KEY LEN\nVALUE\n", as berth.c reads them). */
function readPlan(file: string): Rec[] {
  const b = readFileSync(file);
  const out: Rec[] = [];
  for (let off = 0; off < b.length;) {
    const nl = b.indexOf(0x0a, off);
    const [key, len] = b.toString('latin1', off, nl).split(' ');
    out.push([key!, b.subarray(nl + 1, nl + 1 + Number(len))]);
    off = nl + 1 + Number(len) + 1;
    if (key === 'end') break;
  }
  return out;
}

function writePlan(file: string, recs: Rec[]): void {
  writeFileSync(file, Buffer.concat(recs.flatMap(([k, v]) => [Buffer.from(`${k} ${v.length}\n`), v, Buffer.from('\n')])), { mode: 0o600 });
}

/** The one plan a command line made, after its first run. */
async function planned(e: EngineRoot, args: string[]): Promise<{ file: string; first: BerthRun }> {
  const before = new Set(plans(e));
  const first = await front(e, args);
  const made = plans(e).filter((p) => !before.has(p));
  assert.equal(made.length, 1, `one plan for ${args.join(' ')}: ${first.stderr}`);
  return { file: made[0]!, first };
}

/** A -d command line run three ways: first (the CLI writes the plan), replayed (a), by the CLI again (b). */
async function threeWays(e: EngineRoot, args: string[]): Promise<{ first: BerthRun; a: string; b: string }> {
  const { first } = await planned(e, args);
  assert.equal(first.code, 0, first.stderr);
  const replayed = await front(e, args, NO_NODE);
  assert.equal(replayed.code, 0, replayed.stderr);
  const viaCli = await front(e, args, { BERTH_NO_RUN_PLAN: '1' });
  assert.equal(viaCli.code, 0, viaCli.stderr);
  return { first, a: replayed.stdout.trim(), b: viaCli.stdout.trim() };
}

/** A container's files with its id, name, times (and address) replaced, for comparing two containers. */
function normalized(e: EngineRoot, id: string, ip?: string): Record<string, string> {
  const dir = join(e.root, 'containers', id);
  const rt = join(e.root, 'run', id);
  const name = (JSON.parse(readFileSync(join(dir, 'container.json'), 'utf8')) as { name: string }).name;
  const norm = (s: string) => (ip ? s.split(ip).join('IP') : s).split(id).join('ID').split(id.slice(0, 12)).join('SHORT').split(name).join('NAME')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, 'TIME').replace(/"pid":\d+,"startTime":\d+/, 'PID').replace(/^(pid|starttime) \d+$/gm, '$1 N')
    .replace(/"(pid|pidStart|monitorPid)":\d+/g, '"$1":N');
  const out: Record<string, string> = {};
  for (const f of ['container.json', 'state.json', 'hosts', 'hostname', 'resolv.conf', 'rootfs.json', 'bundle/config.json']) {
    out[f] = `${(statSync(join(dir, f)).mode & 0o7777).toString(8)} ${norm(readFileSync(join(dir, f), 'utf8'))}`;
  }
  for (const f of ['state.json', 'state.txt', 'bundle']) out[`run/${f}`] = norm(readFileSync(join(rt, f), 'utf8'));
  for (const d of ['', 'bundle', 'rootfs', 'upper', 'work']) out[`dir ${d}`] = (statSync(join(dir, d)).mode & 0o7777).toString(8);
  return out;
}

describe('berth run: run plans replayed by the native front end', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => { e = await engineRoot(); });
  after(async () => { await e.close(); });

  it('repeats a run without Node: same output, streams and exit status', async () => {
    const args = ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 7'];
    const { first } = await planned(e, args);
    assert.deepEqual([first.code, first.stdout, first.stderr], [7, 'out\n', 'err\n']);
    const again = await front(e, args, { ...NO_NODE, BERTH_RUN_PLAN_TRACE: '1' });
    assert.deepEqual([again.code, again.stdout], [7, 'out\n']);
    assert.match(again.stderr, /^berth: run plan: hit\nberth: run plan: container [0-9a-f]{64}\nerr\n$/);
    // --rm: no container, name or runtime record is listed once the status is out (the monitor
    // unlisted them; a `.removing-` dir and the cgroups may remain a moment while its cleanup
    // child deletes them).
    assert.deepEqual(listed(e), { containers: [], names: [], runtime: [] });
  });

  it('writes the container exactly as the CLI does; ps, exec, logs, stop and rm see no difference', async () => {
    const args = ['run', '-d', '--network', 'none', '-e', 'A=1', '-w', '/tmp', 'busybox', 'sh', '-c', 'echo started; exec sleep 60'];
    const { first, a, b } = await threeWays(e, args);
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.notEqual(a, first.stdout.trim());
    assert.deepEqual(normalized(e, a), normalized(e, b));
    const ps = await e.berth(['ps', '--no-trunc', '--format', '{{.ID}} {{.Status}}']);
    assert.match(ps.stdout, new RegExp(`^${a} Up`, 'm'));
    const ex = await e.berth(['exec', a, 'sh', '-c', 'echo $A $(pwd) $(hostname)']);
    assert.equal(ex.stdout, `1 /tmp ${a.slice(0, 12)}\n`);
    assert.equal((await e.berth(['logs', a])).stdout, 'started\n');
    const names = [a, b, first.stdout.trim()].map((id) => (JSON.parse(readFileSync(join(e.root, 'containers', id, 'container.json'), 'utf8')) as { name: string }).name);
    assert.equal(new Set(names).size, 3, `three names: ${names}`);
    assert.equal((await e.berth(['stop', '-t', '1', a])).code, 0);
    // (sleep as PID 1 has no handler for SIGTERM, which the kernel then does not deliver: docker's 137 too.)
    assert.match((await e.berth(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', a])).stdout, /^exited 137\n$/);
    assert.equal((await e.berth(['rm', '-f', a, b, first.stdout.trim()])).code, 0);
    assert.equal(existsSync(join(e.root, 'containers', a)), false);
    assert.equal(existsSync(join(e.root, 'run', a)), false);
  });

  it('fills in the command\'s arguments: one plan for every argument list of a command', async () => {
    const odd = ['q"uote\\back', 'new\nline', '\u00fcn\u00ef\u20ac\u{1F600}', 'ctl\x07\x1f', '', '--name', 'x'];
    const script = 'printf "%s|" "$@" > /args; exec sleep 60';
    const run = (args: string[]) => ['run', '-d', '--network', 'none', 'busybox', 'sh', '-c', script, 'sh', ...args];
    const first = await front(e, run(['a']));
    assert.equal(first.code, 0, first.stderr);
    const replayed = await front(e, run(odd), NO_NODE);
    assert.equal(replayed.code, 0, replayed.stderr);
    const viaCli = await front(e, run(odd), { BERTH_NO_RUN_PLAN: '1' });
    assert.equal(viaCli.code, 0, viaCli.stderr);
    const [a, b] = [replayed.stdout.trim(), viaCli.stdout.trim()];
    assert.deepEqual(normalized(e, a), normalized(e, b));
    assert.deepEqual((JSON.parse(readFileSync(join(e.root, 'containers', a, 'container.json'), 'utf8')) as { config: { cmd: string[] } }).config.cmd, ['sh', '-c', script, 'sh', ...odd]);
    // What the container's process was given.
    let got = '';
    for (let i = 0; i < 100 && !got; i++) got = (await e.berth(['exec', a, 'cat', '/args'])).stdout;
    assert.equal(got, odd.map((x) => `${x}|`).join(''));
    // More arguments, or none: the same plan (the command's name stays in the key).
    for (const more of [['1', '2', '3'], []]) {
      const r = await front(e, ['run', '--rm', '--network', 'none', 'busybox', 'echo', ...more]);
      assert.equal(r.stdout, `${more.join(' ')}\n`);
      const again = await front(e, ['run', '--rm', '--network', 'none', 'busybox', 'echo', 'x', ...more], NO_NODE);
      assert.equal(again.stdout, `${['x', ...more].join(' ')}\n`, again.stderr);
    }
    const none = await front(e, ['run', '--rm', '--network', 'none', 'busybox', 'echo'], NO_NODE);
    assert.deepEqual([none.code, none.stdout], [0, '\n']);
    assert.equal((await e.berth(['rm', '-f', a, b, first.stdout.trim()])).code, 0);
  });

  it('passes stdin (-i) and signals to the container', async () => {
    const cat = ['run', '--rm', '-i', '--network', 'none', 'busybox', 'cat'];
    await planned(e, cat);
    assert.equal((await front(e, cat, NO_NODE, 'through the plan\n')).stdout, 'through the plan\n');
    const trap = ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'trap "exit 3" TERM; echo ready; while :; do sleep 0.1; done'];
    const signalled = (extra: NodeJS.ProcessEnv) => front(e, trap, extra, '', (pid, out) => {
      const poll = setInterval(() => { if (out().includes('ready')) { clearInterval(poll); process.kill(pid, 'SIGTERM'); } }, 20);
    });
    assert.equal((await signalled({})).code, 3);
    assert.equal((await signalled(NO_NODE)).code, 3);
  });

  it('is not followed once what it read has changed: the store, a host file, a snapshot', async () => {
    const args = ['run', '--rm', '--network', 'none', 'busybox', 'basename', '/x/checked'];
    const { file } = await planned(e, args);
    assert.equal((await front(e, args, NO_NODE)).stdout, 'checked\n');
    // Another tag changes the store's index.json: a miss (Node, here /bin/false, is asked).
    assert.equal((await e.berth(['tag', 'busybox', 'other:tag'])).code, 0);
    assertMiss(await front(e, args, NO_NODE), 'index.json replaced');
    // The CLI's run writes the plan again, which then holds.
    assert.equal((await front(e, args)).stdout, 'checked\n');
    assert.equal((await front(e, args, NO_NODE)).stdout, 'checked\n');
    const good = readPlan(file);
    const edited = (key: string, change: (v: Buffer) => Buffer) => good.map(([k, v]): Rec => [k, k === key ? change(v) : v]);
    // The host's resolv.conf as the plan saw it differs from the host's now.
    writePlan(file, edited('check-content', (v) => Buffer.concat([v.subarray(0, v.indexOf(0) + 1), Buffer.from('nameserver 192.0.2.1\n')])));
    assertMiss(await front(e, args, NO_NODE), 'resolv.conf changed');
    // A snapshot the plan needs is gone.
    writePlan(file, edited('check-exist', (v) => Buffer.from(`${v.toString()}-gone`)));
    assertMiss(await front(e, args, NO_NODE), 'a snapshot gone');
    // Writable by others: not followed.
    writePlan(file, good);
    assert.equal((await front(e, args, NO_NODE)).stdout, 'checked\n');
    chmodSync(file, 0o666);
    assertMiss(await front(e, args, NO_NODE), 'a plan others can write');
    chmodSync(file, 0o600);
    // The image removed: the CLI says so.
    const other = ['run', '--rm', '--network', 'none', '--pull', 'never', 'other:tag', 'echo', 'other'];
    await planned(e, other);
    assert.equal((await e.berth(['rmi', 'other:tag'])).code, 0);
    const gone = await front(e, other);
    assert.equal(gone.code, 125);
    assert.match(gone.stderr, /unable to find image/);
  });

  it('leaves nothing behind when the start fails', async () => {
    const args = ['run', '--rm', '--network', 'none', 'busybox', 'printf', 'broken'];
    const { file } = await planned(e, args);
    const cgroups = (readPlan(file).filter(([k]) => k === 'cgroup-dir').map(([, v]) => v.toString()));
    assert.ok(cgroups.length > 0);
    const parents = [...new Set(cgroups.map((d) => d.slice(0, d.lastIndexOf('/'))))];
    const was = listed(e);
    writePlan(file, readPlan(file).map(([k, v]): Rec => [k, k === 'monitor' ? Buffer.from(`/nonexistent/berth-monitor${v.subarray(v.indexOf(0)).toString('latin1')}`, 'latin1') : v]));
    const r = await front(e, args, { ...NO_NODE, BERTH_RUN_PLAN_TRACE: '1' });
    assert.equal(r.code, 125, r.stderr);
    const id = /run plan: container ([0-9a-f]{64})/.exec(r.stderr)?.[1];
    assert.ok(id, r.stderr);
    assert.match(r.stderr, /cannot run \/nonexistent\/berth-monitor/);
    assert.match(r.stderr, /^berth: cannot start container berth_[0-9a-f]{8}: berth-init exited before "pid"/m);
    assert.deepEqual(listed(e), was);
    assert.deepEqual(readdirSync(join(e.root, 'leases')), []);
    // (Its own cgroups: other tests' containers share the parents.)
    assert.deepEqual(parents.filter((p) => existsSync(join(p, id))), []);
  });

  it('runs a given --name (one plan for every name); a name taken or invalid is the CLI\'s error', async () => {
    const args = ['run', '-d', '--name', 'planned-name', '--network', 'none', 'busybox', 'sleep', '60'];
    const { first } = await planned(e, args);
    assert.equal(first.code, 0, first.stderr);
    const taken = await front(e, args);
    assert.equal(taken.code, 125);
    assert.match(taken.stderr, /the container name "\/planned-name" is already in use/);
    assert.equal((await e.berth(['rm', '-f', 'planned-name'])).code, 0);
    const again = await front(e, args, NO_NODE);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await e.berth(['inspect', '-f', '{{.Name}} {{.Id}}', 'planned-name'])).stdout, `/planned-name ${again.stdout.trim()}\n`);
    // The plan's key leaves the name out: another name is a hit too.
    const other = await front(e, args.map((a) => (a === 'planned-name' ? '/other-name' : a)), NO_NODE);
    assert.equal(other.code, 0, other.stderr);
    assert.equal((await e.berth(['inspect', '-f', '{{.Name}}', other.stdout.trim()])).stdout, '/other-name\n');
    assert.equal((await e.berth(['rm', '-f', 'planned-name', 'other-name'])).code, 0);
    // A name that is part of everything (a, e): only the name's own places change; with --rm the
    // monitor removes the right link.
    const rm = ['run', '--rm', '--name', 'e', '--network', 'none', 'busybox', 'cat', '/etc/hostname'];
    assert.equal((await front(e, rm)).code, 0);
    for (const n of ['a', 'e']) {
      const r = await front(e, rm.map((x) => (x === 'e' ? n : x)), NO_NODE);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^[0-9a-f]{12}\n$/);
    }
    assert.deepEqual(listed(e).names.filter((n) => n === 'a' || n === 'e'), []);
    // A bad name is the CLI's error, not the plan's.
    const bad = await front(e, args.map((a) => (a === 'planned-name' ? 'no/slashes' : a)));
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /invalid container name "no\/slashes"/);
    // A --name that is the command's, not berth's: no plan for that key.
    const plansBefore = plans(e).length;
    const echo = ['run', '--rm', '--network', 'none', 'busybox', 'echo', '--name', 'x'];
    assert.equal((await front(e, echo)).stdout, '--name x\n');
    assert.equal(plans(e).length, plansBefore);
    assert.equal((await front(e, echo.map((a) => (a === 'x' ? 'y' : a)))).stdout, '--name y\n');
  });

  it('replays concurrently: every container its own id and name, none lost', async () => {
    const args = ['run', '-d', '--network', 'none', 'busybox', 'sleep', '60'];
    await planned(e, args);
    const runs = await Promise.all(Array.from({ length: 12 }, () => front(e, args, NO_NODE)));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const ids = runs.map((r) => r.stdout.trim());
    assert.equal(new Set(ids).size, 12);
    const listed = (await e.berth(['ps', '-q', '--no-trunc'])).stdout.split('\n');
    for (const id of ids) assert.ok(listed.includes(id), `${id} listed`);
    const names = (await e.berth(['ps', '--format', '{{.Names}}'])).stdout.trim().split('\n');
    assert.equal(new Set(names).size, names.length);
    assert.equal((await e.berth(['rm', '-f', ...listed.filter(Boolean)])).code, 0);
  });


  /** The default network's records of the root: endpoint files (address → record) and markers. */
  function networkRecords(): { endpoints: Map<string, { container: string; name: string; ip: string; veth: string }>; markers: string[] } {
    const dir = join(e.root, 'network', 'endpoints', 'bridge');
    const files = existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : [];
    const markers = join(e.root, 'network', 'attached');
    return {
      endpoints: new Map(files.map((f) => [f, JSON.parse(readFileSync(join(dir, f), 'utf8'))])),
      markers: existsSync(markers) ? readdirSync(markers).filter((n) => !n.startsWith('.')) : [],
    };
  }
  const endpointOf = (id: string) => [...networkRecords().endpoints.values()].find((r) => r.container === id);
  const bridgeName = () => e.env.BERTH_NETWORK_BRIDGE!;
  const bridgePorts = () => spawnSync('ip', ['-o', 'link', 'show', 'master', bridgeName()], { encoding: 'utf8' }).stdout;
  /**
   * The root's network in use and its markers checked in this boot (by the sweep of the command
   * after the first attach): only then does a bridge run write a plan.
   */
  async function networkChecked(): Promise<void> {
    if (existsSync(join(e.root, 'network', 'attached', '.boot'))) return;
    const args = ['run', '--rm', 'busybox', 'echo', 'first'];
    const before = plans(e).length;
    assert.equal((await front(e, args)).code, 0);
    assert.equal(plans(e).length, before, 'no plan while the markers are not checked');
    assert.equal((await e.berth(['ps'])).code, 0);
    assert.ok(existsSync(join(e.root, 'network', 'attached', '.boot')));
  }

  it('repeats a run on the default bridge network: an address of its own, its hosts file, given back at the end', async () => {
    await networkChecked();
    const args = ['run', '--rm', 'busybox', 'sh', '-c', 'ip -4 -o addr show eth0; tail -n 1 /etc/hosts; hostname; ping -c 1 -W 2 "$(ip route | sed -n "s/^default via \\([0-9.]*\\).*/\\1/p")" >/dev/null && echo gateway'];
    const { first } = await planned(e, args);
    assert.equal(first.code, 0, first.stderr);
    const subnet = e.env.BERTH_NETWORK_SUBNET!.replace(/0\/24$/, '');
    for (let i = 0; i < 2; i++) {
      const again = await front(e, args, NO_NODE);
      assert.equal(again.code, 0, again.stderr);
      const [addr, hosts, hostname, gateway] = again.stdout.trim().split('\n');
      const ip = / inet (\d+\.\d+\.\d+\.\d+)\/24 /.exec(addr ?? '')?.[1];
      assert.ok(ip?.startsWith(subnet), `an address of the root's subnet ${subnet}0/24: ${again.stdout}`);
      assert.match(hosts!, new RegExp(`^${ip!.replace(/\./g, '\\.')}\\t${hostname} berth_[0-9a-f]{8}$`));
      assert.equal(gateway, 'gateway');
      // Given back as the CLI's finish() does: no record, no marker (the veth went with the namespace).
      assert.deepEqual(networkRecords(), { endpoints: new Map(), markers: [] });
    }
  });

  it('-d on the bridge network: the container and its endpoint as the CLI makes them; the two reach each other; rm gives the addresses back', async () => {
    await networkChecked();
    const args = ['run', '-d', 'busybox', 'sleep', '60'];
    const { first, a, b } = await threeWays(e, args);
    const [ea, eb] = [endpointOf(a)!, endpointOf(b)!];
    assert.ok(ea && eb && ea.ip !== eb.ip, JSON.stringify([ea, eb]));
    assert.equal(ea.veth, vethName(a, 'bridge'), 'the veth named as vethName names it');
    assert.deepEqual(normalized(e, a, ea.ip), normalized(e, b, eb.ip));
    const epNorm = (id: string, r: object) => JSON.stringify(r).split(id).join('ID').split(id.slice(0, 12)).join('SHORT')
      .split((r as { name: string }).name).join('NAME').split((r as { ip: string }).ip).join('IP').split(vethName(id, 'bridge')).join('VETH');
    assert.equal(epNorm(a, ea), epNorm(b, eb));
    assert.ok(bridgePorts().includes(ea.veth), `${ea.veth} on ${bridgeName()}: ${bridgePorts()}`);
    assert.equal((await e.berth(['exec', a, 'ping', '-c', '1', '-W', '2', eb.ip])).code, 0, 'the replayed container reaches the CLI\'s');
    assert.equal((await e.berth(['exec', b, 'ping', '-c', '1', '-W', '2', ea.ip])).code, 0, 'and back');
    const ids = [a, b, first.stdout.trim()];
    assert.ok(networkRecords().markers.every((m) => ids.some((id) => m.startsWith(`${id}@`) && !m.includes('pending'))), JSON.stringify(networkRecords().markers));
    assert.equal((await e.berth(['rm', '-f', ...ids])).code, 0);
    assert.deepEqual(networkRecords(), { endpoints: new Map(), markers: [] });
  });

  it('on the bridge network, concurrent replays and CLI runs take distinct addresses; the lock of a live owner is waited for, a dead one\'s goes to the CLI', async () => {
    await networkChecked();
    const args = ['run', '-d', '--label', 'concurrent=1', 'busybox', 'sleep', '60'];
    await planned(e, args);
    const runs = await Promise.all(Array.from({ length: 12 }, (_, i) => front(e, args, i % 4 === 3 ? { BERTH_NO_RUN_PLAN: '1' } : NO_NODE)));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const ids = runs.map((r) => r.stdout.trim());
    const eps = ids.map((id) => endpointOf(id));
    assert.equal(new Set(eps.map((x) => x?.ip)).size, 12, `12 distinct addresses: ${eps.map((x) => x?.ip)}`);
    for (const [i, id] of ids.entries()) {
      const shown = (await e.berth(['exec', id, 'ip', '-4', '-o', 'addr', 'show', 'eth0'])).stdout;
      assert.ok(shown.includes(` ${eps[i]!.ip}/24 `), `${id}: ${shown} holds ${eps[i]!.ip}`);
    }
    // A live owner (this process) holds the network's lock for 300 ms: the replay waits for it.
    const lock = join(e.root, 'network', 'lock');
    writeFileSync(lock, `${process.pid} ${procStat(process.pid)!.startTime}\n`);
    const t0 = Date.now();
    setTimeout(() => unlinkSync(lock), 300);
    const waited = await front(e, args, NO_NODE);
    assert.equal(waited.code, 0, waited.stderr);
    assert.ok(Date.now() - t0 >= 300, 'it waited for the lock');
    // Its owner is dead: the CLI (which breaks such locks) is asked, and the replay left nothing.
    writeFileSync(lock, '4194999 1\n');
    assertMiss(await front(e, args, NO_NODE), 'a dead owner\'s lock');
    assert.equal(listed(e).names.length, 14);
    assert.equal(networkRecords().endpoints.size, 14);
    assert.ok(networkRecords().markers.every((m) => !m.includes('pending')));
    assert.equal((await front(e, args)).code, 0, 'the CLI breaks it');
    assert.ok(!existsSync(lock));
    const all = (await e.berth(['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
    assert.equal((await e.berth(['rm', '-f', ...all])).code, 0);
    assert.deepEqual(networkRecords(), { endpoints: new Map(), markers: [] });
  });

  it('on the bridge network, is not followed once the bridge or its mark has gone', async () => {
    await networkChecked();
    const args = ['run', '--rm', 'busybox', 'true'];
    await planned(e, args);
    const said: string[] = [];
    const ok = async (r: Promise<BerthRun>, what: string) => { const x = await r; said.push(x.stderr); assert.equal(x.code, 0, `${what}: ${x.stderr}`); };
    await ok(front(e, args, NO_NODE), 'a replay');
    rmSync(join(e.root, 'network', 'networks', 'bridge.active'));
    assertMiss(await front(e, args, NO_NODE), 'the network not marked active');
    await ok(front(e, args), 'the CLI marks it again');
    await ok(front(e, args, NO_NODE), 'a replay');
    spawnSync('ip', ['link', 'del', bridgeName()]);
    assertMiss(await front(e, args, NO_NODE), 'the bridge gone');
    await ok(front(e, args), 'the CLI makes it again');
    await ok(front(e, args, NO_NODE), 'a replay');
    assert.deepEqual(networkRecords(), { endpoints: new Map(), markers: [] }, said.join('\n'));
  });

  for (const network of ['none', 'bridge']) it(`kill -9 of the front end at any moment of a replay leaves what the next command cleans or rm removes (--network ${network})`, async () => {
    const args = ['run', '-d', '--network', network, 'busybox', 'tail', '-f', '/dev/null'];
    if (network === 'bridge') await networkChecked();
    const { file } = await planned(e, args);
    assert.equal((await e.berth(['rm', '-f', ...(await e.berth(['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean)])).code, 0);
    const cgroupParents = [...new Set(readPlan(file).filter(([k]) => k === 'cgroup-dir').map(([, v]) => v.toString().slice(0, v.lastIndexOf(0x2f))))];
    // The ids the replays chose (traced): their cgroups (whose parents other tests share) must go.
    const ids: string[] = [];
    const traces: string[] = [];
    // A replay takes ~25 ms here (more under load): killed before it starts, while it writes the
    // container, while berth-init starts, and around the start.
    for (const delay of [0, 1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30, 40, 60, 90, 150]) {
      const child = spawn(FRONT, args, { env: { ...e.env, ...NO_NODE, BERTH_RUN_PLAN_TRACE: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise((r) => child.once('close', r));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await exited;
      ids.push(...[...err.matchAll(/run plan: container ([0-9a-f]{64})/g)].map((m) => m[1]!));
      traces.push(err.replace(/\n/g, ' '));
    }
    // (How many got as far as choosing an id depends on the machine's load.)
    assert.ok(ids.length >= 1, `a replay got as far as choosing an id: ${traces.join(" / ")}`);
    // The next command sweeps; what it lists, rm -f removes; then nothing of them is left.
    const ps = await e.berth(['ps', '-aq', '--no-trunc']);
    assert.equal(ps.code, 0, ps.stderr);
    const listedIds = ps.stdout.split('\n').filter(Boolean);
    if (listedIds.length) assert.equal((await e.berth(['rm', '-f', ...listedIds])).code, 0);
    await new Promise((r) => setTimeout(r, 500)); // (monitors finishing their --rm-less exits)
    assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
    assert.deepEqual(listed(e), { containers: [], names: [], runtime: [] });
    const dots = readdirSync(join(e.root, 'containers')).filter((n) => n.startsWith('.'));
    assert.deepEqual(dots, [], dots.map((d) => `${d}: ${readdirSync(join(e.root, 'containers', d)).map((f) => `${f}=${JSON.stringify(readFileSync(join(e.root, 'containers', d, f), 'utf8'))}`)}`).join('; '));
    const leases = readdirSync(join(e.root, 'leases')).filter((n) => !n.startsWith(`${process.pid}-`));
    for (const l of leases) assert.ok(!existsSync(`/proc/${Number.parseInt(l, 10)}`), `lease ${l} of a live process`);
    assert.deepEqual(cgroupParents.flatMap((p) => ids.filter((id) => existsSync(join(p, id)))), [], 'no cgroup left');
    // No address, marker or veth of theirs (the kernel deletes a veth with its namespace, in the background).
    assert.deepEqual(networkRecords(), { endpoints: new Map(), markers: [] });
    for (let i = 0; i < 50 && ids.some((id) => bridgePorts().includes(vethName(id, 'bridge'))); i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(ids.filter((id) => bridgePorts().includes(vethName(id, 'bridge'))), [], 'no veth left');
    // And the plan still replays.
    const again = await front(e, args, NO_NODE);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await e.berth(['rm', '-f', again.stdout.trim()])).code, 0);
  });

  it('keeps the 64 most recent plans', async () => {
    const dir = join(e.root, 'plans');
    const old = Date.now() / 1000 - 3600;
    for (let i = 0; i < 70; i++) {
      const f = join(dir, `${i.toString(16).padStart(16, '0')}.plan`);
      writeFileSync(f, 'version 1\n1\nend 0\n\n', { mode: 0o600 });
      utimesSync(f, old, old);
    }
    const args = ['run', '--rm', '--network', 'none', 'busybox', 'true'];
    assert.equal((await front(e, args)).code, 0);
    const left = plans(e);
    assert.equal(left.length, 64);
    assert.equal(left.filter((p) => statSync(p).mtimeMs > old * 1000 + 1000).length >= 1, true);
  });
});
