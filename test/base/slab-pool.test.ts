/**
 * The slab pool: a slab is reused only once its producer has retired it and every byte handed
 * on from it has been released, however the consumer split the chunks; chunks from elsewhere
 * are ignored; free slabs are dropped once the pool has been idle for a while; and nothing can
 * read a slab's memory after it was given back.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IDLE_TRIM_MS, SLAB_BYTES, freeSlabCount, releaseChunk, takeSlab } from '../../src/base/slab-pool.js';
import { isBerthError } from '../../src/base/errors.js';

describe('slab pool', () => {
  it('reuses a slab only after it is retired and all its bytes are released', () => {
    const slab = takeSlab();
    assert.equal(slab.bytes.length, SLAB_BYTES);
    const memory = slab.bytes.buffer;
    const a = slab.handOn(0, 1000);
    const b = slab.handOn(1000, 5000);
    const free0 = freeSlabCount();
    releaseChunk(a);
    slab.retire();
    assert.equal(freeSlabCount(), free0, 'reused while 4000 bytes were still out');
    // The consumer split b in two pieces: both must come back.
    releaseChunk(b.subarray(0, 10));
    assert.equal(freeSlabCount(), free0);
    releaseChunk(b.subarray(10));
    assert.equal(freeSlabCount(), free0 + 1);
    const again = takeSlab();
    assert.equal(again.bytes.length, SLAB_BYTES);
    assert.notEqual(again.bytes.buffer, memory, 'the old ArrayBuffer (and its views) must not be handed out again');
    assert.equal(freeSlabCount(), free0, 'the released slab is taken again');
    again.retire();
  });

  it('keeps a slab the producer still reads into, and ignores foreign chunks', () => {
    const slab = takeSlab();
    const chunk = slab.handOn(0, 64);
    const free0 = freeSlabCount();
    releaseChunk(chunk);
    assert.equal(freeSlabCount(), free0, 'reused before the producer retired it');
    releaseChunk(Buffer.alloc(64));
    slab.retire();
    assert.equal(freeSlabCount(), free0 + 1);
    // Retiring twice or releasing after reuse changes nothing.
    slab.retire();
    releaseChunk(chunk);
    assert.equal(freeSlabCount(), free0 + 1);
  });

  it('refuses the producer its slab once retired', () => {
    const slab = takeSlab();
    const chunk = slab.handOn(0, 16);
    slab.retire();
    assert.throws(() => slab.bytes, (err) => isBerthError(err, 'INTERNAL') && /after it was given back/.test(err.message));
    assert.throws(() => slab.handOn(16, 32), (err) => isBerthError(err, 'INTERNAL'));
    // Not yet reused (16 bytes are out): the consumer's chunk still holds its bytes.
    assert.equal(chunk.length, 16);
    releaseChunk(chunk);
  });

  it('empties every view of a slab before its memory is reused: reading one throws', () => {
    const slab = takeSlab();
    slab.bytes.fill(7, 0, 100);
    const chunk = slab.handOn(0, 100);
    const kept = chunk.subarray(10, 20); // a reference someone kept past the release
    assert.equal(kept.readUInt8(0), 7);
    releaseChunk(chunk);
    slab.retire();
    const next = takeSlab(); // the same memory, for a later download
    next.bytes.fill(9, 0, 100);
    assert.equal(kept.length, 0, 'a released view still sees memory');
    assert.equal(chunk.length, 0);
    assert.throws(() => kept.readUInt8(0), { code: 'ERR_BUFFER_OUT_OF_BOUNDS' });
    assert.throws(() => chunk.readUInt32BE(0), { code: 'ERR_BUFFER_OUT_OF_BOUNDS' });
    assert.throws(() => Buffer.concat([chunk, kept]), TypeError);
    next.retire();
  });

  it('empties, never overwrites, a chunk still in use when another was released twice', () => {
    const slab = takeSlab();
    const a = slab.handOn(0, 10);
    const b = slab.handOn(10, 20);
    b.fill(3);
    slab.retire();
    releaseChunk(a);
    releaseChunk(a); // a consumer bug: the count says all is back, but b is still in use
    const next = takeSlab();
    next.bytes.fill(9);
    assert.equal(b.length, 0, 'b sees the memory of the next download');
    assert.throws(() => b.readUInt8(0), { code: 'ERR_BUFFER_OUT_OF_BOUNDS' });
    next.retire();
  });

  it('drops the free slabs once none has been released for a while', async () => {
    const slab = takeSlab();
    slab.retire();
    assert.ok(freeSlabCount() > 0);
    await new Promise((r) => setTimeout(r, IDLE_TRIM_MS + 200));
    assert.equal(freeSlabCount(), 0);
  });
});
