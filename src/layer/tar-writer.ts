/**
 * A streaming, deterministic tar writer: POSIX ustar headers, with a PAX extended header
 * ('x') in front of an entry whenever a value does not fit ustar (long or non-ASCII names
 * and link names, sizes ≥ 8 GiB, large ids, negative or huge mtimes, long user/group
 * names, xattrs as SCHILY.xattr.*). The same entries always give the same bytes: no
 * atime/ctime, no PIDs in PAX header names, PAX records in a fixed (sorted) order.
 *
 * Output is coalesced into large chunks (RECORD bytes) before it reaches the stream, so
 * that many small files do not turn into many small writes.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import type { TarEntryType } from './tar-header.js';

export type { TarEntryType };

export interface TarEntry {
  /** Relative path with '/' separators; directories may end in '/' (added if missing). */
  path: string;
  type: TarEntryType;
  /** Permission bits plus setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Whole seconds since the epoch. */
  mtime: number;
  /** Body size, regular files only. */
  size?: number;
  /** Target of a symlink, or the earlier entry path a hardlink points at. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

const BLOCK = 512;
/** Bytes gathered before one write to the output stream. */
const CHUNK = 1024 * 1024;
/** Block padding and the end-of-archive marker (two zero blocks). */
const ZEROS = Buffer.alloc(2 * BLOCK);

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

/** Largest value an octal field of `width` bytes holds (width-1 digits and a NUL). */
function octalMax(width: number): number {
  return 8 ** (width - 1) - 1;
}

function fitsOctal(value: number, width: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value <= octalMax(width);
}

function writeOctal(buf: Buffer, offset: number, width: number, value: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0'), offset, width - 1, 'ascii');
  buf[offset + width - 1] = 0;
}

/** ustar string fields hold plain ASCII without NULs; anything else goes to PAX. */
function isPlainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Splits a path into ustar prefix (≤155) and name (≤100) at a '/', or returns undefined
 * when it cannot (pax-2001 ustar: the path is prefix + '/' + name).
 */
export function splitUstarPath(path: string): { prefix: string; name: string } | undefined {
  if (path.length <= 100) return { prefix: '', name: path };
  if (path.length > 256) return undefined;
  // The slash before the name: the name is at most 100 bytes, the prefix at most 155.
  let i = path.indexOf('/', path.length - 101);
  // A directory's trailing '/' must stay in the name, so never split at the last byte.
  while (i !== -1 && i < path.length - 1) {
    if (i <= 155 && i > 0) return { prefix: path.slice(0, i), name: path.slice(i + 1) };
    if (i > 155) return undefined;
    i = path.indexOf('/', i + 1);
  }
  return undefined;
}

