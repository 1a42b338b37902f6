/**
 * The tar sink that writes one layer's entries into a root: synchronous syscalls (open, write,
 * fchown, fchmod, futimes, close per file), paths resolved by SafeRoot, whiteouts per layer.md.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { BerthError } from '../base/errors.js';
import { nativeBinary } from '../base/package.js';
import { SafeRoot, entryComponents, joinRel } from './safe-path.js';
import type { TarHeader } from './tar-header.js';
import type { TarSink } from './tar-parser.js';
import type { ApplyOptions } from './apply.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';
const FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** overlayfs's own xattrs (Documentation/filesystems/overlayfs.rst): an archive must not set them. */
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';
const OVERLAY_OPAQUE = { 'trusted.overlay.opaque': Buffer.from('y') };

interface DeferredDir {
  rel: string;
  header: TarHeader;
}

/**
 * The time to hand to utimes: Node passes seconds as a double and libuv truncates it to the
 * microsecond, so aim at the middle of the intended microsecond to land on it exactly.
 */
function utimesArg(h: TarHeader): number {
  if (h.mtimeNsec === undefined) return h.mtime;
  return Math.trunc(h.mtime) + (Math.floor(h.mtimeNsec / 1000) + 0.5) / 1e6;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/** The name a `.wh.` entry deletes, or undefined for aufs metadata to ignore; refuses invalid ones. */
function whiteoutName(h: TarHeader, base: string): string | undefined {
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return undefined; // other aufs metadata: ignored, like docker
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '') {
    throw new BerthError('LAYER_INVALID', `whiteout ${JSON.stringify(h.path)} has no name to delete (layer.md: such an entry is invalid)`);
  }
  if (name === '.' || name === '..') {
    throw new BerthError('UNSAFE_PATH', `whiteout ${JSON.stringify(h.path)} names ${name}: refusing the layer`);
  }
  return name;
}

export class LayerApplier implements TarSink {
  readonly ownership = new Map<string, { uid: number; gid: number }>();
  readonly notes: string[] = [];
  private readonly safe: SafeRoot;
  private readonly preserveOwnership: boolean;
  private readonly allowDevices: boolean;
  private readonly myUid: number;
  private readonly myGid: number;
  /** Resolved paths this layer created or listed: whiteouts only hide lower layers (layer.md). */
  private readonly inThisLayer = new Set<string>();
  private readonly deferredDirs: DeferredDir[] = [];
  /** Parent directories made writable to let a non-root caller write into them: rel → mode to restore. */
  private readonly unlocked = new Map<string, number>();
  private fd = -1;
  private fileRel = '';
  private fileHeader?: TarHeader;
  /** Extended attributes to set once every entry is written (rel → name → value). */
  private readonly xattrs = new Map<string, Record<string, Buffer>>();
  /** `rel\0name` of the attributes the applier itself needs (overlay's opaque marks): never only noted. */
  private readonly requiredXattrs = new Set<string>();
  private readonly overlay: boolean;
  /** overlay mode: paths where this layer wrote a whiteout device (a later entry there must hide the lower one). */
  private readonly overlayWhiteouts = new Set<string>();

  constructor(
    root: string,
    private readonly opts: ApplyOptions,
  ) {
    this.safe = new SafeRoot(root);
    this.myUid = process.getuid?.() ?? 0;
    this.myGid = process.getgid?.() ?? 0;
    this.preserveOwnership = opts.preserveOwnership ?? this.myUid === 0;
    this.allowDevices = opts.allowDevices ?? this.myUid === 0;
    this.overlay = opts.whiteouts === 'overlay';
  }

