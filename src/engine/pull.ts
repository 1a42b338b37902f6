/**
 * pullImage: a registry reference → the local store (its OCI layout, tagged with the full
 * reference) AND the image's snapshots, with downloading and unpacking overlapped: each layer
 * missing from both is fetched once, and its bytes go at the same time to the store's blob file
 * and through the decompressor into its snapshot; the layers of the image unpack side by side,
 * each into its own snapshot directory (a snapshot holds only its own layer's diff).
 *
 * The store stays the only copy of the blobs (`skopeo copy oci:STORE:REF` reads it), the
 * snapshots the only unpacked copy. A layer whose blob is already stored is unpacked from the
 * store; a layer whose snapshot exists is only stored. If the streamed unpack fails while the
 * download succeeded, the image is prepared again from the store.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { RegistryClient } from '../client/registry.js';
import type { Repository } from '../client/repository.js';
import { copy, type CopyResult } from '../content/copy.js';
import type { PushOptions, ProgressEvent, Target } from '../base/target.js';
import { loadImageFrom } from '../image/load-image.js';
import type { OciLayout } from '../image/layout.js';
import { parsePlatform } from '../image/platform.js';
import { parseReference, referenceTarget, type Reference } from '../image/reference.js';
import type { Descriptor, Platform } from '../base/types.js';
import { takeLease } from './leases.js';
import { chainIds, SnapshotStore, type Prepared, type SnapshotImage, type SnapshotMeta } from './snapshots.js';
import { berthRoot as defaultBerthRoot, storeRefName } from './store.js';

export interface PullOptions {
  /** The berth root (default: store.ts's berthRoot()). */
  berthRoot?: string;
  /** The registry client (credentials, TLS, mirrors); the caller closes it. */
  client: RegistryClient;
  platform?: Platform | string;
  /** Blobs downloaded at once (default 4). */
  concurrency?: number;
  /** Also make the snapshots (default true); false only copies into the store. */
  unpack?: boolean;
  onProgress?: (event: ProgressEvent) => void;
  /** Called for each snapshot this pull unpacked (not for those that existed). */
  onUnpacked?: (meta: SnapshotMeta) => void;
}

export interface PulledImage {
  /** The image's name in the store (its full reference). */
  name: string;
  manifestDesc: Descriptor;
  image: SnapshotImage;
  copy: CopyResult;
  /** The snapshots (unless unpack: false); release() once the container using them is recorded. */
  prepared?: Prepared;
  /** Layers unpacked from their download as it arrived (the others: from the store, or already unpacked). */
  streamedLayers: number;
}

/** A layer streamed to its snapshot while it is stored: the second branch of its download. */
interface Streamed {
  state: 'wanted' | 'claimed' | 'dropped';
  branch?: PassThrough;
  resolve(branch: Readable): void;
  branchReady: Promise<Readable>;
}

/**
 * The store as copy()'s destination, handing a second branch of each wanted layer's download
 * to the unpack. Both branches flow at the pace of the slower one.
 */
class TeeingStore implements Target {
  readonly name: string;
  constructor(
    readonly store: OciLayout,
    private readonly streamed: Map<string, Streamed>,
  ) {
    this.name = store.name;
  }

  exists(desc: Descriptor): Promise<boolean> {
    return this.store.exists(desc);
  }
  fetch(desc: Descriptor): Promise<Readable> {
    return this.store.fetch(desc);
  }
  resolve(ref: string): Promise<Descriptor> {
    return this.store.resolve(ref);
  }
  tag(desc: Descriptor, ref: string): Promise<void> {
    return this.store.tag(desc, ref);
  }

  push(desc: Descriptor, content: Readable, opts: PushOptions = {}): Promise<void> {
    const s = this.streamed.get(desc.digest);
    if (s === undefined || s.state === 'dropped' || s.branch !== undefined) return this.store.push(desc, content, opts);
    const toStore = new PassThrough({ highWaterMark: 1 << 20 });
    const toUnpack = new PassThrough({ highWaterMark: 4 << 20 });
    content.on('error', (err) => {
      toStore.destroy(err);
      toUnpack.destroy(err);
    });
    content.pipe(toStore);
    content.pipe(toUnpack);
    s.branch = toUnpack;
    s.resolve(toUnpack);
    // The chunks are read by both branches: the store must not recycle them (releaseChunks).
    return this.store.push(desc, toStore, { ...opts, releaseChunks: false });
  }

