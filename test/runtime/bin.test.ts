/**
 * npm's `berth-runtime` bin (bin/berth-runtime): a shell script that execs the native front end,
 * also through the symlink npm makes for it, and says what to do when the front end is missing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO } from './runtime-cli.js';

const BIN = join(REPO, 'bin', 'berth-runtime');

describe('the berth-runtime bin', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'berth-bin-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('runs the native front end, directly and through a symlink as npm links it', () => {
    const link = join(tmp, 'berth-runtime');
    symlinkSync(BIN, link);
    for (const cmd of [BIN, link]) {
      const r = spawnSync(cmd, ['--root', tmp, 'state', 'nosuch'], { encoding: 'utf8' });
      assert.equal(r.status, 1, r.stderr);
      // The native verb's own message (Node would not have been needed to say it).
      assert.match(r.stderr, /^berth-runtime: container nosuch does not exist/);
    }
  });

  it('says how to build the front end when it is missing', () => {
    const pkg = join(tmp, 'pkg');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    copyFileSync(BIN, join(pkg, 'bin', 'berth-runtime'));
    const r = spawnSync(join(pkg, 'bin', 'berth-runtime'), ['--version'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /native\/build\/berth-runtime: build it with `make -C native`/);
  });
});
