/**
 * COPY and ADD into a staging directory that becomes the step's layer: the entries sources.ts
 * resolved, heredoc files, ADD's local archives (extracted) and http(s) downloads (verified
 * with --checksum); owners from --chown (names looked up in the image's /etc/passwd and
 * /etc/group), modes from --chmod; the parent directories the image already has keep their
 * attributes, new ones are 0755 and owned as --chown says.
 */
import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, open, readlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join, posix } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { spawn } from 'node:child_process';
import { BerthError } from '../../base/errors.js';
import { applyTarStream } from '../../layer/apply.js';
import { writeLayerStream, type LayerOptions, type LayerResult } from '../../layer/layer-output.js';
import type { TarEntry } from '../../layer/tar-writer.js';
import { walkTree } from '../../layer/walk.js';
import { decompressStream, sniffCompression } from '../../layer/compress.js';
import type { LayerCompression } from '../../base/media-types.js';
import { resolveInRoot, resolveUser } from '../../image/passwd.js';
import type { CopyEntry } from './sources.js';

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * --chown=USER[:GROUP]: numbers as they are, names through the image's account files; a
 * user without a group takes the same number as its gid (Dockerfile reference).
 */
export async function resolveChown(rootfs: string, spec: string, where: string): Promise<Owner> {
  const [user, group] = spec.split(':', 2) as [string, string | undefined];
  if (user === '' || group === '') throw new BerthError('USAGE', `${where}: --chown=${spec} is malformed: write USER, USER:GROUP, UID or UID:GID`);
  try {
    const r = await resolveUser(rootfs, group === undefined ? user : `${user}:${group}`);
    return { uid: r.uid, gid: group === undefined ? r.uid : r.gid };
  } catch (err) {
    throw new BerthError('USAGE', `${where}: --chown=${spec}: ${(err as Error).message.replace(/^image config User [^:]*: /, '')}`, { cause: err });
  }
}

/** --chmod=OCTAL (BuildKit also takes symbolic modes; berth takes octal, as buildah does). */
export function parseChmod(spec: string, where: string): number {
  if (!/^[0-7]{3,4}$/.test(spec)) throw new BerthError('USAGE', `${where}: --chmod=${spec} is not an octal mode: write --chmod=0755`);
  return parseInt(spec, 8);
}

export interface StagingOptions {
  /** The image's root filesystem (existing parents keep their attributes). */
  rootfs: string;
  owner?: Owner;
  mode?: number;
  /** Time for entries that have none of their own (heredocs, new parents), seconds. */
  now: number;
  /** Where an ADD archive is extracted before it joins the layer. */
  scratchDir?: string;
}

/** A tar entry of the layer, with where its body comes from. */
type Planned = TarEntry & { abs?: string; data?: Buffer };

/**
 * The layer of one COPY/ADD (or WORKDIR), written straight from the source files: the tar
 * entries are planned (paths in the image, owners from --chown, modes from --chmod, times
 * from the sources) and the bodies read from where they are, with no copy on disk in between.
 */
export class Staging {
  /** Image path (no leading /) → entry; insertion order keeps parents first. */
  private readonly entries = new Map<string, Planned>();

  constructor(private readonly opts: StagingOptions) {}

  private owner(): Owner {
    return this.opts.owner ?? { uid: 0, gid: 0 };
  }

  private put(path: string, e: Omit<Planned, 'path'>): void {
    const rel = path.replace(/^\/+/, '');
    if (rel === '') return;
    this.entries.set(rel, { ...e, path: rel });
  }

