import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, linkSync, lutimesSync, mkdirSync, readFileSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createLayerFile, writeLayerFromDir } from '../../src/layer/create.js';
import { parseGetfattrDump, readTreeXattrs, xattrsAvailable } from '../../src/layer/xattrs.js';
import { MediaType } from '../../src/base/media-types.js';
import { gnuTarExtract, gnuTarList, gnuTarNames, hasCommand, isRoot, removeDir, run, snapshotTree, tempDir } from './layer-write-helpers.js';
import { hostHas, peer, skipUnless } from '../helpers/requirements.js';

const T0 = 1_600_000_000;
const LONG_DIR = 'l'.repeat(105);
const LONG_FILE = `${LONG_DIR}/${'f'.repeat(110)}`;
const LONG_LINK_TARGET = `${'../'.repeat(2)}${'t'.repeat(120)}`;

/** A tree with every kind of entry a layer carries; mtimes fixed so copies compare equal. */
function buildFixture(root: string): { xattrs: boolean; devices: boolean } {
  mkdirSync(join(root, 'd'));
  writeFileSync(join(root, 'd/suid'), 'setuid program\n');
  chmodSync(join(root, 'd/suid'), 0o4755);
  chmodSync(join(root, 'd'), 0o1777);
  mkdirSync(join(root, 'sg'));
  chmodSync(join(root, 'sg'), 0o2775);
  writeFileSync(join(root, 'sg/sgid'), 'setgid\n');
  chmodSync(join(root, 'sg/sgid'), 0o2711);
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'big.bin'), randomBytes(3 * 1024 * 1024 + 123));
  writeFileSync(join(root, 'hard1'), 'shared inode\n');
  linkSync(join(root, 'hard1'), join(root, 'd/hard2'));
  symlinkSync('d/suid', join(root, 'sym'));
  symlinkSync(LONG_LINK_TARGET, join(root, 'longsym'));
  mkdirSync(join(root, LONG_DIR));
  writeFileSync(join(root, LONG_FILE), 'deep\n');
  writeFileSync(join(root, 'ünïcödé.txt'), 'utf8 name\n');
  writeFileSync(join(root, 'owned'), 'owned by 1234:5678\n');
  chownSync(join(root, 'owned'), 1234, 5678);
  run('mkfifo', [join(root, 'fifo')]);
  let devices = false;
  if (isRoot) {
    run('mknod', [join(root, 'null'), 'c', '1', '3']);
    run('mknod', [join(root, 'loop9'), 'b', '7', '9']);
    devices = true;
  }
  let xattrs = false;
  if (xattrsAvailable() && hasCommand('setfattr')) {
    run('setfattr', ['-n', 'user.color', '-v', 'blue', join(root, 'd/suid')]);
    run('setfattr', ['-n', 'user.bin', '-v', '0x00ff', join(root, 'sg')]);
    xattrs = true;
  }
  setTimes(root, T0);
  return { xattrs, devices };
}

/** Sets every mtime under `dir` (children first, so directory times stick). */
function setTimes(dir: string, t: number): void {
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, name.name);
    if (name.isDirectory()) setTimes(p, t);
    lutimesSync(p, t, t);
  }
  utimesSync(dir, t, t);
}

