/**
 * The lock that serialises read-modify-write of a layout's index.json between processes
 * (image/layout-lock.ts): a lock whose owner died is taken over, and processes that take and
 * release it quickly, some finding stale locks, never hold it together.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { withLock } from '../../src/image/layout-lock.js';

const LOCK_MODULE = new URL('../../src/image/layout-lock.js', import.meta.url).href;

describe('layout lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-lock-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes over a lock whose owner is gone, and leaves no file behind', async () => {
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const lock = join(dir, 'stale.lock');
    writeFileSync(lock, gone.stdout);
    assert.equal(await withLock(lock, async () => 'ran', 5000), 'ran');
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('stale')), []);
  });

  it('is held by one process at a time: 8 processes x 25 increments lose none, with dead owners\' locks in between', async () => {
    const lock = join(dir, 'count.lock');
    const counter = join(dir, 'count');
    writeFileSync(counter, '0');
    // Each process increments 25 times; every fifth time it leaves the lock behind with a pid
    // that is gone (as a killed berth would), which the next taker must take over safely.
    const script = `
      const { withLock } = await import(${JSON.stringify(LOCK_MODULE)});
      const fs = await import('node:fs');
      const dead = Number(process.argv[1]);
      for (let i = 0; i < 25; i++) {
        await withLock(${JSON.stringify(lock)}, async () => {
          const n = Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8'));
          await new Promise((r) => setImmediate(r));
          fs.writeFileSync(${JSON.stringify(counter)}, String(n + 1));
        }, 300000); // (200 hand-overs among 8 waiters polling: slow on a loaded machine, never wrong)
        if (i % 5 === 4) { try { fs.writeFileSync(${JSON.stringify(lock)}, String(dead), { flag: 'wx' }); } catch {} }
      }`;
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    const codes = await Promise.all(Array.from({ length: 8 }, () => new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, dead], { stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('exit', (code) => resolve(code));
    })));
    assert.deepEqual(codes, Array(8).fill(0));
    assert.equal(readFileSync(counter, 'utf8'), '200');
  });
});
