import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, linkSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { readTar, type TarHeader } from '../../src/layer/tar-reader.js';
import { isBerthError } from '../../src/base/errors.js';
import { headerBlock, setChecksum, tarArchive } from './tar-fixture.js';

interface Read {
  header: TarHeader;
  body: Buffer;
}

/** Feeds `data` in pieces of `piece` bytes, to exercise every boundary case of the parser. */
function chunked(data: Buffer, piece: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += piece) parts.push(data.subarray(i, i + piece));
  return Readable.from(parts);
}

async function readAllEntries(input: Readable): Promise<Read[]> {
  const out: Read[] = [];
  for await (const { header, body } of readTar(input)) {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c as Buffer);
    out.push({ header, body: Buffer.concat(parts) });
  }
  return out;
}

describe('readTar', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-tar-reader-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'sub'), { recursive: true });
    const longDir = join(src, 'd'.repeat(60), 'e'.repeat(60));
    mkdirSync(longDir, { recursive: true });
    writeFileSync(join(longDir, 'f'.repeat(120)), 'deep');
    writeFileSync(join(src, 'sub', 'hello.txt'), 'hello world\n');
    writeFileSync(join(src, 'big.bin'), Buffer.alloc(300_000, 7));
    symlinkSync('t'.repeat(150), join(src, 'longlink'));
    linkSync(join(src, 'sub', 'hello.txt'), join(src, 'hard'));
    execFileSync('mkfifo', [join(src, 'fifo')]);
    execFileSync('setfattr', ['-n', 'user.berth', '-v', 'value-1', join(src, 'sub', 'hello.txt')]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const format of ['gnu', 'pax', 'ustar'] as const) {
    test(`reads a GNU tar archive in ${format} format, any chunking`, async () => {
      const archive = join(dir, `${format}.tar`);
      // ustar cannot hold the 150-byte link target or the 250-byte name: only the short entries.
      const members = format === 'ustar' ? ['./sub', './big.bin', './hard', './fifo'] : ['.'];
      execFileSync('tar', ['--format', format, ...(format === 'pax' ? ['--xattrs'] : []), '-C', join(dir, 'src'), '-cf', archive, ...members]);
      const data = readFileSync(archive);
      for (const piece of [511, 513, 4096, data.length]) {
        const entries = await readAllEntries(chunked(data, piece));
        const byPath = new Map(entries.map((e) => [e.header.path.replace(/^\.\//, '').replace(/\/$/, ''), e]));
        const hello = byPath.get('sub/hello.txt')!;
        assert.equal(hello.header.type, 'file');
        assert.equal(hello.body.toString(), 'hello world\n');
        assert.equal(hello.header.size, 12);
        const big = byPath.get('big.bin')!;
        assert.equal(big.body.length, 300_000);
        assert.ok(big.body.every((b) => b === 7));
        assert.equal(byPath.get('hard')?.header.type, 'hardlink');
        assert.match(byPath.get('hard')!.header.linkname!, /sub\/hello\.txt$/);
        assert.equal(byPath.get('fifo')?.header.type, 'fifo');
        assert.equal(byPath.get('sub')?.header.type, 'dir');
        if (format !== 'ustar') {
          const deep = byPath.get(`${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(120)}`);
          assert.ok(deep, `long name present (piece ${piece})`);
          assert.equal(deep.body.toString(), 'deep');
          assert.equal(byPath.get('longlink')?.header.linkname, 't'.repeat(150));
        }
        if (format === 'pax') assert.equal(hello.header.xattrs?.['user.berth']?.toString(), 'value-1');
      }
    });
  }

  test('a GNU volume label header is skipped', async () => {
    const archive = execFileSync('tar', ['--format=gnu', '--label=berth-volume', '-C', join(dir, 'src'), '-cf', '-', 'sub'], { maxBuffer: 1 << 24 });
    const entries = await readAllEntries(chunked(archive, 100));
    assert.deepEqual(entries.map((e) => e.header.path), ['sub/', 'sub/hello.txt']);
  });

  test('bodies left unread are drained, and the next entry is correct', async () => {
    const data = tarArchive([
      { path: 'a', body: Buffer.alloc(10_000, 1) },
      { path: 'b', body: 'bee' },
      { path: 'c', body: Buffer.alloc(1025, 3) },
    ]);
    for (const piece of [1, 700]) {
    const seen: Array<[string, string]> = [];
    for await (const { header, body } of readTar(chunked(data, piece))) {
      if (header.path === 'b') {
        const parts: Buffer[] = [];
        for await (const c of body) parts.push(c as Buffer);
        seen.push([header.path, Buffer.concat(parts).toString()]);
      } else {
        seen.push([header.path, String(header.size)]);
      }
    }
    assert.deepEqual(seen, [
      ['a', '10000'],
      ['b', 'bee'],
      ['c', '1025'],
    ]);
    }
  });

  test('PAX headers override the ustar fields; global headers apply to later entries', async () => {
    const pb = Buffer.from('18 uid=4000000000\n');
    const data = Buffer.concat([
      headerBlock({ name: 'pax_global_header', typeflag: 'g', size: pb.length }),
      pb,
      Buffer.alloc(512 - pb.length),
      tarArchive([
        { path: 'short', pax: { path: 'renamed/by/pax', mtime: '1700000000.5', gid: '77' }, body: 'x' },
        { path: 'second', body: 'y' },
      ]),
    ]);
    const entries = await readAllEntries(Readable.from([data]));
    assert.equal(entries[0]!.header.path, 'renamed/by/pax');
    assert.equal(entries[0]!.header.mtime, 1700000000.5);
    assert.equal(entries[0]!.header.mtimeNsec, 500_000_000);
    assert.equal(entries[0]!.header.gid, 77);
    assert.equal(entries[0]!.header.uid, 4000000000);
    assert.equal(entries[1]!.header.path, 'second');
    assert.equal(entries[1]!.header.uid, 4000000000, 'global header applies to every later entry');
  });

  test('GNU base-256 numeric fields', async () => {
    const block = headerBlock({ name: 'big-ids', typeflag: '0', size: 3 });
    // uid 2^33 in base-256: 0x80 marker then big-endian bytes in the 8-byte field.
    block.fill(0, 108, 116);
    block[108] = 0x80;
    block.writeUIntBE(2 ** 33, 110, 6);
    setChecksum(block);
    const data = Buffer.concat([block, Buffer.from('abc'), Buffer.alloc(509), Buffer.alloc(1024)]);
    const [entry] = await readAllEntries(Readable.from([data]));
    assert.equal(entry!.header.uid, 2 ** 33);
    assert.equal(entry!.body.toString(), 'abc');
  });

  test('stopping early destroys the input', async () => {
    const input = Readable.from([tarArchive([{ path: 'a', body: 'x' }, { path: 'b', body: 'y' }])]);
    for await (const { header } of readTar(input)) {
      assert.equal(header.path, 'a');
      break;
    }
    assert.equal(input.destroyed, true);
  });

  test('a truncated archive is an error, not a short listing', async () => {
    const data = tarArchive([{ path: 'f', body: Buffer.alloc(5000, 1) }]);
    await assert.rejects(readAllEntries(Readable.from([data.subarray(0, 2000)])), (err) => isBerthError(err, 'LAYER_INVALID') && /truncated/.test(err.message));
  });

  test('an archive whose last entry lacks only its block padding (umoci insert) is read whole', async () => {
    const data = tarArchive([{ path: 'a.txt', body: 'hello\n' }]);
    const cut = data.subarray(0, 512 + 6); // header + data, no padding, no end-of-archive blocks
    for (const piece of [1, 7, 512, 1024]) {
      const entries = await readAllEntries(chunked(cut, piece));
      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.header.path, 'a.txt');
      assert.equal(entries[0]!.body.toString(), 'hello\n');
    }
    // Missing data (not only padding) is still an error.
    await assert.rejects(readAllEntries(Readable.from([data.subarray(0, 512 + 3)])), (err) => isBerthError(err, 'LAYER_INVALID'));
  });

  test('a corrupt header (bad checksum) is an error', async () => {
    const data = tarArchive([{ path: 'f', body: 'x' }]);
    data[10] = 0x41; // change the name without fixing the checksum
    await assert.rejects(readAllEntries(Readable.from([data])), (err) => isBerthError(err, 'LAYER_INVALID') && /checksum/.test(err.message));
  });

  test('an input stream error reaches the consumer', async () => {
    const data = tarArchive([{ path: 'f', body: Buffer.alloc(3000, 1) }]);
    const input = new Readable({ read() {} });
    input.push(data.subarray(0, 1024));
    setImmediate(() => input.destroy(new Error('network went away')));
    await assert.rejects(readAllEntries(input), /network went away/);
  });
});