  /** Entries for the parents of `path` (an image path), as the image has them or new. */
  async parents(path: string): Promise<void> {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (this.entries.has(rel)) continue;
      const existing = await lstat(posix.join(this.opts.rootfs, rel)).catch(() => undefined);
      if (existing?.isDirectory()) {
        this.put(rel, { type: 'dir', mode: existing.mode & 0o7777, uid: existing.uid, gid: existing.gid, mtime: Math.floor(existing.mtimeMs / 1000) });
      } else {
        this.put(rel, { type: 'dir', mode: 0o755, ...this.owner(), mtime: this.opts.now });
      }
    }
  }

  /** Entries resolved from the context or a stage, in order (parents first). */
  async addEntries(entries: CopyEntry[]): Promise<void> {
    for (const e of entries) {
      await this.parents(e.dest);
      const mtime = Math.floor(e.stat.mtimeMs / 1000);
      if (e.kind === 'dir') this.put(e.dest, { type: 'dir', mode: this.opts.mode ?? e.stat.mode & 0o7777, ...this.owner(), mtime });
      else if (e.kind === 'symlink') this.put(e.dest, { type: 'symlink', mode: 0o777, ...this.owner(), mtime, linkname: e.linkname! });
      else this.put(e.dest, { type: 'file', mode: this.opts.mode ?? e.stat.mode & 0o7777, ...this.owner(), mtime, size: e.stat.size, abs: e.abs });
    }
  }

  /** A file with given content (COPY <<EOF, ADD of a download). */
  async addFile(dest: string, data: Buffer | string, mode: number, mtime?: number): Promise<void> {
    await this.parents(dest);
    const body = Buffer.from(data);
    this.put(dest, { type: 'file', mode: this.opts.mode ?? mode, ...this.owner(), mtime: mtime ?? this.opts.now, size: body.length, data: body });
  }

  /** ADD of a local archive: extracted into `destDir` (ownership and modes from the archive). */
  async extract(archive: string, destDir: string): Promise<void> {
    if (!this.opts.scratchDir) throw new BerthError('INTERNAL', 'extracting an archive needs a scratch directory');
    await this.parents(`${destDir}/x`);
    if (!this.entries.has(destDir.replace(/^\/+/, ''))) this.put(destDir, { type: 'dir', mode: 0o755, ...this.owner(), mtime: this.opts.now });
    const into = await mkdtemp(join(this.opts.scratchDir, 'archive-'));
    const tar = await openArchive(archive);
    await applyTarStream(into, tar as Readable, { preserveOwnership: true });
    for (const w of walkTree(into)) {
      const base = { mode: w.stat.mode & 0o7777, uid: w.stat.uid, gid: w.stat.gid, mtime: Math.floor(w.stat.mtimeMs / 1000) };
      const dest = posix.join(destDir, w.rel);
      if (w.kind === 'dir') this.put(dest, { type: 'dir', ...base });
      else if (w.kind === 'file') this.put(dest, { type: 'file', ...base, size: w.stat.size, abs: w.abs });
      else if (w.kind === 'symlink') this.put(dest, { type: 'symlink', ...base, linkname: await readlink(w.abs) });
    }
  }

  /** Streams the layer (mtimes clamped to SOURCE_DATE_EPOCH when set). */
  write(out: Writable, opts: LayerOptions): Promise<LayerResult> {
    const sde = opts.sourceDateEpoch;
    return writeLayerStream(out, opts, async (tar) => {
      for (const { abs, data, ...e } of this.entries.values()) {
        const entry: TarEntry = { ...e, mtime: sde !== undefined && e.mtime > sde ? sde : e.mtime };
        if (abs !== undefined) await tar.addFile(entry, abs);
        else if (data !== undefined) await tar.addEntry(entry, data);
        else await tar.addEntry(entry);
      }
    });
  }
}

/** Whether a local ADD source is a tar archive docker would extract (plain, gzip or zstd). */
export async function isTarArchive(path: string): Promise<boolean> {
  return isTarHeader(await firstBytes(await openArchive(path), 512));
}

/** What a local archive of ADD may be compressed with: docker's list (gzip, bzip2, xz) and zstd. */
type ArchiveCompression = LayerCompression | 'xz' | 'bzip2';

function archiveCompression(head: Buffer): ArchiveCompression {
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return sniffCompression(head);
}

