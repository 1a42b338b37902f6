/**
 * Applying layer blobs in worker threads (unpack-worker.ts), so that the layers of one image,
 * each going into its own directory, unpack on every core: the decompression, the digests and
 * the file writes (synchronous syscalls, most of the time of an unpack) of those layers leave
 * the main thread, which reads their blobs (a download or a stored file) and hands the bytes over.
 *
 * The calling thread is one of the unpackers: it applies one big blob at a time itself, and the
 * others go to a small pool of workers, one per other idle core (unpackWorkers below;
 * BERTH_UNPACK_THREADS sets how many; with none, every blob is applied on the calling thread, all
 * at once, as before the pool), started on first use, each applying one blob at a time. A waiting
 * blob goes to whichever unpacker is free first. An idle worker does not keep the process alive
 * and ends after IDLE_MS. A blob under WORKER_MIN_BYTES is applied on the calling thread at once:
 * a worker's start-up (85-130 ms of CPU here, bundled or not) and a turn in the queue cost more
 * than it.
 */
import { availableParallelism, loadavg } from 'node:os';
import type { Readable } from 'node:stream';
import { MessageChannel, Worker } from 'node:worker_threads';
import { BerthError } from '../base/errors.js';
import { applyTarStream, type ApplyResult } from './apply.js';
import { verifiedTar, type BlobDescriptor } from './decompress.js';
import { errorFromWire, resultFromWire, type FeedMessage, type JobMessage, type ReplyMessage, type WireResult, type WorkerApplyOptions } from './unpack-wire.js';
import { diskUsage } from './walk.js';

declare const BERTH_BUILD_ID: string | undefined;

/** Compressed blobs smaller than this are applied on the calling thread. */
export const WORKER_MIN_BYTES = 1 << 20;
/** The most bytes handed to a worker in one message. */
const FEED_BATCH = 256 << 10;
/** An idle worker ends after this long. */
const IDLE_MS = 5000;

export interface BlobApplyOptions {
  apply?: WorkerApplyOptions;
  /** Also measure the unpacked tree (walk.ts diskUsage), in the worker. */
  usage?: boolean;
  /** 'any' (default): as described above; 'worker': in a worker thread whatever its size; 'caller': on this thread at once. */
  thread?: 'any' | 'worker' | 'caller';
}

export interface BlobApplyResult {
  result: ApplyResult;
  usage?: { bytes: number; entries: number };
  /** Whether a worker thread applied it. */
  inWorker: boolean;
}

/**
 * The most worker threads: BERTH_UNPACK_THREADS, else one per core that is idle (by the 1-minute
 * load average) but the calling thread's. A worker only pays where a core would otherwise idle:
 * on this 2-core machine under load 6-10 (bench/README.md, engine-pull), workers cost 1-1.6 s
 * more CPU per cold pull (their start-up, the copies, page faults in two threads) and gained no
 * wall time, while at load ~7 the cold run went 4.0 → 3.3 s with two.
 */
export function unpackWorkers(): number {
  const env = process.env.BERTH_UNPACK_THREADS;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env);
  const cores = availableParallelism();
  return Math.max(0, Math.min(cores - 1, Math.floor(cores - loadavg()[0]!)));
}

/** The worker's entry: its own bundle next to the CLI bundles (scripts/bundle-unpack.mjs), or tsc's module. */
function workerFile(): URL {
  return typeof BERTH_BUILD_ID === 'string' ? new URL('./berth-unpack.cjs', import.meta.url) : new URL('./unpack-worker.js', import.meta.url);
}

/** The process's Node options (--cpu-prof…) without the ones about its own script (-e, --input-type), which a worker refuses. */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print') i++;
    else if (!a.startsWith('--input-type') && !a.startsWith('--eval=') && !a.startsWith('--print=')) out.push(a);
  }
  return out;
}

interface PoolWorker {
  worker: Worker;
  /** The failure the thread reported ('error' event) before it exited. */
  failure?: Error;
  idleTimer?: NodeJS.Timeout;
}

/** An unpacker: a worker thread, or the calling thread. */
type Slot = PoolWorker | 'caller';

interface Waiter {
  callerOk: boolean;
  take(slot: Slot): void;
}

class UnpackPool {
  private callerFree = true;
  private readonly idle: PoolWorker[] = [];
  private readonly waiting: Waiter[] = [];
  private count = 0;

  /** Starts workers ahead of `blobs` coming blobs (the calling thread takes one), so their start-up overlaps the download. */
  warm(blobs: number): void {
    while (this.count < Math.min(blobs - 1, unpackWorkers())) this.release(this.spawn());
  }

  /** Runs `job` on the first free unpacker (the calling thread only if callerOk). */
  async run<T>(callerOk: boolean, onCaller: () => Promise<T>, onWorker: (w: PoolWorker) => Promise<T>): Promise<T> {
    const slot = await this.acquire(callerOk);
    try {
      return await (slot === 'caller' ? onCaller() : onWorker(slot));
    } finally {
      this.release(slot);
    }
  }

  private spawn(): PoolWorker {
    const w: PoolWorker = { worker: new Worker(workerFile(), { execArgv: workerExecArgv() }) };
    this.count++;
    w.worker.on('error', (err) => (w.failure = err));
    w.worker.once('exit', () => {
      this.count--;
      clearTimeout(w.idleTimer);
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
      const next = this.waiting.shift();
      if (next) next.take(this.spawn()); // a blob waiting for an unpacker gets a new worker
    });
    return w;
  }

