/**
 * Snapshots: each image layer unpacked ONCE, keyed by its layer chain ID (image-spec config.md
 * "Layer ChainID"), and shared by every image whose chain starts the same way. A snapshot
 * directory holds only its own layer's diff in the overlayfs whiteout format (whiteouts as 0/0
 * character devices, opaque directories with `trusted.overlay.opaque=y`); a container's root is
 * an overlay mount of the chain (top layer first) under a writable upper dir of its own.
 * Where overlayfs cannot be used (driver 'vfs', or a file system that refuses the mount), the
 * root is a copy instead: the chain's layers applied in order into CONTAINER/rootfs.
 *
 * On disk, under BERTH_ROOT/snapshots:
 *   <hex of chainID>/fs          the layer's diff (a lower dir; never modified once renamed here)
 *   <hex of chainID>/meta.json   SnapshotMeta: chain, parent, the layer blob, sizes
 *   <hex of chainID>/facts.json  what containers asked of the root this chain ends (image-root.ts; a cache)
 *   <hex>.lock                   held (O_EXCL file with the holder's pid) while the snapshot is made
 *   tmp-<pid>-<rand>/            a snapshot being unpacked: renamed to <hex> once complete and synced,
 *                                so a half-unpacked snapshot is never used; removed by the next
 *                                command once its process is gone
 * and BERTH_ROOT/leases (leases.ts) holds the chains running prepares use: prune keeps them
 * until released (or until that process is gone).
 *
 * Interface (what the engine codes against):
 *   new SnapshotStore(berthRoot)
 *   prepare(image, opts) → Prepared { chainId, dirs (lowest first), snapshots, release() }
 *     image: a name in the local store ('busybox', 'docker.io/library/busybox:latest', a digest)
 *            or { layout, manifest, config } (a LoadedImage with its layout; LocalImages.find
 *            in images.ts resolves image IDs and prefixes too). release() once the container
 *            is recorded: until then the lease keeps prune away.
 *   (pull.ts's pullImage pulls and prepares in one go, unpacking while it downloads.)
 *   mountRootfs(dirs, containerDir, { driver?: 'overlay' | 'vfs', readOnly? }) → rootfs path
 *     (CONTAINER/rootfs; overlay: CONTAINER/upper + CONTAINER/work; idempotent). It records
 *     CONTAINER/rootfs.json: with containerDir = BERTH_ROOT/containers/<id>, prune and rmi -f
 *     keep the container's snapshots even once its image is gone (usage.ts reads it).
 *   deferRootfs(dirs, containerDir)      as mountRootfs (overlay) without the mount(2), which the
 *                                        container's monitor makes: overlayMountOf(containerDir)
 *   unmountRootfs(containerDir)          unmounts (if mounted); leaves the directories
 *   upperDir(containerDir)               CONTAINER/upper (overlay; with vfs the changes are in rootfs)
 *   rootfsDriver(containerDir)           'overlay' | 'vfs' | undefined, as mountRootfs recorded it
 *   list(), usedChains(), prune(keep), cleanup()
 */
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { nativeBinary } from '../base/package.js';
import { Limiter } from '../content/limit.js';
import { writeFileAtomic, fsyncDir } from '../image/atomic-file.js';
import { digestOf, DigestingStream } from '../base/digest.js';
import type { OciLayout } from '../image/layout.js';
import { processAlive, withLock } from '../image/layout-lock.js';
import { loadImage } from '../image/load-image.js';
import { liveLeases, takeLease } from './leases.js';
import { parseReference } from '../image/reference.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../base/types.js';
import { applyTarStream, type ApplyResult } from '../layer/apply.js';
import { describeStreamError, layerDecompressor } from '../layer/decompress.js';
import { unpackLayers } from '../layer/unpack-layers.js';
import { walkTree } from '../layer/walk.js';
import { parseMountinfo } from '../runtime/mountinfo.js';
import { openImageStore, storeRefName } from './store.js';

/** An image with the layout holding its blobs. */
export interface SnapshotImage {
  layout: OciLayout;
  manifest: ImageManifest;
  config: ImageConfig;
}

