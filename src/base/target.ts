/**
 * The interfaces underneath everything (docs/ARCHITECTURE.md "One idea underneath everything"):
 * a registry repository, an OCI layout, an archive, memory and the local image store
 * are each a Target; copy() walks the graph from one Target to another.
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from './types.js';

export interface FetchOptions {
  signal?: AbortSignal;
  /** Start at this byte offset (for resuming); the stream then yields the rest. */
  offset?: number;
}

export interface PushOptions {
  signal?: AbortSignal;
  /** Called with the number of bytes sent so far. */
  onBytes?: (bytes: number) => void;
  /**
   * The content's chunks are the pusher's alone (nothing else reads the stream): once written,
   * their memory may be reused (base/slab-pool.ts). Pushers that cannot tell may ignore it.
   */
  releaseChunks?: boolean;
}

export interface ResolveOptions {
  /**
   * The caller reads the document next: a target that would otherwise ask for the digest alone
   * (a registry's HEAD) may fetch the document at once and keep it for that read.
   */
  prefetch?: boolean;
}

export interface Fetcher {
  /**
   * A stream of the blob's bytes. The stream verifies digest and size as it flows and
   * fails (instead of ending) when they do not match. NOT_FOUND when it is absent.
   */
  fetch(desc: Descriptor, opts?: FetchOptions): Promise<Readable>;
}

export interface Pusher {
  /** Stores content under desc.digest; verifies digest and size before it becomes visible. */
  push(desc: Descriptor, content: Readable, opts?: PushOptions): Promise<void>;
}

export interface Storage extends Fetcher, Pusher {
  exists(desc: Descriptor): Promise<boolean>;
}

export interface TagResolver {
  /** A tag or digest to the descriptor of the manifest or index it names. NOT_FOUND if absent. */
  resolve(ref: string, opts?: ResolveOptions): Promise<Descriptor>;
  /** Points a tag at a manifest or index that the target already holds. */
  tag(desc: Descriptor, ref: string): Promise<void>;
}

export interface Target extends Storage, TagResolver {
  /** A short human name for messages, e.g. `docker://host/repo` or `oci:/path`. */
  readonly name?: string;
}

/** Optional capabilities some targets have. */
export interface TagLister {
  tags(): Promise<string[]>;
}

export interface ReferrerLister {
  /** Descriptors of manifests whose `subject` is `subject`, optionally filtered by artifactType. */
  referrers(subject: Descriptor, artifactType?: string): Promise<Descriptor[]>;
}

export interface Deleter {
  delete(desc: Descriptor): Promise<void>;
}

/** Cross-repository mount on one registry (distribution-spec "Mounting a blob from another repository"). */
export interface Mounter {
  /** True when the blob was mounted; false when the destination could not mount it. */
  mount(desc: Descriptor, fromRepository: string): Promise<boolean>;
}

/** Progress events emitted by copy() and by pull/push commands. */
export type ProgressEvent =
  | { type: 'start'; desc: Descriptor }
  | { type: 'bytes'; desc: Descriptor; bytes: number; total: number }
  | { type: 'done'; desc: Descriptor }
  | { type: 'skipped'; desc: Descriptor; reason: 'exists' }
  | { type: 'mounted'; desc: Descriptor; from: string }
  | { type: 'error'; desc: Descriptor; error: Error };
