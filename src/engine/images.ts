/**
 * The images of the local store as `berth images`, `rmi`, `tag`, `image prune` and `inspect`
 * see them. An image is an entry of the store's index.json (a manifest, or an index resolved
 * to this host's platform); its names are the references tagged on it; its ID is its config
 * digest, as docker's. Removing an image untags it, then collects what nothing reaches any
 * more: blobs of the store (gc) and snapshots (kept while an image or a container uses them,
 * or a running berth holds a lease on them).
 *
 * Names resolve as docker resolves them: a stored reference, a familiar one (`busybox` is
 * `docker.io/library/busybox:latest`), a manifest digest, an image ID or an unambiguous
 * prefix of one (at least 4 hex digits).
 */
import { BerthError, isBerthError } from '../base/errors.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../base/types.js';
import { gcLayout } from '../image/layout-verify.js';
import { REF_NAME_ANNOTATION, type OciLayout } from '../image/layout.js';
import { loadImageFrom } from '../image/load-image.js';
import { parseReference } from '../image/reference.js';
import { liveLeases } from './leases.js';
import { chainIds, SnapshotStore, type SnapshotMeta } from './snapshots.js';
import { storeRefName } from './store.js';
import { containerUses, type ContainerUse } from './usage.js';

export interface LocalImage {
  /** The config digest (docker's image ID); the entry's digest when the image cannot be read. */
  id: string;
  /** The digest of the stored entry (a manifest, or an index). */
  digest: string;
  entry: Descriptor;
  /** The image manifest's digest (the entry's, unless the entry is an index). */
  manifestDigest: string;
  /** References tagged on it, sorted. */
  names: string[];
  manifest?: ImageManifest;
  config?: ImageConfig;
  /** Layer chain IDs, base first. */
  chain: string[];
  /** Every blob the image needs: the entry, the manifest (under an index), the config, the layers. */
  blobs: { digest: string; size: number }[];
  /** Why the image cannot be read (missing or corrupt blobs). */
  broken?: string;
}

export interface RemoveResult {
  untagged: string[];
  /** IDs of the images deleted (no name left). */
  deleted: string[];
}

export interface CollectResult {
  blobs: string[];
  snapshots: SnapshotMeta[];
  bytes: number;
}

/** The short form of an ID or digest: 12 hex digits, as docker prints them. */
export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

export class LocalImages {
  readonly snapshots: SnapshotStore;

  constructor(readonly berthRoot: string) {
    this.snapshots = new SnapshotStore(berthRoot);
  }

  layout(): Promise<OciLayout> {
    return this.snapshots.imageStore();
  }

  /** Every image of the store, one per distinct index entry. */
  async list(): Promise<LocalImage[]> {
    const layout = await this.layout();
    const byDigest = new Map<string, { entry: Descriptor; names: string[] }>();
    for (const d of (await layout.index()).manifests) {
      const name = d.annotations?.[REF_NAME_ANNOTATION];
      let e = byDigest.get(d.digest);
      if (!e) {
        const { annotations: _a, ...entry } = d;
        e = { entry, names: [] };
        byDigest.set(d.digest, e);
      }
      if (name !== undefined) e.names.push(name);
    }
    const out: LocalImage[] = [];
    for (const { entry, names } of byDigest.values()) {
      names.sort();
      const image: LocalImage = { id: entry.digest, digest: entry.digest, manifestDigest: entry.digest, entry, names, chain: [], blobs: [{ digest: entry.digest, size: entry.size }] };
      try {
        const loaded = await loadImageFrom(layout, entry, names[0] ?? entry.digest);
        // Artifacts with a subject (signatures, SBOMs) are recorded in the index too: not images.
        if (loaded.manifest.subject !== undefined && names.length === 0) continue;
        image.id = loaded.configDesc.digest;
        image.manifest = loaded.manifest;
        image.config = loaded.config;
        image.chain = chainIds(loaded.config.rootfs.diff_ids);
        image.manifestDigest = loaded.manifestDesc.digest;
        if (loaded.manifestDesc.digest !== entry.digest) image.blobs.push({ digest: loaded.manifestDesc.digest, size: loaded.manifestDesc.size });
        image.blobs.push({ digest: loaded.configDesc.digest, size: loaded.configDesc.size }, ...loaded.manifest.layers.map((l) => ({ digest: l.digest, size: l.size })));
      } catch (err) {
        if (isBerthError(err, 'UNSUPPORTED') && names.length === 0) continue; // an untagged artifact
        image.broken = (err as Error).message;
      }
      out.push(image);
    }
    return out;
  }

  /** The image `name` names (see the top of this file); NOT_FOUND says how to get it. */
  async find(name: string, images?: LocalImage[]): Promise<LocalImage> {
    const all = images ?? (await this.list());
    const byName = (n: string) => all.find((i) => i.names.includes(n));
    let hit = byName(name);
    if (!hit) {
      try {
        hit = byName(storeRefName(parseReference(name)));
      } catch {
        // not a reference
      }
    }
    if (!hit) {
      const bare = name.replace(/^@/, '');
      hit = all.find((i) => i.digest === bare || i.id === bare);
      const hex = /^(?:sha256:)?([0-9a-f]{4,64})$/.exec(bare)?.[1];
      if (!hit && hex !== undefined) {
        const matches = all.filter((i) => i.id.startsWith(`sha256:${hex}`));
        if (matches.length > 1) {
          throw new BerthError('USAGE', `${name} matches ${matches.length} images (${matches.map((i) => shortId(i.id)).join(', ')}): give more digits of the ID`);
        }
        hit = matches[0];
      }
    }
    if (!hit) {
      throw new BerthError('NOT_FOUND', `no image ${JSON.stringify(name)} in the local store: pull it (berth pull ${name}), or inspect it in its registry with docker://REF`);
    }
    return hit;
  }

