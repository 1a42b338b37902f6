import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { TarWriter, encodeHeaders, splitUstarPath, type TarEntry } from '../../src/layer/tar-writer.js';
import { xattrsAvailable } from '../../src/layer/xattrs.js';
import { gnuTarExtract, gnuTarList, removeDir, run, snapshotTree, tempDir } from './layer-write-helpers.js';
import { hostHas, peer, root, skipUnless } from '../helpers/requirements.js';

const MTIME = 1_700_000_000; // 2023-11-14T22:13:20Z

function collect(): { sink: Writable; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  return { sink, bytes: () => Buffer.concat(parts) };
}

async function archive(entries: [TarEntry, (Buffer | Readable)?][]): Promise<Buffer> {
  const { sink, bytes } = collect();
  const tar = new TarWriter(sink);
  for (const [e, body] of entries) await tar.addEntry(e, body);
  await tar.finish();
  return bytes();
}

const base = { uid: 0, gid: 0, mtime: MTIME };

describe('tar writer', () => {
  let dir: string;
  before(() => {
    dir = tempDir('tarw');
  });
  after(() => removeDir(dir));

  function save(name: string, data: Buffer): string {
    const p = join(dir, name);
    writeFileSync(p, data);
    return p;
  }

  it('writes every entry type with setuid/setgid/sticky modes and owners that GNU tar lists back', async () => {
    const data = await archive([
      [{ ...base, path: 'd', type: 'dir', mode: 0o1777 }],
      [{ ...base, path: 'd/suid', type: 'file', mode: 0o4755, size: 5, uid: 1000, gid: 2000, uname: 'alice', gname: 'staff' }, Buffer.from('hello')],
      [{ ...base, path: 'd/sgid', type: 'dir', mode: 0o2775 }],
      [{ ...base, path: 'd/link', type: 'symlink', mode: 0o777, linkname: 'suid' }],
      [{ ...base, path: 'd/hard', type: 'hardlink', mode: 0o4755, linkname: 'd/suid' }],
      [{ ...base, path: 'null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 }],
      [{ ...base, path: 'loop0', type: 'block', mode: 0o660, devmajor: 7, devminor: 0 }],
      [{ ...base, path: 'pipe', type: 'fifo', mode: 0o600 }],
    ]);
    assert.equal(data.length % 512, 0);
    const lines = gnuTarList(save('types.tar', data));
    assert.deepEqual(lines, [
      'drwxrwxrwt 0/0               0 2023-11-14 22:13:20 d/',
      '-rwsr-xr-x 1000/2000         5 2023-11-14 22:13:20 d/suid',
      'drwxrwsr-x 0/0               0 2023-11-14 22:13:20 d/sgid/',
      'lrwxrwxrwx 0/0               0 2023-11-14 22:13:20 d/link -> suid',
      'hrwsr-xr-x 0/0               0 2023-11-14 22:13:20 d/hard link to d/suid',
      'crw-rw-rw- 0/0             1,3 2023-11-14 22:13:20 null',
      'brw-rw---- 0/0             7,0 2023-11-14 22:13:20 loop0',
      'prw------- 0/0               0 2023-11-14 22:13:20 pipe',
    ]);
    // uname/gname land in the ustar fields.
    assert.match(run('tar', ['-tvf', save('types2.tar', data)]), /alice\/staff/);
  });

  it('is deterministic: the same entries give the same bytes', async () => {
    const entries = (): [TarEntry, Buffer?][] => [
      [{ ...base, path: 'a', type: 'dir', mode: 0o755 }],
      [{ ...base, path: `a/${'n'.repeat(150)}`, type: 'file', mode: 0o644, size: 3, xattrs: { 'user.b': Buffer.from('2'), 'user.a': Buffer.from('1') } }, Buffer.from('abc')],
    ];
    const one = await archive(entries());
    const two = await archive(entries());
    assert.ok(one.equals(two));
    // PAX records are sorted, whatever the xattrs object's key order.
    const text = one.toString('latin1');
    assert.ok(text.indexOf('SCHILY.xattr.user.a') < text.indexOf('SCHILY.xattr.user.b'));
  });

  it('splits long paths into ustar prefix/name and falls back to PAX only when it must', () => {
    assert.deepEqual(splitUstarPath('short'), { prefix: '', name: 'short' });
    const p = `${'a'.repeat(120)}/${'b'.repeat(90)}`;
    assert.deepEqual(splitUstarPath(p), { prefix: 'a'.repeat(120), name: 'b'.repeat(90) });
    assert.equal(splitUstarPath('x'.repeat(101)), undefined, 'one component longer than 100 cannot be split');
    assert.equal(splitUstarPath(`${'a'.repeat(160)}/b`), undefined, 'prefix longer than 155');
    assert.equal(splitUstarPath(`${'a'.repeat(20)}/${'b'.repeat(101)}`), undefined, 'name longer than 100');
    // A directory's trailing slash stays with the name.
    assert.deepEqual(splitUstarPath(`${'a'.repeat(60)}/${'c'.repeat(50)}/`), { prefix: 'a'.repeat(60), name: `${'c'.repeat(50)}/` });

    const ustarOnly = encodeHeaders({ ...base, path: p, type: 'file', mode: 0o644, size: 0 });
    assert.equal(ustarOnly.length, 512, 'a splittable path needs no PAX header');
    const pax = encodeHeaders({ ...base, path: 'x'.repeat(150), type: 'file', mode: 0o644, size: 0 });
    assert.equal(pax[156], 'x'.charCodeAt(0), 'PAX extended header first');
    assert.match(pax.toString('latin1'), /\d+ path=x{150}\n/);
  });

  it('writes PAX records for long and non-ASCII names and link names, which GNU tar restores', async () => {
    const longDir = `${'d'.repeat(110)}`;
    const longFile = `${longDir}/${'f'.repeat(120)}`;
    const longTarget = `../${'t'.repeat(140)}`;
    const data = await archive([
      [{ ...base, path: longDir, type: 'dir', mode: 0o755 }],
      [{ ...base, path: longFile, type: 'file', mode: 0o644, size: 4 }, Buffer.from('long')],
      [{ ...base, path: 'sym', type: 'symlink', mode: 0o777, linkname: longTarget }],
      [{ ...base, path: 'hard', type: 'hardlink', mode: 0o644, linkname: longFile }],
      [{ ...base, path: 'héllo-wörld', type: 'file', mode: 0o644, size: 2 }, Buffer.from('hi')],
    ]);
    const file = save('long.tar', data);
    assert.deepEqual(run('tar', ['-tf', file]).split('\n').filter(Boolean), [`${longDir}/`, longFile, 'sym', 'hard', 'héllo-wörld']);
    const dest = tempDir('tarw-x');
    try {
      gnuTarExtract(file, dest);
      const snap = await snapshotTree(dest);
      assert.equal(snap[longFile]!.size, 4);
      assert.equal(snap['sym']!.link, longTarget);
      assert.equal(snap['hard']!.hardlinkOf, longFile);
      assert.equal(readFileSync(join(dest, 'héllo-wörld'), 'utf8'), 'hi');
    } finally {
      removeDir(dest);
    }
  });

  it('encodes sizes of 8 GiB and more, ids beyond octal range and out-of-range mtimes as PAX records', () => {
    const size = 9 * 1024 ** 3 + 7;
    const h = encodeHeaders({ ...base, path: 'big', type: 'file', mode: 0o644, size, uid: 3_000_000, gid: 4_000_000, mtime: -5 });
    const text = h.toString('latin1');
    assert.match(text, new RegExp(`\\d+ size=${size}\\n`));
    assert.match(text, /\d+ uid=3000000\n/);
    assert.match(text, /\d+ gid=4000000\n/);
    assert.match(text, /\d+ mtime=-5\n/);
    // Just under the octal limit stays in the ustar header.
    assert.equal(encodeHeaders({ ...base, path: 'f', type: 'file', mode: 0o644, size: 8 * 1024 ** 3 - 1 }).length, 512);

    // GNU tar reads the header of the huge entry (the body is missing, so it then fails).
    const file = save('big-header.tar', h);
    const out = run('tar', ['--numeric-owner', '-tvf', file], { allowFail: true });
    assert.match(out, new RegExp(`3000000/4000000 +${size} .* big`));
  });

  it('checks every PAX record length (the length counts its own digits)', () => {
    // Record lengths around powers of ten are where a naive length is off by one.
    for (let n = 80; n < 120; n++) {
      const h = encodeHeaders({ ...base, path: 'p'.repeat(n) + '/' + 'q'.repeat(101), type: 'file', mode: 0o644, size: 0 });
      const size = parseInt(h.toString('latin1', 124, 135), 8);
      let off = 512;
      const end = 512 + size;
      while (off < end) {
        const sp = h.indexOf(0x20, off);
        const len = Number(h.toString('latin1', off, sp));
        assert.equal(h[off + len - 1], 0x0a, `record at ${off} ends with a newline`);
        off += len;
      }
      assert.equal(off, end);
    }
  });

  it('stores xattrs as SCHILY.xattr records that GNU tar extracts', { skip: skipUnless(peer('getfattr', 'attr'), root('trusted xattrs'), hostHas(xattrsAvailable(), 'the temp dir\'s file system refuses xattrs')) }, async () => {
    const data = await archive([
      [{ ...base, path: 'f', type: 'file', mode: 0o644, size: 1, xattrs: { 'user.greeting': Buffer.from('hi'), 'user.bin': Buffer.from([0, 255, 10]) } }, Buffer.from('x')],
    ]);
    const dest = tempDir('tarw-xa');
    try {
      gnuTarExtract(save('xattr.tar', data), dest);
      const snap = await snapshotTree(dest);
      assert.deepEqual(snap['f']!.xattrs, { 'user.greeting': '6869', 'user.bin': '00ff0a' });
    } finally {
      removeDir(dest);
    }
  });

  it("reads back the same with Python's tarfile (a second, independent reader)", { skip: skipUnless(peer('python3', 'python3')) }, async () => {
    const longName = `${'p'.repeat(130)}/${'q'.repeat(120)}`;
    const data = await archive([
      [{ ...base, path: longName, type: 'file', mode: 0o4750, size: 3, uid: 5_000_000, gid: 7, mtime: 9_000_000_000, xattrs: { 'user.k': Buffer.from('v') } }, Buffer.from('abc')],
      [{ ...base, path: 'dev', type: 'block', mode: 0o600, devmajor: 8, devminor: 17 }],
      [{ ...base, path: 'ln', type: 'symlink', mode: 0o777, linkname: 'l'.repeat(150) }],
      [{ ...base, path: 'hl', type: 'hardlink', mode: 0o4750, linkname: longName }],
      [{ ...base, path: 'dir', type: 'dir', mode: 0o2755 }],
      [{ ...base, path: 'fifo', type: 'fifo', mode: 0o644 }],
    ]);
    const file = save('python.tar', data);
    const script = [
      'import json, sys, tarfile',
      'with tarfile.open(sys.argv[1]) as t:',
      '  print(json.dumps([[m.name, m.type.decode(), m.mode, m.uid, m.gid, m.mtime, m.size, m.linkname, m.devmajor, m.devminor,',
      '    {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY")}] for m in t.getmembers()]))',
    ].join('\n');
    const members = JSON.parse(run('python3', ['-c', script, file])) as unknown[];
    assert.deepEqual(members, [
      [longName, '0', 0o4750, 5_000_000, 7, 9_000_000_000, 3, '', 0, 0, { 'SCHILY.xattr.user.k': 'v' }],
      ['dev', '4', 0o600, 0, 0, MTIME, 0, '', 8, 17, {}],
      ['ln', '2', 0o777, 0, 0, MTIME, 0, 'l'.repeat(150), 0, 0, {}],
      ['hl', '1', 0o4750, 0, 0, MTIME, 0, longName, 0, 0, {}],
      ['dir', '5', 0o2755, 0, 0, MTIME, 0, '', 0, 0, {}],
      ['fifo', '6', 0o644, 0, 0, MTIME, 0, '', 0, 0, {}],
    ]);
  });

  it('streams bodies from a Readable and refuses a body of the wrong size', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    const data = await archive([[{ ...base, path: 'big', type: 'file', mode: 0o644, size: body.length }, Readable.from([body.subarray(0, 1000), body.subarray(1000)])]]);
    assert.equal(data.length, 512 + Math.ceil(body.length / 512) * 512 + 1024);
    assert.ok(data.subarray(512, 512 + body.length).equals(body));

    const { sink } = collect();
    const tar = new TarWriter(sink);
    await assert.rejects(tar.addEntry({ ...base, path: 'f', type: 'file', mode: 0o644, size: 10 }, Buffer.from('short')), { code: 'SIZE_MISMATCH' });
  });

  it('refuses invalid entries with LAYER_INVALID', async () => {
    const { sink } = collect();
    const tar = new TarWriter(sink);
    await assert.rejects(tar.addEntry({ ...base, path: '', type: 'file', mode: 0o644 }), { code: 'LAYER_INVALID' });
    await assert.rejects(tar.addEntry({ ...base, path: 'x', type: 'symlink', mode: 0o777 }), { code: 'LAYER_INVALID' });
    await assert.rejects(tar.addEntry({ ...base, path: 'x', type: 'file', mode: 0o170644 }), { code: 'LAYER_INVALID' });
    await assert.rejects(tar.addEntry({ ...base, path: 'x', type: 'dir', mode: 0o755, size: 3 }), { code: 'LAYER_INVALID' });
  });

  it('writes to a file stream and ends it', async () => {
    const p = join(dir, 'stream.tar');
    const out = createWriteStream(p);
    const tar = new TarWriter(out);
    await tar.addEntry({ ...base, path: 'a.txt', type: 'file', mode: 0o644, size: 2 }, Buffer.from('ok'));
    await tar.finish();
    assert.equal(readFileSync(p).length, 512 * 4);
    assert.equal(run('tar', ['-xOf', p, 'a.txt']), 'ok');
  });
});
