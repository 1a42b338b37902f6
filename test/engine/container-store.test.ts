/**
 * ContainerStore's sweep of reservations (`.new-` directories) a killed create left: with the
 * `creating` marker, or killed before it was written, by the owner its name carries. No root
 * needed: plain files in a temp dir.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ContainerStore } from '../../src/engine/containers/store.js';
import { procStat } from '../../src/runtime/state.js';

describe('container store: reservations of killed creates', () => {
  const root = mkdtempSync(join(tmpdir(), 'berth-cstore-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('removes one whose owner (marker or name) is gone, keeps a live owner\'s, waits a minute for an anonymous one', () => {
    const store = new ContainerStore(root);
    const { id, dir } = store.reserve(undefined);
    assert.ok(existsSync(join(dir, 'creating')));
    const hex = (c: string) => c.repeat(64);
    // A process that has exited: its pid and start time name no live process any more.
    const dead = spawnSync('true').pid!;
    const me = `${process.pid}.${procStat(process.pid)!.startTime}`;
    const made = {
      deadByName: `.new-${hex('a')}.${dead}.1`,
      liveByName: `.new-${hex('b')}.${me}`,
      deadByMarker: `.new-${hex('c')}`,
      anonymousFresh: `.new-${hex('d')}`,
      anonymousOld: `.new-${hex('e')}`,
    };
    for (const n of Object.values(made)) mkdirSync(join(store.dir, n));
    writeFileSync(join(store.dir, made.deadByMarker, 'creating'), `${dead} 1\n`);
    const old = Date.now() / 1000 - 120;
    utimesSync(join(store.dir, made.anonymousOld), old, old);
    store.sweep();
    const left = readdirSync(store.dir).filter((n) => n.startsWith('.new-')).sort();
    assert.deepEqual(left, [made.liveByName, made.anonymousFresh].sort());
    // The live reservation of this process is untouched.
    assert.ok(existsSync(join(store.dir, id, 'creating')));
    store.discard(id);
  });
});