  /** `berth tag SRC DST` in the store: DST (a reference, familiar or full) now names SRC's image. */
  async tag(src: string, dst: string): Promise<{ image: LocalImage; name: string }> {
    const image = await this.find(src);
    let ref;
    try {
      ref = parseReference(dst);
    } catch (err) {
      throw new BerthError('USAGE', `cannot tag as ${JSON.stringify(dst)}: ${(err as Error).message}`, { cause: err });
    }
    if (ref.digest !== undefined) throw new BerthError('USAGE', `cannot tag as ${dst}: a tag cannot name a digest (give REPO[:TAG])`);
    const name = storeRefName(ref);
    await (await this.layout()).tag(image.entry, name);
    return { image, name };
  }

  /**
   * `berth rmi`: removes the name; the image goes when its last name does (or when it is named
   * by ID or digest: every name, which with several names needs `force`). An image a running
   * container uses is never deleted; one a stopped container uses only with `force`.
   */
  async remove(name: string, opts: { force?: boolean; collect?: boolean } = {}): Promise<RemoveResult> {
    const images = await this.list();
    const image = await this.find(name, images);
    const layout = await this.layout();
    const byName = image.names.find((n) => n === name || safeStoreName(name) === n);
    const result: RemoveResult = { untagged: [], deleted: [] };
    if (byName !== undefined && image.names.length > 1) {
      await layout.untag(byName);
      result.untagged.push(byName);
      return result;
    }
    if (byName === undefined && image.names.length > 1 && !opts.force) {
      throw new BerthError(
        'USAGE',
        `image ${shortId(image.id)} has several names (${image.names.join(', ')}): remove them one by one, or all at once with -f`,
      );
    }
    const users = containerUses(this.berthRoot).filter((c) => usesImage(c, image));
    const running = users.filter((c) => c.running);
    if (running.length > 0) {
      throw new BerthError(
        'USAGE',
        `image ${name} is used by running container ${running.map((c) => c.name).join(', ')}: stop and remove the container first (cannot be forced)`,
      );
    }
    if (users.length > 0 && !opts.force) {
      throw new BerthError('USAGE', `image ${name} is used by container ${users.map((c) => c.name).join(', ')}: remove the container first, or use -f`);
    }
    for (const n of image.names) {
      await layout.untag(n).catch((err: unknown) => {
        if (!isBerthError(err, 'NOT_FOUND')) throw err; // untagged meanwhile by another rmi
      });
      result.untagged.push(n);
    }
    await layout.delete(image.entry).catch((err: unknown) => {
      if (!isBerthError(err, 'NOT_FOUND')) throw err;
    });
    result.deleted.push(image.id);
    if (opts.collect !== false) await this.collect();
    return result;
  }

  /** `berth image prune [-a]`: untagged images, and with `all` every image no container uses. */
  async prune(opts: { all?: boolean } = {}): Promise<{ deleted: string[]; reclaimed: CollectResult }> {
    const containers = containerUses(this.berthRoot);
    const deleted: string[] = [];
    const layout = await this.layout();
    for (const image of await this.list()) {
      if (containers.some((c) => usesImage(c, image))) continue;
      if (image.names.length > 0 && !opts.all) continue;
      for (const n of image.names) await layout.untag(n).catch(() => undefined);
      await layout.delete(image.entry).catch(() => undefined);
      deleted.push(image.id);
    }
    return { deleted, reclaimed: await this.collect() };
  }

  /** Chains that must stay: those of every stored image and every container. */
  async keptChains(images?: LocalImage[], containers?: ContainerUse[]): Promise<Set<string>> {
    const keep = new Set<string>();
    const all = images ?? (await this.list());
    for (const i of all) if (i.chain.length) keep.add(i.chain[i.chain.length - 1]!);
    for (const c of containers ?? containerUses(this.berthRoot)) for (const chain of c.chains) keep.add(chain);
    return keep;
  }

  /** Removes the blobs nothing in the store reaches and the snapshots nothing uses. */
  async collect(): Promise<CollectResult> {
    const layout = await this.layout();
    const writers = (await liveLeases(this.berthRoot)).filter((l) => l.writesBlobs);
    // A pull in progress tags its image only at the end: keep what was written since it began.
    const keepSince = writers.length ? Math.min(...writers.map((l) => l.created)) - 1000 : undefined;
    const gc = await gcLayout(layout, keepSince !== undefined ? { keepSince } : {});
    const snapshots = await this.snapshots.prune(await this.keptChains());
    return { blobs: gc.removed, snapshots, bytes: gc.bytes + snapshots.reduce((n, s) => n + s.diskBytes, 0) };
  }
}

/** Whether the container was made from this image (its record names the entry or the manifest). */
export function usesImage(c: ContainerUse, image: LocalImage): boolean {
  return c.imageDigest !== undefined && (c.imageDigest === image.digest || c.imageDigest === image.manifestDigest);
}

function safeStoreName(name: string): string | undefined {
  try {
    return storeRefName(parseReference(name));
  } catch {
    return undefined;
  }
}
