/**
 * Shared state under load and after crashes: 50 `berth run -d` at once with `ps` and `rm`
 * beside them lose nothing; `kill -9` of berth during a create leaves a store where the next
 * command works and cleans up.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { BERTH_BIN } from '../helpers/run-berth.js';

const needs = skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'));

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir + '/'));
}

function monitorsOf(rootDir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes('berth-monitor') && cmd.includes(rootDir)) out.push(Number(p));
    } catch { /* gone */ }
  }
  return out;
}

describe('concurrent berth commands', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => { e = await engineRoot(); });
  after(async () => { await e.close(); });

  it('50 run -d at once, with ps and rm beside them: none lost, all removed', { timeout: 600_000 }, async () => {
    // A container to remove while the others are created.
    const victim = (await e.berth(['run', '-d', '--name', 'victim', 'busybox', 'sleep', '600'])).stdout.trim();
    const runs = Array.from({ length: 50 }, (_, i) => e.berth(['run', '-d', '--name', `c${i}`, 'busybox', 'sleep', '600']));
    const side = [e.berth(['ps', '-a']), e.berth(['rm', '-f', 'victim']), e.berth(['ps', '-q'])];
    const results = await Promise.all(runs);
    const sideResults = await Promise.all(side);
    for (const [i, r] of results.entries()) assert.equal(r.code, 0, `run ${i}: ${r.stderr}`);
    for (const r of sideResults) assert.equal(r.code, 0, r.stderr);
    const ids = new Set(results.map((r) => r.stdout.trim()));
    assert.equal(ids.size, 50);
    const ps = JSON.parse((await e.berth(['ps', '--format', 'json'])).stdout) as { Id: string; Names: string[]; State: string }[];
    assert.deepEqual(new Set(ps.map((c) => c.Id)), ids);
    assert.ok(ps.every((c) => c.State === 'running'));
    assert.deepEqual(new Set(ps.map((c) => c.Names[0])), new Set(Array.from({ length: 50 }, (_, i) => `c${i}`)));
    assert.ok(!ps.some((c) => c.Id === victim));

    // rm -f in five concurrent batches.
    const all = [...ids];
    const rms = await Promise.all([0, 1, 2, 3, 4].map((k) => e.berth(['rm', '-f', ...all.slice(k * 10, k * 10 + 10)])));
    for (const r of rms) assert.equal(r.code, 0, r.stderr);
    assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
    assert.deepEqual(readdirSync(`${e.root}/containers`).filter((n) => n !== 'names'), []);
    assert.deepEqual(readdirSync(`${e.root}/containers/names`), []);
    assert.deepEqual(mountsUnder(e.root).filter((m) => m.includes('/containers/')), []);
    for (let i = 0; i < 100 && monitorsOf(e.root).length; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(monitorsOf(e.root), []);
  });

  it('kill -9 of berth at any moment of a create leaves a store the next command repairs', { timeout: 300_000 }, async () => {
    for (const delay of [30, 80, 130, 180, 250, 350, 500]) {
      const child = spawn(process.execPath, [BERTH_BIN, 'run', '-d', '--name', `k${delay}`, 'busybox', 'sleep', '600'], { env: e.env, stdio: 'ignore' });
      // Listened for before the delay: a run that finishes before its kill (light load) exits early.
      const exited = new Promise((r) => child.once('exit', r));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await exited;
    }
    // The next commands work: a run, a listing, then removal of whatever is left.
    const r = await e.berth(['run', '--rm', 'busybox', 'echo', 'works']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'works\n');
    const left = (await e.berth(['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
    if (left.length) assert.equal((await e.berth(['rm', '-f', ...left])).code, 0);
    // A name of a killed create is free again.
    const again = await e.berth(['run', '--rm', '--name', 'k30', 'busybox', 'true']);
    assert.equal(again.code, 0, again.stderr);
    await e.berth(['ps', '-a']); // sweeps
    assert.deepEqual(readdirSync(`${e.root}/containers`).filter((n) => n !== 'names'), []);
    assert.deepEqual(readdirSync(`${e.root}/containers/names`), []);
    assert.deepEqual(mountsUnder(e.root).filter((m) => m.includes('/containers/')), []);
    for (let i = 0; i < 100 && monitorsOf(e.root).length; i++) await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(monitorsOf(e.root), []);
  });
});
