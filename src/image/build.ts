/**
 * Creating and changing images in a layout, as `crane append`, `crane mutate` and
 * `umoci repack` do: a directory becomes a layer, the config gains its diff_id and a history
 * entry, a new manifest is written and the tag moves to it.
 */
import { stat } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { writeLayerFromDir } from '../layer/create.js';
import { writeDiffLayer } from '../layer/diff.js';
import type { LayerOptions, LayerResult } from '../layer/layer-output.js';
import type { OciLayout } from './layout.js';
import { isValidDigest, digestOf } from '../base/digest.js';
import { loadImage } from './load-image.js';
import { MediaType, ociLayerMediaType, type LayerCompression } from '../base/media-types.js';
import { hostPlatform } from './platform.js';
import { mergeEnv } from './runtime-config.js';
import type { Annotations, Descriptor, ExecConfig, ImageConfig, ImageManifest, Platform } from '../base/types.js';

export const BASE_DIGEST_ANNOTATION = 'org.opencontainers.image.base.digest';

/** The execution settings of config.md "config" that create and mutate can set. */
export interface ImageSettings {
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  /** KEY=VALUE entries added to the image's Env, replacing a variable of the same name. */
  env?: string[];
  workdir?: string;
  user?: string;
  labels?: Record<string, string>;
  /** e.g. "8080/tcp", "53/udp", "80" (= 80/tcp). */
  exposedPorts?: string[];
  volumes?: string[];
  stopSignal?: string;
}

export interface LayerSettings {
  compression?: LayerCompression;
  level?: number;
  /** SOURCE_DATE_EPOCH (seconds): clamps file times and sets `created`, for reproducible images. */
  sourceDateEpoch?: number;
}

export interface CreateImageOptions extends ImageSettings, LayerSettings {
  dir: string;
  tag?: string;
  platform?: Platform;
  /** Manifest annotations. */
  annotations?: Annotations;
  author?: string;
}

export interface AppendLayerOptions extends LayerSettings {
  dir: string;
  /** Tag for the result; default: `ref` itself when it is a tag. */
  tag?: string;
  platform?: Platform;
  createdBy?: string;
  /** The layer holds only what `dir` changes from `lower` (deletions as whiteouts), as for a commit. */
  lower?: string;
  /** Writes the layer itself (a commit of an overlay upper dir, `dir`); instead of `lower`. */
  produce?: (out: Writable, opts: LayerOptions) => Promise<LayerResult>;
}

export interface MutateImageOptions extends ImageSettings {
  /** Variable names to remove from Env. */
  unsetEnv?: string[];
  /** Label keys to remove. */
  unsetLabels?: string[];
  /** Manifest annotations to set; unsetAnnotations removes keys. */
  annotations?: Annotations;
  unsetAnnotations?: string[];
  created?: string;
  tag?: string;
  platform?: Platform;
}

