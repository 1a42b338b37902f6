/**
 * Snapshots keyed by chain ID: overlay view = flat unpack, sharing between images, one unpack
 * under concurrency, kill -9 in the middle of an unpack, the vfs copy, prune with leases.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chainIds, SnapshotStore } from '../../src/engine/snapshots.js';
import { openImageStore } from '../../src/engine/store.js';
import { unpackLayers } from '../../src/layer/unpack-layers.js';
import { WORKER_MIN_BYTES } from '../../src/layer/unpack-pool.js';
import type { OciLayout } from '../../src/image/layout.js';
import { isBerthError } from '../../src/base/errors.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { removeDir, snapshotTree, tempDir } from '../layer/layer-write-helpers.js';
import { sha256, type FixtureEntry } from '../layer/tar-fixture.js';
import { BASE, CHANGES, TOP, manyFiles, nodeScript, storeFixtureImage, type ChildRun, type FixtureImage } from './image-fixture.js';

/**
 * A file that makes its layer's blob bigger than WORKER_MIN_BYTES. With BERTH_UNPACK_THREADS=1
 * (set for these tests, and inherited by the child processes), the calling thread applies the
 * first such layer of an image and a worker thread the next.
 */
const BIG: FixtureEntry = { path: 'big', body: randomBytes(WORKER_MIN_BYTES + 100_000) };

const SNAPSHOTS_MODULE = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'engine', 'snapshots.js')).href;

/** The flattened root of an image: its layers applied in order by the layer applier. */
async function flatUnpack(layout: OciLayout, img: FixtureImage, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await unpackLayers(
    dir,
    img.manifest.layers.map((l, i) => ({ ...l, diffId: img.config.rootfs.diff_ids[i], open: () => layout.fetch(l) })),
  );
}

/** Runs prepare(tag) in a separate Node process; prints how many snapshots it unpacked. */
function prepareInChild(berthRoot: string, tag: string): ChildRun {
  return nodeScript(`
    const { SnapshotStore } = await import(${JSON.stringify(SNAPSHOTS_MODULE)});
    let unpacked = 0;
    const store = new SnapshotStore(${JSON.stringify(berthRoot)});
    const p = await store.prepare(${JSON.stringify(tag)}, { onUnpacked: () => unpacked++ });
    console.log(JSON.stringify({ unpacked, dirs: p.dirs }));
  `);
}

