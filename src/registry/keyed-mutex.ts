/** Serialises async work per key; across processes when the implementation says so. */
export interface Locks {
  run<T>(key: string, work: () => Promise<T>): Promise<T>;
}

/** Serialises async work per key (an upload session, a blob digest) within this process. */
export class KeyedMutex implements Locks {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