export interface SnapshotMeta {
  chainId: string;
  /** The chain ID of the layer below, absent for the base layer. */
  parent?: string;
  diffId: string;
  /** The layer blob in the image store (vfs copies apply it again). */
  layer: { mediaType: string; digest: string; size: number };
  /** Bytes the unpacked diff takes on disk (allocated blocks, hardlinks counted once). */
  diskBytes: number;
  entries: number;
  created: string;
}

export interface Prepared {
  /** The chain ID of the top layer: names the image's whole root. */
  chainId: string;
  /** The snapshot `fs` dirs, lowest layer first. */
  dirs: string[];
  snapshots: SnapshotMeta[];
  /** Ends the lease that keeps prune away from these snapshots (record the container first). */
  release(): Promise<void>;
}

export interface PrepareOptions {
  /** For a name in the store: which image of an index (default: this host's). */
  platform?: Platform;
  /** Layers unpacked at once (default 3). */
  concurrency?: number;
  /** Called when a snapshot is made (not when it already existed). */
  onUnpacked?: (meta: SnapshotMeta) => void;
  /** The layer blob, if not from the image's layout (pullImage streams it while it downloads). */
  openLayer?: (layer: Descriptor, index: number) => Promise<Readable>;
  /** Called for a layer whose snapshot is already there (or was made meanwhile by another process). */
  onExisting?: (layer: Descriptor, index: number) => void;
}

export interface MountOptions {
  /** 'overlay' (default) or 'vfs' (a copy of the chain); overlay falls back to vfs where refused. */
  driver?: 'overlay' | 'vfs';
  readOnly?: boolean;
}

/** How long to wait for another process unpacking the same layer (large layers take minutes). */
const UNPACK_LOCK_TIMEOUT_MS = 60 * 60 * 1000;

