/**
 * The slab pool: a slab is reused only once its producer has retired it and every byte handed
 * on from it has been released, however the consumer split the chunks; chunks from elsewhere
 * are ignored; free slabs are dropped once the pool has been idle for a while.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IDLE_TRIM_MS, SLAB_BYTES, freeSlabCount, handedOn, releaseChunk, retireSlab, takeSlab } from '../../src/base/slab-pool.js';

describe('slab pool', () => {
  it('reuses a slab only after it is retired and all its bytes are released', () => {
    const slab = takeSlab();
    assert.equal(slab.length, SLAB_BYTES);
    const a = slab.subarray(0, 1000);
    const b = slab.subarray(1000, 5000);
    handedOn(slab, a.length);
    handedOn(slab, b.length);
    const free0 = freeSlabCount();
    releaseChunk(a);
    retireSlab(slab);
    assert.equal(freeSlabCount(), free0, 'reused while 4000 bytes were still out');
    // The consumer split b in two pieces: both must come back.
    releaseChunk(b.subarray(0, 10));
    assert.equal(freeSlabCount(), free0);
    releaseChunk(b.subarray(10));
    assert.equal(freeSlabCount(), free0 + 1);
    assert.equal(takeSlab(), slab, 'the released slab is taken again');
  });

  it('keeps a slab the producer still reads into, and ignores foreign chunks', () => {
    const slab = takeSlab();
    const chunk = slab.subarray(0, 64);
    handedOn(slab, chunk.length);
    const free0 = freeSlabCount();
    releaseChunk(chunk);
    assert.equal(freeSlabCount(), free0, 'reused before the producer retired it');
    releaseChunk(Buffer.alloc(64));
    retireSlab(slab);
    assert.equal(freeSlabCount(), free0 + 1);
    // Retiring twice or releasing after reuse changes nothing.
    retireSlab(slab);
    assert.equal(freeSlabCount(), free0 + 1);
  });

  it('drops the free slabs once none has been released for a while', async () => {
    const slab = takeSlab();
    retireSlab(slab);
    assert.ok(freeSlabCount() > 0);
    await new Promise((r) => setTimeout(r, IDLE_TRIM_MS + 200));
    assert.equal(freeSlabCount(), 0);
  });
});
