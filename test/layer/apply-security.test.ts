/**
 * Hostile layers: every archive here tries to reach outside the root. Each case must either be
 * refused with UNSAFE_PATH (or LAYER_INVALID for a link to nothing) or be neutralised (the write
 * lands inside the root), and in every case the tree outside the root must be unchanged.
 */
import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer, type ApplyOptions, type ApplyResult } from '../../src/layer/apply.js';
import { MediaType } from '../../src/base/media-types.js';
import { isBerthError } from '../../src/base/errors.js';
import { applyBlob } from '../../src/layer/unpack-pool.js';
import { sha256, tarArchive, type FixtureEntry } from './tar-fixture.js';

type Apply = (root: string, entries: FixtureEntry[], opts?: ApplyOptions) => Promise<ApplyResult>;

/** The same checks hold on the calling thread and in an unpack worker thread (unpack-pool.ts), which the engine uses. */
const appliers: [string, Apply][] = [
  ['applyLayer', (root, entries, opts) => applyLayer(root, Readable.from([tarArchive(entries)]), MediaType.layerTar, opts)],
  [
    'applyBlob in a worker thread',
    async (root, entries, opts) => {
      const tar = tarArchive(entries);
      const layer = { mediaType: MediaType.layerTar, digest: sha256(tar), size: tar.length };
      const r = await applyBlob(root, Readable.from([tar]), layer, { ...(opts ? { apply: opts } : {}), thread: 'worker' });
      assert.equal(r.inWorker, true);
      return r.result;
    },
  ],
];

