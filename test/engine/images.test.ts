/**
 * Local images, disk usage and the store check: names and IDs, tag, rmi with containers using
 * the image, prune, collection of blobs and snapshots (leases respected), df's shared sizes,
 * and check/repair of what interrupted commands leave.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isBerthError } from '../../src/base/errors.js';
import { LocalImages, shortId } from '../../src/engine/images.js';
import { takeLease } from '../../src/engine/leases.js';
import { openImageStore } from '../../src/engine/store.js';
import { checkSystem, diskUsageReport } from '../../src/engine/system.js';
import { verifyLayout } from '../../src/image/layout-verify.js';
import type { OciLayout } from '../../src/image/layout.js';
import { root, peer, skipUnless } from '../helpers/requirements.js';
import { removeDir, tempDir } from '../layer/layer-write-helpers.js';
import { BASE, CHANGES, TOP, storeFixtureImage, type FixtureImage } from './image-fixture.js';

/** A pid that no process has any more. */
function deadPid(): number {
  return spawnSync('true').pid!;
}

/** A container record as the container store writes it (containers/<id>/container.json, state.json). */
function writeContainer(berthRoot: string, id: string, name: string, imageDigest: string, opts: { running?: boolean; rootfsDirs?: string[] } = {}): void {
  const dir = join(berthRoot, 'containers', id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'container.json'), JSON.stringify({ id, name, created: new Date().toISOString(), config: { image: 'x', imageDigest, mounts: [] } }));
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ status: opts.running ? 'running' : 'exited', pid: opts.running ? process.pid : 0 }));
  if (opts.rootfsDirs) writeFileSync(join(dir, 'rootfs.json'), JSON.stringify({ driver: 'overlay', dirs: opts.rootfsDirs }));
}

