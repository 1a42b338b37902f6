/**
 * `--cache-to` / `--cache-from`: the build cache's steps carried between machines, as BuildKit's
 * `type=local` (an OCI layout directory) and `type=registry` (a registry reference). The cache
 * is one OCI image manifest: its config (media type CACHE_CONFIG_TYPE) lists the steps (cache
 * key, history text, layer descriptor and diffID), its layers are the steps' layer blobs. A build
 * that imports it reuses a step whose key is listed, fetching its layer only then.
 */
import { BerthError } from '../../base/errors.js';
import { isValidDigest } from '../../base/digest.js';
import { MediaType } from '../../base/media-types.js';
import { readAll } from '../../base/read.js';
import type { Target } from '../../base/target.js';
import type { Descriptor, ImageManifest } from '../../base/types.js';
import { pushJson } from '../../image/build.js';
import { OciLayout } from '../../image/layout.js';
import type { CachedStep } from './cache.js';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { decompressorForMediaType } from '../../layer/compress.js';

export const CACHE_CONFIG_TYPE = 'application/vnd.berth.build.cache.config.v1+json';

/** Where a cache goes or comes from. */
export type CachePlace = { type: 'local'; dir: string; tag: string } | { type: 'registry'; ref: string };

/** `type=local,dest=DIR` (`src=DIR` for --cache-from), `type=registry,ref=REF`, or a bare REF (registry). */
export function parseCachePlace(value: string, flag: '--cache-from' | '--cache-to'): CachePlace {
  if (!value.includes('=')) return { type: 'registry', ref: value };
  const fields = Object.fromEntries(value.split(',').map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
  const dirKey = flag === '--cache-to' ? 'dest' : 'src';
  if (fields.type === 'local' && fields[dirKey]) return { type: 'local', dir: fields[dirKey]!, tag: fields.tag || 'latest' };
  if (fields.type === 'registry' && fields.ref) return { type: 'registry', ref: fields.ref };
  throw new BerthError('USAGE', `${flag} ${JSON.stringify(value)}: write ${flag} type=local,${dirKey}=DIR or ${flag} type=registry,ref=HOST/REPO:TAG`);
}

interface CacheConfig {
  steps: CachedStep[];
}

function validSteps(doc: unknown, where: string): CachedStep[] {
  const steps = (doc as Partial<CacheConfig> | null)?.steps;
  if (!Array.isArray(steps)) throw new BerthError('CONFIG_INVALID', `${where} is not a berth build cache (no steps list): export it again with --cache-to`);
  for (const s of steps as CachedStep[]) {
    const layerOk = s.layer === undefined || (isValidDigest(s.layer.desc?.digest) && isValidDigest(s.layer.diffId) && Number.isInteger(s.layer.desc.size));
    if (!isValidDigest(s.key) || typeof s.createdBy !== 'string' || !layerOk) {
      throw new BerthError('CONFIG_INVALID', `${where} lists a malformed step (${JSON.stringify(s).slice(0, 120)}): export the cache again with --cache-to`);
    }
  }
  return steps as CachedStep[];
}

/** An imported cache: its steps by key, and where their layers are fetched from. */
export interface ImportedCache {
  steps: Map<string, CachedStep>;
  source: Target;
}

/** Reads the cache `tag` names in `source`; a cache that is not there yet is an empty one (as BuildKit). */
export async function importCache(source: Target, tag: string, label: string): Promise<ImportedCache> {
  let manifestDesc: Descriptor;
  try {
    manifestDesc = await source.resolve(tag, { prefetch: true });
  } catch (err) {
    if (err instanceof BerthError && err.code === 'NOT_FOUND') return { steps: new Map(), source };
    throw err;
  }
  const manifest = JSON.parse((await readAll(await source.fetch(manifestDesc))).toString('utf8')) as ImageManifest;
  if (manifest.config?.mediaType !== CACHE_CONFIG_TYPE) {
    throw new BerthError('CONFIG_INVALID', `${label} is not a berth build cache (its config is ${manifest.config?.mediaType}): name a cache written by --cache-to`);
  }
  const config = JSON.parse((await readAll(await source.fetch(manifest.config))).toString('utf8')) as unknown;
  return { steps: new Map(validSteps(config, label).map((s) => [s.key, s])), source };
}

/**
 * Writes the steps and their layers (read from `from`) as a cache manifest tagged `tag` in
 * `layout`; returns the manifest's descriptor.
 */
export async function writeCacheLayout(from: OciLayout, steps: CachedStep[], layout: OciLayout, tag: string): Promise<Descriptor> {
  const unique = new Map<string, CachedStep>();
  for (const s of steps) unique.set(s.key, s);
  const layers = new Map<string, Descriptor>();
  for (const s of unique.values()) if (s.layer) layers.set(s.layer.desc.digest, s.layer.desc);
  for (const d of layers.values()) if (!(await layout.exists(d))) await layout.push(d, await from.fetch(d));
  const config: CacheConfig = { steps: [...unique.values()] };
  const configDesc = await pushJson(layout, CACHE_CONFIG_TYPE, config);
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.imageManifest, config: configDesc, layers: [...layers.values()] };
  const desc = await pushJson(layout, MediaType.imageManifest, manifest);
  await layout.tag(desc, tag);
  return desc;
}

/**
 * The diffID a layer blob of `layout` really has: its content decompressed and hashed. A
 * --cache-from cache lists each step's layer with a diffID that the image config built from it
 * will carry (image-spec config.md: rootfs.diff_ids are the digests of the uncompressed layers):
 * it is checked before the layer is used, not trusted until a later unpack finds it wrong.
 */
export async function uncompressedDigest(layout: Target, desc: Descriptor): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(await layout.fetch(desc), decompressorForMediaType(desc.mediaType), async (chunks: AsyncIterable<Buffer>) => {
    for await (const c of chunks) hash.update(c);
  });
  return `sha256:${hash.digest('hex')}`;
}