/** image-spec config.md "Layer ChainID": ChainID(L0) = DiffID(L0), ChainID(L0..Ln) = SHA256(ChainID(L0..Ln-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diffId : digestOf(`${prev} ${diffId}`));
  }
  return out;
}

function hexOf(chainId: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(chainId);
  if (!m) throw new BerthError('DIGEST_INVALID', `layer chain ID ${JSON.stringify(chainId)} is not a sha256 digest: berth keys snapshots by sha256 chain IDs`);
  return m[1]!;
}

/** Bytes allocated under `root`, each inode once. */
export function diskUsage(root: string): { bytes: number; entries: number } {
  const seen = new Set<string>();
  let bytes = 0;
  let entries = 0;
  for (const e of walkTree(root)) {
    entries++;
    if (e.stat.nlink > 1 && e.kind !== 'dir') {
      const key = `${e.stat.dev}:${e.stat.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    bytes += e.stat.blocks * 512;
  }
  return { bytes, entries };
}

/** The mount points under /proc/self/mountinfo. */
/** Longest overlay option string we give mount(2) (its limit is one page, with the other options). */
const MAX_MOUNT_OPTIONS = 4000;

/** An overlay mount for a container's monitor: chdir(dir), then mount("overlay", target, "overlay", 0, options). */
export interface OverlayMount {
  dir: string;
  options: string;
  target: string;
}

function isMountPoint(path: string): boolean {
  const abs = resolve(path);
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).some((m) => m.mountPoint === abs);
}

function run(cmd: string, args: string[], cwd?: string): { ok: boolean; why: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  return { ok: r.status === 0, why: r.error?.message ?? (r.stderr.trim() || `exit ${r.status}`) };
}

/** umount2(2) of `target` (MNT_DETACH when lazy), through native/berth-mount. */
export function unmount(target: string, lazy: boolean): { ok: boolean; why: string } {
  return run(nativeBinary('berth-mount'), ['umount', ...(lazy ? ['-l'] : []), target]);
}

/**
 * syncfs(2) of the file system holding `path` (coreutils `sync -f`; Node has no syncfs), run
 * without blocking the layers still unpacking, and shared: callers that ask while a sync runs
 * are served together by the next one (group commit), since each sync writes out everything.
 */
class FsSync {
  private running?: Promise<void>;
  private next?: Promise<void>;

  sync(path: string): Promise<void> {
    if (!this.running) {
      this.running = this.spawnSync(path).finally(() => (this.running = undefined));
      return this.running;
    }
    // What is dirty now may be missed by the sync already running: wait for the next one.
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.sync(path);
      });
    return this.next;
  }

  private spawnSync(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('sync', ['-f', path], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', (err) => reject(new BerthError('INTERNAL', `cannot sync ${path}: ${err.message}`)));
      child.on('close', (code) => (code === 0 ? resolve() : reject(new BerthError('INTERNAL', `cannot sync ${path}: ${stderr.trim() || `exit ${code}`}`))));
    });
  }
}

const fsSync = new FsSync();

export class SnapshotStore {
  readonly dir: string;
  private layoutPromise?: Promise<OciLayout>;

  constructor(readonly berthRoot: string) {
    this.dir = join(berthRoot, 'snapshots');
  }

  /** The local image store (BERTH_ROOT/images). */
  imageStore(): Promise<OciLayout> {
    this.layoutPromise ??= openImageStore({ root: this.berthRoot });
    return this.layoutPromise;
  }

  snapshotDir(chainId: string): string {
    return join(this.dir, hexOf(chainId));
  }

  fsDir(chainId: string): string {
    return join(this.snapshotDir(chainId), 'fs');
  }

  /** The snapshot's record, or undefined if it is not (completely) there. */
  async meta(chainId: string): Promise<SnapshotMeta | undefined> {
    try {
      return JSON.parse(await readFile(join(this.snapshotDir(chainId), 'meta.json'), 'utf8')) as SnapshotMeta;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Resolves a name in the local store: a stored reference as given, normalized ('busybox' → docker.io/library/busybox:latest), or a digest. */
  async loadStoreImage(name: string, platform?: Platform): Promise<SnapshotImage> {
    const layout = await this.imageStore();
    let ref = name;
    const tags = await layout.tags();
    if (!tags.includes(name) && !/^@?sha256:/.test(name)) {
      try {
        ref = storeRefName(parseReference(name));
      } catch {
        // not a reference: resolve() says it is not in the store
      }
    }
    const image = await loadImage(layout, ref, platform);
    return { layout, manifest: image.manifest, config: image.config };
  }

  /**
   * Makes sure every layer of the image has its snapshot (unpacking only the missing ones,
   * each at most once across processes) and returns the chain, lowest first.
   */
  async prepare(image: string | SnapshotImage, opts: PrepareOptions = {}): Promise<Prepared> {
    const img = typeof image === 'string' ? await this.loadStoreImage(image, opts.platform) : image;
    const diffIds = img.config.rootfs.diff_ids;
    if (diffIds.length !== img.manifest.layers.length) {
      throw new BerthError('CONFIG_INVALID', `the image has ${img.manifest.layers.length} layers but its config lists ${diffIds.length} diff_ids`);
    }
    const chain = chainIds(diffIds);
    chain.forEach(hexOf);
    const release = await takeLease(this.berthRoot, { chains: chain });
    try {
      await this.cleanup();
      const limiter = new Limiter(Math.max(1, opts.concurrency ?? 3));
      // Every layer settles before prepare does: no unpack goes on in the background after a failure.
      const settled = await Promise.allSettled(
        chain.map((chainId, i) =>
          limiter.run(() =>
            this.ensure(img, i, chainId, chain[i - 1], opts).catch((err: unknown) => {
              throw describeStreamError(err, `cannot unpack layer ${i} (${img.manifest.layers[i]!.digest})`);
            }),
          ),
        ),
      );
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const snapshots = settled.map((r) => (r as PromiseFulfilledResult<SnapshotMeta>).value);
      return { chainId: chain[chain.length - 1] ?? '', dirs: chain.map((c) => this.fsDir(c)), snapshots, release };
    } catch (err) {
      await release();
      throw err;
    }
  }

  /** The snapshot of layer `i`: existing, or unpacked now under its lock. */
  private async ensure(img: SnapshotImage, i: number, chainId: string, parent: string | undefined, opts: PrepareOptions): Promise<SnapshotMeta> {
    const existing = await this.meta(chainId);
    if (existing) {
      opts.onExisting?.(img.manifest.layers[i]!, i);
      return existing;
    }
    await mkdir(this.dir, { recursive: true });
    return withLock(
      join(this.dir, `${hexOf(chainId)}.lock`),
      async () => {
        const again = await this.meta(chainId);
        if (again) {
          opts.onExisting?.(img.manifest.layers[i]!, i); // another process made it while we waited
          return again;
        }
        const meta = await this.unpack(img, i, chainId, parent, opts);
        opts.onUnpacked?.(meta);
        return meta;
      },
      UNPACK_LOCK_TIMEOUT_MS,
    );
  }

  private async unpack(img: SnapshotImage, i: number, chainId: string, parent: string | undefined, opts: PrepareOptions): Promise<SnapshotMeta> {
    const layer = img.manifest.layers[i]!;
    const diffId = img.config.rootfs.diff_ids[i]!;
    const tmp = join(this.dir, `tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const fs = join(tmp, 'fs');
    await mkdir(fs, { recursive: true, mode: 0o755 });
    try {
      const result = await this.applyBlob(img, layer, i, fs, opts);
      // layer.md / config.md: the uncompressed layer must hash to the config's rootfs.diff_ids[i].
      if (result.diffId !== diffId) {
        throw new BerthError(
          'DIGEST_MISMATCH',
          `layer ${i} (${layer.digest}) uncompresses to ${result.diffId} but the image config's rootfs.diff_ids[${i}] is ${diffId}: the image is corrupt; pull it again`,
        );
      }
      const usage = diskUsage(fs);
      const meta: SnapshotMeta = {
        chainId,
        ...(parent !== undefined ? { parent } : {}),
        diffId,
        layer: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size },
        diskBytes: usage.bytes,
        entries: usage.entries,
        created: new Date().toISOString(),
      };
      // Everything unpacked reaches the disk before the rename publishes it (one syncfs, not an fsync per file).
      await fsSync.sync(fs);
      await writeFileAtomic(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
      await rename(tmp, this.snapshotDir(chainId));
      await fsyncDir(this.dir);
      return meta;
    } catch (err) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  }

  /** Streams the layer blob (digest verified) through its decompressor into `fs` in overlay format. */
  private async applyBlob(img: SnapshotImage, layer: Descriptor, i: number, fs: string, opts: PrepareOptions): Promise<ApplyResult> {
    const blob = opts.openLayer ? await opts.openLayer(layer, i) : await img.layout.fetch(layer);
    const verifier = new DigestingStream({ expectedDigest: layer.digest, expectedSize: layer.size });
    let decompressor;
    try {
      decompressor = layerDecompressor(layer.mediaType);
    } catch (err) {
      blob.destroy();
      throw err;
    }
    const tar = pipeline(blob, verifier, decompressor, () => {
      // failures reach applyTarStream through the destroyed last stream
    }) as unknown as Readable;
    return applyTarStream(fs, tar, { whiteouts: 'overlay' });
  }

  /** Every complete snapshot. */
  async list(): Promise<SnapshotMeta[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SnapshotMeta[] = [];
    for (const name of names) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const meta = await this.meta(`sha256:${name}`).catch(() => undefined);
      if (meta) out.push(meta);
    }
    return out;
  }

  /** Chains that live leases hold. */
  async leasedChains(): Promise<Set<string>> {
    return new Set((await liveLeases(this.berthRoot)).flatMap((l) => l.chains ?? []));
  }

  /** Removes what interrupted commands left: unpack dirs of processes that are gone. */
  async cleanup(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const removed: string[] = [];
    for (const name of names) {
      const m = /^tmp-(\d+)-/.exec(name);
      if (!m || processAlive(Number(m[1]))) continue;
      await rm(join(this.dir, name), { recursive: true, force: true });
      removed.push(name);
    }
    return removed;
  }

  /**
   * Removes every snapshot not in `keep` (chain IDs; their parents are kept too) and not held
   * by a lease. prepare writes its lease before it looks for a snapshot; prune moves a
   * snapshot away before it reads the leases: a concurrent prepare is either seen (and the
   * snapshot put back) or finds the snapshot gone and unpacks it again.
   */
  async prune(keep: Iterable<string>): Promise<SnapshotMeta[]> {
    const all = await this.list();
    const byChain = new Map(all.map((m) => [m.chainId, m]));
    const kept = new Set<string>();
    const keepChain = (c: string | undefined): void => {
      while (c !== undefined && !kept.has(c)) {
        kept.add(c);
        c = byChain.get(c)?.parent;
      }
    };
    for (const c of keep) keepChain(c);
    const removed: SnapshotMeta[] = [];
    // Top layers first, so that a parent is never removed while a child of it remains.
    const depth = (m: SnapshotMeta): number => {
      let d = 0;
      for (let p = m.parent; p !== undefined; p = byChain.get(p)?.parent) d++;
      return d;
    };
    for (const meta of all.filter((m) => !kept.has(m.chainId)).sort((a, b) => depth(b) - depth(a))) {
      const gone = await withLock(join(this.dir, `${hexOf(meta.chainId)}.lock`), async () => {
        if (kept.has(meta.chainId)) return false;
        // Renamed away first (a half-removed snapshot never looks complete), THEN the leases
        // read: a prepare that wrote its lease too late to be seen finds the snapshot gone.
        const trash = join(this.dir, `tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
        await rename(this.snapshotDir(meta.chainId), trash);
        if ((await this.leasedChains()).has(meta.chainId)) {
          await rename(trash, this.snapshotDir(meta.chainId));
          keepChain(meta.chainId);
          return false;
        }
        await rm(trash, { recursive: true, force: true });
        return true;
      });
      if (gone) removed.push(meta);
    }
    return removed;
  }

  // --- container roots ---

  upperDir(containerDir: string): string {
    return join(containerDir, 'upper');
  }

  rootfsPath(containerDir: string): string {
    return join(containerDir, 'rootfs');
  }

  /** The driver mountRootfs used for this container, from CONTAINER/rootfs.json. */
  rootfsDriver(containerDir: string): 'overlay' | 'vfs' | undefined {
    try {
      return (JSON.parse(readFileSync(join(containerDir, 'rootfs.json'), 'utf8')) as { driver: 'overlay' | 'vfs' }).driver;
    } catch {
      return undefined;
    }
  }

  /**
   * The container's root at CONTAINER/rootfs: an overlay of `dirs` (lowest first, as prepare
   * returns them) with CONTAINER/upper and CONTAINER/work, or with driver 'vfs' (or where the
   * overlay mount is refused) a copy of the chain. Mounting again what is mounted is a no-op.
   */
  async mountRootfs(dirs: string[], containerDir: string, opts: MountOptions = {}): Promise<string> {
    const rootfs = this.rootfsPath(containerDir);
    await mkdir(rootfs, { recursive: true, mode: 0o755 });
    const recorded = this.rootfsDriver(containerDir);
    if (recorded === 'vfs') return rootfs; // the copy is the container's root, changes and all
    if (recorded === 'overlay' && isMountPoint(rootfs)) return rootfs;
    const driver = recorded ?? (opts.driver ?? (process.env.BERTH_STORAGE_DRIVER === 'vfs' ? 'vfs' : 'overlay'));
    if (driver === 'overlay' && dirs.length > 0) {
      const upper = this.upperDir(containerDir);
      const work = join(containerDir, 'work');
      await mkdir(upper, { recursive: true, mode: 0o755 });
      await mkdir(work, { recursive: true, mode: 0o700 });
      const mounted = this.mountOverlay(dirs, upper, work, rootfs, opts.readOnly === true);
      if (mounted.ok) {
        await writeFileAtomic(join(containerDir, 'rootfs.json'), JSON.stringify({ driver: 'overlay', dirs }) + '\n');
        return rootfs;
      }
      if (recorded === 'overlay') {
        // Its changes live in the upper dir: a copy would lose them.
        throw new BerthError('RUNTIME_ERROR', `cannot mount the container's root again at ${rootfs}: ${mounted.why}`);
      }
      await rm(upper, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
    await this.copyChain(dirs, rootfs);
    await writeFileAtomic(join(containerDir, 'rootfs.json'), JSON.stringify({ driver: 'vfs', dirs }) + '\n');
    return rootfs;
  }

  /**
   * As mountRootfs for a new container's overlay, without the mount(2): its monitor makes it
   * (overlayMountOf). false where the root must be made here instead (a root recorded before,
   * the vfs driver, no layers, a chain too long for one mount).
   */
  async deferRootfs(dirs: string[], containerDir: string): Promise<boolean> {
    if (dirs.length === 0 || process.env.BERTH_STORAGE_DRIVER === 'vfs' || this.rootfsDriver(containerDir) !== undefined) return false;
    const upper = this.upperDir(containerDir);
    const work = join(containerDir, 'work');
    if (this.overlayOptions(dirs, upper, work).length > MAX_MOUNT_OPTIONS) return false;
    await mkdir(this.rootfsPath(containerDir), { recursive: true, mode: 0o755 });
    await mkdir(upper, { recursive: true, mode: 0o755 });
    await mkdir(work, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(containerDir, 'rootfs.json'), JSON.stringify({ driver: 'overlay', dirs }) + '\n');
    return true;
  }

  /** The overlay mount of a container whose root is one (as recorded in CONTAINER/rootfs.json), for its monitor. */
  overlayMountOf(containerDir: string): OverlayMount | undefined {
    let rec: { driver?: string; dirs?: unknown };
    try {
      rec = JSON.parse(readFileSync(join(containerDir, 'rootfs.json'), 'utf8')) as typeof rec;
    } catch {
      return undefined;
    }
    if (rec.driver !== 'overlay' || !Array.isArray(rec.dirs) || !rec.dirs.every((d) => typeof d === 'string') || rec.dirs.length === 0) return undefined;
    const options = this.overlayOptions(rec.dirs as string[], this.upperDir(containerDir), join(containerDir, 'work'));
    return options.length > MAX_MOUNT_OPTIONS ? undefined : { dir: this.dir, options, target: resolve(this.rootfsPath(containerDir)) };
  }

  /** overlayfs options with the lower dirs relative to the snapshots dir (mount(2)'s option string is a page at most: about 60 layers fit). */
  private overlayOptions(dirs: string[], upper: string, work: string): string {
    const lower = dirs
      .map((d) => {
        const abs = resolve(d);
        return abs.startsWith(`${this.dir}/`) ? abs.slice(this.dir.length + 1) : abs;
      })
      .reverse()
      .join(':');
    return `lowerdir=${lower},upperdir=${resolve(upper)},workdir=${resolve(work)}`;
  }

  /** mount(2) through native/berth-mount, in the snapshots dir (the lower dirs are relative to it). */
  private mountOverlay(dirs: string[], upper: string, work: string, target: string, readOnly: boolean): { ok: boolean; why: string } {
    const options = this.overlayOptions(dirs, upper, work);
    if (options.length > MAX_MOUNT_OPTIONS) return { ok: false, why: `the chain of ${dirs.length} layers is too long for one overlay mount` };
    return run(nativeBinary('berth-mount'), ['overlay', this.dir, options, resolve(target), ...(readOnly ? ['ro'] : [])]);
  }

  /** vfs: the chain's layer blobs applied in order into `rootfs` (digests and diffIDs verified again). */
  private async copyChain(dirs: string[], rootfs: string): Promise<void> {
    if (readdirSync(rootfs).length > 0) {
      throw new BerthError('USAGE', `${rootfs} already has content: remove the container directory first`);
    }
    const layout = await this.imageStore();
    const metas: SnapshotMeta[] = dirs.map((d) => {
      try {
        return JSON.parse(readFileSync(join(d, '..', 'meta.json'), 'utf8')) as SnapshotMeta;
      } catch (err) {
        throw new BerthError('NOT_FOUND', `${d} is not a complete snapshot: prepare the image again`, { cause: err });
      }
    });
    await unpackLayers(
      rootfs,
      metas.map((m) => ({ ...m.layer, diffId: m.diffId, open: () => layout.fetch({ ...m.layer }) })),
    );
  }

  /** Unmounts CONTAINER/rootfs if it is mounted (lazily if it is busy); the directories stay. */
  async unmountRootfs(containerDir: string): Promise<void> {
    const rootfs = this.rootfsPath(containerDir);
    if (!existsSync(rootfs) || !isMountPoint(rootfs)) return;
    const r = unmount(rootfs, false);
    if (r.ok) return;
    const lazy = unmount(rootfs, true);
    if (!lazy.ok) throw new BerthError('RUNTIME_ERROR', `cannot unmount ${rootfs}: ${r.why}`);
  }
}
