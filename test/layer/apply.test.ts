import { test, describe, before } from 'node:test';
import { scratchDir } from '../helpers/scratch.js';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  linkSync,
  utimesSync,
  writeFileSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { applyLayer, type ApplyOptions } from '../../src/layer/apply.js';
import { compressStream, type LayerCompression } from '../../src/layer/compress.js';
import { MediaType } from '../../src/base/media-types.js';
import { isBerthError } from '../../src/base/errors.js';
import { readAll } from '../../src/base/read.js';
import { sha256, tarArchive, type FixtureEntry } from './tar-fixture.js';
import { root, skipUnless } from '../helpers/requirements.js';

const MEDIA: Record<LayerCompression, string> = {
  none: MediaType.layerTar,
  gzip: MediaType.layerTarGzip,
  zstd: MediaType.layerTarZstd,
};

async function compress(tar: Buffer, c: LayerCompression): Promise<Buffer> {
  return readAll(Readable.from([tar]).pipe(compressStream(c)), 1 << 30);
}

async function apply(root: string, entries: FixtureEntry[] | Buffer, opts?: ApplyOptions, c: LayerCompression = 'gzip') {
  const tar = Buffer.isBuffer(entries) ? entries : tarArchive(entries);
  const blob = await compress(tar, c);
  const result = await applyLayer(root, Readable.from([blob]), MEDIA[c], opts);
  assert.equal(result.diffId, sha256(tar), 'diffId is the sha256 of the uncompressed tar');
  return result;
}

