/**
 * A blob on its way from an upstream registry (pull-through cache, proxy.ts): its bytes are
 * written to a spool file as they arrive, and every client waiting for the blob reads that file
 * behind the writer, so that twenty clients share one upstream fetch and none waits for the whole
 * blob before its first byte. A reader gets the last byte only once the blob has been verified
 * against its digest and stored: when verification fails, every response is cut short, so no
 * client receives a complete body that does not match its digest. The file is removed once the
 * fetch has ended and its last reader is gone (readers and writer share one open descriptor, so
 * removing the path early, e.g. a restart clearing the spool directory, loses nothing).
 */
import { EventEmitter, once } from 'node:events';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

const READ_BYTES = 256 * 1024;
/** The writer waits while this much is queued for the file. */
const QUEUE_BYTES = 1024 * 1024;

export class BlobSpool {
  /** Bytes in the file. */
  private written = 0;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private flushing: Promise<void> | undefined;
  private state: 'filling' | 'stored' | 'failed' = 'filling';
  private failure?: Error;
  private readers = 0;
  private closed = false;
  private readonly changed = new EventEmitter();
  private settle!: (stored: boolean) => void;
  /** Resolves when the fetch has ended: true once the blob is verified and stored. */
  readonly finished = new Promise<boolean>((resolve) => (this.settle = resolve));

  private constructor(
    private readonly path: string,
    private readonly file: FileHandle,
    /** The blob's size as the upstream announced it, when it did. */
    readonly size: number | undefined,
  ) {
    this.changed.setMaxListeners(0);
  }

  static async create(path: string, size: number | undefined): Promise<BlobSpool> {
    return new BlobSpool(path, await open(path, 'wx+', 0o600), size);
  }

  /**
   * Appends the next chunk of the blob (one writer, in order). Chunks that arrive while a write is
   * in flight go out together in one writev; resolves at once unless a MiB is waiting already.
   */
  async write(chunk: Buffer): Promise<void> {
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.flushing ??= this.flush();
    while (this.queued >= QUEUE_BYTES && this.state === 'filling') await once(this.changed, 'change');
    if (this.state === 'failed') throw this.failure;
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        const size = batch.reduce((n, b) => n + b.length, 0);
        const { bytesWritten } = await this.file.writev(batch, this.written);
        // A short write to a regular file is rare: the rest goes out in one piece.
        if (bytesWritten < size) await this.file.write(Buffer.concat(batch).subarray(bytesWritten), 0, size - bytesWritten, this.written + bytesWritten);
        this.written += size;
        this.queued -= size;
        this.changed.emit('change');
      }
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.flushing = undefined;
    }
  }

  /** The fetch has ended: verified and stored when `err` is undefined (once the last chunk is in the file). */
  async end(err?: Error): Promise<void> {
    if (!err) await this.flushing;
    if (err) this.fail(err);
    if (this.state !== 'filling') return;
    this.state = 'stored';
    this.changed.emit('change');
    this.settle(true);
    void this.closeIfUnused();
  }

  private fail(err: Error): void {
    if (this.state !== 'filling') return;
    this.state = 'failed';
    this.failure = err;
    this.changed.emit('change');
    this.settle(false);
    void this.closeIfUnused();
  }

  /**
   * The whole blob as it arrives, or undefined when the spool is already gone (the blob is then
   * read from the store). Errors when the fetch fails.
   */
  stream(): Readable | undefined {
    if (this.closed) return undefined;
    this.readers++;
    const stream = Readable.from(this.chunks(), { objectMode: false });
    // Ended, failed or destroyed by its client (even before its first read).
    stream.once('close', () => {
      this.readers--;
      void this.closeIfUnused();
    });
    return stream;
  }

  private async *chunks(): AsyncGenerator<Buffer> {
    let pos = 0;
    for (;;) {
      if (this.state === 'failed') throw this.failure ?? new Error('the upstream fetch failed');
      // The last byte waits for verification.
      const limit = this.state === 'stored' ? this.written : this.written - 1;
      if (pos < limit) {
        const buf = Buffer.allocUnsafe(Math.min(limit - pos, READ_BYTES));
        const { bytesRead } = await this.file.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) throw new Error('the spool file ended early');
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
        continue;
      }
      if (this.state === 'stored') return;
      await once(this.changed, 'change');
    }
  }

  private async closeIfUnused(): Promise<void> {
    if (this.state === 'filling' || this.readers > 0 || this.closed) return;
    this.closed = true;
    await this.file.close().catch(() => undefined);
    await rm(this.path, { force: true }).catch(() => undefined);
  }
}
