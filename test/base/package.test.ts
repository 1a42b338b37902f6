/**
 * One version: package.json's. `berth --version`, `berth-runtime --version` and the registry
 * client's User-Agent all say it, and no source file writes a version of its own.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { berthVersion, packageRoot, userAgent } from '../../src/base/package.js';
import { HttpClient } from '../../src/client/http.js';
import { runBerth } from '../helpers/run-berth.js';

const REPO = join(import.meta.dirname, '..', '..', '..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

function files(dir: string, ext: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'build' ? [] : files(p, ext);
    return e.name.endsWith(ext) ? [p] : [];
  });
}

describe('the version', () => {
  it('is package.json\'s', () => {
    assert.equal(packageRoot(), REPO);
    assert.equal(berthVersion(), VERSION);
    assert.equal(userAgent(), `berth/${VERSION}`);
    assert.equal(new HttpClient().options.userAgent, `berth/${VERSION}`);
  });

  it('is what berth --version and berth-runtime --version print', async () => {
    const r = await runBerth(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `berth ${VERSION}\n`);
    const rt = spawnSync(join(REPO, 'bin', 'berth-runtime'), ['--version'], { encoding: 'utf8' });
    assert.equal(rt.status, 0, rt.stderr);
    assert.match(rt.stdout, new RegExp(`^berth-runtime version ${VERSION.replaceAll('.', '\\.')}\n`));
  });

  it('is written nowhere in the sources (berth/X.Y.Z, berth X.Y.Z, version X.Y.Z)', () => {
    const literal = /\bberth(?:-runtime)?(?:\/| version | )v?\d+\.\d+\.\d+/;
    const found = [...files(join(REPO, 'src'), '.ts'), ...files(join(REPO, 'native'), '.c')].filter((f) => literal.test(readFileSync(f, 'utf8')));
    assert.deepEqual(found, [], 'hard-coded versions: read base/package.ts berthVersion() instead');
  });
});
