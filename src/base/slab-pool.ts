/**
 * Receive buffers that are reused once their bytes have been consumed. Blob downloads
 * (client/raw-get.ts) read sockets into 1 MiB slabs and hand the bytes on as views of them;
 * fresh slabs for every MiB cost a page fault per 4 KiB (bench/README.md: "slab pool"). A slab
 * goes back to the pool when its producer has given it back (`Slab.retire`) and every byte handed
 * on from it has been released (`releaseChunk`) by the one consumer that owns those bytes: the
 * layout's blob writer, once they are on disk, when copy() tells it the stream is its alone
 * (PushOptions.releaseChunks). Bytes never released leave their slab to the garbage collector,
 * as any Buffer.
 *
 * Nothing can read a slab after it is given back: the producer reaches its memory only through
 * `Slab.bytes`, which throws once it has retired the slab; and before the memory is reused, its
 * ArrayBuffer is detached (transferred to a new one, no copy), so every view of it that anybody
 * kept (a chunk released too early, a copy of a reference) is empty from then on: reading it
 * throws ERR_BUFFER_OUT_OF_BOUNDS or gives no bytes, never those of a later download.
 */
import { BerthError } from './errors.js';

export const SLAB_BYTES = 1 << 20;
/** Free slabs kept for reuse; more are left to the garbage collector. */
const MAX_FREE_SLABS = 32;
/** Free slabs are dropped once none has been released for this long (a process that goes on
 * after a pull, as `berth run` does, does not keep them). */
export const IDLE_TRIM_MS = 1000;

/** A receive buffer from the pool, owned by the one producer that took it until it retires it. */
export class Slab {
  #bytes: Buffer | undefined;
  /** Bytes handed on and not yet released. */
  #outstanding = 0;
  #retired = false;

  constructor(memory: ArrayBuffer) {
    this.#bytes = Buffer.from(memory);
    slabs.set(memory, this);
  }

  /** The slab's memory, for the producer that took it: throws once it has been retired. */
  get bytes(): Buffer {
    if (this.#retired || !this.#bytes) {
      throw new BerthError('INTERNAL', 'a receive slab was used after it was given back to the pool (a bug in berth: please report it)');
    }
    return this.#bytes;
  }

  /** Hands on bytes [start, end) to a consumer: a view of the slab, released with releaseChunk(). */
  handOn(start: number, end: number): Buffer {
    const chunk = this.bytes.subarray(start, end);
    this.#outstanding += chunk.length;
    return chunk;
  }

  /** The producer reads no more into this slab (nor uses `bytes`); it is reused once its bytes are all released. */
  retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    this.#recycleIfDone();
  }

  /** @internal releaseChunk's half: `bytes` of a handed-on chunk came back. */
  released(bytes: number): void {
    this.#outstanding -= bytes;
    this.#recycleIfDone();
  }

  #recycleIfDone(): void {
    const bytes = this.#bytes;
    if (!this.#retired || this.#outstanding > 0 || !bytes) return;
    this.#bytes = undefined;
    const memory = bytes.buffer as ArrayBuffer;
    slabs.delete(memory);
    // More released than was handed on: a consumer released a chunk twice; the slab is not
    // trusted again (its memory goes to the garbage collector).
    if (this.#outstanding < 0 || free.length >= MAX_FREE_SLABS) return;
    // Detach every view of the old ArrayBuffer: the memory lives on in `moved` only.
    const moved = structuredClone(memory, { transfer: [memory] });
    free.push(moved);
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

const slabs = new WeakMap<ArrayBufferLike, Slab>();
const free: ArrayBuffer[] = [];
let trimTimer: NodeJS.Timeout | undefined;

/** A slab to read into: a released one when there is one (its pages are already mapped). */
export function takeSlab(): Slab {
  return new Slab(free.pop() ?? (Buffer.allocUnsafeSlow(SLAB_BYTES).buffer as ArrayBuffer));
}

/**
 * The consumer is done with `chunk` (a view of a slab, or a piece of one): its memory may be
 * overwritten from now on, and every view of it goes empty when it is. Chunks that are not from
 * a slab are ignored.
 */
export function releaseChunk(chunk: Buffer): void {
  slabs.get(chunk.buffer)?.released(chunk.length);
}

/** Free slabs waiting for reuse (for tests). */
export function freeSlabCount(): number {
  return free.length;
}