describe('local images', { skip: skipUnless(root('snapshots in the overlay format need root'), peer('getfattr', 'attr')) }, () => {
  let dir: string;
  let berthRoot: string;
  let layout: OciLayout;
  let images: LocalImages;
  let imgA: FixtureImage;
  let imgB: FixtureImage;

  before(() => {
    dir = tempDir('images');
  });
  after(() => removeDir(dir));

  let n = 0;
  beforeEach(async () => {
    berthRoot = join(dir, `root${n++}`);
    layout = await openImageStore({ root: berthRoot });
    images = new LocalImages(berthRoot);
    imgA = await storeFixtureImage(layout, 'docker.io/library/app:1', [BASE, CHANGES, TOP]);
    imgB = await storeFixtureImage(layout, 'example.test/b:1', [BASE, CHANGES, [{ path: 'own', body: 'b' }]]);
    for (const tag of ['docker.io/library/app:1', 'example.test/b:1']) await (await images.snapshots.prepare(tag)).release();
  });

  it('finds an image by stored name, familiar name, ID, ID prefix and manifest digest', async () => {
    const all = await images.list();
    assert.equal(all.length, 2);
    const a = await images.find('app:1');
    assert.equal(a.id, imgA.manifest.config.digest);
    assert.equal((await images.find('docker.io/library/app:1')).id, a.id);
    assert.equal((await images.find(a.id)).digest, imgA.manifestDesc.digest);
    assert.equal((await images.find(shortId(a.id))).id, a.id);
    assert.equal((await images.find(imgA.manifestDesc.digest)).id, a.id);
    await assert.rejects(images.find('nothere:1'), (err: unknown) => isBerthError(err, 'NOT_FOUND') && /berth pull nothere:1/.test((err as Error).message));
  });

  it('tags locally, and untags one name of several without deleting the image', async () => {
    const { name } = await images.tag('app:1', 'registry.example/team/app:v2');
    assert.equal(name, 'registry.example/team/app:v2');
    assert.deepEqual((await images.find('registry.example/team/app:v2')).names, ['docker.io/library/app:1', 'registry.example/team/app:v2']);
    await assert.rejects(images.tag('app:1', 'bad@@name'), (err: unknown) => isBerthError(err, 'USAGE'));
    await assert.rejects(images.remove(shortId(imgA.manifest.config.digest)), /several names/);
    const r = await images.remove('app:1');
    assert.deepEqual(r, { untagged: ['docker.io/library/app:1'], deleted: [] });
    assert.ok(await layout.exists(imgA.manifest.layers[2]!), 'the image stays under its other name');
  });

  it('removes an image with its own blobs and snapshots, keeping what another image shares', async () => {
    const before = await images.snapshots.list();
    assert.equal(before.length, 4);
    const r = await images.remove('app:1');
    assert.deepEqual(r.deleted, [imgA.manifest.config.digest]);
    assert.equal(await layout.exists(imgA.manifest.layers[2]!), false, "A's own layer blob is gone");
    assert.equal(await layout.exists(imgA.manifest.layers[0]!), true, 'the shared base layer stays');
    const after = await images.snapshots.list();
    assert.equal(after.length, 3, "A's own snapshot is gone, B's three stay");
    assert.deepEqual(await verifyLayout(layout), []);
  });

  it('refuses to remove an image a running container uses, even with -f; a stopped one only without -f', async () => {
    const a = await images.find('app:1');
    writeContainer(berthRoot, 'a'.repeat(64), 'web', a.digest, { running: true });
    await assert.rejects(images.remove('app:1', { force: true }), /running container web.*cannot be forced/);
    writeContainer(berthRoot, 'a'.repeat(64), 'web', a.digest, { running: false, rootfsDirs: (await images.snapshots.prepare('app:1')).dirs });
    await assert.rejects(images.remove('app:1'), /used by container web.*-f/);
    await images.remove('app:1', { force: true });
    await assert.rejects(images.find('app:1'), (err: unknown) => isBerthError(err, 'NOT_FOUND'));
    assert.equal((await images.snapshots.list()).length, 4, "the container's root keeps its snapshots");
  });

  it('prunes untagged images, and with all every image no container uses', async () => {
    const dangling = await storeFixtureImage(layout, 'tmp', [[{ path: 'dangling', body: 'd' }]]);
    await layout.untag('tmp');
    await layout.addManifest(dangling.manifestDesc);
    assert.equal((await images.list()).length, 3);
    const r = await images.prune();
    assert.deepEqual(r.deleted, [dangling.manifest.config.digest]);
    assert.equal((await images.list()).length, 2);
    writeContainer(berthRoot, 'b'.repeat(64), 'usesb', imgB.manifestDesc.digest);
    const all = await images.prune({ all: true });
    assert.deepEqual(all.deleted, [imgA.manifest.config.digest]);
    assert.deepEqual((await images.list()).map((i) => i.names[0]), ['example.test/b:1']);
  });

  it('keeps unreferenced blobs a pull in progress wrote (a live lease), collects them once it ends', async () => {
    const release = await takeLease(berthRoot, { writesBlobs: true });
    await new Promise((r) => setTimeout(r, 1100)); // blob mtimes are compared with the lease's start (less a second)
    const pending = await storeFixtureImage(layout, 'pending', [[{ path: 'p', body: 'p' }]]);
    await layout.untag('pending'); // as if the pull had not tagged it yet
    await images.collect();
    assert.ok(await layout.exists(pending.manifest.layers[0]!), 'kept while the writer runs');
    await release();
    await images.collect();
    assert.equal(await layout.exists(pending.manifest.layers[0]!), false);
  });

  it('reports disk usage: a second image on the same base adds only its own layer', async () => {
    const both = await diskUsageReport(berthRoot);
    assert.equal(both.images.total, 2);
    assert.equal(both.snapshots.total, 4);
    const a = both.perImage.find((i) => i.id === imgA.manifest.config.digest)!;
    const b = both.perImage.find((i) => i.id === imgB.manifest.config.digest)!;
    assert.ok(a.shared > 0 && a.shared === b.shared, 'the base layers are shared');
    assert.equal(a.size, a.shared + a.unique);
    const snaps = await images.snapshots.list();
    const own = (chain: string) => snaps.find((s) => s.chainId === chain)!.diskBytes;
    const bChain = (await images.find('example.test/b:1')).chain;
    assert.equal(b.unique, own(bChain[2]!) + imgB.manifest.layers[2]!.size + imgB.manifest.config.size + imgB.manifestDesc.size);
    await images.remove('example.test/b:1');
    const one = await diskUsageReport(berthRoot);
    assert.equal(both.images.size + both.snapshots.size - (one.images.size + one.snapshots.size), b.unique, 'removing B frees exactly what is unique to it');
  });

  it('checks the store and repairs what interrupted commands and corruption left', async () => {
    assert.deepEqual(await checkSystem(berthRoot), []);
    const snapshotsDir = images.snapshots.dir;
    const dead = deadPid();
    mkdirSync(join(snapshotsDir, `tmp-${dead}-abcdef`, 'fs'), { recursive: true });
    mkdirSync(join(snapshotsDir, 'f'.repeat(64), 'fs'), { recursive: true }); // a snapshot without its record
    writeFileSync(join(snapshotsDir, `${'e'.repeat(64)}.lock`), String(dead));
    mkdirSync(join(berthRoot, 'volumes', `.tmp-${dead}-123456`), { recursive: true });
    // A corrupt layer blob of B (its own layer) and a dangling reference.
    writeFileSync(layout.blobPath(imgB.manifest.layers[2]!.digest), 'garbage');
    const lost = await storeFixtureImage(layout, 'lost:1', [[{ path: 'l', body: 'l' }]]);
    spawnSync('rm', [layout.blobPath(lost.manifestDesc.digest)]);

    const found = await checkSystem(berthRoot);
    const text = found.map((p) => p.problem).join('\n');
    assert.match(text, /half-unpacked/);
    assert.match(text, /without its record/);
    assert.match(text, /stale lock/);
    assert.match(text, /hashes to|size mismatch/);
    assert.match(text, /dangling reference/);
    assert.match(text, /interrupted volume/);
    assert.ok(found.every((p) => !p.repaired));

    const repaired = await checkSystem(berthRoot, { repair: true });
    assert.ok(repaired.every((p) => p.repaired || p.severity === 'warning' || /pull the image again/.test(p.problem)), JSON.stringify(repaired, null, 1));
    assert.ok(!existsSync(join(snapshotsDir, `tmp-${dead}-abcdef`)));
    assert.ok(!existsSync(join(snapshotsDir, 'f'.repeat(64))));
    assert.deepEqual(readdirSync(join(berthRoot, 'volumes')), []);
    const after = await checkSystem(berthRoot);
    // What is left: B's layer is missing now (the corrupt blob was removed): pull B again.
    assert.ok(after.every((p) => /missing blob/.test(p.problem)), JSON.stringify(after, null, 1));
    // A still prepares and its snapshots are intact.
    const p = await images.snapshots.prepare('app:1');
    await p.release();
    assert.equal(p.dirs.length, 3);
  });
});