/** One PAX record: "<len> <key>=<value>\n" where len counts the whole record in bytes. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key) + value.length + 3; // ' ', '=', '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')]);
}

function entryPath(e: TarEntry): string {
  if (e.path.length === 0) throw new BerthError('LAYER_INVALID', 'tar entry has an empty path');
  if (e.type === 'dir') return e.path.endsWith('/') ? e.path : `${e.path}/`;
  if (e.path.endsWith('/')) {
    throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)} of type ${e.type} must not end in '/'`);
  }
  return e.path;
}

function checkEntry(e: TarEntry): void {
  if (!(e.type in TYPEFLAG)) throw new BerthError('LAYER_INVALID', `unknown tar entry type ${JSON.stringify(e.type)}`);
  if (e.path.includes('\0') || (e.linkname ?? '').includes('\0')) {
    throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)} has a NUL byte in its path or link name`);
  }
  if (!Number.isInteger(e.mode) || e.mode < 0 || e.mode > 0o7777) {
    throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)}: mode must be within 0..0o7777 (permissions, setuid, setgid, sticky), got ${e.mode}`);
  }
  for (const [field, v] of [['uid', e.uid], ['gid', e.gid], ['mtime', e.mtime]] as const) {
    if (!Number.isSafeInteger(v) || (field !== 'mtime' && v < 0)) {
      throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)}: ${field} must be a ${field === 'mtime' ? '' : 'non-negative '}integer, got ${v}`);
    }
  }
  const size = e.size ?? 0;
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)}: size must be a non-negative integer, got ${size}`);
  }
  if (size > 0 && e.type !== 'file') {
    throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)} of type ${e.type} cannot have a body (size ${size})`);
  }
  if ((e.type === 'symlink' || e.type === 'hardlink') && !e.linkname) {
    throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)} of type ${e.type} needs a linkname`);
  }
  for (const [field, v] of [['devmajor', e.devmajor], ['devminor', e.devminor]] as const) {
    if (v !== undefined && !fitsOctal(v, 8)) {
      throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)}: ${field} ${v} does not fit a ustar header (max ${octalMax(8)})`);
    }
  }
}

/** The ustar header block for `e` and, when needed, the PAX records that must precede it. */
function ustarHeader(e: TarEntry, typeflag: string, pathOverride?: string): { header: Buffer; pax: Map<string, Buffer> } {
  const pax = new Map<string, Buffer>();
  const h = Buffer.alloc(BLOCK);
  const path = pathOverride ?? entryPath(e);

  const split = isPlainAscii(path) ? splitUstarPath(path) : undefined;
  if (split) {
    h.write(split.name, 0, 100, 'ascii');
    h.write(split.prefix, 345, 155, 'ascii');
  } else {
    pax.set('path', Buffer.from(path));
    // A readable stand-in for readers that ignore PAX: the tail of the path.
    h.write(asciiTail(path, 100), 0, 100, 'ascii');
  }

  writeOctal(h, 100, 8, e.mode & 0o7777);
  for (const [key, off, v] of [['uid', 108, e.uid], ['gid', 116, e.gid]] as const) {
    if (fitsOctal(v, 8)) writeOctal(h, off, 8, v);
    else {
      writeOctal(h, off, 8, 0);
      pax.set(key, Buffer.from(String(v)));
    }
  }
  const size = e.type === 'file' ? (e.size ?? 0) : 0;
  if (fitsOctal(size, 12)) writeOctal(h, 124, 12, size);
  else {
    writeOctal(h, 124, 12, 0);
    pax.set('size', Buffer.from(String(size)));
  }
  if (fitsOctal(e.mtime, 12)) writeOctal(h, 136, 12, e.mtime);
  else {
    writeOctal(h, 136, 12, 0);
    pax.set('mtime', Buffer.from(String(e.mtime)));
  }
  h.write(typeflag, 156, 1, 'ascii');

  const link = e.linkname ?? '';
  if (link.length <= 100 && isPlainAscii(link)) h.write(link, 157, 100, 'ascii');
  else {
    pax.set('linkpath', Buffer.from(link));
    h.write(asciiTail(link, 100), 157, 100, 'ascii');
  }

  h.write('ustar\u000000', 257, 8, 'ascii');
  for (const [key, off, v] of [['uname', 265, e.uname], ['gname', 297, e.gname]] as const) {
    if (!v) continue;
    if (v.length <= 31 && isPlainAscii(v)) h.write(v, off, 32, 'ascii');
    else pax.set(key, Buffer.from(v));
  }
  if (e.type === 'char' || e.type === 'block') {
    writeOctal(h, 329, 8, e.devmajor ?? 0);
    writeOctal(h, 337, 8, e.devminor ?? 0);
  }
  for (const name of Object.keys(e.xattrs ?? {}).sort()) {
    pax.set(`SCHILY.xattr.${name}`, e.xattrs![name]!);
  }
  writeChecksum(h);
  return { header: h, pax };
}

function asciiTail(s: string, max: number): string {
  const ascii = s.replace(/[^\x01-\x7e]/g, '_');
  return ascii.length <= max ? ascii : ascii.slice(ascii.length - max);
}

function writeChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  // Six octal digits, NUL, space: what GNU tar and Go's archive/tar write.
  h.write(sum.toString(8).padStart(6, '0'), 148, 6, 'ascii');
  h[154] = 0;
  h[155] = 0x20;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * The header blocks for an entry: a PAX 'x' header with its records when any value needs
 * one, then the ustar header. Exported for tests (sizes > 8 GiB without writing 8 GiB).
 */
export function encodeHeaders(e: TarEntry): Buffer {
  checkEntry(e);
  const { header, pax } = ustarHeader(e, TYPEFLAG[e.type]);
  if (pax.size === 0) return header;
  const keys = [...pax.keys()].sort();
  const records = Buffer.concat(keys.map((k) => paxRecord(k, pax.get(k)!)));
  const path = entryPath(e).replace(/\/$/, '');
  const base = path.slice(path.lastIndexOf('/') + 1);
  // Go's archive/tar names PAX headers "<dir>/PaxHeaders.0/<base>"; any fixed name works.
  const paxName = asciiTail(`PaxHeaders.0/${base}`, 100);
  const { header: paxHeader } = ustarHeader(
    { path: paxName, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: Math.max(0, Math.min(e.mtime, octalMax(12))), size: records.length },
    'x',
    paxName,
  );
  return Buffer.concat([paxHeader, records, Buffer.alloc(padding(records.length)), header]);
}

