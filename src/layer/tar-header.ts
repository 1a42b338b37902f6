/**
 * Decoding of tar header blocks: ustar (with the prefix field), GNU base-256 numbers, and the
 * PAX extended-header records that override them. Pure functions over bytes; the framing of
 * entries is in tar-parser.ts.
 */
import { BerthError } from '../base/errors.js';

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarHeader {
  path: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  mtime: number;
  /** The sub-second part of a PAX mtime in nanoseconds, exact (a double cannot hold it next to the seconds). */
  mtimeNsec?: number;
  size: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

export const BLOCK = 512;

/** What a raw header block says before PAX/GNU overrides; `typeflag` is the raw byte. */
export interface RawHeader {
  typeflag: string;
  path: string;
  linkname: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

function cString(block: Buffer, start: number, length: number, encoding: BufferEncoding = 'utf8'): string {
  let end = start;
  const limit = start + length;
  while (end < limit && block[end] !== 0) end++;
  return block.toString(encoding, start, end);
}

/** A numeric field: octal text (space/NUL terminated) or GNU base-256 (high bit of the first byte set). */
function numeric(block: Buffer, start: number, length: number, field: string): number {
  const first = block[start]!;
  if (first & 0x80) {
    // GNU base-256: big-endian two's complement in the remaining bits.
    if (first === 0xff) throw new BerthError('LAYER_INVALID', `tar header field ${field} is negative (base-256)`);
    let value = first & 0x7f;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i]!;
    if (!Number.isSafeInteger(value)) throw new BerthError('LAYER_INVALID', `tar header field ${field} is too large`);
    return value;
  }
  let value = 0;
  let i = start;
  const limit = start + length;
  while (i < limit && (block[i] === 0x20 || block[i] === 0)) i++; // leading spaces/NULs
  for (; i < limit; i++) {
    const c = block[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) {
      throw new BerthError('LAYER_INVALID', `tar header field ${field} is not an octal number: the archive is corrupt`);
    }
    value = value * 8 + (c - 0x30);
  }
  return value;
}

/** True when the block is all zeros (end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 8) {
    if (block.readBigUInt64LE(i) !== 0n) return false;
  }
  return true;
}

function verifyChecksum(block: Buffer): void {
  const stored = numeric(block, 148, 8, 'chksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Some old tars computed the sum over signed chars; accept both like GNU tar does.
  if (stored !== unsigned && stored !== signed) {
    throw new BerthError(
      'LAYER_INVALID',
      'tar header checksum mismatch: the layer is corrupt or not a tar archive (was it decompressed correctly?)',
    );
  }
}

export function decodeHeaderBlock(block: Buffer): RawHeader {
  verifyChecksum(block);
  const magic = block.toString('latin1', 257, 263);
  let path = cString(block, 0, 100);
  // POSIX ustar: a non-empty prefix is joined with '/'. GNU's old format ("ustar  \0") has no prefix.
  if (magic === 'ustar\u000000' || magic === 'ustar\u0000') {
    const prefix = cString(block, 345, 155);
    if (prefix !== '') path = `${prefix}/${path}`;
  }
  const typeByte = block[156]!;
  return {
    typeflag: typeByte === 0 ? '0' : String.fromCharCode(typeByte),
    path,
    linkname: cString(block, 157, 100),
    mode: numeric(block, 100, 8, 'mode'),
    uid: numeric(block, 108, 8, 'uid'),
    gid: numeric(block, 116, 8, 'gid'),
    size: numeric(block, 124, 12, 'size'),
    mtime: numeric(block, 136, 12, 'mtime'),
    uname: cString(block, 265, 32),
    gname: cString(block, 297, 32),
    devmajor: numeric(block, 329, 8, 'devmajor'),
    devminor: numeric(block, 337, 8, 'devminor'),
  };
}

/** PAX records: "%d %s=%s\n" where the length counts the whole record (pax "Extended Header"). */
export function parsePaxRecords(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // padding some writers leave
    const space = data.indexOf(0x20, pos);
    if (space < 0) throw new BerthError('LAYER_INVALID', 'malformed PAX extended header record: no length');
    const length = Number(data.toString('latin1', pos, space));
    if (!Number.isInteger(length) || length <= space - pos || pos + length > data.length) {
      throw new BerthError('LAYER_INVALID', 'malformed PAX extended header record: bad length');
    }
    const record = data.subarray(space + 1, pos + length);
    const eq = record.indexOf(0x3d);
    if (eq < 0 || record[record.length - 1] !== 0x0a) {
      throw new BerthError('LAYER_INVALID', 'malformed PAX extended header record: expected key=value\\n');
    }
    records.set(record.toString('utf8', 0, eq), Buffer.from(record.subarray(eq + 1, record.length - 1)));
    pos += length;
  }
  return records;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '7': 'file', // contiguous file: a regular file everywhere that matters
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

function paxNumber(value: Buffer, key: string): number {
  const text = value.toString('latin1');
  const n = Number(text);
  if (text === '' || !Number.isFinite(n) || n < 0) {
    throw new BerthError('LAYER_INVALID', `PAX header ${key}=${JSON.stringify(text)} is not a non-negative number`);
  }
  return key === 'mtime' ? n : Math.trunc(n);
}

/**
 * The final header of an entry: the raw block overridden by GNU long name/link and by PAX
 * records (global first, then the entry's own). Returns undefined for a typeflag we do not know.
 */
export function finalHeader(
  raw: RawHeader,
  longName: string | undefined,
  longLink: string | undefined,
  pax: Map<string, Buffer> | undefined,
  globalPax: Map<string, Buffer>,
): TarHeader {
  let type = TYPES[raw.typeflag];
  if (type === undefined) {
    if (raw.typeflag === 'S') {
      throw new BerthError('LAYER_INVALID', 'GNU sparse tar entries are not supported in layers (layer.md: sparse files SHOULD NOT be used)');
    }
    throw new BerthError('LAYER_INVALID', `unsupported tar entry type ${JSON.stringify(raw.typeflag)} for ${JSON.stringify(raw.path)}`);
  }
  // Old tars mark directories with a regular-file type and a trailing slash.
  if (type === 'file' && raw.typeflag === '0' && raw.path.endsWith('/')) type = 'dir';
  const h: TarHeader = {
    path: longName ?? raw.path,
    type,
    mode: raw.mode & 0o7777,
    uid: raw.uid,
    gid: raw.gid,
    mtime: raw.mtime,
    size: type === 'file' ? raw.size : 0,
  };
  if (raw.uname !== '') h.uname = raw.uname;
  if (raw.gname !== '') h.gname = raw.gname;
  const linkname = longLink ?? raw.linkname;
  if ((type === 'symlink' || type === 'hardlink') && linkname !== '') h.linkname = linkname;
  if (type === 'char' || type === 'block') {
    h.devmajor = raw.devmajor;
    h.devminor = raw.devminor;
  }
  const apply = (records: Map<string, Buffer>) => {
    for (const [key, value] of records) {
      switch (key) {
        case 'path':
          h.path = value.toString('utf8');
          break;
        case 'linkpath':
          if (type === 'symlink' || type === 'hardlink') h.linkname = value.toString('utf8');
          break;
        case 'size':
          if (type === 'file') h.size = paxNumber(value, key);
          break;
        case 'uid':
          h.uid = paxNumber(value, key);
          break;
        case 'gid':
          h.gid = paxNumber(value, key);
          break;
        case 'mtime': {
          h.mtime = paxNumber(value, key);
          const frac = /\.(\d+)$/.exec(value.toString('latin1'));
          if (frac) h.mtimeNsec = Number(frac[1]!.slice(0, 9).padEnd(9, '0'));
          else delete h.mtimeNsec;
          break;
        }
        case 'uname':
          h.uname = value.toString('utf8');
          break;
        case 'gname':
          h.gname = value.toString('utf8');
          break;
        default:
          if (key.startsWith('SCHILY.xattr.')) {
            (h.xattrs ??= {})[key.slice('SCHILY.xattr.'.length)] = value;
          } else if (key.startsWith('LIBARCHIVE.xattr.')) {
            // libarchive: the name is URL-encoded, the value base64.
            const name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
            (h.xattrs ??= {})[name] = Buffer.from(value.toString('latin1'), 'base64');
          } else if (key === 'GNU.sparse.major' || key === 'GNU.sparse.name') {
            throw new BerthError('LAYER_INVALID', 'PAX sparse tar entries are not supported in layers (layer.md: sparse files SHOULD NOT be used)');
          }
      }
    }
  };
  apply(globalPax);
  if (pax) apply(pax);
  return h;
}