  /** The unpack does not need this layer (its snapshot exists): let the download go on to the store alone. */
  drop(digest: string): void {
    const s = this.streamed.get(digest);
    if (s === undefined) return;
    s.state = 'dropped';
    s.branch?.resume();
  }
}

/** Pulls `ref` into the store and (by default) its snapshots, overlapping download and unpack. */
export async function pullImage(ref: string | Reference, opts: PullOptions): Promise<PulledImage> {
  const reference = typeof ref === 'string' ? parseReference(ref) : ref;
  const root = opts.berthRoot ?? defaultBerthRoot();
  const snapshots = new SnapshotStore(root);
  const resolving = opts.client.resolveForPull(reference.registry, reference.repository, referenceTarget(reference), { prefetch: true });
  resolving.catch(() => undefined); // awaited below, once the store is open
  const store = await snapshots.imageStore();
  // Blobs land in the store before the tag that makes them reachable: gc must keep them meanwhile.
  const endLease = await takeLease(root, { writesBlobs: true });
  try {
    return await pullInto(snapshots, store, reference, await resolving, opts);
  } finally {
    await endLease();
  }
}

async function pullInto(
  snapshots: SnapshotStore,
  store: OciLayout,
  reference: Reference,
  { repository, descriptor }: { repository: Repository; descriptor: Descriptor },
  opts: PullOptions,
): Promise<PulledImage> {
  const platform = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform;
  const name = storeRefName(reference);
  const loaded = await loadImageFrom(repository, descriptor, name, platform);
  const image: SnapshotImage = { layout: store, manifest: loaded.manifest, config: loaded.config };
  const copyOpts = { concurrency: opts.concurrency ?? 4, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) };
  if (opts.unpack === false) {
    const result = await copy(repository, loaded.manifestDesc, store, name, copyOpts);
    return { name, manifestDesc: result.descriptor, image, copy: result, streamedLayers: 0 };
  }

  // Which layers to stream: neither the blob nor the snapshot is here yet.
  const chain = chainIds(loaded.config.rootfs.diff_ids);
  const streamed = new Map<string, Streamed>();
  await Promise.all(
    loaded.manifest.layers.map(async (layer, i) => {
      if (streamed.has(layer.digest) || (await snapshots.meta(chain[i]!)) || (await store.exists(layer))) return;
      let resolve!: (r: Readable) => void;
      const branchReady = new Promise<Readable>((r) => (resolve = r));
      streamed.set(layer.digest, { state: 'wanted', resolve, branchReady });
    }),
  );
  const target = new TeeingStore(store, streamed);
  const copying = copy(repository, loaded.manifestDesc, target, name, copyOpts);
  let streamedLayers = 0;
  const copied = copying.then(
    () => undefined,
    () => undefined,
  );
  const preparing = snapshots.prepare(image, {
    concurrency: Math.max(1, loaded.manifest.layers.length),
    openLayer: async (layer) => {
      const s = streamed.get(layer.digest);
      if (s !== undefined && s.state === 'wanted') {
        s.state = 'claimed';
        // The branch, once copy pushes the blob; if copy ends without pushing it, the stored blob.
        const first = await Promise.race([s.branchReady, copying.then(() => undefined)]);
        if (first !== undefined) {
          streamedLayers++;
          return first;
        }
      } else {
        await copied; // the same blob twice in one image, or not streamed: read what copy stored
      }
      return store.fetch(layer);
    },
    onExisting: (layer) => target.drop(layer.digest),
    ...(opts.onUnpacked ? { onUnpacked: opts.onUnpacked } : {}),
  });
  // A failed unpack must not hold up the downloads it was reading: they go on to the store alone.
  preparing.catch(() => {
    for (const digest of streamed.keys()) target.drop(digest);
  });
  const [copyResult, prepareResult] = await Promise.allSettled([copying, preparing]);
  if (copyResult.status === 'rejected') {
    if (prepareResult.status === 'fulfilled') await prepareResult.value.release();
    throw copyResult.reason;
  }
  let prepared: Prepared;
  if (prepareResult.status === 'fulfilled') prepared = prepareResult.value;
  else {
    // Everything is stored now: unpack from the store (a diff_id mismatch fails again, with its message).
    prepared = await snapshots.prepare(image, opts.onUnpacked ? { onUnpacked: opts.onUnpacked } : {});
    streamedLayers = 0;
  }
  return { name, manifestDesc: copyResult.value.descriptor, image, copy: copyResult.value, prepared, streamedLayers };
}
