/**
 * pullImage from `berth serve` on 127.0.0.1: the store gets the image (skopeo reads it), the
 * snapshots get each layer unpacked once while it downloads, shared layers are neither
 * downloaded nor unpacked again, and failures leave nothing half made.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { RegistryClient } from '../../src/client/registry.js';
import { copy } from '../../src/content/copy.js';
import { pullImage } from '../../src/engine/pull.js';
import { chainIds, SnapshotStore } from '../../src/engine/snapshots.js';
import { openImageStore } from '../../src/engine/store.js';
import { OciLayout } from '../../src/image/layout.js';
import { isBerthError } from '../../src/base/errors.js';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { removeDir, snapshotTree, tempDir } from '../layer/layer-write-helpers.js';
import { sha256 } from '../layer/tar-fixture.js';
import { checkSystem } from '../../src/engine/system.js';
import { BASE, CHANGES, TOP, manyFiles, nodeScript, storeFixtureImage, type ChildRun, type FixtureImage } from './image-fixture.js';

const DIST_SRC = join(import.meta.dirname, '..', '..', 'src');

/** pullImage in a separate Node process; prints how many snapshots it unpacked. */
function pullInChild(berthRoot: string, ref: string): ChildRun {
  const mod = (p: string) => JSON.stringify(pathToFileURL(join(DIST_SRC, p)).href);
  return nodeScript(`
    const { pullImage } = await import(${mod('engine/pull.js')});
    const { RegistryClient } = await import(${mod('client/registry.js')});
    const client = new RegistryClient();
    let unpacked = 0;
    const r = await pullImage(${JSON.stringify(ref)}, { berthRoot: ${JSON.stringify(berthRoot)}, client, onUnpacked: () => unpacked++ });
    client.close();
    console.log(JSON.stringify({ unpacked, dirs: r.prepared.dirs }));
  `);
}

