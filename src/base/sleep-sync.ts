/** Sleeps without yielding to the event loop (code that runs between an engine's awaits). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
