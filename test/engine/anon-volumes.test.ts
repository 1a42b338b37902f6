/**
 * Anonymous volumes as docker makes them: one per VOLUME of the image (and per `-v /path`),
 * filled from the image's content at that path, listed by `volume ls`, removed by `rm -v` and
 * `run --rm`, kept by a plain `rm`; named volumes are never removed with a container.
 */
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createImage } from '../../src/image/build.js';
import { openImageStore } from '../../src/engine/store.js';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const needs = skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'));
const IMAGE = 'docker.io/library/withvol:latest';

describe('anonymous volumes', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => {
    e = await engineRoot();
    // busybox with /data/seed (owned by 1000:1000, mode 0640) and VOLUME /data
    const dir = await mkdtemp(join(tmpdir(), 'berth-vol-'));
    try {
      const rootfs = await buildBusyboxRootfs(join(dir, 'rootfs'));
      mkdirSync(join(rootfs, 'data'), { mode: 0o750 });
      writeFileSync(join(rootfs, 'data', 'seed'), 'seed\n', { mode: 0o640 });
      chownSync(join(rootfs, 'data', 'seed'), 1000, 1000);
      await createImage(await openImageStore({ root: e.root }), { dir: rootfs, tag: IMAGE, cmd: ['sh'], volumes: ['/data'] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  after(async () => { await e.close(); });

  const volumes = async () => (await e.berth(['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean).sort();
  const mountpoint = (name: string) => join(e.root, 'volumes', name, '_data');

  it('the image\'s VOLUME gets a volume of its own, filled from the image; rm -v removes it', async () => {
    const r = await e.berth(['run', '--network', 'none', '--name', 'v1', 'withvol', 'sh', '-c', 'cat /data/seed; echo added > /data/new; grep " /data " /proc/self/mountinfo | wc -l']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'seed\n1\n', 'the image\'s content is in the volume, mounted at /data');
    const [name, ...more] = await volumes();
    assert.match(name!, /^[0-9a-f]{64}$/);
    assert.deepEqual(more, []);
    const doc = JSON.parse((await e.berth(['inspect', 'v1'])).stdout)[0];
    assert.deepEqual(doc.Mounts.map((m: { Type: string; Source: string; Destination: string }) => [m.Type, m.Source, m.Destination]), [['volume', name, '/data']]);
    // The copy keeps ownership and modes; what the container wrote is in the volume.
    const seed = statSync(join(mountpoint(name!), 'seed'));
    assert.deepEqual([seed.uid, seed.gid, seed.mode & 0o777], [1000, 1000, 0o640]);
    assert.equal(statSync(mountpoint(name!)).mode & 0o777, 0o750);
    assert.equal(readFileSync(join(mountpoint(name!), 'new'), 'utf8'), 'added\n');
    const vol = JSON.parse((await e.berth(['volume', 'inspect', name!, '--format', 'json'])).stdout) as { Anonymous: boolean }[];
    assert.equal(vol[0]!.Anonymous, true);
    assert.equal((await e.berth(['rm', '-v', 'v1'])).code, 0);
    assert.deepEqual(await volumes(), []);
  });

  it('a plain rm keeps the anonymous volume (volume prune takes it); rm -v keeps named volumes', async () => {
    assert.equal((await e.berth(['run', '--network', 'none', '--name', 'v2', 'withvol', 'true'])).code, 0);
    assert.equal((await e.berth(['rm', 'v2'])).code, 0);
    assert.equal((await volumes()).length, 1);
    assert.equal((await e.berth(['volume', 'prune', '-f'])).code, 0);
    assert.deepEqual(await volumes(), []);
    // A named volume at the VOLUME's path replaces it (and, empty, gets the image's content);
    // `-v /path` is one more anonymous volume.
    const r = await e.berth(['run', '--network', 'none', '--name', 'v3', '-v', 'keepme:/data', '-v', '/scratch', 'withvol', 'sh', '-c', 'cat /data/seed; touch /scratch/x']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'seed\n');
    const before = await volumes();
    assert.equal(before.length, 2);
    assert.ok(before.includes('keepme'));
    assert.equal((await e.berth(['rm', '-v', 'v3'])).code, 0);
    assert.deepEqual(await volumes(), ['keepme']);
    assert.deepEqual(readdirSync(mountpoint('keepme')), ['seed']);
  });

  it('run --rm removes the anonymous volumes with the container, foreground and detached', async () => {
    assert.equal((await e.berth(['run', '--rm', '--network', 'none', 'withvol', 'sh', '-c', 'test -f /data/seed'])).code, 0);
    assert.deepEqual(await volumes(), ['keepme']);
    // The container holds its volumes until the test lets it go (a fixed sleep raced the
    // listing below on a loaded machine).
    const d = await e.berth(['run', '-d', '--rm', '--network', 'none', '-v', '/more', 'withvol', 'sh', '-c', 'while [ ! -e /more/go ]; do sleep 0.1; done']);
    assert.equal(d.code, 0, d.stderr);
    assert.equal((await volumes()).length, 3);
    assert.equal((await e.berth(['exec', d.stdout.trim(), 'touch', '/more/go'])).code, 0);
    const until = Date.now() + 30_000;
    while ((await volumes()).length > 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await volumes(), ['keepme']);
    assert.deepEqual(readdirSync(join(e.root, 'volumes')).filter((n) => n.startsWith('.')), [], 'no leftovers');
  });
});
