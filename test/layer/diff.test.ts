import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, createWriteStream, linkSync, lutimesSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { diffTrees, writeDiffLayer, type Change } from '../../src/layer/diff.js';
import { createLayerFile } from '../../src/layer/create.js';
import { xattrsAvailable } from '../../src/layer/xattrs.js';
import {
  applyChangesetWithGnuTar,
  gnuTarList,
  gnuTarNames,
  hasCommand,
  isRoot,
  removeDir,
  run,
  snapshotTree,
  tempDir,
} from './layer-write-helpers.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const T0 = 1_600_000_000;
const T1 = 1_650_000_000;

function write(root: string, rel: string, content: string): void {
  mkdirSync(join(root, rel, '..'), { recursive: true });
  writeFileSync(join(root, rel), content);
}

/** Sets every mtime under `dir` (children first, so directory times stick). */
function setTimes(dir: string, t: number): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) setTimes(p, t);
    lutimesSync(p, t, t);
  }
  utimesSync(dir, t, t);
}

async function diffLayerFile(lower: string, upper: string, file: string): Promise<void> {
  await writeDiffLayer(lower, upper, createWriteStream(file), { compression: 'none' });
}

function sortChanges(c: Change[]): Change[] {
  return [...c].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

describe('diffTrees / writeDiffLayer', () => {
  let work: string;
  let n = 0;
  /** A fresh lower tree built by `fill`, and its cp -a copy as upper. */
  function pair(fill: (lower: string) => void): { lower: string; upper: string } {
    const base = join(work, `case${n++}`);
    const lower = join(base, 'lower');
    mkdirSync(lower, { recursive: true });
    fill(lower);
    setTimes(lower, T0);
    const upper = join(base, 'upper');
    run('cp', ['-a', lower, upper]);
    return { lower, upper };
  }
  before(() => {
    work = tempDir('diff');
  });
  after(() => removeDir(work));

  it('finds the changes of the layer.md example and writes its changeset', async () => {
    const { lower, upper } = pair((l) => {
      write(l, 'etc/my-app-config', 'config\n');
      write(l, 'bin/my-app-binary', 'binary\n');
      write(l, 'bin/my-app-tools', 'tools v1\n');
    });
    rmSync(join(upper, 'etc/my-app-config'));
    write(upper, 'etc/my-app.d/default.cfg', 'default\n');
    write(upper, 'bin/my-app-tools', 'tools v2 (handles my-app.d)\n');

    assert.deepEqual(sortChanges(await diffTrees(lower, upper)), [
      { path: 'bin/my-app-tools', kind: 'modified' },
      { path: 'etc', kind: 'modified' },
      { path: 'etc/my-app-config', kind: 'deleted' },
      { path: 'etc/my-app.d', kind: 'added' },
      { path: 'etc/my-app.d/default.cfg', kind: 'added' },
    ]);
    const file = join(work, 'example.tar');
    await diffLayerFile(lower, upper, file);
    // Whiteouts come before their sibling entries (layer.md "Whiteouts").
    assert.deepEqual(gnuTarNames(file), ['bin/my-app-tools', 'etc/', 'etc/.wh.my-app-config', 'etc/my-app.d/', 'etc/my-app.d/default.cfg']);
    const wh = gnuTarList(file).find((l) => l.endsWith('etc/.wh.my-app-config'))!;
    assert.match(wh, /^-[-r][-w]-------? 0\/0 +0 /, 'a whiteout is an empty regular file');
  });

  it('reports nothing for identical trees and writes an empty archive', async () => {
    const { lower, upper } = pair((l) => {
      write(l, 'a/b/c', 'same');
      symlinkSync('a/b/c', join(l, 'link'));
    });
    assert.deepEqual(await diffTrees(lower, upper), []);
    const file = join(work, 'empty.tar');
    await diffLayerFile(lower, upper, file);
    const bytes = readFileSync(file);
    assert.equal(bytes.length, 1024);
    assert.ok(bytes.every((b) => b === 0));
  });

  it('uses an opaque whiteout when nothing of a directory survives, explicit whiteouts otherwise', async () => {
    const { lower, upper } = pair((l) => {
      write(l, 'bin/my-app-binary', 'b');
      write(l, 'bin/my-app-tools', 't');
      write(l, 'bin/tools/my-app-tool-one', '1');
      write(l, 'lib/keep', 'k');
      write(l, 'lib/drop1', 'd');
      write(l, 'lib/drop2', 'd');
    });
    for (const c of readdirSync(join(upper, 'bin'))) rmSync(join(upper, 'bin', c), { recursive: true });
    write(upper, 'bin/new', 'n');
    rmSync(join(upper, 'lib/drop1'));
    rmSync(join(upper, 'lib/drop2'));

    const file = join(work, 'opaque.tar');
    await diffLayerFile(lower, upper, file);
    assert.deepEqual(gnuTarNames(file), ['bin/', 'bin/.wh..wh..opq', 'bin/new', 'lib/', 'lib/.wh.drop1', 'lib/.wh.drop2']);
    assert.deepEqual(sortChanges(await diffTrees(lower, upper)), [
      { path: 'bin', kind: 'modified' },
      { path: 'bin/my-app-binary', kind: 'deleted' },
      { path: 'bin/my-app-tools', kind: 'deleted' },
      { path: 'bin/new', kind: 'added' },
      { path: 'bin/tools', kind: 'deleted' },
      { path: 'lib', kind: 'modified' },
      { path: 'lib/drop1', kind: 'deleted' },
      { path: 'lib/drop2', kind: 'deleted' },
    ]);
  });

  it('replaces a directory by a file and a file by a directory', async () => {
    const { lower, upper } = pair((l) => {
      write(l, 'd2f/inner/deep', 'x');
      write(l, 'd2f/other', 'y');
      write(l, 'f2d', 'file');
      symlinkSync('target', join(l, 's2d'));
    });
    rmSync(join(upper, 'd2f'), { recursive: true });
    write(upper, 'd2f', 'now a file');
    rmSync(join(upper, 'f2d'));
    write(upper, 'f2d/child', 'now a dir');
    rmSync(join(upper, 's2d'));
    mkdirSync(join(upper, 's2d'));
    assert.deepEqual(sortChanges(await diffTrees(lower, upper)), [
      { path: 'd2f', kind: 'modified' },
      { path: 'f2d', kind: 'modified' },
      { path: 'f2d/child', kind: 'added' },
      { path: 's2d', kind: 'modified' },
    ]);
    const file = join(work, 'replace.tar');
    await diffLayerFile(lower, upper, file);
    const list = gnuTarList(file);
    assert.match(list.find((l) => l.endsWith(' d2f'))!, /^-/);
    assert.match(list.find((l) => l.endsWith(' f2d/'))!, /^d/);
    assert.match(list.find((l) => l.endsWith(' s2d/'))!, /^d/);
  });

  it('detects metadata changes: mode, owner, mtime, symlink target, xattrs', async () => {
    const { lower, upper } = pair((l) => {
      for (const f of ['mode', 'owner', 'mtime', 'xattr', 'same']) write(l, f, f);
      symlinkSync('one', join(l, 'link'));
    });
    chmodSync(join(upper, 'mode'), 0o4711);
    chownSync(join(upper, 'owner'), 42, 43);
    utimesSync(join(upper, 'mtime'), T1, T1);
    unlinkSync(join(upper, 'link'));
    symlinkSync('two', join(upper, 'link'));
    lutimesSync(join(upper, 'link'), T0, T0);
    const expected: Change[] = [
      { path: 'link', kind: 'modified' },
      { path: 'mode', kind: 'modified' },
      { path: 'mtime', kind: 'modified' },
      { path: 'owner', kind: 'modified' },
    ];
    if (xattrsAvailable() && hasCommand('setfattr')) {
      run('setfattr', ['-n', 'user.k', '-v', 'v', join(upper, 'xattr')]);
      expected.push({ path: 'xattr', kind: 'modified' });
    } else console.log('# xattr changes not tested: getfattr/setfattr (Debian package attr) not installed');
    utimesSync(upper, T0, T0);
    assert.deepEqual(sortChanges(await diffTrees(lower, upper)), expected);
  });

  it('compares contents when size and whole-second mtime cannot tell', async () => {
    const { lower, upper } = pair((l) => {
      write(l, 'same-size', 'AAAA');
      write(l, 'untouched', 'BBBB');
    });
    writeFileSync(join(upper, 'same-size'), 'ZZZZ');
    utimesSync(join(upper, 'same-size'), T0, T0);
    assert.deepEqual(await diffTrees(lower, upper), [{ path: 'same-size', kind: 'modified' }]);
  });

  it('writes hardlinks among changed files as link entries', async () => {
    const { lower, upper } = pair((l) => write(l, 'old', 'o'));
    write(upper, 'new/a', 'linked');
    linkSync(join(upper, 'new/a'), join(upper, 'new/b'));
    const file = join(work, 'links.tar');
    await diffLayerFile(lower, upper, file);
    const list = gnuTarList(file);
    assert.ok(list.some((l) => /^-.* new\/a$/.test(l)));
    assert.ok(list.some((l) => /^h.* new\/b link to new\/a$/.test(l)));
  });

  it('notices files that became hardlinks of each other, and applies them as links', async () => {
    const { lower, upper } = pair((l) => {
      write(l, 'a', 'same');
      write(l, 'b', 'same');
    });
    rmSync(join(upper, 'b'));
    linkSync(join(upper, 'a'), join(upper, 'b'));
    setTimes(upper, T0);
    assert.deepEqual(await diffTrees(lower, upper), [
      { path: 'a', kind: 'modified' },
      { path: 'b', kind: 'modified' },
    ]);
    const file = join(work, 'relink.tar');
    await diffLayerFile(lower, upper, file);
    assert.match(gnuTarList(file)[1]!, / b link to a$/);
    const target = join(work, 'relink-applied');
    run('cp', ['-a', lower, target]);
    applyChangesetWithGnuTar(file, target);
    assert.deepEqual(await snapshotTree(target), await snapshotTree(upper));
  });

  it('writes the same changeset bytes for the same trees', async () => {
    const { lower, upper } = mixedPair();
    const one = await writeDiffLayer(lower, upper, createWriteStream(join(work, 'det1.tgz')), { compression: 'gzip' });
    const two = await writeDiffLayer(lower, upper, createWriteStream(join(work, 'det2.tgz')), { compression: 'gzip' });
    assert.deepEqual(one, two);
    assert.equal(one.digest, `sha256:${createHash('sha256').update(readFileSync(join(work, 'det1.tgz'))).digest('hex')}`);
  });

  it('refuses .wh. names in the upper tree', async () => {
    const { lower, upper } = pair((l) => write(l, 'x', 'x'));
    write(upper, 'dir/.wh.x', '');
    await assert.rejects(diffTrees(lower, upper), { code: 'LAYER_INVALID' });
    await assert.rejects(diffTrees(join(lower, 'x'), upper), { code: 'USAGE' });
  });

  /** A lower and upper that exercise every kind of change at once. */
  function mixedPair(): { lower: string; upper: string } {
    const p = pair((l) => {
      write(l, 'keep/a', 'a');
      write(l, 'keep/deeper/b', 'b');
      write(l, 'mod.txt', 'v1');
      write(l, 'chmod.txt', 'c');
      write(l, 'del.txt', 'gone');
      write(l, 'deldir/sub/f', 'gone');
      write(l, 'opq/a', 'a');
      write(l, 'opq/b', 'b');
      write(l, 'opq/c/d', 'd');
      write(l, 'd2f/x', 'x');
      write(l, 'f2d', 'f');
      write(l, 'etc/only', 'o');
      symlinkSync('keep/a', join(l, 'sym'));
    });
    const u = p.upper;
    write(u, 'mod.txt', 'version 2');
    chmodSync(join(u, 'chmod.txt'), 0o600);
    rmSync(join(u, 'del.txt'));
    rmSync(join(u, 'deldir'), { recursive: true });
    for (const c of readdirSync(join(u, 'opq'))) rmSync(join(u, 'opq', c), { recursive: true });
    write(u, 'opq/fresh', 'fresh');
    rmSync(join(u, 'd2f'), { recursive: true });
    write(u, 'd2f', 'file now');
    rmSync(join(u, 'f2d'));
    write(u, 'f2d/inside', 'dir now');
    rmSync(join(u, 'etc/only'));
    write(u, 'etc/other', 'other');
    unlinkSync(join(u, 'sym'));
    symlinkSync('keep/deeper/b', join(u, 'sym'));
    write(u, 'new/one', 'linked');
    linkSync(join(u, 'new/one'), join(u, 'new/two'));
    run('mkfifo', [join(u, 'new/fifo')]);
    if (isRoot) run('mknod', [join(u, 'new/null'), 'c', '1', '3']);
    if (xattrsAvailable() && hasCommand('setfattr')) run('setfattr', ['-n', 'user.tag', '-v', 'x', join(u, 'new/one')]);
    setTimes(u, T1);
    return p;
  }

  it('gives upper when the changeset is applied onto lower by GNU tar with whiteout processing', async () => {
    const { lower, upper } = mixedPair();
    const file = join(work, 'mixed.tar');
    await diffLayerFile(lower, upper, file);
    const target = join(work, 'applied-gnu');
    run('cp', ['-a', lower, target]);
    applyChangesetWithGnuTar(file, target);
    assert.deepEqual(await snapshotTree(target), await snapshotTree(upper));
  });

  it('gives upper when umoci unpacks an image of lower plus the changeset', { skip: skipUnless(root('umoci unpack'), peer('umoci', 'umoci')) }, async () => {
    const { lower, upper } = mixedPair();
    const layout = join(work, 'layout');
    mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
    const blob = (digest: string): string => join(layout, 'blobs/sha256', digest.slice(7));
    const base = await createLayerFile(lower, join(work, 'base.tgz'), { compression: 'gzip' });
    run('mv', [join(work, 'base.tgz'), blob(base.digest)]);
    const diffFile = join(work, 'diff.tgz');
    const diff = await writeDiffLayer(lower, upper, createWriteStream(diffFile), { compression: 'gzip' });
    run('mv', [diffFile, blob(diff.digest)]);
    const put = (obj: unknown): { digest: string; size: number } => {
      const bytes = Buffer.from(JSON.stringify(obj));
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      writeFileSync(blob(digest), bytes);
      return { digest, size: bytes.length };
    };
    const config = put({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [base.diffId, diff.diffId] } });
    const manifest = put({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [base, diff].map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    });
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'test' } }],
      }),
    );
    const bundle = join(work, 'bundle');
    run('umoci', ['unpack', '--image', `${layout}:test`, bundle]);
    const got = await snapshotTree(join(bundle, 'rootfs'));
    const want = await snapshotTree(upper);
    assert.deepEqual(got, want);
  });
});