  private acquire(callerOk: boolean): Promise<Slot> {
    if (callerOk && this.callerFree) {
      this.callerFree = false;
      return Promise.resolve('caller');
    }
    const w = this.idle.pop();
    if (w) {
      clearTimeout(w.idleTimer);
      w.worker.ref();
      return Promise.resolve(w);
    }
    if (this.count < Math.max(callerOk ? 0 : 1, unpackWorkers())) return Promise.resolve(this.spawn());
    return new Promise((take) => this.waiting.push({ callerOk, take }));
  }

  private release(slot: Slot): void {
    if (slot === 'caller') {
      const i = this.waiting.findIndex((x) => x.callerOk);
      if (i >= 0) this.waiting.splice(i, 1)[0]!.take('caller');
      else this.callerFree = true;
      return;
    }
    const w = slot;
    if (w.failure !== undefined || w.worker.threadId < 0) return; // it is gone (its exit handler counted it)
    const next = this.waiting.shift();
    if (next) {
      next.take(w);
      return;
    }
    w.worker.unref();
    w.idleTimer = setTimeout(() => w.worker.postMessage('exit'), IDLE_MS);
    w.idleTimer.unref();
    this.idle.push(w);
  }
}

/** Runs one job on `w`: hands the blob's bytes over as the worker asks for them, and settles with its answer. */
function feed(w: PoolWorker, root: string, blob: Readable, job: Omit<JobMessage, 'port' | 'root'>): Promise<WireResult> {
  return new Promise((resolve, reject) => {
    const { port1, port2 } = new MessageChannel();
    const send = (m: FeedMessage, transfer?: ArrayBuffer[]) => port1.postMessage(m, transfer);
    let sourceError: unknown;
    let settled = false;
    // The blob's bytes are copied into batches of their own (the chunks may share memory with a
    // pool slab or the store's branch of a download), which are transferred, not copied again.
    // A batch goes as soon as the worker asks (however full); while it does not, bytes gather
    // into full batches, and the blob pauses once two wait.
    let owed = 0;
    let batch: Uint8Array | undefined;
    let fill = 0;
    const ready: Uint8Array[] = [];
    let ended = false;
    let endSent = false;
    const cut = () => {
      if (batch === undefined || fill === 0) return;
      ready.push(batch.subarray(0, fill));
      batch = undefined;
      fill = 0;
    };
    const flush = () => {
      if (owed > 0 && ready.length === 0) cut();
      while (owed > 0 && ready.length > 0) {
        const data = ready.shift()!;
        owed--;
        send({ type: 'chunk', data }, [data.buffer as ArrayBuffer]);
      }
      if (ended && ready.length === 0 && fill === 0 && owed > 0 && !endSent) {
        endSent = true;
        send({ type: 'end' });
      }
      if (ready.length >= 2) blob.pause();
      else if (!ended && blob.isPaused()) blob.resume();
    };
    const onData = (chunk: Buffer) => {
      for (let off = 0; off < chunk.length; ) {
        batch ??= new Uint8Array(FEED_BATCH);
        const n = Math.min(FEED_BATCH - fill, chunk.length - off);
        batch.set(chunk.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === FEED_BATCH) cut();
      }
      flush();
    };
    const onEnd = () => {
      ended = true;
      cut();
      flush();
    };
    const onError = (err: Error) => {
      sourceError ??= err;
      send({ type: 'abort', message: err.message });
    };
    const onExit = (code: number) => {
      const why = w.failure?.message ?? `exit code ${code}`;
      finish(new BerthError('INTERNAL', `the unpack worker thread stopped (${why}) while applying ${job.layer.digest}: run the command again`));
    };
    const finish = (err: unknown, result?: WireResult) => {
      if (settled) return;
      settled = true;
      blob.off('data', onData).off('end', onEnd).off('error', onError);
      w.worker.off('exit', onExit);
      port1.close();
      if (err === undefined) resolve(result!);
      else {
        blob.destroy(); // a download teed to the store goes on to the store alone
        reject(sourceError ?? err);
      }
    };
    blob.on('data', onData).once('end', onEnd).on('error', onError);
    w.worker.once('exit', onExit);
    port1.on('message', (m: ReplyMessage) => {
      if (m.type === 'more') {
        owed++;
        flush();
      } else if (m.type === 'done') finish(undefined, m.result);
      else finish(errorFromWire(m.error));
    });
    const message: JobMessage = { ...job, root, port: port2 };
    w.worker.postMessage(message, [port2]);
  });
}

let pool: UnpackPool | undefined;

/** Starts the unpack workers for `blobs` big blobs about to come (bounded by the cores). */
export function warmUnpackWorkers(blobs: number): void {
  if (blobs > 1 && unpackWorkers() > 0) (pool ??= new UnpackPool()).warm(blobs);
}

/**
 * Applies a compressed layer blob onto `root` (an existing directory): its digest and size
 * checked, decompressed, written with applyTarStream's checks; on this thread or in a worker
 * (see above), the same code either way.
 */
export async function applyBlob(root: string, blob: Readable, layer: BlobDescriptor, opts: BlobApplyOptions = {}): Promise<BlobApplyResult> {
  const thread = opts.thread ?? 'any';
  const here = async (): Promise<BlobApplyResult> => {
    const result = await applyTarStream(root, verifiedTar(blob, layer), opts.apply ?? {});
    return { result, ...(opts.usage ? { usage: diskUsage(root) } : {}), inWorker: false };
  };
  if (thread === 'caller' || (thread === 'any' && (unpackWorkers() === 0 || layer.size < WORKER_MIN_BYTES))) return here();
  const job = { layer: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size }, apply: opts.apply ?? {}, usage: opts.usage === true };
  return (pool ??= new UnpackPool()).run(thread === 'any', here, async (w) => {
    const wire = await feed(w, root, blob, job);
    return { result: resultFromWire(wire), ...(wire.usage ? { usage: wire.usage } : {}), inWorker: true };
  });
}