function sha256File(p: string): string {
  return `sha256:${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
}

describe('writeLayerFromDir / createLayerFile', () => {
  let work: string;
  let src: string;
  let features: { xattrs: boolean; devices: boolean };
  before(() => {
    work = tempDir('create');
    src = join(work, 'src');
    mkdirSync(src);
    features = buildFixture(src);
    if (!features.devices) console.log('# device nodes not tested: mknod needs root');
    if (!features.xattrs) console.log('# xattrs not tested: getfattr/setfattr (Debian package attr) not installed');
  });
  after(() => removeDir(work));

  it('archives every entry type so that GNU tar extracts an identical tree', async () => {
    const file = join(work, 'all.tar');
    const r = await createLayerFile(src, file, { compression: 'none' });
    assert.equal(r.mediaType, MediaType.layerTar);
    assert.equal(r.digest, r.diffId);
    assert.equal(r.digest, sha256File(file));
    assert.equal(r.size, readFileSync(file).length);

    const names = gnuTarNames(file);
    assert.ok(!names.includes('./') && !names.includes(''), 'no entry for the root itself');
    // Sorted, parents before children.
    assert.deepEqual(names.slice(0, 4), ['big.bin', 'd/', 'd/hard2', 'd/suid']);
    const list = gnuTarList(file);
    assert.ok(list.some((l) => /^-.* d\/hard2$/.test(l)), 'first path of the inode carries the body');
    assert.ok(list.some((l) => /^h.* hard1 link to d\/hard2$/.test(l)), 'second path is a hardlink entry');
    assert.ok(list.some((l) => /^-rwsr-xr-x 0\/0 .* d\/suid$/.test(l)));
    assert.ok(list.some((l) => /^drwxrwxrwt .* d\/$/.test(l)));
    assert.ok(list.some((l) => /^drwxrwsr-x .* sg\/$/.test(l)));
    assert.ok(list.some((l) => /^-rwx--s--x .* sg\/sgid$/.test(l)));
    assert.ok(list.some((l) => /^p.* fifo$/.test(l)));
    assert.ok(list.some((l) => /^-rw-r--r-- 1234\/5678 .* owned$/.test(l)));
    if (features.devices) {
      assert.ok(list.some((l) => /^crw-r--r-- 0\/0 +1,3 .* null$/.test(l)));
      assert.ok(list.some((l) => /^brw-r--r-- 0\/0 +7,9 .* loop9$/.test(l)));
    }

    const dest = join(work, 'extracted');
    mkdirSync(dest);
    gnuTarExtract(file, dest);
    const want = await snapshotTree(src);
    const got = await snapshotTree(dest);
    // Hardlink groups are named by their first path in sorted order in both snapshots.
    assert.deepEqual(got, want);
    if (features.xattrs) {
      assert.deepEqual(got['d/suid']!.xattrs, { 'user.color': Buffer.from('blue').toString('hex') });
      assert.deepEqual(got['sg']!.xattrs, { 'user.bin': '00ff' });
    }
    assert.equal(got[LONG_FILE]!.size, 5);
    assert.equal(got['longsym']!.link, LONG_LINK_TARGET);
  });

  for (const compression of ['gzip', 'zstd'] as const) {
    it(`reports the ${compression} blob digest and size and the diffID of the tar inside`, async () => {
      const file = join(work, `layer.${compression}`);
      const r = await createLayerFile(src, file, { compression });
      assert.equal(r.mediaType, compression === 'gzip' ? MediaType.layerTarGzip : MediaType.layerTarZstd);
      assert.equal(r.digest, sha256File(file));
      assert.equal(r.size, readFileSync(file).length);
      const plain = join(work, `layer.${compression}.tar`);
      run('sh', ['-c', `${compression} -dc "$0" > "$1"`, file, plain]);
      assert.equal(r.diffId, sha256File(plain));
      const plainResult = await createLayerFile(src, join(work, `again.${compression}.tar`), { compression: 'none' });
      assert.equal(plainResult.diffId, r.diffId, 'compression does not change the tar');
    });
  }

  it('is deterministic: the same tree twice, and a copy of it, give the same digests', async () => {
    const copy = join(work, 'copy');
    run('cp', ['-a', src, copy]);
    for (const compression of ['none', 'gzip', 'zstd'] as const) {
      const a = await createLayerFile(src, join(work, `det-a-${compression}`), { compression });
      const b = await createLayerFile(src, join(work, `det-b-${compression}`), { compression });
      const c = await createLayerFile(copy, join(work, `det-c-${compression}`), { compression });
      assert.deepEqual(a, b);
      assert.deepEqual(a, c, `a cp -a copy (other inodes) gives the same ${compression} layer`);
    }
  });

  it('clamps mtimes to sourceDateEpoch and leaves older ones alone', async () => {
    const tree = join(work, 'sde');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'old'), 'old');
    writeFileSync(join(tree, 'sub/new'), 'new');
    utimesSync(join(tree, 'old'), 1000, 1000);
    const file = join(work, 'sde.tar');
    const sde = 1_500_000_000;
    await createLayerFile(tree, file, { compression: 'none', sourceDateEpoch: sde });
    const list = gnuTarList(file);
    assert.ok(list.some((l) => l.includes('1970-01-01 00:16:40 old')), list.join('\n'));
    assert.ok(list.some((l) => l.includes('2017-07-14 02:40:00 sub/new')), list.join('\n'));
    assert.ok(list.some((l) => l.includes('2017-07-14 02:40:00 sub/')), list.join('\n'));

    // Touching files (newer than the epoch) does not change the layer.
    const before = await createLayerFile(tree, join(work, 'sde1.tar'), { compression: 'gzip', sourceDateEpoch: sde });
    utimesSync(join(tree, 'sub/new'), sde + 500, sde + 500);
    const later = await createLayerFile(tree, join(work, 'sde2.tar'), { compression: 'gzip', sourceDateEpoch: sde });
    assert.equal(later.digest, before.digest);
  });

  it('forces ownership with uid/gid', async () => {
    const file = join(work, 'owner.tar');
    await createLayerFile(src, file, { compression: 'none', uid: 0, gid: 0 });
    const list = gnuTarList(file);
    assert.ok(list.length > 10);
    for (const l of list) assert.match(l, /^\S+ 0\/0 /);
  });

  it('puts the tree under a prefix, the prefix directory carrying the root attributes', async () => {
    const file = join(work, 'prefix.tar');
    chmodSync(src, 0o750);
    try {
      await createLayerFile(src, file, { compression: 'none', prefix: '/opt/app/' });
    } finally {
      chmodSync(src, 0o755);
      utimesSync(src, T0, T0);
    }
    const list = gnuTarList(file);
    assert.match(list[0]!, /^drwxr-xr-x 0\/0 .* opt\/$/);
    assert.match(list[1]!, /^drwxr-x--- .* opt\/app\/$/);
    assert.ok(gnuTarNames(file).slice(2).every((n) => n.startsWith('opt/app/')));
    assert.ok(list.some((l) => / opt\/app\/d\/hard2$/.test(l) && l.startsWith('-')));
    assert.ok(list.some((l) => / opt\/app\/hard1 link to opt\/app\/d\/hard2$/.test(l)));
    await assert.rejects(createLayerFile(src, join(work, 'bad.tar'), { prefix: '../escape' }), { code: 'UNSAFE_PATH' });
  });

  it('refuses .wh. names (whiteout markers) and leaves no file behind', async () => {
    const tree = join(work, 'wh');
    mkdirSync(tree);
    writeFileSync(join(tree, '.wh.secret'), 'x');
    const out = join(work, 'whout');
    mkdirSync(out);
    await assert.rejects(createLayerFile(tree, join(out, 'layer.tgz')), { code: 'LAYER_INVALID', message: /\.wh\.secret/ });
    assert.deepEqual(readdirSync(out), [], 'neither the layer nor its temp file exists');
  });

  it('skips sockets, which tar cannot hold', async () => {
    const tree = join(work, 'sock');
    mkdirSync(tree);
    writeFileSync(join(tree, 'file'), 'f');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(tree, 'sock'), resolve));
    try {
      const file = join(work, 'sock.tar');
      await createLayerFile(tree, file, { compression: 'none' });
      assert.deepEqual(gnuTarNames(file), ['file']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('reads xattrs of files whose names need quoting (newline, backslash, space)', { skip: skipUnless(peer('getfattr', 'attr'), peer('setfattr', 'attr'), hostHas(xattrsAvailable(), 'the temp dir\'s file system refuses user xattrs')) }, async () => {
    const tree = join(work, 'quoted');
    mkdirSync(tree);
    const names = ['with space', 'new\nline', 'back\\slash', 'tab\there', 'ünï'];
    for (const name of names) {
      writeFileSync(join(tree, name), name);
      run('setfattr', ['-n', 'user.name', '-v', `0x${Buffer.from(name).toString('hex')}`, join(tree, name)]);
    }
    const xattrs = await readTreeXattrs(tree);
    assert.deepEqual([...xattrs.keys()].sort(), [...names].sort());
    for (const name of names) assert.equal(xattrs.get(name)!['user.name']!.toString(), name);
    const file = join(work, 'quoted.tar');
    await createLayerFile(tree, file, { compression: 'none' });
    const dest = join(work, 'quoted-x');
    mkdirSync(dest);
    gnuTarExtract(file, dest);
    assert.deepEqual(await snapshotTree(dest), await snapshotTree(tree));
  });

  it('parses getfattr dumps, dropping host-only SELinux labels', () => {
    const dump = '# file: a\\012b\nuser.x=0x6869\nsecurity.selinux=0x73797374656d5f7500\n\n# file: c\nsecurity.selinux=0x00\n\n# file: d\nuser.empty\n';
    const parsed = parseGetfattrDump(dump);
    assert.deepEqual([...parsed.keys()], ['a\nb', 'd']);
    assert.equal(parsed.get('a\nb')!['user.x']!.toString(), 'hi');
    assert.equal(parsed.get('d')!['user.empty']!.length, 0);
  });

  it('refuses what is not a directory and bad options', async () => {
    await assert.rejects(createLayerFile(join(src, 'empty'), join(work, 'x.tar')), { code: 'USAGE' });
    await assert.rejects(createLayerFile(src, join(work, 'x.tar'), { compression: 'brotli' as 'gzip' }), { code: 'USAGE' });
    await assert.rejects(createLayerFile(src, join(work, 'x.tar'), { compression: 'gzip', level: 12 }), { code: 'USAGE' });
    assert.equal(existsSync(join(work, 'x.tar')), false);
  });

  it('streams into any Writable and ends it', async () => {
    const chunks: Buffer[] = [];
    const { Writable } = await import('node:stream');
    let ended = false;
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        chunks.push(chunk);
        cb();
      },
      final(cb) {
        ended = true;
        cb();
      },
    });
    const r = await writeLayerFromDir(src, sink, { compression: 'gzip', level: 1 });
    assert.ok(ended);
    const blob = Buffer.concat(chunks);
    assert.equal(r.size, blob.length);
    assert.equal(r.digest, `sha256:${createHash('sha256').update(blob).digest('hex')}`);
    const extracted = join(work, 'from-stream');
    mkdirSync(extracted);
    const tgz = join(work, 'from-stream.tgz');
    writeFileSync(tgz, blob);
    gnuTarExtract(tgz, extracted);
    assert.deepEqual(await snapshotTree(extracted), await snapshotTree(src));
  });
});