/** Path, type, mode, owner, mtime, link target, content hash and xattrs of every entry under dir. */
function listing(dir: string): string {
  const out = execFileSync('find', ['.', '-printf', '%p %y %m %U:%G %T@ %l %n\n'], { cwd: dir, encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('. '))
    .map((l) => {
      const path = l.split(' ')[0]!;
      const st = lstatSync(join(dir, path));
      const content = st.isFile() ? sha256(readFileSync(join(dir, path))).slice(7, 19) : '';
      const xattrs = spawnSync('getfattr', ['-h', '-d', '-m', '-', '--absolute-names', join(dir, path)], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((x) => x.includes('='))
        .join(',');
      // Node's utimes takes seconds as a double: times are kept to the microsecond, not the nanosecond.
      const micro = l.replace(/ (\d+\.\d{6})\d* /, ' $1 ');
      return `${micro} ${content} ${xattrs}`;
    });
  return out.sort().join('\n');
}

describe('applyLayer', () => {
  const scratch = scratchDir('berth-apply-');
  const fresh = () => scratch.fresh();

  describe('round trip with GNU tar archives (tar --xattrs --format=pax)', () => {
    let src: string;
    let archive: Buffer;
    before(() => {
      src = join(scratch.path, 'src');
      mkdirSync(join(src, 'etc', 'conf.d'), { recursive: true });
      mkdirSync(join(src, 'tmp'));
      chmodSync(join(src, 'tmp'), 0o1777);
      writeFileSync(join(src, 'etc', 'conf.d', 'a.conf'), 'key=value\n');
      writeFileSync(join(src, 'etc', 'big'), Buffer.alloc(2_000_000, 'z'));
      writeFileSync(join(src, 'setuid'), '#!/bin/sh\n');
      chownSync(join(src, 'setuid'), 1000, 1000);
      chmodSync(join(src, 'setuid'), 0o4755);
      writeFileSync(join(src, 'setgid'), 'g');
      chownSync(join(src, 'setgid'), 0, 50);
      chmodSync(join(src, 'setgid'), 0o2711);
      symlinkSync('etc/conf.d/a.conf', join(src, 'rel-link'));
      symlinkSync('/etc/passwd', join(src, 'abs-link'));
      linkSync(join(src, 'etc', 'conf.d', 'a.conf'), join(src, 'hard-a'));
      execFileSync('mkfifo', ['-m', '0640', join(src, 'fifo')]);
      execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', join(src, 'etc', 'big')]);
      execFileSync('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(src, 'setgid')]);
      mkdirSync(join(src, 'ro'));
      writeFileSync(join(src, 'ro', 'file'), 'inside a read-only dir');
      chmodSync(join(src, 'ro'), 0o555);
      chownSync(join(src, 'ro'), 42, 43);
      utimesSync(join(src, 'etc', 'conf.d'), 1_000_000_000, 1_000_000_000);
      utimesSync(join(src, 'etc', 'conf.d', 'a.conf'), 1_100_000_000, 1_100_000_000);
      archive = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=pax', '-C', src, '-cf', '-', '.'], {
        maxBuffer: 64 << 20,
      });
    });

    for (const c of ['none', 'gzip', 'zstd'] as const) {
      test(`${c}: same tree as GNU tar extracts (modes, setuid, owners, mtimes, links, fifo, xattrs)`, async () => {
        const ours = fresh();
        const theirs = fresh();
        const result = await apply(ours, archive, {}, c);
        execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-C', theirs, '-xpf', '-'], { input: archive });
        assert.ok(result.entries >= 12);
        assert.equal(result.bytes, archive.length);
        assert.equal(result.notes, undefined, `no notes expected: ${result.notes?.join('; ')}`);
        assert.equal(listing(ours), listing(theirs));
        assert.equal(statSync(join(ours, 'setuid')).mode & 0o7777, 0o4755, 'setuid survives chown');
        assert.equal(readlinkSync(join(ours, 'abs-link')), '/etc/passwd');
        assert.equal(statSync(join(ours, 'hard-a')).ino, statSync(join(ours, 'etc', 'conf.d', 'a.conf')).ino);
      });
    }
  });

  // Real trees of this machine, archived by GNU tar: /etc always, larger ones with BERTH_SLOW_TESTS=1.
  for (const tree of process.env.BERTH_SLOW_TESTS === '1' ? ['etc', 'usr/include', 'usr/lib/python3.11', 'usr/bin'] : ['etc']) {
    test(`round trip of this machine's /${tree} archived by GNU tar`, async () => {
      const blob = join(scratch.path, `${tree.replaceAll('/', '_')}.tar.gz`);
      execFileSync('sh', ['-c', `tar --xattrs --xattrs-include='*' --format=pax -C / -czf '${blob}' ${tree} 2>/dev/null; test -s '${blob}'`]);
      const ours = fresh();
      const theirs = fresh();
      const { createReadStream } = await import('node:fs');
      const r = await applyLayer(ours, createReadStream(blob), MediaType.layerTarGzip);
      execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-C', theirs, '-xpzf', blob]);
      const digest = execFileSync('sh', ['-c', `gzip -dc '${blob}' | sha256sum`], { encoding: 'utf8' }).split(' ')[0];
      assert.equal(r.diffId, `sha256:${digest}`);
      const list = (d: string) =>
        execFileSync('sh', ['-c', `cd '${d}' && find . -printf '%p %y %m %U:%G %s %n %l %T@\\n' | LC_ALL=C sort`], { encoding: 'utf8', maxBuffer: 1 << 28 })
          .replace(/ (\d+\.\d{6})\d*\n/g, ' $1\n')
          .split('\n')
          // only what the archive holds: implicit parents (usr/ of usr/include) get the time of the unpack
          .filter((l) => l.startsWith(`./${tree} `) || l.startsWith(`./${tree}/`));
      const a = list(ours);
      assert.ok(a.length > 100);
      assert.deepEqual(a, list(theirs));
    });
  }

  test('whiteouts (layer.md example): files, nested files and directories are removed', async () => {
    const root = fresh();
    await apply(root, [
      { path: 'file1', body: '1' },
      { path: 'a/', type: 'dir' },
      { path: 'a/file2', body: '2' },
      { path: 'b/', type: 'dir' },
      { path: 'b/deep/x', body: 'x' },
      { path: 'c/file3', body: '3' },
    ]);
    const r = await apply(root, [
      { path: '.wh.file1' },
      { path: 'a/.wh.file2' },
      { path: '.wh.b' },
      { path: 'file4', body: '4' },
      { path: '.wh.never-existed' },
      { path: 'missing-dir/.wh.x' },
    ]);
    assert.equal(r.entries, 6);
    assert.deepEqual(execFileSync('find', ['.'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean).sort(), [
      '.',
      './a',
      './c',
      './c/file3',
      './file4',
    ]);
    assert.ok(!existsSync(join(root, 'missing-dir')), 'a whiteout does not create its directory');
  });

  test('opaque whiteout hides lower children whatever its position in the layer', async () => {
    for (const opqFirst of [true, false]) {
      const root = fresh();
      await apply(root, [
        { path: 'a/b/c/bar', body: 'lower' },
        { path: 'a/keep-not', body: 'lower' },
        { path: 'other/x', body: 'lower' },
      ]);
      const upper: FixtureEntry[] = [
        { path: 'a/', type: 'dir' },
        { path: 'a/b/', type: 'dir' },
        { path: 'a/b/c/', type: 'dir' },
        { path: 'a/b/c/foo', body: 'upper' },
      ];
      if (opqFirst) upper.splice(1, 0, { path: 'a/.wh..wh..opq' });
      else upper.push({ path: 'a/.wh..wh..opq' });
      await apply(root, upper);
      const found = execFileSync('find', ['.', '-type', 'f'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean).sort();
      assert.deepEqual(found, ['./a/b/c/foo', './other/x'], `opaque marker ${opqFirst ? 'first' : 'last'}`);
    }
  });

  test('a whiteout does not hide what the same layer wrote', async () => {
    const root = fresh();
    await apply(root, [
      { path: 'f', body: 'same layer' },
      { path: '.wh.f' },
    ]);
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'same layer');
  });

  test('"a .wh. file without a basename" is an error', async () => {
    await assert.rejects(apply(fresh(), [{ path: 'dir/.wh.' }]), (e) => isBerthError(e, 'LAYER_INVALID'));
  });

  test('replacing a directory by a file, a file by a directory, a symlink by a directory', async () => {
    const root = fresh();
    await apply(root, [
      { path: 'was-dir/child', body: 'c' },
      { path: 'was-file', body: 'f' },
      { path: 'was-link', type: 'symlink', linkname: 'was-dir' },
    ]);
    await apply(root, [
      { path: 'was-dir', body: 'now a file' },
      { path: 'was-file/', type: 'dir', mode: 0o700 },
      { path: 'was-file/inner', body: 'i' },
      { path: 'was-link/', type: 'dir' },
      { path: 'was-link/own', body: 'o' },
    ]);
    assert.equal(readFileSync(join(root, 'was-dir'), 'utf8'), 'now a file');
    assert.ok(lstatSync(join(root, 'was-file')).isDirectory());
    assert.equal(lstatSync(join(root, 'was-file')).mode & 0o777, 0o700);
    assert.equal(readFileSync(join(root, 'was-file', 'inner'), 'utf8'), 'i');
    assert.ok(lstatSync(join(root, 'was-link')).isDirectory());
    assert.ok(existsSync(join(root, 'was-link', 'own')));
  });

  test('dir over an existing dir keeps its children and takes the new attributes', async () => {
    const root = fresh();
    await apply(root, [
      { path: 'd/', type: 'dir', mode: 0o755, mtime: 1_000 },
      { path: 'd/child', body: 'kept' },
    ]);
    await apply(root, [{ path: 'd/', type: 'dir', mode: 0o710, uid: 7, gid: 8, mtime: 2_000 }]);
    const st = lstatSync(join(root, 'd'));
    assert.equal(st.mode & 0o7777, 0o710);
    assert.equal(st.mtimeMs, 2_000_000);
    assert.equal(st.uid, 7);
    assert.equal(readFileSync(join(root, 'd', 'child'), 'utf8'), 'kept');
    if (process.getuid?.() === 0) {
      await apply(root, [{ path: 'd/', type: 'dir', mode: 0o755, uid: 0, gid: 0 }]);
      assert.equal(lstatSync(join(root, 'd')).uid, 0, 'ownership back to the caller is applied too');
    }
  });

  test('a file over a hardlinked file is unlinked, not written through', async () => {
    const root = fresh();
    await apply(root, [
      { path: 'orig', body: 'original' },
      { path: 'alias', type: 'hardlink', linkname: 'orig' },
    ]);
    await apply(root, [{ path: 'alias', body: 'replaced' }]);
    assert.equal(readFileSync(join(root, 'orig'), 'utf8'), 'original');
    assert.equal(readFileSync(join(root, 'alias'), 'utf8'), 'replaced');
  });

  test('hardlinks in a later layer to a file of an earlier layer', async () => {
    const root = fresh();
    await apply(root, [{ path: 'usr/bin/tool', body: 'tool', mode: 0o755 }]);
    await apply(root, [
      { path: 'bin/tool-link', type: 'hardlink', linkname: 'usr/bin/tool' },
      { path: './bin/abs', type: 'hardlink', linkname: '/usr/bin/tool' },
    ]);
    const ino = statSync(join(root, 'usr/bin/tool')).ino;
    assert.equal(statSync(join(root, 'bin/tool-link')).ino, ino);
    assert.equal(statSync(join(root, 'bin/abs')).ino, ino);
    await assert.rejects(apply(root, [{ path: 'x', type: 'hardlink', linkname: 'no/such' }]), (e) => isBerthError(e, 'LAYER_INVALID'));
    await assert.rejects(apply(root, [{ path: 'y', type: 'hardlink', linkname: 'usr/bin' }]), (e) => isBerthError(e, 'LAYER_INVALID'));
  });

  test('mtimes of files, symlinks and directories; PAX sub-second mtimes', async () => {
    const root = fresh();
    await apply(root, [
      { path: 'd/', type: 'dir', mtime: 1_234_567 },
      { path: 'd/f', body: 'x', mtime: 1_111_111 },
      { path: 'd/l', type: 'symlink', linkname: 'f', mtime: 1_222_222 },
      { path: 'p', body: 'x', pax: { mtime: '1700000000.25' } },
    ]);
    assert.equal(lstatSync(join(root, 'd')).mtimeMs, 1_234_567_000);
    assert.equal(lstatSync(join(root, 'd/f')).mtimeMs, 1_111_111_000);
    assert.equal(lstatSync(join(root, 'd/l')).mtimeMs, 1_222_222_000);
    assert.equal(lstatSync(join(root, 'p')).mtimeMs, 1_700_000_000_250);
  });

  test('devices and fifos (as root: mknod); with allowDevices false devices are skipped and noted', { skip: skipUnless(root('creates device nodes')) }, async () => {
    const root = fresh();
    const r = await apply(root, [
      { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
      { path: 'dev/loopx', type: 'block', devmajor: 7, devminor: 200, mode: 0o660 },
      { path: 'dev/pipe', type: 'fifo', mode: 0o600 },
    ]);
    assert.equal(r.notes, undefined);
    const st = lstatSync(join(root, 'dev/null'));
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, (1 << 8) | 3);
    assert.equal(st.mode & 0o777, 0o666);
    assert.ok(lstatSync(join(root, 'dev/loopx')).isBlockDevice());
    assert.ok(lstatSync(join(root, 'dev/pipe')).isFIFO());
    const root2 = fresh();
    const r2 = await apply(root2, [{ path: 'dev/null', type: 'char', devmajor: 1, devminor: 3 }], { allowDevices: false });
    assert.ok(!existsSync(join(root2, 'dev/null')));
    assert.match(r2.notes?.join('\n') ?? '', /skipped char device \/dev\/null/);
  });

  test('preserveOwnership false: caller owns the files and the archive ownership is recorded', async () => {
    const root = fresh();
    const r = await apply(root, [{ path: 'f', body: 'x', uid: 1234, gid: 5678 }, { path: 'mine', body: 'y' }], {
      preserveOwnership: false,
    });
    assert.equal(statSync(join(root, 'f')).uid, process.getuid!());
    assert.deepEqual(r.ownership?.get('f'), { uid: 1234, gid: 5678 });
  });

  test('idMap maps archive ids to host ids', { skip: skipUnless(root('chown')) }, async () => {
    const root = fresh();
    await apply(root, [{ path: 'f', body: 'x', uid: 0, gid: 0 }, { path: 'g', body: 'y', uid: 1000, gid: 1000 }], {
      idMap: { uid: (id) => id + 100000, gid: (id) => id + 200000 },
    });
    assert.equal(statSync(join(root, 'f')).uid, 100000);
    assert.equal(statSync(join(root, 'g')).gid, 201000);
  });

  test('dropSetuid clears setuid/setgid on files', async () => {
    const root = fresh();
    await apply(root, [{ path: 'su', body: 'x', mode: 0o6755 }], { dropSetuid: true });
    assert.equal(statSync(join(root, 'su')).mode & 0o7777, 0o755);
  });

  test('a truncated gzip stream is an error', async () => {
    const tar = tarArchive([{ path: 'f', body: Buffer.alloc(100_000, 9) }]);
    const gz = gzipSync(tar);
    for (const cut of [gz.length - 4, Math.floor(gz.length / 2)]) {
      await assert.rejects(
        applyLayer(fresh(), Readable.from([gz.subarray(0, cut)]), MediaType.layerTarGzip),
        (e) => isBerthError(e, 'LAYER_INVALID'),
        `cut at ${cut} of ${gz.length}`,
      );
    }
  });

  test('a truncated zstd stream is an error', async () => {
    const tar = tarArchive([{ path: 'f', body: Buffer.alloc(100_000, 9) }]);
    const zst = await compress(tar, 'zstd');
    await assert.rejects(applyLayer(fresh(), Readable.from([zst.subarray(0, zst.length - 3)]), MediaType.layerTarZstd), (e) =>
      isBerthError(e, 'LAYER_INVALID'),
    );
  });

  test('an unknown media type is refused', async () => {
    await assert.rejects(applyLayer(fresh(), Readable.from([Buffer.alloc(0)]), 'application/x-tar+lz4'), (e) => isBerthError(e, 'MEDIA_TYPE_UNKNOWN'));
  });

  test('an unpack root that does not exist is a clear error', async () => {
    await assert.rejects(apply(join(scratch.path, 'nope'), [{ path: 'f' }]), (e) => isBerthError(e, 'NOT_FOUND'));
  });

  test('as uid 65534 (not root): files written, read-only dirs handled, ownership recorded, no crash', { skip: skipUnless(root('switches to uid 65534')) }, async () => {
    const root = fresh();
    chownSync(root, 65534, 65534);
    const layer1 = join(scratch.path, 'nonroot-1.tar.gz');
    const layer2 = join(scratch.path, 'nonroot-2.tar.gz');
    writeFileSync(
      layer1,
      gzipSync(
        tarArchive([
          { path: 'etc/', type: 'dir', uid: 0, gid: 0 },
          { path: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n', uid: 0, gid: 0 },
          { path: 'ro/', type: 'dir', mode: 0o555, uid: 0, gid: 0 },
          { path: 'ro/a', body: 'a', uid: 1000, gid: 1000, mode: 0o4755 },
          { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3 },
        ]),
      ),
    );
    writeFileSync(layer2, gzipSync(tarArchive([{ path: 'ro/b', body: 'b' }, { path: 'ro/.wh.a' }])));
    chmodSync(scratch.path, 0o755);
    const applyJs = join(fileURLToPath(new URL('.', import.meta.url)), '../../src/layer/apply.js');
    const script = `
      import { applyLayer } from ${JSON.stringify(applyJs)};
      import { createReadStream } from 'node:fs';
      const out = [];
      for (const f of ${JSON.stringify([layer1, layer2])}) {
        const r = await applyLayer(${JSON.stringify(root)}, createReadStream(f), 'application/vnd.oci.image.layer.v1.tar+gzip');
        out.push({ ownership: [...(r.ownership ?? new Map())], notes: r.notes ?? [] });
      }
      console.log(JSON.stringify(out));
    `;
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Array<{ ownership: Array<[string, { uid: number; gid: number }]>; notes: string[] }>;
    assert.equal(readFileSync(join(root, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
    assert.equal(statSync(join(root, 'etc/passwd')).uid, 65534);
    assert.deepEqual(new Map(out[0]!.ownership).get('etc/passwd'), { uid: 0, gid: 0 });
    assert.deepEqual(new Map(out[0]!.ownership).get('ro/a'), { uid: 1000, gid: 1000 });
    assert.match(out[0]!.notes.join('\n'), /dev\/null/);
    assert.equal(readFileSync(join(root, 'ro/b'), 'utf8'), 'b', 'a later layer writes into a read-only directory');
    assert.ok(!existsSync(join(root, 'ro/a')), 'and whiteouts there');
    assert.equal(statSync(join(root, 'ro')).mode & 0o777, 0o555, 'the directory mode is restored');
  });
});
