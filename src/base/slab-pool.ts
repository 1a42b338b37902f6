/**
 * Receive buffers that are reused once their bytes have been consumed. Blob downloads
 * (client/raw-get.ts) read sockets into 1 MiB slabs and hand the bytes on as views of them;
 * fresh slabs for every MiB cost a page fault per 4 KiB (13% of berth's CPU on a 192 MB pull,
 * plus the garbage collector's work to free them). A slab goes back to the free list when its
 * producer has moved on from it (`retireSlab`) and every byte handed on from it has been
 * released (`releaseChunk`) by the one consumer that owns those bytes: the layout's blob
 * writer, once they are on disk, when copy() tells it the stream is its alone
 * (PushOptions.releaseChunks). Bytes never released leave their slab to the garbage
 * collector, as any Buffer.
 */

export const SLAB_BYTES = 1 << 20;
/** Free slabs kept for reuse; more are left to the garbage collector. */
const MAX_FREE_SLABS = 32;
/** Free slabs are dropped once none has been released for this long (a process that goes on
 * after a pull, as `berth run` does, does not keep them). */
export const IDLE_TRIM_MS = 1000;

interface SlabState {
  slab: Buffer;
  /** Bytes handed on and not yet released. */
  outstanding: number;
  /** The producer reads no more into this slab. */
  retired: boolean;
}

const states = new WeakMap<ArrayBufferLike, SlabState>();
const free: Buffer[] = [];
let trimTimer: NodeJS.Timeout | undefined;

/** A slab to read into: a released one when there is one (its pages are already mapped). */
export function takeSlab(): Buffer {
  const slab = free.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
  states.set(slab.buffer, { slab, outstanding: 0, retired: false });
  return slab;
}

/** Records that `bytes` of `slab` were handed on to a consumer. */
export function handedOn(slab: Buffer, bytes: number): void {
  const state = states.get(slab.buffer);
  if (state) state.outstanding += bytes;
}

/** The producer reads no more into `slab`; it is reused once its bytes are all released. */
export function retireSlab(slab: Buffer): void {
  const state = states.get(slab.buffer);
  if (!state || state.retired) return;
  state.retired = true;
  recycleIfDone(state);
}

/**
 * The consumer is done with `chunk` (a view of a slab, or a piece of one): its memory may be
 * overwritten from now on. Chunks that are not from a slab are ignored.
 */
export function releaseChunk(chunk: Buffer): void {
  const state = states.get(chunk.buffer);
  if (!state) return;
  state.outstanding -= chunk.length;
  recycleIfDone(state);
}

function recycleIfDone(state: SlabState): void {
  if (!state.retired || state.outstanding > 0) return;
  states.delete(state.slab.buffer);
  if (state.outstanding === 0 && free.length < MAX_FREE_SLABS) {
    free.push(state.slab);
    if (trimTimer) trimTimer.refresh();
    else {
      trimTimer = setTimeout(() => {
        free.length = 0;
        trimTimer = undefined;
      }, IDLE_TRIM_MS);
      trimTimer.unref();
    }
  }
}

/** Free slabs waiting for reuse (for tests). */
export function freeSlabCount(): number {
  return free.length;
}
