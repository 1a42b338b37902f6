/**
 * pullImage from `berth serve` on 127.0.0.1: the store gets the image (skopeo reads it), the
 * snapshots get each layer unpacked once while it downloads, shared layers are neither
 * downloaded nor unpacked again, and failures leave nothing half made.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
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
import { BASE, CHANGES, TOP, storeFixtureImage, type FixtureImage } from './image-fixture.js';

describe('pullImage', { skip: skipUnless(root('snapshots in the overlay format need root'), peer('setfattr', 'attr'), peer('getfattr', 'attr')) }, () => {
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
    for (const tag of ['a', 'b', 'bad']) await copy(source, tag, client.repository(reg.host, 'test/img'), tag);
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
});
