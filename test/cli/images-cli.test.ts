/**
 * The local-store commands as a user runs them: images, tag, inspect, rmi, image prune,
 * system df/check, volume; concurrent tags and volume creates lose nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SnapshotStore } from '../../src/engine/snapshots.js';
import { openImageStore } from '../../src/engine/store.js';
import type { OciLayout } from '../../src/image/layout.js';
import { runBerth } from '../helpers/run-berth.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { removeDir, tempDir } from '../layer/layer-write-helpers.js';
import { BASE, CHANGES, TOP, storeFixtureImage, type FixtureImage } from '../engine/image-fixture.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { BUSYBOX } from '../helpers/busybox.js';

describe('berth images, rmi, tag, inspect, system, volume', { skip: skipUnless(root('snapshots in the overlay format need root'), peer('setfattr', 'attr'), peer('getfattr', 'attr')) }, () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let layout: OciLayout;
  let imgA: FixtureImage;
  let imgB: FixtureImage;
  const berth = (...args: string[]) => runBerth(args, env);

  before(async () => {
    dir = tempDir('images-cli');
    const berthRoot = join(dir, 'root');
    env = { ...process.env, BERTH_ROOT: berthRoot };
    layout = await openImageStore({ root: berthRoot });
    imgA = await storeFixtureImage(layout, 'docker.io/library/app:1', [BASE, CHANGES, TOP]);
    imgB = await storeFixtureImage(layout, 'example.test/b:1', [BASE, CHANGES, [{ path: 'own', body: 'b' }]]);
    const snapshots = new SnapshotStore(berthRoot);
    for (const tag of ['docker.io/library/app:1', 'example.test/b:1']) await (await snapshots.prepare(tag)).release();
  });
  after(() => removeDir(dir));

  it('lists images with familiar names, IDs and sizes; -q and --format json', async () => {
    const r = await berth('images');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    assert.ok(lines.some((l) => /^app\s+1\s+/.test(l) && l.includes(imgA.manifest.config.digest.slice(7, 19))), r.stdout);
    assert.ok(lines.some((l) => /^example\.test\/b\s+1\s+/.test(l)), r.stdout);
    const q = await berth('images', '-q');
    assert.deepEqual(q.stdout.trim().split('\n').sort(), [imgA.manifest.config.digest.slice(7, 19), imgB.manifest.config.digest.slice(7, 19)].sort());
    const j = JSON.parse((await berth('images', '--format', 'json')).stdout) as { name: string; size: number }[];
    assert.deepEqual(j.map((i) => i.name).sort(), ['docker.io/library/app:1', 'example.test/b:1']);
    assert.ok(j.every((i) => i.size > 0));
  });

  it('tags in the local store with two references, and inspects a local image as docker does', async () => {
    const t = await berth('tag', 'app:1', 'registry.example/team/app:v2');
    assert.equal(t.code, 0, t.stderr);
    const i = await berth('inspect', 'registry.example/team/app:v2');
    assert.equal(i.code, 0, i.stderr);
    const [doc] = JSON.parse(i.stdout) as { Id: string; RepoTags: string[]; RootFS: { Layers: string[] }; Snapshots: { Dirs: string[] } }[];
    assert.equal(doc!.Id, imgA.manifest.config.digest);
    assert.deepEqual(doc!.RepoTags, ['docker.io/library/app:1', 'registry.example/team/app:v2']);
    assert.deepEqual(doc!.RootFS.Layers, imgA.config.rootfs.diff_ids);
    assert.equal(doc!.Snapshots.Dirs.length, 3);
    const missing = await berth('inspect', 'nothere:1');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no image "nothere:1" in the local store.*docker:\/\//);
  });

  it('tags concurrently without losing a name', async () => {
    const runs = await Promise.all(Array.from({ length: 8 }, (_, i) => berth('tag', 'example.test/b:1', `example.test/many:${i}`)));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const tags = await layout.tags();
    for (let i = 0; i < 8; i++) assert.ok(tags.includes(`example.test/many:${i}`), `many:${i} kept`);
  });

  it('shows disk usage, with the size each image shares (system df -v, --format json)', async () => {
    const r = await berth('system', 'df', '-v');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE/m);
    assert.match(r.stdout, /^Images\s+2\s+0\s+/m);
    assert.match(r.stdout, /^Snapshots\s+4\s+0\s+/m);
    assert.match(r.stdout, /SHARED SIZE\s+UNIQUE SIZE/);
    const j = JSON.parse((await berth('system', 'df', '--format', 'json')).stdout) as { perImage: { shared: number }[] };
    assert.ok(j.perImage.every((i) => i.shared > 0));
  });

  it('removes names and images (rmi), failing clearly on unknown ones', async () => {
    const untag = await berth('rmi', 'registry.example/team/app:v2');
    assert.equal(untag.code, 0, untag.stderr);
    assert.equal(untag.stdout.trim(), 'Untagged: registry.example/team/app:v2');
    const r = await berth('rmi', 'app:1', 'nothere:2');
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^Untagged: docker\.io\/library\/app:1$/m);
    assert.match(r.stdout, new RegExp(`^Deleted: ${imgA.manifest.config.digest}$`, 'm'));
    assert.match(r.stderr, /no image "nothere:2"/);
    assert.equal(await layout.exists(imgA.manifest.layers[2]!), false);
  });

  it('checks the berth root: clean, then a corrupt blob fails until the image is pulled again', async () => {
    const clean = await berth('system', 'check');
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /consistent/);
    writeFileSync(layout.blobPath(imgB.manifest.layers[2]!.digest), 'garbage');
    const bad = await berth('system', 'check');
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /error: blob sha256:.*pull the images that use it again/);
    assert.match(bad.stdout, /--repair/);
    const repaired = await berth('system', 'check', '--repair', '--format', 'json');
    const report = JSON.parse(repaired.stdout) as { ok: boolean; problems: { repaired?: boolean }[] };
    assert.ok(report.problems.some((p) => p.repaired));
    assert.equal(existsSync(layout.blobPath(imgB.manifest.layers[2]!.digest)), false, 'the corrupt blob is gone: a pull fetches it again');
  });

  it('prunes every image no container uses (image prune -a)', async () => {
    const r = await berth('image', 'prune', '-a');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Total reclaimed space: /);
    assert.equal((await berth('images', '-q')).stdout.trim(), '');
    const df = JSON.parse((await berth('system', 'df', '--format', 'json')).stdout) as { snapshots: { total: number } };
    assert.equal(df.snapshots.total, 0, 'no snapshot is left once no image uses it');
  });

  it('manages volumes: create, ls, inspect, rm, prune; concurrent creates make one', async () => {
    const runs = await Promise.all(Array.from({ length: 6 }, () => berth('volume', 'create', 'data')));
    for (const r of runs) assert.equal(r.stdout.trim(), 'data', r.stderr);
    const ls = await berth('volume', 'ls');
    assert.match(ls.stdout, /^DRIVER\s+VOLUME NAME\nlocal\s+data$/m);
    const [info] = JSON.parse((await berth('volume', 'inspect', 'data')).stdout) as { Mountpoint: string }[];
    assert.ok(existsSync(info!.Mountpoint));
    mkdirSync(join(info!.Mountpoint, 'x'));
    const rm = await berth('volume', 'rm', 'data', 'nothere');
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, /no volume "nothere"/);
    assert.equal(existsSync(info!.Mountpoint), false);
    await berth('volume', 'create', 'keep');
    const prune = await berth('volume', 'prune', '-a');
    assert.match(prune.stdout, /Deleted Volumes:\nkeep/);
    assert.equal((await berth('volume', 'ls', '-q')).stdout, '');
    const bad = await berth('volume', 'frob');
    assert.equal(bad.code, 2);
  });
});

describe('images and volumes that containers use', { skip: skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static')) }, () => {
  let eng: EngineRoot;
  before(async () => {
    eng = await engineRoot();
  });
  after(async () => {
    await eng?.close();
  });

  it("refuses rmi of a running container's image (even -f), and of a stopped one's without -f; system prune removes stopped containers", async () => {
    const run = await eng.berth(['run', '-d', '--name', 'live', '-v', 'data:/data', 'busybox', 'sleep', '60']);
    assert.equal(run.code, 0, run.stderr);
    const rmiRunning = await eng.berth(['rmi', '-f', 'busybox']);
    assert.equal(rmiRunning.code, 1);
    assert.match(rmiRunning.stderr, /running container live.*cannot be forced/);
    const volRm = await eng.berth(['volume', 'rm', 'data']);
    assert.equal(volRm.code, 1);
    assert.match(volRm.stderr, /volume data is in use by container live/);
    const df = JSON.parse((await eng.berth(['system', 'df', '--format', 'json'])).stdout) as { images: { active: number }; containers: { active: number }; volumes: { active: number } };
    assert.deepEqual([df.images.active, df.containers.active, df.volumes.active], [1, 1, 1]);
    assert.equal((await eng.berth(['rm', '-f', 'live'])).code, 0);

    const done = await eng.berth(['run', '--name', 'done', 'busybox', 'true']);
    assert.equal(done.code, 0, done.stderr);
    const rmiStopped = await eng.berth(['rmi', 'busybox']);
    assert.equal(rmiStopped.code, 1);
    assert.match(rmiStopped.stderr, /used by container done.*-f/);
    const prune = await eng.berth(['system', 'prune', '-a', '--volumes']);
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stdout, /deleted container: [0-9a-f]{64}/);
    assert.equal((await eng.berth(['ps', '-aq'])).stdout.trim(), '');
    assert.equal((await eng.berth(['images', '-q'])).stdout.trim(), '', 'the image went once no container used it');
    assert.equal((await eng.berth(['volume', 'ls', '-q'])).stdout.trim(), '');
    const after = JSON.parse((await eng.berth(['system', 'df', '--format', 'json'])).stdout) as { snapshots: { total: number } };
    assert.equal(after.snapshots.total, 0);
    const check = await eng.berth(['system', 'check']);
    assert.equal(check.code, 0, check.stdout);
  });
});
