/**
 * COPY and ADD into a staging directory that becomes the step's layer: the entries sources.ts
 * resolved, heredoc files, ADD's local archives (extracted) and http(s) downloads (verified
 * with --checksum); owners from --chown (names looked up in the image's /etc/passwd and
 * /etc/group), modes from --chmod; the parent directories the image already has keep their
 * attributes, new ones are 0755 and owned as --chown says.
 */
import { createReadStream } from 'node:fs';
import { chmod, chown, copyFile, lchown, lstat, lutimes, mkdir, open, symlink, utimes, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { BerthError } from '../../base/errors.js';
import { applyTarStream } from '../../layer/apply.js';
import { decompressStream, sniffCompression } from '../../layer/compress.js';
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
}

/** The staging tree of one COPY/ADD. */
export class Staging {
  private readonly made = new Set<string>();

  constructor(
    readonly dir: string,
    private readonly opts: StagingOptions,
  ) {}

  private host(path: string): string {
    return posix.join(this.dir, path);
  }

  /** Creates the parents of `path` (an image path), as the image has them or new. */
  async parents(path: string): Promise<void> {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const p = `/${parts.slice(0, i).join('/')}`;
      if (this.made.has(p)) continue;
      this.made.add(p);
      const existing = await lstat(posix.join(this.opts.rootfs, p)).catch(() => undefined);
      await mkdir(this.host(p));
      if (existing?.isDirectory()) {
        await chmod(this.host(p), existing.mode & 0o7777);
        await chown(this.host(p), existing.uid, existing.gid);
        await utimes(this.host(p), existing.atime, existing.mtime);
      } else {
        await chmod(this.host(p), 0o755);
        await chown(this.host(p), this.opts.owner?.uid ?? 0, this.opts.owner?.gid ?? 0);
        await utimes(this.host(p), this.opts.now, this.opts.now);
      }
    }
  }

  private async finish(path: string, mode: number, mtime: Date | number, link = false): Promise<void> {
    const h = this.host(path);
    const { uid, gid } = this.opts.owner ?? { uid: 0, gid: 0 };
    if (link) {
      await lchown(h, uid, gid);
      await lutimes(h, mtime, mtime);
      return;
    }
    await chown(h, uid, gid);
    await chmod(h, this.opts.mode ?? mode);
    await utimes(h, mtime, mtime);
  }

  /** Entries resolved from the context or a stage, in order (parents first). */
  async addEntries(entries: CopyEntry[]): Promise<void> {
    const dirs: CopyEntry[] = [];
    for (const e of entries) {
      await this.parents(e.dest);
      const h = this.host(e.dest);
      if (e.kind === 'dir') {
        if (!this.made.has(e.dest)) {
          this.made.add(e.dest);
          await mkdir(h, { recursive: true });
        }
        dirs.push(e);
        continue;
      }
      this.made.add(e.dest);
      if (e.kind === 'symlink') {
        await symlink(e.linkname!, h);
        await this.finish(e.dest, 0, e.stat.mtime, true);
      } else {
        await copyFile(e.abs, h);
        await this.finish(e.dest, e.stat.mode & 0o7777, e.stat.mtime);
      }
    }
    // Directory times last: writing into a directory changes its mtime.
    for (const d of dirs.reverse()) await this.finish(d.dest, d.stat.mode & 0o7777, d.stat.mtime);
  }

  /** A file with given content (COPY <<EOF, ADD of a download). */
  async addFile(dest: string, data: Buffer | string, mode: number, mtime?: number): Promise<void> {
    await this.parents(dest);
    this.made.add(dest);
    await writeFile(this.host(dest), data);
    await this.finish(dest, mode, mtime ?? this.opts.now);
  }

  /** ADD of a local archive: extracted into `destDir` (ownership and modes from the archive). */
  async extract(archive: string, destDir: string): Promise<void> {
    await this.parents(`${destDir}/x`);
    if (!this.made.has(destDir)) {
      this.made.add(destDir);
      await mkdir(this.host(destDir), { recursive: true });
      await this.finish(destDir, 0o755, this.opts.now);
    }
    const fh = await open(archive);
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    await fh.close();
    const raw = createReadStream(archive);
    const compression = sniffCompression(head);
    const tar = compression === 'none' ? raw : raw.pipe(decompressStream(compression));
    await applyTarStream(this.host(destDir), tar as Readable, { preserveOwnership: true });
  }
}

/** Whether a local ADD source is a tar archive docker would extract (plain, gzip or zstd). */
export async function isTarArchive(path: string): Promise<boolean> {
  const fh = await open(path);
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    const c = sniffCompression(head.subarray(0, bytesRead));
    if (c !== 'none') {
      // A compressed file is an archive only if what it holds is a tar.
      const inner = await firstBytes(createReadStream(path).pipe(decompressStream(c)), 512);
      return isTarHeader(inner);
    }
    return isTarHeader(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
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
