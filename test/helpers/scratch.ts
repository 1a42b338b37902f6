/**
 * A temp directory for the tests of the enclosing describe block: made before them, removed after
 * them; `fresh()` gives a new empty subdirectory in it each call (a root to apply layers into).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';

export interface Scratch {
  /** The directory (once the block's tests run). */
  readonly path: string;
  fresh(): string;
}

export function scratchDir(prefix: string): Scratch {
  let path = '';
  let n = 0;
  before(() => { path = mkdtempSync(join(tmpdir(), prefix)); });
  after(() => rmSync(path, { recursive: true, force: true }));
  return {
    get path() { return path; },
    fresh() {
      const d = join(path, `root${n++}`);
      mkdirSync(d);
      return d;
    },
  };
}
