/**
 * The unpack worker thread (started by unpack-pool.ts): applies one layer blob at a time into
 * its root, with the same code as the main thread (verifiedTar: digest and size of the
 * compressed bytes, then the decompressor; applyTarStream: paths checked inside the root,
 * whiteouts, the diffID of the uncompressed bytes). The blob's bytes arrive on the job's port,
 * a batch each time this thread asks for more, so the reader's backpressure reaches the source.
 * In the esbuild bundles this file is its own entry (dist/berth-unpack.cjs).
 */
import { parentPort } from 'node:worker_threads';
import { Readable } from 'node:stream';
import { applyTarStream } from './apply.js';
import { verifiedTar } from './decompress.js';
import { errorToWire, resultToWire, type FeedMessage, type JobMessage, type ReplyMessage } from './unpack-wire.js';
import { diskUsage } from './walk.js';

/** Bytes buffered in this thread before it stops asking for more. */
const BUFFER = 4 << 20;

async function runJob(job: JobMessage): Promise<void> {
  const { port } = job;
  const reply = (m: ReplyMessage) => port.postMessage(m);
  let asked = false;
  const source = new Readable({
    highWaterMark: BUFFER,
    read() {
      if (asked) return;
      asked = true;
      reply({ type: 'more' });
    },
  });
  port.on('message', (m: FeedMessage) => {
    if (m.type === 'chunk') {
      asked = false;
      source.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
    } else if (m.type === 'end') source.push(null);
    else source.destroy(new Error(m.message)); // the main thread reports its own error
  });
  try {
    const result = await applyTarStream(job.root, verifiedTar(source, job.layer), job.apply);
    reply({ type: 'done', result: resultToWire(result, job.usage ? diskUsage(job.root) : undefined) });
  } catch (err) {
    source.destroy();
    const error = errorToWire(err);
    try {
      reply({ type: 'error', error });
    } catch {
      reply({ type: 'error', error: { ...error, detail: undefined } }); // a detail that cannot be cloned
    }
  } finally {
    port.close();
  }
}

// 'exit' ends the thread through process.exit, so that exit handlers run (the bundle's loader
// writes its code cache in one).
parentPort?.on('message', (m: JobMessage | 'exit') => (m === 'exit' ? process.exit(0) : void runJob(m)));