export function nowOrEpoch(sourceDateEpoch?: number): string {
  if (sourceDateEpoch === undefined) return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (!Number.isSafeInteger(sourceDateEpoch) || sourceDateEpoch < 0) {
    throw new BerthError('USAGE', `source date epoch must be a non-negative integer of seconds, got ${sourceDateEpoch}`);
  }
  return new Date(sourceDateEpoch * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** config.md ExposedPorts keys are port/protocol; a bare port means tcp. */
function portKey(port: string): string {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(port.trim());
  if (!m || Number(m[1]) > 65535) throw new BerthError('USAGE', `exposed port ${JSON.stringify(port)} must be PORT or PORT/tcp|udp|sctp`);
  return `${m[1]}/${m[2] ?? 'tcp'}`;
}

function setOf(keys: string[], existing?: Record<string, Record<string, never>>): Record<string, Record<string, never>> {
  const out: Record<string, Record<string, never>> = { ...(existing ?? {}) };
  for (const k of keys) out[k] = {};
  return out;
}

/** Applies settings to an exec config (a copy); unknown fields are kept. */
export function applySettings(base: ExecConfig | undefined, s: ImageSettings & { unsetEnv?: string[]; unsetLabels?: string[] }): ExecConfig {
  const c: ExecConfig = { ...(base ?? {}) };
  if (s.entrypoint !== undefined) c.Entrypoint = s.entrypoint;
  if (s.cmd !== undefined) c.Cmd = s.cmd;
  if (s.env?.length || s.unsetEnv?.length) {
    let env = mergeEnv(c.Env ?? [], s.env ?? []);
    const drop = new Set(s.unsetEnv ?? []);
    env = env.filter((e) => !drop.has(e.slice(0, e.indexOf('=') < 0 ? e.length : e.indexOf('='))));
    c.Env = env;
  }
  if (s.workdir !== undefined) c.WorkingDir = s.workdir;
  if (s.user !== undefined) c.User = s.user;
  if (s.labels || s.unsetLabels?.length) {
    const labels = { ...(c.Labels ?? {}), ...(s.labels ?? {}) };
    for (const k of s.unsetLabels ?? []) delete labels[k];
    c.Labels = labels;
  }
  if (s.exposedPorts?.length) c.ExposedPorts = setOf(s.exposedPorts.map(portKey), c.ExposedPorts);
  if (s.volumes?.length) {
    for (const v of s.volumes) if (!v.startsWith('/')) throw new BerthError('USAGE', `volume ${JSON.stringify(v)} must be an absolute path`);
    c.Volumes = setOf(s.volumes, c.Volumes);
  }
  if (s.stopSignal !== undefined) c.StopSignal = s.stopSignal;
  return c;
}

/** Stores a JSON document (canonical: no whitespace) and returns its descriptor. */
export async function pushJson(layout: OciLayout, mediaType: string, doc: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const desc: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.length };
  await layout.push(desc, Readable.from([bytes]));
  return desc;
}

/** Writes `dir` as one layer blob into the layout. */
async function writeLayer(layout: OciLayout, dir: string, mediaType: string, s: LayerSettings, lower?: string, produce?: AppendLayerOptions['produce']): Promise<{ desc: Descriptor; diffId: string }> {
  let diffId = '';
  let reported = '';
  const desc = await layout.ingest(mediaType, async (out) => {
    const o = { compression: s.compression ?? 'gzip', level: s.level, sourceDateEpoch: s.sourceDateEpoch } as const;
    const r = produce ? await produce(out, o) : lower === undefined ? await writeLayerFromDir(dir, out, o) : await writeDiffLayer(lower, dir, out, o);
    diffId = r.diffId;
    reported = r.digest;
  });
  if (reported && reported !== desc.digest) {
    throw new BerthError('INTERNAL', `layer of ${dir}: the writer reported ${reported} but ${desc.digest} was stored`);
  }
  return { desc, diffId };
}

async function storeManifest(layout: OciLayout, manifest: ImageManifest, tag: string | undefined): Promise<Descriptor> {
  const desc = await pushJson(layout, manifest.mediaType ?? MediaType.imageManifest, manifest);
  if (tag !== undefined) await layout.tag(desc, tag);
  else await layout.addManifest(desc);
  return desc;
}

async function validateSourceDir(dir: string | undefined): Promise<string> {
  if (typeof dir !== 'string' || dir === '') throw new BerthError('USAGE', 'a directory to turn into a layer is required');
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new BerthError('USAGE', `${dir} is not a directory: a layer is made from a directory tree`);
  return dir;
}

/** A new single-layer image from a directory (FROM scratch); returns the manifest descriptor. */
export async function createImage(layout: OciLayout, opts: CreateImageOptions): Promise<Descriptor> {
  const dir = await validateSourceDir(opts.dir);
  const created = nowOrEpoch(opts.sourceDateEpoch);
  const platform = opts.platform ?? hostPlatform();
  const layer = await writeLayer(layout, dir, ociLayerMediaType(opts.compression ?? 'gzip'), opts);
  const config: ImageConfig = {
    created,
    ...(opts.author ? { author: opts.author } : {}),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform['os.version'] ? { 'os.version': platform['os.version'] } : {}),
    ...(platform['os.features'] ? { 'os.features': platform['os.features'] } : {}),
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: applySettings(undefined, opts),
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, created_by: `berth create ${dir}` }],
  };
  const configDesc = await pushJson(layout, MediaType.imageConfig, config);
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.imageManifest, config: configDesc, layers: [layer.desc] };
  if (opts.annotations && Object.keys(opts.annotations).length) manifest.annotations = { ...opts.annotations };
  return storeManifest(layout, manifest, opts.tag);
}

