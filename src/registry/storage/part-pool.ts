/**
 * The memory that S3 multipart uploads fill their parts in, shared by every upload of the
 * process and bounded: a replica receiving many layers at once holds at most `max` part buffers
 * (an upload that wants one more waits, and its client's socket with it, until a part in
 * flight has been sent). Bytes are copied into the buffers as they arrive, so a part holds
 * exactly its bytes, not the larger socket reads its chunks were cut from. No upload waits for
 * ever: an upload holds at most two buffers, and one of them is always on its way to S3.
 */
export class PartPool {
  private readonly free: Buffer[] = [];
  private out = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    /** The size of pooled buffers; larger parts (uploads of many GiB) get buffers of their own. */
    readonly size: number,
    /** Pooled buffers in use at once. */
    readonly max: number,
    /** Free buffers kept for reuse. */
    private readonly keep = 2,
  ) {}

  /** A buffer of at least `size` bytes; give it back once its bytes are sent. */
  async take(size: number): Promise<Buffer> {
    if (size > this.size) return Buffer.allocUnsafeSlow(size);
    while (this.out >= this.max) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.out++;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buf: Buffer): void {
    if (buf.length !== this.size) return;
    this.out--;
    if (this.free.length < this.keep) this.free.push(buf);
    this.waiters.shift()?.();
  }

  /** Buffers in use (for tests and metrics). */
  get inUse(): number {
    return this.out;
  }
}