  entry(h: TarHeader): void {
    const components = entryComponents(h.path);
    if (components.length === 0) {
      if (h.type !== 'dir') {
        throw new BerthError('UNSAFE_PATH', `archive entry ${JSON.stringify(h.path)} names the root itself but is a ${h.type}: refusing the layer`);
      }
      this.deferredDirs.push({ rel: '', header: h });
      return;
    }
    const base = components[components.length - 1]!;
    const parentComponents = components.slice(0, -1);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.whiteout(h, parentComponents, base);
      return;
    }
    const parentRel = this.safe.resolveDir(parentComponents, true, (rel) => this.inThisLayer.add(rel))!;
    const rel = joinRel(parentRel, base);
    this.inThisLayer.add(rel);
    this.xattrs.delete(rel); // a later entry replaces the file, and its attributes
    switch (h.type) {
      case 'dir':
        this.makeDir(rel, h);
        return;
      case 'file':
        this.openFile(rel, h);
        return;
      case 'symlink':
        this.makeSymlink(rel, h);
        return;
      case 'hardlink':
        this.makeHardlink(rel, h);
        return;
      case 'char':
      case 'block':
      case 'fifo':
        this.makeSpecial(rel, h);
        return;
    }
  }

  data(chunk: Buffer): void {
    if (this.fd < 0) return; // whiteout markers and skipped entries: their bytes are dropped
    let off = 0;
    while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
  }

  entryEnd(): void {
    if (this.fd < 0) return;
    const h = this.fileHeader!;
    const fd = this.fd;
    this.fd = -1;
    try {
      this.applyOwner(this.fileRel, h, (uid, gid) => fchownSync(fd, uid, gid));
      fchmodSync(fd, this.fileMode(h));
      if (h.xattrs) this.setXattrs(this.fileRel, h.xattrs);
      futimesSync(fd, utimesArg(h), utimesArg(h));
    } finally {
      closeSync(fd);
    }
  }

  /** Applies directory attributes, deepest last-listed first, once no more children are written. */
  finish(): void {
    for (let i = this.deferredDirs.length - 1; i >= 0; i--) {
      const { rel, header: h } = this.deferredDirs[i]!;
      const st = this.stillRealDir(rel);
      if (st === undefined) continue; // removed, replaced, or now reached through a symlink
      const abs = this.safe.abs(rel);
      this.applyOwner(rel, h, (uid, gid) => lchownSync(abs, uid, gid), st);
      chmodSync(abs, h.mode);
      this.unlocked.delete(rel);
      if (h.xattrs) this.setXattrs(rel, h.xattrs);
      lutimesSync(abs, utimesArg(h), utimesArg(h));
    }
    for (const [rel, mode] of this.unlocked) {
      if (this.stillRealDir(rel) !== undefined) chmodSync(this.safe.abs(rel), mode);
    }
    this.unlocked.clear();
    this.writeXattrs();
  }

  /**
   * The stats of `rel` if it is still a directory reached without any symlink: a later entry
   * of the layer may have replaced one of its parents by a symlink (to outside the root), and a
   * path-based chmod would then follow it.
   */
  private stillRealDir(rel: string): Stats | undefined {
    if (rel !== '' && this.safe.resolveDir(rel.split('/'), false) !== rel) return undefined;
    const st = lstatSync(this.safe.abs(rel), { throwIfNoEntry: false });
    return st?.isDirectory() ? st : undefined;
  }

  /** Closes what is open after a failure. */
  abort(): void {
    if (this.fd >= 0) {
      try {
        closeSync(this.fd);
      } catch {
        // already failing
      }
      this.fd = -1;
    }
  }

  // --- whiteouts (layer.md "Whiteouts", "Opaque Whiteout") ---

  private whiteout(h: TarHeader, parentComponents: string[], base: string): void {
    if (this.overlay) {
      this.overlayWhiteout(h, parentComponents, base);
      return;
    }
    const dirRel = this.safe.resolveDir(parentComponents, false);
    if (base === OPAQUE) {
      if (dirRel !== undefined) this.hideLowerChildren(dirRel);
      return;
    }
    const name = whiteoutName(h, base);
    if (name === undefined) return;
    if (dirRel === undefined) return; // nothing below to hide
    const rel = joinRel(dirRel, name);
    if (this.inThisLayer.has(rel)) return; // whiteouts hide only lower layers
    this.remove(rel);
  }

  /**
   * overlay mode: the layer's directory starts empty, so nothing is removed; the whiteout is
   * written for overlayfs to hide the lower layers' path (a 0/0 character device), an opaque
   * whiteout marks its directory (which this layer then holds) opaque.
   */
  private overlayWhiteout(h: TarHeader, parentComponents: string[], base: string): void {
    const dirRel = this.safe.resolveDir(parentComponents, true, (rel) => this.inThisLayer.add(rel))!;
    if (base === OPAQUE) {
      this.inThisLayer.add(dirRel);
      this.setXattrs(dirRel, OVERLAY_OPAQUE, true);
      return;
    }
    const name = whiteoutName(h, base);
    if (name === undefined) return;
    const rel = joinRel(dirRel, name);
    if (this.inThisLayer.has(rel) || this.overlayWhiteouts.has(rel)) return; // whiteouts hide only lower layers
    const abs = this.safe.abs(rel);
    const r = spawnSync('mknod', ['-m', '000', abs, 'c', '0', '0'], { encoding: 'utf8' });
    if (r.status !== 0) {
      throw new BerthError(
        'LAYER_INVALID',
        `cannot write the overlay whiteout for /${rel}: ${r.error?.message ?? r.stderr.trim()} (overlay snapshots need root; use the vfs storage driver otherwise)`,
      );
    }
    this.overlayWhiteouts.add(rel);
  }

  /** Removes every child of dirRel that came from a lower layer, keeping what this layer wrote. */
  private hideLowerChildren(dirRel: string): void {
    for (const name of readdirSync(this.safe.abs(dirRel))) {
      const rel = joinRel(dirRel, name);
      if (!this.inThisLayer.has(rel)) {
        this.remove(rel);
        continue;
      }
      const st = lstatSync(this.safe.abs(rel));
      if (st.isDirectory()) this.hideLowerChildren(rel);
    }
  }

  // --- entries ---

  private makeDir(rel: string, h: TarHeader): void {
    const abs = this.safe.abs(rel);
    try {
      this.withWritableParent(rel, () => mkdirSync(abs, 0o700));
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
      const st = lstatSync(abs);
      if (!st.isDirectory()) {
        this.removeExisting(rel, st);
        mkdirSync(abs, 0o700);
        // The layer deleted the lower path and made a directory there: none of the lower one shows.
        if (this.overlayWhiteouts.delete(rel)) this.setXattrs(rel, OVERLAY_OPAQUE, true);
      }
    }
    this.safe.noteDir(rel);
    this.deferredDirs.push({ rel, header: h });
  }

  private openFile(rel: string, h: TarHeader): void {
    const abs = this.safe.abs(rel);
    let fd: number;
    try {
      fd = this.withWritableParent(rel, () => openSync(abs, FILE_FLAGS, 0o600));
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
      // layer.md "Changeset over existing files": remove, then recreate (never write through).
      this.removeExisting(rel, lstatSync(abs));
      fd = openSync(abs, FILE_FLAGS, 0o600);
    }
    this.fd = fd;
    this.fileRel = rel;
    this.fileHeader = h;
  }

  private makeSymlink(rel: string, h: TarHeader): void {
    if (h.linkname === undefined) throw new BerthError('LAYER_INVALID', `symlink ${JSON.stringify(h.path)} has no target`);
    const abs = this.safe.abs(rel);
    this.replacing(rel, () => symlinkSync(h.linkname!, abs));
    this.applyOwner(rel, h, (uid, gid) => lchownSync(abs, uid, gid));
    if (h.xattrs) this.setXattrs(rel, h.xattrs);
    lutimesSync(abs, utimesArg(h), utimesArg(h));
  }

  private makeHardlink(rel: string, h: TarHeader): void {
    if (h.linkname === undefined) throw new BerthError('LAYER_INVALID', `hardlink ${JSON.stringify(h.path)} has no target`);
    const target = entryComponents(h.linkname);
    if (target.length === 0) {
      throw new BerthError('UNSAFE_PATH', `hardlink ${JSON.stringify(h.path)} points at the root directory: refusing the layer`);
    }
    const targetDir = this.safe.resolveDir(target.slice(0, -1), false);
    const targetRel = targetDir === undefined ? undefined : joinRel(targetDir, target[target.length - 1]!);
    const st = targetRel === undefined ? undefined : lstatSync(this.safe.abs(targetRel), { throwIfNoEntry: false });
    if (targetRel === undefined || st === undefined) {
      throw new BerthError(
        'LAYER_INVALID',
        `hardlink ${JSON.stringify(h.path)} points at ${JSON.stringify(h.linkname)}, which does not exist in the root (layer.md: links to files outside the layer may fail)`,
      );
    }
    if (st.isDirectory()) {
      throw new BerthError('LAYER_INVALID', `hardlink ${JSON.stringify(h.path)} points at a directory ${JSON.stringify(h.linkname)}`);
    }
    if (targetRel === rel) return;
    const abs = this.safe.abs(rel);
    // link(2) does not follow a symlink at the target: the link is to the symlink itself, inside the root.
    this.replacing(rel, () => linkSync(this.safe.abs(targetRel), abs));
  }

  private makeSpecial(rel: string, h: TarHeader): void {
    const abs = this.safe.abs(rel);
    const isDevice = h.type !== 'fifo';
    if (isDevice && !this.allowDevices) {
      this.notes.push(`skipped ${h.type} device /${rel} (${h.devmajor}:${h.devminor}): devices are not allowed here`);
      return;
    }
    // Node has no mknod/mkfifo: the coreutils tools do it (device entries are rare in layers).
    const mode = h.mode.toString(8);
    const args = isDevice
      ? ['-m', mode, abs, h.type === 'char' ? 'c' : 'b', String(h.devmajor ?? 0), String(h.devminor ?? 0)]
      : ['-m', mode, abs];
    const tool = isDevice ? 'mknod' : 'mkfifo';
    this.replacing(rel, () => {
      const r = spawnSync(tool, args, { encoding: 'utf8' });
      if (r.status !== 0) {
        const why = r.error?.message ?? r.stderr.trim();
        if (isDevice) {
          this.notes.push(`could not create ${h.type} device /${rel}: ${why}`);
          return;
        }
        throw new BerthError('LAYER_INVALID', `cannot create fifo /${rel}: ${why}`);
      }
    });
    if (lstatSync(abs, { throwIfNoEntry: false }) === undefined) return;
    this.applyOwner(rel, h, (uid, gid) => lchownSync(abs, uid, gid));
    chmodSync(abs, this.fileMode(h));
    lutimesSync(abs, utimesArg(h), utimesArg(h));
  }

  // --- helpers ---

  /** Runs create(); if the path exists, removes what is there and runs it again. */
  private replacing(rel: string, create: () => void): void {
    try {
      this.withWritableParent(rel, create);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
      this.removeExisting(rel, lstatSync(this.safe.abs(rel)));
      create();
    }
  }

  private removeExisting(rel: string, st: Stats): void {
    const abs = this.safe.abs(rel);
    if (st.isDirectory()) {
      // rmSync does not follow symlinks inside the tree: it unlinks them.
      rmSync(abs, { recursive: true, force: true });
      this.safe.invalidate();
    } else {
      unlinkSync(abs);
      if (st.isSymbolicLink()) this.safe.invalidate();
    }
  }

  private remove(rel: string): void {
    const st = lstatSync(this.safe.abs(rel), { throwIfNoEntry: false });
    if (st !== undefined) this.removeExisting(rel, st);
  }

  /**
   * A non-root caller cannot create entries in a directory an earlier entry or layer made
   * read-only: make it writable for the owner, and restore its mode when the layer is done.
   */
  private withWritableParent<T>(rel: string, create: () => T): T {
    try {
      return create();
    } catch (err) {
      if (errno(err) !== 'EACCES' || this.myUid === 0) throw err;
      const slash = rel.lastIndexOf('/');
      const parentRel = slash < 0 ? '' : rel.slice(0, slash);
      const st = lstatSync(this.safe.abs(parentRel));
      if (!st.isDirectory() || st.uid !== this.myUid || (st.mode & 0o700) === 0o700) throw err;
      if (!this.unlocked.has(parentRel)) this.unlocked.set(parentRel, st.mode & 0o7777);
      chmodSync(this.safe.abs(parentRel), (st.mode & 0o7777) | 0o700);
      return create();
    }
  }

  private fileMode(h: TarHeader): number {
    return this.opts.dropSetuid ? h.mode & ~0o6000 : h.mode;
  }

  /** `current` is the owner the path has now: the caller for everything this layer just created. */
  private applyOwner(
    rel: string,
    h: TarHeader,
    chown: (uid: number, gid: number) => void,
    current: { uid: number; gid: number } = { uid: this.myUid, gid: this.myGid },
  ): void {
    const uid = this.opts.idMap ? this.opts.idMap.uid(h.uid) : h.uid;
    const gid = this.opts.idMap ? this.opts.idMap.gid(h.gid) : h.gid;
    if (uid === current.uid && gid === current.gid) return; // already owned so: saves a syscall per file
    if (this.preserveOwnership) {
      try {
        chown(uid, gid);
        return;
      } catch (err) {
        const code = errno(err);
        if (code !== 'EPERM' && code !== 'EINVAL') throw err;
      }
    }
    this.ownership.set(rel, { uid, gid });
  }

  /**
   * Kept for the end of the layer: a chown after them would clear security.capability. `required`
   * marks the applier's own attributes (overlay's opaque directories), which must be set or fail.
   */
  private setXattrs(rel: string, xattrs: Record<string, Buffer>, required = false): void {
    const kept: Record<string, Buffer> = {};
    for (const [name, value] of Object.entries(xattrs)) {
      if (!required && this.overlay && name.startsWith(OVERLAY_XATTR_PREFIX)) {
        this.notes.push(`xattr ${name} on /${rel} dropped: overlayfs's own attributes cannot come from a layer`);
        continue;
      }
      if (required) this.requiredXattrs.add(`${rel}\0${name}`);
      kept[name] = value;
    }
    this.xattrs.set(rel, { ...(this.xattrs.get(rel) ?? {}), ...kept });
  }

  /**
   * Sets the layer's extended attributes with lsetxattr(2), through native/berth-xattr (Node has
   * no xattr call): one process for the whole layer. An attribute that cannot be set fails the
   * apply, except where the caller may not set it (not root: security.* and trusted.* need
   * privileges) or the filesystem has no room for its namespace: those are listed in notes.
   */
  private writeXattrs(): void {
    if (this.xattrs.size === 0) return;
    const list: [rel: string, name: string][] = [];
    const input: Buffer[] = [];
    for (const [rel, attrs] of this.xattrs) {
      for (const [name, value] of Object.entries(attrs)) {
        list.push([rel, name]);
        input.push(Buffer.from(`${rel}\0${name}\0${value.toString('hex')}\0`));
      }
    }
    this.xattrs.clear();
    const r = spawnSync(nativeBinary('berth-xattr'), [this.safe.abs('')], { input: Buffer.concat(input), encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.error || r.status !== 0) {
      throw new BerthError('INTERNAL', `cannot set extended attributes under ${this.safe.abs('')}: ${r.error?.message ?? r.stderr.trim()}`);
    }
    for (const line of r.stdout.split('\n').filter(Boolean)) {
      const m = /^(\d+) (\d+) (.*)$/.exec(line);
      const [rel, name] = (m && list[Number(m[1])]) || ['?', '?'];
      const code = Number(m?.[2]);
      const what = `extended attribute ${name} on /${rel}: ${m?.[3] ?? line}`;
      if (code === 2 /* ENOENT: removed by a later entry */) continue;
      if (this.requiredXattrs.has(`${rel}\0${name}`)) {
        throw new BerthError('LAYER_INVALID', `cannot set ${what} (overlay snapshots need root and a file system with trusted xattrs; use the vfs storage driver otherwise)`);
      }
      const privileged = name.startsWith('security.') || name.startsWith('trusted.');
      const mayNot = this.myUid !== 0 && privileged && (code === 1 /* EPERM */ || code === 13 /* EACCES */);
      const unsupported = !privileged && code === 95 /* EOPNOTSUPP */;
      if (mayNot || unsupported) this.notes.push(`${what} (not set${mayNot ? ': only root can set it' : ''})`);
      else throw new BerthError(code === 95 ? 'UNSUPPORTED' : 'INTERNAL', `cannot set ${what}; unpack as root onto a filesystem with extended attributes`);
    }
  }
}