describe('pullImage', { skip: skipUnless(root('snapshots in the overlay format need root'), peer('getfattr', 'attr')) }, () => {
  let dir: string;
  let reg: BerthRegistry;
  let client: RegistryClient;
  let imgA: FixtureImage;
  let imgB: FixtureImage;
  let source: OciLayout;

  before(async () => {
    dir = tempDir('pull');
    reg = await startBerthRegistry();
    client = new RegistryClient();
    source = await OciLayout.open(join(dir, 'source'), { create: true });
    imgA = await storeFixtureImage(source, 'a', [BASE, CHANGES, TOP]);
    imgB = await storeFixtureImage(source, 'b', [BASE, CHANGES, [{ path: 'app', body: 'app' }]]);
    const bad = await storeFixtureImage(source, 'bad', [BASE, [{ path: 'x', body: 'x' }]], { diffIdOverride: { 1: sha256(Buffer.from('other')) } });
    assert.ok(bad);
    await storeFixtureImage(source, 'big', [manyFiles(2500, 'one'), manyFiles(2500, 'two')]);
    for (const tag of ['a', 'b', 'bad', 'big']) await copy(source, tag, client.repository(reg.host, 'test/img'), tag);
  });

  after(async () => {
    client?.close();
    await reg?.stop();
    removeDir(dir);
  });

  it('stores the image and unpacks its layers into snapshots equal to the flat unpack', async () => {
    const berthRoot = join(dir, 'root1');
    const pulled = await pullImage(`${reg.host}/test/img:a`, { berthRoot, client });
    await pulled.prepared!.release();
    assert.equal(pulled.name, `${reg.host}/test/img:a`);
    assert.equal(pulled.manifestDesc.digest, imgA.manifestDesc.digest);
    assert.equal(pulled.streamedLayers, 3, 'every layer unpacked from its download as it arrived');
    assert.equal(pulled.prepared!.chainId, chainIds(imgA.config.rootfs.diff_ids)[2]);
    // The store holds the image (a layout skopeo reads) and the blobs once.
    const store = await openImageStore({ root: berthRoot });
    assert.deepEqual(await store.tags(), [pulled.name]);
    for (const l of imgA.manifest.layers) assert.ok(await store.exists(l));
    // The overlay of the snapshots and the flat unpack of the stored blobs (vfs) agree.
    const snapshots = new SnapshotStore(berthRoot);
    const container = join(dir, 'c1');
    const rootfs = await snapshots.mountRootfs(pulled.prepared!.dirs, container);
    try {
      const vfs = await snapshots.mountRootfs(pulled.prepared!.dirs, join(dir, 'c1-vfs'), { driver: 'vfs' });
      assert.deepEqual(await snapshotTree(rootfs), await snapshotTree(vfs));
      assert.equal(Object.keys(await snapshotTree(rootfs)).includes('e/new'), true);
    } finally {
      await snapshots.unmountRootfs(container);
    }
  });

  it('keeps the store readable by skopeo', { skip: skipUnless(peer('skopeo', 'skopeo')) }, () => {
    const out = join(dir, 'skopeo-out');
    execFileSync('skopeo', ['copy', `oci:${join(dir, 'root1', 'images')}:${reg.host}/test/img:a`, `oci:${out}:copied`], { stdio: 'pipe' });
    const copied = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${out}:copied`]).toString()) as { layers: unknown[] };
    assert.equal(copied.layers.length, 3);
  });

  it('neither downloads nor unpacks again the layers a second image shares', async () => {
    const berthRoot = join(dir, 'root1');
    const unpackedBefore = new SnapshotStore(berthRoot);
    const before = (await unpackedBefore.list()).length;
    const pulled = await pullImage(`${reg.host}/test/img:b`, { berthRoot, client });
    await pulled.prepared!.release();
    assert.equal(pulled.copy.blobsSkipped, 2, 'the shared layers were not downloaded');
    assert.equal(pulled.streamedLayers, 1);
    assert.equal((await unpackedBefore.list()).length, before + 1, 'one new snapshot: the layer B does not share');
    assert.equal(pulled.manifestDesc.digest, imgB.manifestDesc.digest);
  });

  it('unpacks from the store a layer whose blob is there but whose snapshot is not', async () => {
    const berthRoot = join(dir, 'root1');
    const snapshots = new SnapshotStore(berthRoot);
    const top = chainIds(imgA.config.rootfs.diff_ids)[2]!;
    rmSync(snapshots.snapshotDir(top), { recursive: true });
    const pulled = await pullImage(`${reg.host}/test/img:a`, { berthRoot, client });
    await pulled.prepared!.release();
    assert.equal(pulled.copy.blobsCopied, 0);
    assert.equal(pulled.streamedLayers, 0);
    assert.ok(await snapshots.meta(top));
  });

  it('fails on a layer that does not match its diff_id, storing no snapshot of it', async () => {
    const berthRoot = join(dir, 'root-bad');
    await assert.rejects(
      pullImage(`${reg.host}/test/img:bad`, { berthRoot, client }),
      (err: unknown) => isBerthError(err, 'DIGEST_MISMATCH') && /diff_ids\[1\]/.test((err as Error).message),
    );
    const snapshots = new SnapshotStore(berthRoot);
    assert.equal((await snapshots.list()).length, 1, 'only the good base layer');
    assert.deepEqual(readdirSync(snapshots.dir).filter((n) => n.startsWith('tmp-')), []);
  });

  it('says so when the image is not in the registry', async () => {
    await assert.rejects(pullImage(`${reg.host}/test/none:1`, { berthRoot: join(dir, 'root-none'), client }), (err: unknown) => isBerthError(err, 'NOT_FOUND'));
  });

  it('unpacks each layer once when two processes pull the same image at the same time', async () => {
    const berthRoot = join(dir, 'root-concurrent');
    const runs = [pullInChild(berthRoot, `${reg.host}/test/img:big`), pullInChild(berthRoot, `${reg.host}/test/img:big`)];
    const results = await Promise.all(runs.map((r) => r.done));
    for (const r of results) assert.equal(r.code, 0, r.err);
    const outs = results.map((r) => JSON.parse(r.out) as { unpacked: number; dirs: string[] });
    assert.equal(outs[0]!.unpacked + outs[1]!.unpacked, 2, 'two layers, each unpacked by one of the two');
    assert.deepEqual(outs[0]!.dirs, outs[1]!.dirs);
    assert.deepEqual((await checkSystem(berthRoot)).filter((p) => p.severity === 'error'), []);
  });

  it('survives kill -9 in the middle of a pull: the next pull works and the store checks clean', async () => {
    const berthRoot = join(dir, 'root-killed');
    const child = pullInChild(berthRoot, `${reg.host}/test/img:big`);
    const snapshotsDir = join(berthRoot, 'snapshots');
    const deadline = Date.now() + 30_000;
    for (;;) {
      // Both layers unpack side by side, each in its own temp dir: wait until one of them is well under way.
      const tmps = existsSync(snapshotsDir) ? readdirSync(snapshotsDir).filter((n) => n.startsWith(`tmp-${child.pid}-`)) : [];
      const started = (t: string) => ['one', 'two'].some((d) => existsSync(join(snapshotsDir, t, 'fs', d)) && readdirSync(join(snapshotsDir, t, 'fs', d)).length > 50);
      if (tmps.some(started)) break;
      assert.ok(Date.now() < deadline, 'the child never started unpacking');
      await sleep(5);
    }
    process.kill(child.pid, 'SIGKILL');
    await child.done;
    const snapshots = new SnapshotStore(berthRoot);
    assert.equal((await snapshots.list()).length < 2, true, 'the interrupted snapshot was not published');
    const pulled = await pullImage(`${reg.host}/test/img:big`, { berthRoot, client });
    await pulled.prepared!.release();
    assert.equal((await snapshots.list()).length, 2);
    assert.equal((await snapshotTree(pulled.prepared!.dirs[1]!))['two/f2499']?.kind, 'file');
    assert.deepEqual(readdirSync(snapshotsDir).filter((n) => n.startsWith('tmp-')), [], 'the half-unpacked snapshot was removed');
    assert.deepEqual((await checkSystem(berthRoot)).filter((p) => p.severity === 'error'), []);
  });
});