for (const [name, apply] of appliers) {
  describe(`${name} against hostile archives`, () => {
    let base: string;
    let root: string;
    let outside: string;
    let sentinel: string;
    let before: string;

    /** Every path, type, mode, size, link count and content hash outside the root. */
    const snapshotOutside = () =>
      execFileSync('find', [outside, '-printf', '%p %y %m %U:%G %s %n %l %T@\n'], { encoding: 'utf8' }) + readFileSync(sentinel, 'utf8');

    beforeEach(() => {
      base = mkdtempSync(join(tmpdir(), 'berth-apply-sec-'));
      root = join(base, 'root');
      outside = join(base, 'outside');
      mkdirSync(root);
      mkdirSync(join(outside, 'sub'), { recursive: true, mode: 0o755 });
      sentinel = join(outside, 'sentinel');
      writeFileSync(sentinel, 'untouched');
      writeFileSync(join(outside, 'sub', 'keep'), 'keep');
      before = snapshotOutside();
    });
    afterEach(() => {
      assert.equal(snapshotOutside(), before, 'nothing outside the root changed');
      rmSync(base, { recursive: true, force: true });
    });

    const rejectsUnsafe = (p: Promise<unknown>) => assert.rejects(p, (e) => isBerthError(e, 'UNSAFE_PATH') && e.message.length > 20);

    test('".." components are refused', async () => {
      await rejectsUnsafe(apply(root, [{ path: '../outside/sentinel', body: 'pwned' }]));
      await rejectsUnsafe(apply(root, [{ path: 'a/../../outside/sentinel', body: 'pwned' }]));
      await rejectsUnsafe(apply(root, [{ path: 'dir/', type: 'dir' }, { path: 'dir/../../x', type: 'dir' }]));
    });

    test('absolute names are rooted at the root', async () => {
      await apply(root, [{ path: `${sentinel}`, body: 'inside' }]);
      assert.equal(readFileSync(join(root, sentinel), 'utf8'), 'inside');
    });

    test('a symlink planted earlier in the same layer is followed inside the root only', async () => {
      await apply(root, [
        { path: 'a', type: 'symlink', linkname: outside },
        { path: 'a/sentinel', body: 'pwned' },
        { path: 'rel', type: 'symlink', linkname: '../../../../../..' + outside },
        { path: 'rel/sub/keep', body: 'pwned' },
      ]);
      assert.equal(readFileSync(join(root, outside, 'sentinel'), 'utf8'), 'pwned', 'the write landed inside the root');
      assert.equal(readFileSync(join(root, outside, 'sub', 'keep'), 'utf8'), 'pwned');
    });

    test('a symlink from an earlier layer is followed inside the root only', async () => {
      await apply(root, [{ path: 'etc', type: 'symlink', linkname: outside }]);
      await apply(root, [{ path: 'etc/sentinel', body: 'pwned' }]);
      assert.ok(lstatSync(join(root, 'etc')).isSymbolicLink());
      assert.equal(readFileSync(join(root, outside, 'sentinel'), 'utf8'), 'pwned');
    });

    test('chains of relative and absolute symlinks', async () => {
      await apply(root, [
        { path: 'a', type: 'symlink', linkname: 'b' },
        { path: 'b', type: 'symlink', linkname: '/c' },
        { path: 'c', type: 'symlink', linkname: `../../..${outside}/sub` },
      ]);
      await apply(root, [{ path: 'a/keep', body: 'pwned' }]);
      assert.equal(readFileSync(join(root, outside, 'sub', 'keep'), 'utf8'), 'pwned');
    });

    test('a symlink loop is refused', async () => {
      await rejectsUnsafe(
        apply(root, [
          { path: 'x', type: 'symlink', linkname: 'y' },
          { path: 'y', type: 'symlink', linkname: 'x' },
          { path: 'x/file', body: 'z' },
        ]),
      );
    });

    test('a directory swapped for a symlink mid-archive', async () => {
      await apply(root, [
        { path: 'd/', type: 'dir' },
        { path: 'd/one', body: '1' },
        { path: 'd', type: 'symlink', linkname: outside },
        { path: 'd/sentinel', body: 'pwned' },
      ]);
      assert.ok(lstatSync(join(root, 'd')).isSymbolicLink());
      assert.equal(readFileSync(join(root, outside, 'sentinel'), 'utf8'), 'pwned');
    });

    test('a parent swapped for a symlink after its subdirectory: deferred directory attributes stay inside', async () => {
      await apply(root, [
        { path: 'd/', type: 'dir' },
        { path: 'd/sub/', type: 'dir', mode: 0o777, uid: 4242, mtime: 1 },
        { path: 'd', type: 'symlink', linkname: outside },
      ]);
      // outside/sub (reachable as root/d/sub through the new symlink) keeps its mode and owner.
      assert.equal(statSync(join(outside, 'sub')).mode & 0o777, 0o755);
      assert.notEqual(statSync(join(outside, 'sub')).uid, 4242);
    });

    test('an existing symlink as the final component is replaced, never written through', async () => {
      await apply(root, [{ path: 'link', type: 'symlink', linkname: sentinel }]);
      await apply(root, [{ path: 'link', body: 'replaced' }]);
      assert.ok(lstatSync(join(root, 'link')).isFile());
      await apply(root, [{ path: 'dlink', type: 'symlink', linkname: outside }]);
      await apply(root, [{ path: 'dlink/', type: 'dir', mode: 0o777 }]);
      assert.ok(lstatSync(join(root, 'dlink')).isDirectory());
    });

    test('hardlinks to targets outside the root', async () => {
      await rejectsUnsafe(apply(root, [{ path: 'h', type: 'hardlink', linkname: '../outside/sentinel' }]));
      // Absolute: rooted at the root, where there is no such file.
      await assert.rejects(apply(root, [{ path: 'h', type: 'hardlink', linkname: sentinel }]), (e) => isBerthError(e, 'LAYER_INVALID'));
      // Through a symlink: resolved inside the root, where there is no such file either.
      await assert.rejects(
        apply(root, [
          { path: 'l', type: 'symlink', linkname: outside },
          { path: 'h', type: 'hardlink', linkname: 'l/sentinel' },
        ]),
        (e) => isBerthError(e, 'LAYER_INVALID'),
      );
      // A hardlink to a symlink that points outside links the symlink itself (link(2) does not follow).
      await apply(root, [
        { path: 's', type: 'symlink', linkname: sentinel },
        { path: 'h2', type: 'hardlink', linkname: 's' },
        { path: 'h2', body: 'overwrite' },
      ]);
      assert.equal(statSync(sentinel).nlink, 1);
      assert.ok(!existsSync(join(root, 'h')));
    });

    test('whiteouts that resolve outside the root, directly or through a symlink', async () => {
      await rejectsUnsafe(apply(root, [{ path: '../outside/.wh.sentinel' }]));
      await rejectsUnsafe(apply(root, [{ path: 'x/.wh..' }]));
      await rejectsUnsafe(apply(root, [{ path: 'x/.wh...' }]));
      await apply(root, [{ path: 'l', type: 'symlink', linkname: outside }]);
      await apply(root, [{ path: 'l/.wh.sentinel' }, { path: 'l/.wh.sub' }]);
      await apply(root, [{ path: `${outside}/.wh.sentinel` }]);
      assert.ok(lstatSync(join(root, 'l')).isSymbolicLink());
    });

    test('an opaque whiteout in a symlinked directory stays inside the root', async () => {
      await apply(root, [
        { path: 'l', type: 'symlink', linkname: outside },
        { path: 'm', type: 'symlink', linkname: '../../..' },
      ]);
      await apply(root, [{ path: 'l/.wh..wh..opq' }, { path: 'm/.wh..wh..opq' }]);
      // m resolves to the root itself: the opaque whiteout empties the root, and nothing else.
      assert.ok(!existsSync(join(root, 'l')));
    });

    test('whiting out a directory holding a symlink to outside removes the link, not its target', async () => {
      await apply(root, [
        { path: 'd/escape', type: 'symlink', linkname: outside },
        { path: 'd/escape2', type: 'symlink', linkname: sentinel },
      ]);
      await apply(root, [{ path: '.wh.d' }]);
      assert.ok(!existsSync(join(root, 'd')));
    });

    test('device nodes are refused when not allowed', async () => {
      const r = await apply(root, [{ path: 'dev/sda', type: 'block', devmajor: 8, devminor: 0, mode: 0o666 }], { allowDevices: false });
      assert.ok(!existsSync(join(root, 'dev/sda')));
      assert.match(r.notes!.join('\n'), /skipped block device/);
    });

    test('setuid bits dropped on request', async () => {
      await apply(root, [{ path: 'bin/su', body: 'x', mode: 0o4755, uid: 0 }], { dropSetuid: true });
      assert.equal(statSync(join(root, 'bin/su')).mode & 0o7000, 0);
    });

    test('entries named "." or empty that are not directories are refused', async () => {
      await rejectsUnsafe(apply(root, [{ path: '.', body: 'x' }]));
      await rejectsUnsafe(apply(root, [{ path: './', type: 'symlink', linkname: outside }]));
      await rejectsUnsafe(apply(root, [{ path: '', body: 'x' }]));
      await rejectsUnsafe(apply(root, [{ path: '/', type: 'hardlink', linkname: 'x' }]));
      // "./" as a directory is the root itself: its attributes apply, nothing else happens.
      await apply(root, [{ path: './', type: 'dir', mode: 0o751 }]);
      assert.equal(statSync(root).mode & 0o777, 0o751);
    });
  });
}
