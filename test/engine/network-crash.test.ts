/**
 * Networking under load and after crashes, through the built CLI: 50 `run -d` at once on one
 * user network get 50 distinct addresses (seen inside the containers and in the records), and
 * `kill -9` of berth during a run's network attach leaves nothing after the next command's
 * cleanup and the removal of what `ps -a` lists: no veth, no address or port in the allocator,
 * no nft rule, no name server.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bridgePorts } from '../../src/engine/network/link.js';
import { defaultsFromEnv, NetworkStore } from '../../src/engine/network/store.js';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { BERTH_BIN, runBerth } from '../helpers/run-berth.js';

const ruleset = (): string => spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;

/** Processes whose command line names `needle` (berth-dns of this root's networks, monitors). */
function processesWith(needle: string, binary: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.split('\0')[0]!.endsWith(binary) && cmd.includes(needle)) out.push(Number(p));
    } catch { /* gone */ }
  }
  return out;
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The records of a root (opened and closed here: the test process keeps no database open). */
function records(e: EngineRoot) {
  const s = NetworkStore.open(e.root, defaultsFromEnv(e.env));
  try {
    return { endpoints: s.allEndpoints(), ports: s.ports(), networks: s.networks() };
  } finally {
    s.close();
  }
}

describe('berth networking under load and after kill -9', { skip: skipUnless(root('containers and networks need root'), peer('ip', 'iproute2'), peer('nft', 'nftables'), peer(BUSYBOX, 'busybox-static')) }, () => {
  let e: EngineRoot;
  before(async () => { e = await engineRoot(); });
  after(async () => { await e.close(); });

  it('50 run -d at once on one user network get 50 distinct addresses; rm -f of all leaves nothing', { timeout: 600_000 }, async () => {
    // Its subnet from this root's pool (BERTH_NETWORK_POOL), clear of other test files'.
    assert.equal((await e.berth(['network', 'create', 'many'])).code, 0);
    const many = records(e).networks.find((n) => n.name === 'many')!;
    const prefix = many.subnet.replace(/\.0\/\d+$/, '').replaceAll('.', '\\.');
    const out = mkdtempSync(join(tmpdir(), 'berth-addrs-'));
    try {
      // Each container writes the address it sees on eth0 to /out/NAME.
      // 50 Node start-ups at once on this machine's cores: minutes under load, not the helper's 60 s.
      const runs = Array.from({ length: 50 }, (_, i) => runBerth(['run', '-d', '--name', `n${i}`, '--network', 'many', '-v', `${out}:/out`, 'busybox', 'sh', '-c', `ip -o -4 addr show eth0 > /out/n${i}.tmp && mv /out/n${i}.tmp /out/n${i}; exec sleep 600`], e.env, undefined, 300_000));
      const results = await Promise.all(runs);
      for (const [i, r] of results.entries()) assert.equal(r.code, 0, `run ${i}: ${r.stderr}`);
      await until('every container to write its address', () => readdirSync(out).filter((n) => !n.endsWith('.tmp')).length === 50, 60_000);
      const inside = new Map<string, string>();
      for (let i = 0; i < 50; i++) {
        const m = new RegExp(`eth0\\s+inet (${prefix}\\.\\d+)/24`).exec(readFileSync(join(out, `n${i}`), 'utf8'));
        assert.ok(m, `n${i} has an address on eth0`);
        inside.set(`n${i}`, m[1]!);
      }
      assert.equal(new Set(inside.values()).size, 50, 'no two containers share an address');
      assert.ok(![...inside.values()].includes(many.gateway), 'no container has the gateway');
      const info = JSON.parse((await e.berth(['network', 'inspect', 'many'])).stdout) as { bridge: string; containers: { name: string; ip: string }[] }[];
      assert.deepEqual(new Map(info[0]!.containers.map((c) => [c.name, c.ip])), inside, 'the records say what the containers see');
      assert.equal(bridgePorts(info[0]!.bridge).length, 50);

      const ids = results.map((r) => r.stdout.trim());
      const rms = await Promise.all([0, 1, 2, 3, 4].map((k) => e.berth(['rm', '-f', ...ids.slice(k * 10, k * 10 + 10)])));
      for (const r of rms) assert.equal(r.code, 0, r.stderr);
      const rec = records(e);
      assert.deepEqual(rec.endpoints, []);
      // The kernel deletes the veths with the namespaces, in the background.
      await until('the veths to go', () => bridgePorts(info[0]!.bridge).length === 0, 20_000);
      await until('the name server to stop', () => processesWith(e.root, 'berth-dns').length === 0);
      assert.equal((await e.berth(['network', 'rm', 'many'])).code, 0);
      assert.equal(existsSync(`/sys/class/net/${info[0]!.bridge}`), false);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('kill -9 of berth during the network attach of a run leaves nothing after the next command', { timeout: 600_000 }, async () => {
    assert.equal((await e.berth(['network', 'create', 'crash'])).code, 0);
    // The default network's bridge is made by the first attach: the first try kills that one.
    const crash = records(e).networks.find((n) => n.name === 'crash')!;
    const bridges = [e.env.BERTH_NETWORK_BRIDGE!, crash.bridge];
    const portsUsed: number[] = [];
    // Killed at fixed points of the run (before, during and after the attach under this
    // machine's load), then as soon as a veth shows on a bridge: berth-net has just run and the
    // rules are being written (nft runs on when berth dies), the records not yet committed. The
    // last kill on each network is one of those: no later attach rewrites that network's rules.
    const points: (number | 'veth')[] = [0, 150, 250, 350, 450, 600, 'veth', 'veth', 'veth', 'veth'];
    for (const [i, point] of points.entries()) {
      const net = i % 2 === 0 ? 'bridge' : 'crash';
      const port = 20000 + Math.floor(Math.random() * 20000);
      portsUsed.push(port);
      const before = new Set(bridges.flatMap(bridgePorts));
      const child = spawn(process.execPath, [BERTH_BIN, 'run', '-d', '--name', `k${i}`, '--network', net, '-p', `127.0.0.1:${port}:80`, 'busybox', 'sleep', '600'], { env: e.env, stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      let done = false;
      void exited.then(() => (done = true));
      if (point === 'veth') {
        // Polled without yielding to timers for long: the veth appears ~30 ms before the run ends.
        while (!done && !bridges.flatMap(bridgePorts).some((p) => !before.has(p))) await new Promise((r) => setImmediate(r));
      } else {
        await new Promise((r) => setTimeout(r, point));
      }
      child.kill('SIGKILL');
      await exited;
    }
    // Last, an attach with a port on a network of its own (in use: its bridge and rules exist),
    // killed as its rules are written: no other container's port on it makes a later attach or
    // removal rewrite them; the sweep must.
    assert.equal((await e.berth(['network', 'create', 'solo'])).code, 0);
    bridges.push(records(e).networks.find((n) => n.name === 'solo')!.bridge);
    assert.equal((await e.berth(['run', '-d', '--name', 'solo0', '--network', 'solo', 'busybox', 'sleep', '600'])).code, 0);
    {
      const port = 20000 + Math.floor(Math.random() * 20000);
      portsUsed.push(port);
      const child = spawn(process.execPath, [BERTH_BIN, 'run', '-d', '--name', 'solo', '--network', 'solo', '-p', `127.0.0.1:${port}:80`, 'busybox', 'sleep', '600'], { env: e.env, stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      let done = false;
      void exited.then(() => (done = true));
      while (!done && bridgePorts(bridges[2]!).length < 2) await new Promise((r) => setImmediate(r));
      child.kill('SIGKILL');
      await exited;
    }
    // The next command sweeps: what belongs to no container is gone, and what is left belongs
    // to a container `ps -a` lists (a killed run may leave its container, as docker's would).
    const ps = await e.berth(['ps', '-aq', '--no-trunc']);
    assert.equal(ps.code, 0, ps.stderr);
    const listed = new Set(ps.stdout.split('\n').filter(Boolean));
    const rec = records(e);
    for (const ep of rec.endpoints) assert.ok(listed.has(ep.container), `address ${ep.ip} belongs to container ${ep.container}, which ps -a lists`);
    for (const p of rec.ports) assert.ok(listed.has(p.container), `port ${p.hostPort} belongs to a listed container`);
    const known = new Set(rec.endpoints.map((ep) => ep.veth));
    for (const v of bridges.flatMap(bridgePorts)) assert.ok(known.has(v), `veth ${v} on a bridge has a record`);
    // A run after the crashes works, with its network.
    const r = await e.berth(['run', '--rm', '--network', 'crash', 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`inet ${crash.subnet.replace(/\.0\/\d+$/, '').replaceAll('.', '\\.')}\\.\\d+/24`));

    if (listed.size) assert.equal((await e.berth(['rm', '-f', ...listed])).code, 0);
    assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
    const end = records(e);
    assert.deepEqual(end.endpoints, [], 'no address left in the allocator');
    assert.deepEqual(end.ports, [], 'no port left in the allocator');
    await until('the veths to go', () => bridges.flatMap(bridgePorts).length === 0, 20_000);
    const rules = ruleset();
    for (const p of portsUsed) assert.doesNotMatch(rules, new RegExp(`dport ${p} dnat to`), `no DNAT rule for port ${p}`);
    await until('the name server to stop', () => processesWith(e.root, 'berth-dns').length === 0);
    assert.deepEqual(processesWith(e.root, 'berth-monitor'), []);
    assert.equal((await e.berth(['network', 'rm', 'crash', 'solo'])).code, 0);
    // The markers (ROOT/network/attached) say what the records say: nothing is attached.
    assert.deepEqual(readdirSync(join(e.root, 'network', 'attached')).filter((n) => n.includes('@')), []);
  });
});
