/**
 * A module that only some commands need, loaded at its first use instead of at start-up (where
 * every eager builtin costs each `berth` and `berth-runtime` invocation a few ms).
 */
import { createRequire } from 'node:module';

let requireHere: NodeJS.Require | undefined;

/** A getter that requires `id` on its first call and returns the same module afterwards. */
export function lazyRequire<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= (requireHere ??= createRequire(import.meta.url))(id) as T);
}
