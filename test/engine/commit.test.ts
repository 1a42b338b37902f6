/**
 * berth commit of a container on a multi-layer image: the image's layers are reused as they are
 * (same digests) and one layer is added, read from the container's overlay upper dir (whiteouts
 * and opaque directories become the layer's); with the vfs driver, from a diff of its copied root.
 * The committed image runs and shows the container's changes.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ImageManifest } from '../../src/base/types.js';
import { appendLayer } from '../../src/image/build.js';
import { loadImage } from '../../src/image/load-image.js';
import { openImageStore } from '../../src/engine/store.js';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { runBerth } from '../helpers/run-berth.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const needs = skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'));
const BASE = 'docker.io/library/busybox:latest';
const LAYERED = 'docker.io/library/layered:latest';

/** Changes a file of each lower layer, deletes a file and a directory, makes /d opaque. */
const CHANGES = 'echo changed > /l2/edit; rm /l2/gone; rm -r /l3/dir; rm -rf /d; mkdir /d; echo z > /d/z; echo new > /new';
const CHECK = 'cat /l2/edit /new /d/z; ls /d; for p in /l2/gone /l3/dir /d/x; do test -e $p && echo "$p still there"; done; cat /l3/kept';

async function manifestOf(rootDir: string, ref: string): Promise<ImageManifest> {
  return (await loadImage(await openImageStore({ root: rootDir }), ref)).manifest;
}

describe('berth commit', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => {
    e = await engineRoot();
    // busybox + two layers: /l2 (edit, gone) and /d (x, y); /l3 (dir/inner, kept)
    const dir = await mkdtemp(join(tmpdir(), 'berth-commit-'));
    try {
      const layout = await openImageStore({ root: e.root });
      mkdirSync(join(dir, 'a', 'l2'), { recursive: true });
      mkdirSync(join(dir, 'a', 'd'));
      for (const [p, body] of [['l2/edit', 'orig\n'], ['l2/gone', 'x\n'], ['d/x', 'x\n'], ['d/y', 'y\n']]) writeFileSync(join(dir, 'a', p!), body!);
      await appendLayer(layout, BASE, { dir: join(dir, 'a'), tag: LAYERED });
      mkdirSync(join(dir, 'b', 'l3', 'dir'), { recursive: true });
      writeFileSync(join(dir, 'b', 'l3', 'dir', 'inner'), 'inner\n');
      writeFileSync(join(dir, 'b', 'l3', 'kept'), 'kept\n');
      await appendLayer(layout, LAYERED, { dir: join(dir, 'b') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  after(async () => { await e.close(); });

  for (const driver of ['overlay', 'vfs'] as const) {
    it(`${driver}: reuses the image's layers, adds one, and the committed image runs with the changes`, async () => {
      const env = driver === 'vfs' ? { ...e.env, BERTH_STORAGE_DRIVER: 'vfs' } : e.env;
      const name = `c-${driver}`;
      const run = await runBerth(['run', '--network', 'none', '--name', name, 'layered', 'sh', '-c', CHANGES], env);
      assert.equal(run.code, 0, run.stderr);
      const id = (JSON.parse((await e.berth(['inspect', name])).stdout) as { Id: string }[])[0]!.Id;
      assert.equal(JSON.parse(readFileSync(join(e.root, 'containers', id, 'rootfs.json'), 'utf8')).driver, driver);
      const commit = await e.berth(['commit', name, `committed:${driver}`]);
      assert.equal(commit.code, 0, commit.stderr);
      const before = await manifestOf(e.root, LAYERED);
      const after_ = await manifestOf(e.root, `docker.io/library/committed:${driver}`);
      assert.equal(before.layers.length, 3);
      assert.deepEqual(after_.layers.slice(0, 3).map((l) => l.digest), before.layers.map((l) => l.digest), 'the image\'s layers are reused unchanged');
      assert.equal(after_.layers.length, 4, 'one layer added');
      const r = await e.berth(['run', '--rm', '--network', 'none', `committed:${driver}`, 'sh', '-c', CHECK]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'changed\nnew\nz\nz\nkept\n');
      await e.berth(['rm', name]);
    });
  }
});
