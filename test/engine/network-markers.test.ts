/**
 * The markers of attached containers (ROOT/network/attached): every command's sweep reads them
 * instead of reading the network records, so they must say when there is something to clean
 * (a namespace holder gone, an attach killed mid-way, a reboot) and nothing otherwise.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { attachContainer, cleanupLeftovers, cleanupNeededFor, detachContainer, removeDefaultBridge, type StoreRef } from '../../src/engine/network/index.js';
import { markersDir } from '../../src/engine/network/markers.js';
import { NetworkStore } from '../../src/engine/network/store.js';
import { randomSubnet24, runTag } from '../helpers/netns.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

/** A process in a network namespace of its own (the holder a container's init is). */
async function holder(): Promise<ChildProcess> {
  const child = spawn('unshare', ['-n', 'sleep', '600'], { stdio: 'ignore' });
  const mine = readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 200; i++) {
    try {
      if (readlinkSync(`/proc/${child.pid}/ns/net`) !== mine) return child;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('unshare -n did not start');
}

async function killed(child: ChildProcess): Promise<void> {
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

describe('network markers: the sweep reads the records only when there is work', { skip: skipUnless(root('networks need root'), peer('ip', 'iproute2'), peer('nft', 'nftables'), peer('unshare', 'util-linux')) }, () => {
  let dir: string;
  let ref: StoreRef;
  let net: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-markers-'));
    ref = { root: dir, defaults: { defaultName: 'bridge', defaultBridge: `${runTag()}0`, defaultSubnet: randomSubnet24(), userPool: '10.208.0.0/16' } };
    net = join(dir, 'network');
  });
  after(() => {
    cleanupLeftovers([], ref);
    removeDefaultBridge(ref);
    NetworkStore.closeShared();
    rmSync(dir, { recursive: true, force: true });
  });

  it('says nothing to do before any network use, and after a cleanup while holders live', async () => {
    assert.equal(cleanupNeededFor(dir), false, 'no ROOT/network: no network was ever used');
    const h = await holder();
    try {
      attachContainer({ ...ref, id: 'c1', name: 'c1', netnsPath: `/proc/${h.pid}/ns/net` });
      assert.deepEqual(readdirSync(markersDir(net)).filter((n) => n.startsWith('c1@')).map((n) => n.replace(/\d+$/, 'START')), [`c1@${h.pid}.START`], 'the marker names the holder');
      assert.equal(cleanupNeededFor(dir), true, 'markers not yet validated by a cleanup in this boot');
      cleanupLeftovers(['c1'], ref);
      assert.equal(cleanupNeededFor(dir), false, 'the holder lives: nothing to clean');
      await killed(h);
      assert.equal(cleanupNeededFor(dir), true, 'the holder died: its endpoint is to be released');
      assert.deepEqual(cleanupLeftovers([], ref), ['c1']);
      assert.deepEqual(readdirSync(markersDir(net)).filter((n) => n.startsWith('c1@')), []);
      assert.equal(cleanupNeededFor(dir), false);
    } finally {
      if (h.exitCode === null && h.signalCode === null) await killed(h);
    }
  });

  it('a detach removes the marker; a container without one is detached without the records', async () => {
    const h = await holder();
    try {
      attachContainer({ ...ref, id: 'c2', name: 'c2', netnsPath: `/proc/${h.pid}/ns/net` });
      assert.equal(readdirSync(markersDir(net)).filter((n) => n.startsWith('c2@')).length, 1);
      detachContainer('c2', ref);
      assert.deepEqual(readdirSync(markersDir(net)).filter((n) => n.startsWith('c2@')), []);
      assert.equal(cleanupNeededFor(dir), false);
      // No marker, trusted directory: returns before reading the records (or taking their lock).
      NetworkStore.closeShared();
      const recs = join(net, 'networks');
      renameSync(recs, `${recs}.away`);
      try {
        detachContainer('never-attached', ref);
        assert.equal(existsSync(recs), false, 'the records were not read (the default network was not recorded again)');
      } finally {
        renameSync(`${recs}.away`, recs);
      }
    } finally {
      await killed(h);
    }
  });

  it('an attach killed mid-way (a pending marker of a dead berth) and a reboot call for a cleanup', () => {
    writeFileSync(join(markersDir(net), 'c3@pending.999999999.1'), '');
    assert.equal(cleanupNeededFor(dir), true);
    cleanupLeftovers([], ref);
    assert.deepEqual(readdirSync(markersDir(net)).filter((n) => n.startsWith('c3@')), [], 'no records: the marker goes');
    assert.equal(cleanupNeededFor(dir), false);
    writeFileSync(join(markersDir(net), '.boot'), 'another boot\n');
    assert.equal(cleanupNeededFor(dir), true, 'after a reboot every namespace is gone');
    cleanupLeftovers([], ref);
    assert.equal(cleanupNeededFor(dir), false);
  });
  it('a marker without a holder whose container no longer exists calls for a cleanup, which removes it', () => {
    const store = NetworkStore.cached(dir, ref.defaults!);
    const net0 = store.requireNetwork('bridge');
    // An endpoint recorded for a namespace with no holder process (a /run/netns path), then its container went away.
    store.tx(() => store.allocate(net0, { container: 'gone1', name: 'gone1', aliases: [], iface: 'eth0', veth: 'vb0000000000aa', hostsPath: null, hostsExtra: [], hostname: 'gone1' }));
    writeFileSync(join(markersDir(net), 'gone1@0.0'), '');
    assert.equal(cleanupNeededFor(dir), false, 'without knowing which containers exist, a marker without a holder is no work');
    assert.equal(cleanupNeededFor(dir, (id) => id !== 'gone1'), true, 'its container is gone: work');
    assert.equal(cleanupNeededFor(dir, () => true), false, 'its container exists: no work');
    assert.deepEqual(cleanupLeftovers([], ref), ['gone1']);
    assert.deepEqual(readdirSync(markersDir(net)).filter((n) => n.startsWith('gone1@')), []);
    assert.equal(store.endpoints('bridge').some((e) => e.container === 'gone1'), false, 'its address is free again');
  });

  it('a sweep while a container attaches again (restart) keeps its endpoint, though its record is not running yet', async () => {
    const h = await holder();
    try {
      attachContainer({ ...ref, id: 'r1', name: 'r1', netnsPath: `/proc/${h.pid}/ns/net` });
      const ip = NetworkStore.cached(dir, ref.defaults!).endpoint('r1', 'bridge')?.ip;
      assert.ok(ip);
      // The engine's live list leaves r1 out (its state still says exited); its holder lives.
      assert.deepEqual(cleanupLeftovers([], ref), []);
      assert.equal(NetworkStore.cached(dir, ref.defaults!).endpoint('r1', 'bridge')?.ip, ip, 'the endpoint and its address stay');
      const h2 = await holder();
      try {
        attachContainer({ ...ref, id: 'r2', name: 'r2', netnsPath: `/proc/${h2.pid}/ns/net` });
        assert.notEqual(NetworkStore.cached(dir, ref.defaults!).endpoint('r2', 'bridge')?.ip, ip, 'the address is not given to another container');
        detachContainer('r2', ref);
      } finally {
        await killed(h2);
      }
      detachContainer('r1', ref);
    } finally {
      await killed(h);
    }
  });

  it('an attach killed after its records were made is undone by the sweep, even for a container the engine lists as live', () => {
    const store = NetworkStore.cached(dir, ref.defaults!);
    const net0 = store.requireNetwork('bridge');
    store.tx(() => store.allocate(net0, { container: 'k1', name: 'k1', aliases: [], iface: 'eth0', veth: 'vb0000000000bb', hostsPath: null, hostsExtra: [], hostname: 'k1' }));
    writeFileSync(join(markersDir(net), 'k1@pending.999999999.1'), '');
    // What a process killed while writing records leaves: temp files named after it.
    writeFileSync(join(net, 'endpoints', 'bridge', '.tmp-999999999'), '{');
    writeFileSync(join(net, 'lock.999999999'), '999999999 1\n');
    assert.equal(cleanupNeededFor(dir), true);
    assert.deepEqual(cleanupLeftovers(['k1'], ref), ['k1']);
    assert.equal(existsSync(join(net, 'endpoints', 'bridge', '.tmp-999999999')), false, 'a dead writer\'s temp file goes');
    assert.equal(existsSync(join(net, 'lock.999999999')), false);
    assert.equal(store.endpoint('k1', 'bridge'), undefined);
    assert.deepEqual(readdirSync(markersDir(net)).filter((n) => n.startsWith('k1@')), []);
  });
});
