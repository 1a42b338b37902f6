/** The shared, bounded pool of S3 part buffers (storage/part-pool.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PartPool } from '../../src/registry/storage/part-pool.js';

describe('PartPool', () => {
  it('lends at most max buffers at once, makes the next taker wait for one given back, and reuses it', async () => {
    const pool = new PartPool(1024, 2, 1);
    const a = await pool.take(1024);
    const b = await pool.take(100);
    assert.equal(a.length, 1024);
    assert.equal(pool.inUse, 2);
    let third: Buffer | undefined;
    const waiting = pool.take(1024).then((buf) => (third = buf));
    await new Promise((r) => setImmediate(r));
    assert.equal(third, undefined, 'the third taker waits while two are lent');
    pool.give(a);
    await waiting;
    assert.equal(third, a, 'the buffer given back goes to the waiting taker');
    pool.give(b);
    pool.give(third!);
    assert.equal(pool.inUse, 0);
    const big = await pool.take(4096);
    assert.equal(big.length, 4096, 'a larger part gets a buffer of its own');
    assert.equal(pool.inUse, 0, 'outside the bound');
    pool.give(big);
    assert.equal(pool.inUse, 0);
  });
});
