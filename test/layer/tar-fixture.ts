/**
 * Test-only tar encoder: builds archives entry by entry, including the hostile ones no tar
 * tool would write (`..` names, links out of the root, devices), so the reader and the
 * applier can be tested byte for byte. Not a general writer (see src/layer/tar-writer.ts).
 */
import { createHash } from 'node:crypto';

export interface FixtureEntry {
  path: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  body?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** PAX records for this entry (emitted as a preceding 'x' header). */
  pax?: Record<string, string | Buffer>;
}

const TYPEFLAG = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, '0') + '\0';
}

/** One raw 512-byte header block with a valid checksum. */
export function headerBlock(fields: {
  name: string;
  typeflag: string;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}): Buffer {
  const b = Buffer.alloc(512);
  b.write(fields.name, 0, 100, 'utf8');
  b.write(octal(fields.mode ?? 0o644, 8), 100, 'latin1');
  b.write(octal(fields.uid ?? 0, 8), 108, 'latin1');
  b.write(octal(fields.gid ?? 0, 8), 116, 'latin1');
  b.write(octal(fields.size ?? 0, 12), 124, 'latin1');
  b.write(octal(fields.mtime ?? 1_600_000_000, 12), 136, 'latin1');
  b.write(fields.typeflag, 156, 'latin1');
  if (fields.linkname) b.write(fields.linkname, 157, 100, 'utf8');
  b.write('ustar\u000000', 257, 'latin1');
  b.write(octal(fields.devmajor ?? 0, 8), 329, 'latin1');
  b.write(octal(fields.devminor ?? 0, 8), 337, 'latin1');
  setChecksum(b);
  return b;
}

export function setChecksum(b: Buffer): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

function padded(body: Buffer): Buffer[] {
  const pad = (512 - (body.length % 512)) % 512;
  return pad ? [body, Buffer.alloc(pad)] : [body];
}

function paxBody(records: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const v = Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
    const rest = Buffer.concat([Buffer.from(` ${key}=`), v, Buffer.from('\n')]);
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len++;
    parts.push(Buffer.concat([Buffer.from(String(len)), rest]));
  }
  return Buffer.concat(parts);
}

export function entryBlocks(e: FixtureEntry): Buffer[] {
  const type = e.type ?? 'file';
  const body = type === 'file' ? (Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body ?? '', 'utf8')) : Buffer.alloc(0);
  const out: Buffer[] = [];
  const pax: Record<string, string | Buffer> = { ...(e.pax ?? {}) };
  let name = e.path;
  if (Buffer.byteLength(name) > 99) {
    pax.path = name;
    name = name.slice(0, 99);
  }
  let linkname = e.linkname;
  if (linkname !== undefined && Buffer.byteLength(linkname) > 99) {
    pax.linkpath = linkname;
    linkname = linkname.slice(0, 99);
  }
  if (Object.keys(pax).length > 0) {
    const pb = paxBody(pax);
    out.push(headerBlock({ name: 'PaxHeaders/x', typeflag: 'x', size: pb.length }), ...padded(pb));
  }
  out.push(
    headerBlock({
      name,
      typeflag: TYPEFLAG[type],
      size: body.length,
      mode: e.mode ?? (type === 'dir' ? 0o755 : 0o644),
      uid: e.uid,
      gid: e.gid,
      mtime: e.mtime,
      linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
    }),
  );
  if (body.length) out.push(...padded(body));
  return out;
}

/** A complete archive (with the two zero blocks at the end). */
export function tarArchive(entries: FixtureEntry[]): Buffer {
  return Buffer.concat([...entries.flatMap(entryBlocks), Buffer.alloc(1024)]);
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
