/** Where the local image store lives, and that it opens (and is created) as an OCI layout. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { berthRoot, imageStorePath, openImageStore, storeRefName } from '../../src/engine/store.js';
import { parseReference } from '../../src/image/reference.js';

describe('local image store', () => {
  it('follows --root, then BERTH_ROOT, then /var/lib/berth as root or XDG_DATA_HOME', () => {
    assert.equal(berthRoot({ root: '/x', env: { BERTH_ROOT: '/y' } }), '/x');
    assert.equal(berthRoot({ env: { BERTH_ROOT: '/y' } }), '/y');
    const isRoot = process.getuid?.() === 0;
    assert.equal(berthRoot({ env: { XDG_DATA_HOME: '/data' } }), isRoot ? '/var/lib/berth' : '/data/berth');
    assert.equal(imageStorePath({ root: '/r' }), '/r/images');
  });

  it('names images by their full reference', () => {
    assert.equal(storeRefName(parseReference('busybox')), 'docker.io/library/busybox:latest');
    assert.equal(storeRefName(parseReference('localhost:5000/a/b:1')), 'localhost:5000/a/b:1');
  });

  it('creates the store as an OCI layout on first use', async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-store-'));
    try {
      const store = await openImageStore({ root });
      assert.equal(store.dir, join(root, 'images'));
      assert.ok((await stat(join(root, 'images', 'oci-layout'))).isFile());
      assert.deepEqual(await store.tags(), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