/** Where the result of changing `ref` is tagged: the explicit tag, else ref itself when it is a tag. */
function resultTag(ref: string, tag: string | undefined): string | undefined {
  if (tag !== undefined) return tag;
  const bare = ref.startsWith('@') ? ref.slice(1) : ref;
  return isValidDigest(bare) ? undefined : ref;
}

/** `dir` as a new layer on top of the image `ref` names. */
export async function appendLayer(layout: OciLayout, ref: string, opts: AppendLayerOptions): Promise<Descriptor> {
  const dir = await validateSourceDir(opts.dir);
  const base = await loadImage(layout, ref, opts.platform);
  const compression = opts.compression ?? 'gzip';
  const docker = base.manifest.mediaType === MediaType.dockerManifest;
  if (docker && compression !== 'gzip') {
    throw new BerthError('UNSUPPORTED', `${ref} is a Docker schema 2 image, whose layers can only be gzip: use --compression gzip`);
  }
  const layer = await writeLayer(layout, dir, docker ? MediaType.dockerLayerGzip : ociLayerMediaType(compression), opts, opts.lower, opts.produce);
  const created = nowOrEpoch(opts.sourceDateEpoch);
  const config: ImageConfig = {
    ...base.config,
    created,
    rootfs: { type: 'layers', diff_ids: [...base.config.rootfs.diff_ids, layer.diffId] },
    history: [...(base.config.history ?? []), { created, created_by: opts.createdBy ?? `berth append ${dir}` }],
  };
  const configDesc = await pushJson(layout, base.configDesc.mediaType, config);
  const manifest: ImageManifest = {
    ...base.manifest,
    config: configDesc,
    layers: [...base.manifest.layers, layer.desc],
  };
  delete manifest.subject;
  if (!docker) manifest.annotations = { ...(base.manifest.annotations ?? {}), [BASE_DIGEST_ANNOTATION]: base.manifestDesc.digest };
  return storeManifest(layout, manifest, resultTag(ref, opts.tag));
}

/** Changes the config and manifest annotations of the image `ref` names; layers are untouched. */
export async function mutateImage(layout: OciLayout, ref: string, opts: MutateImageOptions): Promise<Descriptor> {
  const base = await loadImage(layout, ref, opts.platform);
  const config: ImageConfig = { ...base.config, config: applySettings(base.config.config, opts) };
  if (opts.created !== undefined) config.created = opts.created;
  const configDesc = await pushJson(layout, base.configDesc.mediaType, config);
  const manifest: ImageManifest = { ...base.manifest, config: configDesc };
  if (opts.annotations || opts.unsetAnnotations?.length) {
    if (base.manifest.mediaType === MediaType.dockerManifest) {
      throw new BerthError('UNSUPPORTED', `${ref} is a Docker schema 2 manifest, which has no annotations`);
    }
    const annotations = { ...(base.manifest.annotations ?? {}), ...(opts.annotations ?? {}) };
    for (const k of opts.unsetAnnotations ?? []) delete annotations[k];
    if (Object.keys(annotations).length) manifest.annotations = annotations;
    else delete manifest.annotations;
  }
  return storeManifest(layout, manifest, resultTag(ref, opts.tag));
}
