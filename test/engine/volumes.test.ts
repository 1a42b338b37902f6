/** Named volumes: create (idempotent, atomic under concurrency), list, inspect, remove (not while used), prune, resolveVolume. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isBerthError } from '../../src/base/errors.js';
import { resolveVolume, Volumes } from '../../src/engine/volumes.js';
import { removeDir, tempDir } from '../layer/layer-write-helpers.js';

const VOLUMES_MODULE = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'engine', 'volumes.js')).href;

function createInChild(berthRoot: string, name: string): Promise<{ code: number | null; out: string; err: string }> {
  const script = `const { Volumes } = await import(${JSON.stringify(VOLUMES_MODULE)});
    const v = await new Volumes(${JSON.stringify(berthRoot)}).create(${JSON.stringify(name)});
    console.log(v.mountpoint);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err })));
}

describe('volumes', () => {
  let dir: string;
  before(() => {
    dir = tempDir('volumes');
  });
  after(() => removeDir(dir));

  it('creates, lists, inspects and removes a named volume', async () => {
    const volumes = new Volumes(join(dir, 'r1'));
    const v = await volumes.create('data', { labels: { team: 'a' } });
    assert.equal(v.name, 'data');
    assert.ok(statSync(v.mountpoint).isDirectory());
    writeFileSync(join(v.mountpoint, 'kept'), 'x');
    const again = await volumes.create('data');
    assert.equal(again.createdAt, v.createdAt, 'creating an existing volume returns it as it is');
    assert.ok(existsSync(join(v.mountpoint, 'kept')));
    assert.deepEqual((await volumes.list()).map((x) => x.name), ['data']);
    assert.deepEqual((await volumes.inspect('data')).labels, { team: 'a' });
    const anon = await volumes.create();
    assert.match(anon.name, /^[0-9a-f]{64}$/);
    assert.equal(anon.anonymous, true);
    await volumes.remove('data');
    assert.equal(existsSync(v.mountpoint), false);
    await assert.rejects(volumes.inspect('data'), (err: unknown) => isBerthError(err, 'NOT_FOUND'));
    await assert.rejects(volumes.create('-bad'), (err: unknown) => isBerthError(err, 'USAGE'));
    await assert.rejects(volumes.create('../x'), (err: unknown) => isBerthError(err, 'USAGE'));
  });

  it('refuses to remove a volume a container uses; prune keeps it and removes the unused ones', async () => {
    const berthRoot = join(dir, 'r2');
    const volumes = new Volumes(berthRoot);
    await volumes.create('used');
    await volumes.create('named');
    const anon = await volumes.create();
    const cdir = join(berthRoot, 'containers', 'c'.repeat(64));
    mkdirSync(cdir, { recursive: true });
    writeFileSync(join(cdir, 'container.json'), JSON.stringify({ name: 'db', config: { imageDigest: 'x', mounts: [{ type: 'volume', source: 'used', destination: '/data' }] } }));
    await assert.rejects(volumes.remove('used'), /in use by container db/);
    const pruned = await volumes.prune();
    assert.deepEqual(pruned.removed, [anon.name], 'without -a only anonymous volumes go');
    const all = await volumes.prune({ all: true });
    assert.deepEqual(all.removed, ['named']);
    assert.deepEqual((await volumes.list()).map((v) => v.name), ['used']);
  });

  it('makes one volume when processes create the same name at once', async () => {
    const berthRoot = join(dir, 'r3');
    const results = await Promise.all(Array.from({ length: 8 }, () => createInChild(berthRoot, 'shared')));
    for (const r of results) assert.equal(r.code, 0, r.err);
    assert.equal(new Set(results.map((r) => r.out.trim())).size, 1);
    assert.deepEqual(readdirSync(join(berthRoot, 'volumes')), ['shared'], 'no temp dirs left');
  });

  it('resolves a volume to its host path, creating it only when asked', async () => {
    const berthRoot = join(dir, 'r4');
    await assert.rejects(resolveVolume(berthRoot, 'cache'), (err: unknown) => isBerthError(err, 'NOT_FOUND'));
    const path = await resolveVolume(berthRoot, 'cache', { create: true });
    assert.equal(path, join(berthRoot, 'volumes', 'cache', '_data'));
    assert.equal(await resolveVolume(berthRoot, 'cache'), path);
  });
});