/**
 * The archive's bytes, decompressed: gzip and zstd in process, xz and bzip2 (which Node lacks)
 * through xz(1) and bzip2(1), child processes that are not Node.
 */
async function openArchive(path: string): Promise<Readable> {
  const head = Buffer.alloc(6);
  const fh = await open(path);
  try {
    await fh.read(head, 0, 6, 0);
  } finally {
    await fh.close();
  }
  const c = archiveCompression(head);
  if (c !== 'xz' && c !== 'bzip2') return c === 'none' ? createReadStream(path) : createReadStream(path).pipe(decompressStream(c));
  const tool = c === 'xz' ? 'xz' : 'bzip2';
  const child = spawn(tool, ['-dc', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = new PassThrough();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-400)));
  child.stdout.pipe(out, { end: false });
  child.on('error', (err) => out.destroy(new BerthError('UNSUPPORTED', `ADD ${path}: a ${c} archive needs ${tool}(1) to extract it (${err.message}): install ${c === 'xz' ? 'xz-utils' : 'bzip2'}`)));
  child.on('close', (code) => {
    if (code === 0) out.end();
    else out.destroy(new BerthError('LAYER_INVALID', `ADD ${path}: ${tool} -d failed (exit ${code}): ${stderr.trim()}`));
  });
  out.on('close', () => child.kill());
  return out;
}

async function firstBytes(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const c of stream) {
      chunks.push(c as Buffer);
      got += (c as Buffer).length;
      if (got >= n) break;
    }
  } catch {
    // not decompressible: not an archive
  }
  stream.destroy();
  return Buffer.concat(chunks).subarray(0, n);
}

/** A ustar/GNU header: "ustar" at 257 and a valid header checksum. */
function isTarHeader(h: Buffer): boolean {
  if (h.length < 512) return false;
  if (h.subarray(257, 262).toString('latin1') !== 'ustar') return false;
  const stored = parseInt(h.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').trim(), 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return stored === sum;
}

/** ADD https://…: the bytes, the file name the URL gives, and Last-Modified; --checksum verified. */
export async function download(url: string, checksum: string | undefined, where: string): Promise<{ data: Buffer; name: string; mtime?: number }> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow' });
  } catch (err) {
    throw new BerthError('NETWORK', `${where}: ADD ${url}: ${(err as Error).message}: check the URL and the network`, { cause: err });
  }
  if (!res.ok) throw new BerthError('NETWORK', `${where}: ADD ${url}: the server answered ${res.status} ${res.statusText}`);
  const data = Buffer.from(await res.arrayBuffer());
  if (checksum !== undefined) {
    const m = /^(sha256|sha384|sha512):([0-9a-f]+)$/.exec(checksum);
    if (!m) throw new BerthError('USAGE', `${where}: --checksum=${checksum} must be sha256:HEX (or sha384/sha512)`);
    const got = createHash(m[1]!).update(data).digest('hex');
    if (got !== m[2]) throw new BerthError('DIGEST_MISMATCH', `${where}: ADD ${url}: the download has ${m[1]}:${got}, not ${checksum} as --checksum says`);
  }
  const name = decodeURIComponent(new URL(url).pathname.split('/').filter(Boolean).pop() ?? '') || '__unnamed__';
  const lm = res.headers.get('last-modified');
  const mtime = lm ? Math.floor(Date.parse(lm) / 1000) : undefined;
  return { data, name, ...(mtime !== undefined && Number.isFinite(mtime) ? { mtime } : {}) };
}

/** The image path `path` really is: symlinks of the image followed (they never leave its root). */
export async function realImagePath(rootfs: string, path: string): Promise<string> {
  const host = await resolveInRoot(rootfs, path);
  if (host !== undefined) return `/${posix.relative(rootfs, host)}`;
  // Missing: resolve the parent, keep the last name.
  if (path === '/' || path === '') return '/';
  const parent = await realImagePath(rootfs, posix.dirname(path));
  return posix.join(parent, posix.basename(path));
}
