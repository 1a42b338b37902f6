/**
 * The markers of attached containers (ROOT/network/attached): every command's sweep reads them
 * instead of opening the network database, so they must say when there is something to clean
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

describe('network markers: the sweep opens the database only when there is work', { skip: skipUnless(root('networks need root'), peer('ip', 'iproute2'), peer('nft', 'nftables'), peer('unshare', 'util-linux')) }, () => {
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

  it('says nothing to do without a database, and after a cleanup while holders live', async () => {
    assert.equal(cleanupNeededFor(dir), false, 'no database: no network was ever used');
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

  it('a detach removes the marker; a container without one is detached without the database', async () => {
    const h = await holder();
    try {
      attachContainer({ ...ref, id: 'c2', name: 'c2', netnsPath: `/proc/${h.pid}/ns/net` });
      assert.equal(readdirSync(markersDir(net)).filter((n) => n.startsWith('c2@')).length, 1);
      detachContainer('c2', ref);
      assert.deepEqual(readdirSync(markersDir(net)).filter((n) => n.startsWith('c2@')), []);
      assert.equal(cleanupNeededFor(dir), false);
      // No marker, trusted directory: returns before opening the database (which would make a new one).
      NetworkStore.closeShared();
      const db = join(net, 'network.db');
      renameSync(db, `${db}.away`);
      try {
        detachContainer('never-attached', ref);
        assert.equal(existsSync(db), false, 'the database was not opened');
      } finally {
        renameSync(`${db}.away`, db);
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
});
