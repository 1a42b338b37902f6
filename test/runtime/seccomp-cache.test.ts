/**
 * The compiled-seccomp cache (src/runtime/seccomp/cache.ts): an entry is used only for the same
 * build, architecture and seccomp section; torn or tampered entries are ignored; the directory
 * stays small. Then through berth-runtime (root): create fills ROOT/@seccomp-cache, the next
 * create loads its filter from there, and `list` does not take the cache for a container.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compileSeccompCached } from '../../src/runtime/seccomp/cache.js';
import { compileSeccomp } from '../../src/runtime/seccomp/compile.js';
import type { LinuxSeccomp } from '../../src/runtime/spec/types.js';
import { seccompCacheDir } from '../../src/runtime/state.js';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import { Runtime } from './runtime-cli.js';
import { root, skipUnless } from '../helpers/requirements.js';

const denyMkdir = (errnoRet: number): LinuxSeccomp => ({
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet }],
});

const entries = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith('.json')).sort();

describe('compiled seccomp cache', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-seccomp-cache-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('compiles once per build, architecture and section, then reads the filter back', () => {
    const cache = join(dir, 'a');
    const sc = denyMkdir(13);
    const first = compileSeccompCached(sc, cache, 'build-1');
    assert.equal(first.cached, undefined);
    assert.deepEqual(first.filter, compileSeccomp(sc).filter);
    const [file] = entries(cache);
    assert.ok(file, 'no entry written');
    assert.equal(statSync(join(cache, file)).mode & 0o777, 0o600);
    assert.equal(statSync(cache).mode & 0o777, 0o700);
    const second = compileSeccompCached(sc, cache, 'build-1');
    assert.equal(second.cached, true);
    assert.deepEqual(second.filter, first.filter);
    assert.equal(second.flags, first.flags);
    // Another build, or another section: compiled anew.
    assert.equal(compileSeccompCached(sc, cache, 'build-2').cached, undefined);
    const other = compileSeccompCached(denyMkdir(1), cache, 'build-1');
    assert.equal(other.cached, undefined);
    assert.deepEqual(other.filter, compileSeccomp(denyMkdir(1)).filter);
    assert.equal(entries(cache).length, 3);
  });

  it('ignores entries that are torn, tampered with or made from another section', () => {
    const cache = join(dir, 'b');
    const sc = denyMkdir(13);
    compileSeccompCached(sc, cache, 'b');
    const file = join(cache, entries(cache)[0]!);
    const good = readFileSync(file, 'utf8');
    const expected = compileSeccomp(sc).filter;
    const variants = [
      good.slice(0, good.length / 2), // torn
      JSON.stringify({ ...JSON.parse(good), input: JSON.stringify(denyMkdir(1)) }), // a name collision
      JSON.stringify({ ...JSON.parse(good), filter: Buffer.alloc(12).toString('base64') }), // not whole instructions
      JSON.stringify({ ...JSON.parse(good), arch: 'mips' }),
    ];
    for (const text of variants) {
      writeFileSync(file, text);
      const c = compileSeccompCached(sc, cache, 'b');
      assert.equal(c.cached, undefined, text.slice(0, 80));
      assert.deepEqual(c.filter, expected);
    }
  });

  it('caches nothing without a build id or a directory', () => {
    const cache = join(dir, 'c');
    assert.deepEqual(compileSeccompCached(denyMkdir(13), cache, undefined).filter, compileSeccomp(denyMkdir(13)).filter);
    assert.throws(() => readdirSync(cache), /ENOENT/);
    assert.equal(compileSeccompCached(denyMkdir(13), undefined, 'x').cached, undefined);
  });

  it('keeps at most 32 entries, dropping the oldest', () => {
    const cache = join(dir, 'd');
    const written: string[] = [];
    for (let i = 0; i < 34; i++) {
      const existing = new Set(existsSync(cache) ? entries(cache) : []);
      compileSeccompCached(denyMkdir(i + 1), cache, 'd');
      const added = entries(cache).find((n) => !existing.has(n) && !written.includes(n));
      assert.ok(added, `entry ${i} not written`);
      written.push(added);
      const t = 1_700_000_000 + i; // distinct ages, oldest first
      utimesSync(join(cache, added), t, t);
    }
    const left = entries(cache);
    assert.equal(left.length, 32);
    assert.ok(!left.includes(written[0]!) && !left.includes(written[1]!), 'the oldest entries were kept');
    assert.ok(left.includes(written[33]!));
  });
});

describe('berth-runtime with the seccomp cache', { skip: skipUnless(root('containers')) }, () => {
  let rt: Runtime;
  let bundle: Bundle;
  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle(['/bin/sh', '-c', 'mkdir /tmp/probe; echo "mkdir=$?"']);
    bundle.spec.linux!.seccomp = denyMkdir(13);
    bundle.save();
  });
  after(() => {
    rt.cleanup();
    bundle.cleanup();
  });

  async function runOnce(id: string): Promise<string> {
    const out = join(bundle.dir, `${id}.out`);
    const r = rt.create(id, bundle.dir, out);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(rt.run(['start', id]).status, 0);
    await rt.waitStatus(id, 'stopped');
    assert.equal(rt.run(['delete', id]).status, 0);
    return readFileSync(out, 'utf8');
  }

  it('create fills ROOT/@seccomp-cache and the next create loads the filter from it', async () => {
    assert.match(await runOnce('sc-1'), /mkdir=1\n/); // busybox mkdir exits 1 on EACCES
    const cache = seccompCacheDir(rt.root);
    const [file] = entries(cache);
    assert.ok(file, 'create wrote no cache entry');
    // Swap in the filter of another section (mkdir allowed): the next container must run with
    // what the cache holds, which shows that create took it from there.
    const entry = JSON.parse(readFileSync(join(cache, file), 'utf8'));
    entry.filter = compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }).filter.toString('base64');
    writeFileSync(join(cache, file), JSON.stringify(entry));
    assert.match(await runOnce('sc-2'), /mkdir=0\n/);
    // `list` shows containers only.
    const list = rt.run(['list', '--format', 'json']);
    assert.equal(list.status, 0, list.stderr);
    assert.ok(!list.stdout.includes('seccomp-cache'), list.stdout);
  });
});
