/** Following a reference in a layout to one image: index → manifest for a platform → config. */
import type { Readable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import { readAll } from '../base/read.js';
import type { OciLayout } from './layout.js';
import { isIndexMediaType, isManifestMediaType, MediaType } from '../base/media-types.js';
import { formatPlatform, hostPlatform, platformMatches, selectManifests } from './platform.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../base/types.js';
import { parseManifestOrIndex, validateConfig } from './validate.js';

export interface LoadedImage {
  /** The descriptor of the image manifest (after index selection). */
  manifestDesc: Descriptor;
  manifest: ImageManifest;
  configDesc: Descriptor;
  config: ImageConfig;
}

const IMAGE_CONFIG_TYPES: readonly string[] = [MediaType.imageConfig, MediaType.dockerConfig];
const MAX_INDEX_DEPTH = 4;

/** Where an image's documents are read from: a layout, a registry repository (anything that fetches verified blobs). */
export interface DocumentSource {
  fetch(desc: Descriptor): Promise<Readable>;
  /** A small document whole and verified, where the source has a quicker way than fetch (a layout). */
  readDocument?(desc: Descriptor): Promise<Buffer>;
  readonly name?: string;
}

function readDocument(source: DocumentSource, desc: Descriptor): Promise<Buffer> {
  return source.readDocument ? source.readDocument(desc) : source.fetch(desc).then(readAll);
}

/** The image manifest `ref` names, choosing among an index's manifests by platform (default: this host). */
export async function resolveImageManifest(
  layout: OciLayout,
  ref: string,
  platform?: Platform,
): Promise<{ desc: Descriptor; manifest: ImageManifest }> {
  return resolveImageManifestFrom(layout, await layout.resolve(ref), ref, platform);
}

/** From a resolved manifest or index descriptor (`ref` names it in messages) to the image manifest for the platform. */
export async function resolveImageManifestFrom(
  source: DocumentSource,
  root: Descriptor,
  ref: string,
  platform?: Platform,
): Promise<{ desc: Descriptor; manifest: ImageManifest }> {
  let desc = root;
  const where = source.name ?? 'the source';
  const want = platform ?? hostPlatform();
  for (let depth = 0; ; depth++) {
    const { mediaType, manifest, index } = parseManifestOrIndex(await readDocument(source, desc), desc.mediaType);
    if (manifest) return { desc: { ...desc, mediaType }, manifest };
    if (!index || depth >= MAX_INDEX_DEPTH || !isIndexMediaType(mediaType)) {
      throw new BerthError('MANIFEST_INVALID', `${ref} in ${where} does not lead to an image manifest`);
    }
    const candidates = selectManifests(index, want).filter((d) => isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType));
    if (candidates.length === 0) {
      const have = index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : '(no platform)')).join(', ');
      throw new BerthError(
        'PLATFORM_NOT_FOUND',
        `${ref} in ${where} has no image for ${formatPlatform(want)} (it has: ${have || 'nothing'}); choose one with --platform`,
      );
    }
    desc = candidates[0]!;
  }
}

/** The image (manifest and config) `ref` names; refuses artifacts, whose config is not an image config. */
export async function loadImage(layout: OciLayout, ref: string, platform?: Platform): Promise<LoadedImage> {
  return loadImageFrom(layout, await layout.resolve(ref), ref, platform);
}

/** loadImage from a resolved descriptor in any source (a registry repository for a pull). */
export async function loadImageFrom(source: DocumentSource, root: Descriptor, ref: string, platform?: Platform): Promise<LoadedImage> {
  const { desc, manifest } = await resolveImageManifestFrom(source, root, ref, platform);
  const where = source.name ?? 'the source';
  if (!IMAGE_CONFIG_TYPES.includes(manifest.config.mediaType)) {
    throw new BerthError(
      'UNSUPPORTED',
      `${ref} in ${where} is not a container image: its config is ${manifest.config.mediaType}${manifest.artifactType ? ` (artifact type ${manifest.artifactType})` : ''}`,
    );
  }
  const bytes = await readDocument(source, manifest.config);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BerthError('CONFIG_INVALID', `image config ${manifest.config.digest} is not valid JSON: ${(err as Error).message}`);
  }
  const config = validateConfig(doc);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new BerthError(
      'CONFIG_INVALID',
      `image ${desc.digest}: the manifest has ${manifest.layers.length} layers but the config lists ${config.rootfs.diff_ids.length} diff_ids`,
    );
  }
  // A platform asked for explicitly must be the image's also when there is no index to choose
  // from (docker: "was found but does not match the specified platform").
  if (platform && !isIndexMediaType(root.mediaType)) {
    const have: Platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    if (!platformMatches(platform, have)) {
      throw new BerthError('UNSUPPORTED', `image ${ref} was found but does not match the specified platform: wanted ${formatPlatform(platform)}, actual: ${formatPlatform(have)}`);
    }
  }
  return { manifestDesc: desc, manifest, configDesc: manifest.config, config };
}