export class TarWriter {
  private readonly out: Writable;
  private chunk: Buffer = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private finished = false;
  private busy = false;
  private failure: Error | undefined;

  constructor(out: Writable) {
    this.out = out;
    out.on('error', (err) => {
      this.failure ??= err;
    });
  }

  /**
   * Appends an entry. Regular files take their body from `body` (a stream or bytes) and
   * must deliver exactly `size` bytes. Calls must not overlap: await each one.
   */
  async addEntry(e: TarEntry, body?: Readable | Uint8Array): Promise<void> {
    this.begin();
    try {
      const size = e.type === 'file' ? (e.size ?? 0) : 0;
      if (body !== undefined && e.type !== 'file') {
        throw new BerthError('LAYER_INVALID', `tar entry ${JSON.stringify(e.path)} of type ${e.type} cannot have a body`);
      }
      await this.put(encodeHeaders(e));
      let written = 0;
      if (body instanceof Uint8Array) {
        written = body.length;
        if (written === size) await this.put(body);
      } else if (body !== undefined) {
        for await (const piece of body as AsyncIterable<Buffer>) {
          written += piece.length;
          if (written > size) break;
          await this.put(piece);
        }
      }
      if (written !== size) {
        throw new BerthError('SIZE_MISMATCH', `tar entry ${JSON.stringify(e.path)} declared ${size} bytes but its body ${written > size ? 'has more' : `has ${written}`}: the file changed while it was archived? Retry on a quiescent tree.`);
      }
      await this.put(ZEROS.subarray(0, padding(size)));
    } finally {
      this.busy = false;
    }
  }

  /**
   * Appends a regular file read straight from disk into the output chunks (no per-file
   * stream). `e.size` must be the file's size; a file that changed size while being read
   * fails with SIZE_MISMATCH rather than producing a corrupt archive.
   */
  async addFile(e: TarEntry, filePath: string): Promise<void> {
    this.begin();
    try {
      if (e.type !== 'file') throw new BerthError('INTERNAL', 'addFile is for regular files');
      const size = e.size ?? 0;
      await this.put(encodeHeaders(e));
      if (size > 0) {
        const fd = openSync(filePath, 'r');
        try {
          let done = 0;
          while (done < size) {
            if (this.used === CHUNK) await this.flush();
            const want = Math.min(CHUNK - this.used, size - done);
            const n = readSync(fd, this.chunk, this.used, want, null);
            if (n === 0) break;
            this.used += n;
            done += n;
          }
          if (done !== size || readSync(fd, Buffer.allocUnsafe(1), 0, 1, null) !== 0) {
            throw new BerthError('SIZE_MISMATCH', `${filePath} changed size while it was archived (expected ${size} bytes): archive a tree nothing writes to.`);
          }
        } finally {
          closeSync(fd);
        }
      }
      await this.put(ZEROS.subarray(0, padding(size)));
    } finally {
      this.busy = false;
    }
  }

  /** Writes the end-of-archive marker (two zero blocks), flushes and ends the stream. */
  async finish(): Promise<void> {
    this.begin();
    try {
      await this.put(ZEROS);
      await this.flush();
      this.finished = true;
      await new Promise<void>((resolve, reject) => {
        this.out.end((err?: Error | null) => (err ? reject(err) : resolve()));
      });
      if (this.failure) throw this.failure;
    } finally {
      this.busy = false;
    }
  }

  private begin(): void {
    if (this.failure) throw this.failure;
    if (this.finished) throw new BerthError('INTERNAL', 'tar writer used after finish()');
    if (this.busy) throw new BerthError('INTERNAL', 'tar writer calls overlapped: await each addEntry before the next');
    this.busy = true;
  }

  private async put(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      if (this.used === CHUNK) await this.flush();
      const n = Math.min(CHUNK - this.used, data.length - off);
      this.chunk.set(data.subarray(off, off + n), this.used);
      this.used += n;
      off += n;
    }
  }

  private async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.used === 0) return;
    const full = this.used === CHUNK ? this.chunk : this.chunk.subarray(0, this.used);
    // The stream keeps the chunk until consumed, so take a fresh one rather than reuse it.
    this.chunk = Buffer.allocUnsafe(CHUNK);
    this.used = 0;
    if (!this.out.write(full)) await this.drain();
  }

  private drain(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        this.out.off('drain', onDrain);
        this.out.off('error', onError);
        this.out.off('close', onClose);
      };
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(err);
      };
      const onClose = (): void => {
        cleanup();
        reject(this.failure ?? new BerthError('INTERNAL', 'tar output stream closed before the archive was complete'));
      };
      this.out.on('drain', onDrain);
      this.out.on('error', onError);
      this.out.on('close', onClose);
    });
  }
}