describe('snapshots', { skip: skipUnless(root('overlay mounts, whiteout devices and trusted.* xattrs need root'), peer('getfattr', 'attr')) }, () => {
  let dir: string;
  let berthRoot: string;
  let layout: OciLayout;
  let store: SnapshotStore;
  let imgA: FixtureImage;
  const mounted: string[] = [];

  const savedThreads = process.env.BERTH_UNPACK_THREADS;
  before(async () => {
    process.env.BERTH_UNPACK_THREADS = '1';
    dir = tempDir('snapshots');
    berthRoot = join(dir, 'root');
    layout = await openImageStore({ root: berthRoot });
    store = new SnapshotStore(berthRoot);
    imgA = await storeFixtureImage(layout, 'example.test/a:1', [BASE, CHANGES, TOP]);
  });

  after(async () => {
    for (const c of mounted) await store.unmountRootfs(c).catch(() => undefined);
    removeDir(dir);
    if (savedThreads === undefined) delete process.env.BERTH_UNPACK_THREADS;
    else process.env.BERTH_UNPACK_THREADS = savedThreads;
  });

  it('computes chain IDs as config.md says', () => {
    const d = [sha256(Buffer.from('a')), sha256(Buffer.from('b'))];
    assert.deepEqual(chainIds(d), [d[0], sha256(Buffer.from(`${d[0]} ${d[1]}`))]);
  });

  it('mounts an overlay whose view equals the flat unpack (whiteouts, opaque dirs, replaced paths)', async () => {
    const unpacked: string[] = [];
    const p = await store.prepare('example.test/a:1', { onUnpacked: (m) => unpacked.push(m.chainId) });
    await p.release();
    assert.equal(p.dirs.length, 3);
    assert.equal(unpacked.length, 3);
    assert.equal(p.chainId, chainIds(imgA.config.rootfs.diff_ids)[2]);
    // The snapshot of CHANGES holds only its diff, in overlay format.
    const changes = await snapshotTree(p.dirs[1]!);
    assert.equal(changes['f']?.kind, 'char');
    assert.equal(changes['f']?.rdev, 0);
    assert.equal(changes['d']?.xattrs?.['trusted.overlay.opaque'], Buffer.from('y').toString('hex'));
    assert.equal(changes['etc'], undefined, 'a snapshot holds only its own layer');

    const container = join(dir, 'c-overlay');
    mounted.push(container);
    const rootfs = await store.mountRootfs(p.dirs, container);
    assert.equal(store.rootfsDriver(container), 'overlay');
    const flat = join(dir, 'flat');
    await flatUnpack(layout, imgA, flat);
    const view = await snapshotTree(rootfs);
    assert.deepEqual(view, await snapshotTree(flat));
    assert.equal(view['f'], undefined);
    assert.deepEqual(Object.keys(view).filter((k) => k.startsWith('d/')), ['d/z']);
    assert.deepEqual(Object.keys(view).filter((k) => k.startsWith('e/')), ['e/new']);

    // Writes land in the upper dir; the snapshots stay as they were.
    writeFileSync(join(rootfs, 'written'), 'w');
    assert.ok(existsSync(join(store.upperDir(container), 'written')));
    assert.ok(!readdirSync(p.dirs[2]!).includes('written'));
    // Mounting again is a no-op; unmounting leaves the upper dir.
    assert.equal(await store.mountRootfs(p.dirs, container), rootfs);
    await store.unmountRootfs(container);
    assert.ok(!existsSync(join(rootfs, 'written')));
    assert.ok(existsSync(join(store.upperDir(container), 'written')));
    await store.mountRootfs(p.dirs, container);
    assert.ok(existsSync(join(rootfs, 'written')), 'a remount shows the container its changes again');
  });

  it('copies the chain with the vfs driver, equal to the overlay view', async () => {
    const p = await store.prepare('example.test/a:1');
    await p.release();
    const overlay = join(dir, 'c-cmp-overlay');
    const vfs = join(dir, 'c-vfs');
    mounted.push(overlay);
    const a = await store.mountRootfs(p.dirs, overlay);
    const b = await store.mountRootfs(p.dirs, vfs, { driver: 'vfs' });
    assert.equal(store.rootfsDriver(vfs), 'vfs');
    assert.deepEqual(await snapshotTree(b), await snapshotTree(a));
  });

  it('falls back to a copy where the file system refuses an overlay (an upper dir on overlayfs)', async () => {
    const p = await store.prepare('example.test/a:1');
    await p.release();
    const outer = join(dir, 'c-outer');
    mounted.push(outer);
    const outerRoot = await store.mountRootfs(p.dirs, outer);
    // overlayfs cannot be the upper layer of another overlay: this mount is refused.
    const nested = join(outerRoot, 'nested-container');
    const rootfs = await store.mountRootfs(p.dirs, nested);
    assert.equal(store.rootfsDriver(nested), 'vfs');
    assert.deepEqual(await snapshotTree(rootfs), await snapshotTree(join(dir, 'flat')));
    assert.equal(existsSync(join(nested, 'upper')), false, 'the refused overlay left nothing behind');
  });

  it('shares the snapshots of common base layers between images', async () => {
    const own: FixtureEntry[] = [{ path: 'app', body: 'app', mtime: 1_700_000_100 }];
    await storeFixtureImage(layout, 'example.test/b:1', [BASE, CHANGES, own]);
    const unpacked: string[] = [];
    const pa = await store.prepare('example.test/a:1');
    const pb = await store.prepare('example.test/b:1', { onUnpacked: (m) => unpacked.push(m.chainId) });
    await pa.release();
    await pb.release();
    assert.deepEqual(pb.dirs.slice(0, 2), pa.dirs.slice(0, 2));
    assert.notEqual(pb.dirs[2], pa.dirs[2]);
    assert.deepEqual(unpacked, [pb.chainId], 'only the layer B does not share is unpacked');
    assert.equal((await store.list()).length, 4);
  });

  it('unpacks each layer once when processes prepare the same image at the same time', async () => {
    await storeFixtureImage(layout, 'example.test/c:1', [[...manyFiles(300), BIG], [{ path: 'c', body: 'c' }, BIG], [{ path: 'c2', body: 'c2' }]]);
    const runs = [0, 1, 2].map(() => prepareInChild(berthRoot, 'example.test/c:1'));
    const results = await Promise.all(runs.map((r) => r.done));
    for (const r of results) assert.equal(r.code, 0, r.err);
    const outs = results.map((r) => JSON.parse(r.out) as { unpacked: number; dirs: string[] });
    assert.equal(outs.reduce((n, o) => n + o.unpacked, 0), 3, 'three layers, each unpacked by exactly one process');
    assert.deepEqual(outs[1]!.dirs, outs[0]!.dirs);
    assert.deepEqual(readdirSync(store.dir).filter((n) => n.startsWith('tmp-')), []);
  });

  it('survives kill -9 in the middle of an unpack: the half snapshot is never used, the next prepare works', async () => {
    const img = await storeFixtureImage(layout, 'example.test/k:1', [[BIG], [...manyFiles(3000), BIG]]);
    const chain = chainIds(img.config.rootfs.diff_ids)[1];
    const child = prepareInChild(berthRoot, 'example.test/k:1');
    const deadline = Date.now() + 30_000;
    // Wait until the unpack is under way (its temp dir has files), then kill it.
    for (;;) {
      const many = readdirSync(store.dir)
        .filter((n) => n.startsWith(`tmp-${child.pid}-`))
        .map((n) => join(store.dir, n, 'fs', 'many'))
        .find((d) => existsSync(d));
      if (many && readdirSync(many).length > 20) break;
      assert.ok(Date.now() < deadline, 'the child never started unpacking');
      await sleep(5);
    }
    process.kill(child.pid, 'SIGKILL');
    await child.done;
    assert.equal(await store.meta(chain!), undefined, 'no snapshot published');
    assert.ok(readdirSync(store.dir).some((n) => n.startsWith(`tmp-${child.pid}-`)), 'the half unpack is left in a temp dir');
    assert.ok(existsSync(join(store.dir, `${chain!.slice(7)}.lock`)), 'its lock is left behind, owned by a dead process');

    const p = await store.prepare('example.test/k:1');
    await p.release();
    assert.deepEqual(readdirSync(store.dir).filter((n) => n.startsWith(`tmp-${child.pid}-`)), [], 'leftovers removed');
    const tree = await snapshotTree(p.dirs[1]!);
    assert.equal(Object.keys(tree).length, 3002);
    assert.equal((await store.meta(chain!))?.entries, 3002);
  });

  it('refuses a layer whose content does not match the config diff_id and publishes nothing', async () => {
    const bogus = sha256(Buffer.from('not the layer'));
    const img = await storeFixtureImage(layout, 'example.test/bad:1', [[{ path: 'bad', body: 'bad' }]], { diffIdOverride: { 0: bogus } });
    await assert.rejects(store.prepare('example.test/bad:1'), (err: unknown) => isBerthError(err, 'DIGEST_MISMATCH') && /diff_ids\[0\]/.test((err as Error).message));
    assert.equal(await store.meta(chainIds(img.config.rootfs.diff_ids)[0]!), undefined);
    assert.deepEqual(readdirSync(store.dir).filter((n) => n.startsWith(`tmp-${process.pid}-`)), []);
  });

  it('prunes snapshots outside the kept chains, but not those a live prepare holds', async () => {
    const pb = await store.prepare('example.test/b:1'); // leased until released
    const keepA = chainIds(imgA.config.rootfs.diff_ids);
    const removed1 = await store.prune([keepA[2]!]);
    assert.ok(!removed1.some((m) => m.chainId === pb.chainId), 'a leased snapshot stays');
    assert.ok(existsSync(pb.dirs[2]!));
    await pb.release();
    const removed2 = await store.prune([keepA[2]!]);
    assert.ok(removed2.some((m) => m.chainId === pb.chainId));
    assert.ok(!existsSync(pb.dirs[2]!));
    for (const c of keepA) assert.ok(await store.meta(c), 'the kept chain and its parents stay');
  });
});
