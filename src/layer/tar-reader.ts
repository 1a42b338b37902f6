/**
 * A streaming tar reader: ustar, GNU long names/links ('L'/'K'), PAX 'x' and global 'g'
 * headers (path, linkpath, size, uid, gid, mtime, SCHILY.xattr.*), base-256 numbers.
 * Entry bodies are streamed: at most one input chunk is held at a time.
 */
import { Readable } from 'node:stream';
import { TarParser } from './tar-parser.js';
import type { TarHeader } from './tar-header.js';

export type { TarHeader, TarEntryType } from './tar-header.js';

export interface TarEntry {
  header: TarHeader;
  body: Readable;
}

interface PendingEntry extends TarEntry {
  ended: boolean;
  /** Chunks pushed to the body so far: tells a reader's pump whether it got anything. */
  pushed: number;
}

/**
 * Iterates the entries of a tar stream. Each `body` must be consumed or left alone before
 * asking for the next entry: an unconsumed body is drained (discarded) automatically.
 */
export async function* readTar(input: Readable): AsyncIterable<TarEntry> {
  const ready: PendingEntry[] = [];
  let current: PendingEntry | undefined;
  let inputDone = false;
  let failure: unknown;

  const parser = new TarParser({
    entry(header) {
      const entry: PendingEntry = {
        header,
        ended: false,
        pushed: 0,
        body: new Readable({
          highWaterMark: 64 * 1024,
          read() {
            if (!entry.ended) pumpFor(entry);
          },
        }),
      };
      current = entry;
      ready.push(entry);
    },
    data(chunk) {
      current!.pushed++;
      current!.body.push(chunk);
    },
    entryEnd() {
      current!.ended = true;
      current!.body.push(null);
    },
  });

  const source = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let inflight: Promise<void> | undefined;
  const pump = (): Promise<void> => {
    inflight ??= (async () => {
      try {
        const r = await source.next();
        if (r.done) {
          inputDone = true;
          parser.end();
        } else {
          parser.write(Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value));
        }
      } catch (err) {
        failure = err;
        if (current && !current.ended) current.body.destroy(err as Error);
        throw err;
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
  // A body's read() pulls input until it receives data (a chunk may hold only padding or headers).
  const pumpFor = (entry: PendingEntry) => {
    const before = entry.pushed;
    pump().then(
      () => {
        if (!entry.ended && entry.pushed === before && !inputDone && failure === undefined) pumpFor(entry);
      },
      (err: Error) => entry.body.destroy(err),
    );
  };

  try {
    for (;;) {
      while (ready.length === 0) {
        if (failure !== undefined) throw failure;
        if (inputDone) return;
        await pump();
      }
      const entry = ready.shift()!;
      yield entry;
      // Drain whatever the consumer left of this body before moving on.
      if (!entry.ended) {
        entry.body.resume();
        while (!entry.ended) {
          if (failure !== undefined) throw failure;
          if (inputDone) break;
          await pump();
        }
      }
      if (!entry.body.destroyed && entry.body.readableLength > 0) entry.body.resume();
    }
  } finally {
    if (!inputDone) input.destroy();
  }
}
