/** Following a reference in a layout to one image: index → manifest for a platform → config. */
import { BerthError } from '../base/errors.js';
import { readAll } from '../base/read.js';
import type { OciLayout } from './layout.js';
import { isIndexMediaType, isManifestMediaType, MediaType } from '../base/media-types.js';
import { formatPlatform, hostPlatform, selectManifests } from './platform.js';
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

/** The image manifest `ref` names, choosing among an index's manifests by platform (default: this host). */
export async function resolveImageManifest(
  layout: OciLayout,
  ref: string,
  platform?: Platform,
): Promise<{ desc: Descriptor; manifest: ImageManifest }> {
  let desc = await layout.resolve(ref);
  const want = platform ?? hostPlatform();
  for (let depth = 0; ; depth++) {
    const { mediaType, manifest, index } = parseManifestOrIndex(await readAll(await layout.fetch(desc)), desc.mediaType);
    if (manifest) return { desc: { ...desc, mediaType }, manifest };
    if (!index || depth >= MAX_INDEX_DEPTH || !isIndexMediaType(mediaType)) {
      throw new BerthError('MANIFEST_INVALID', `${ref} in ${layout.name} does not lead to an image manifest`);
    }
    const candidates = selectManifests(index, want).filter((d) => isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType));
    if (candidates.length === 0) {
      const have = index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : '(no platform)')).join(', ');
      throw new BerthError(
        'PLATFORM_NOT_FOUND',
        `${ref} in ${layout.name} has no image for ${formatPlatform(want)} (it has: ${have || 'nothing'}); choose one with --platform`,
      );
    }
    desc = candidates[0]!;
  }
}

/** The image (manifest and config) `ref` names; refuses artifacts, whose config is not an image config. */
export async function loadImage(layout: OciLayout, ref: string, platform?: Platform): Promise<LoadedImage> {
  const { desc, manifest } = await resolveImageManifest(layout, ref, platform);
  if (!IMAGE_CONFIG_TYPES.includes(manifest.config.mediaType)) {
    throw new BerthError(
      'UNSUPPORTED',
      `${ref} in ${layout.name} is not a container image: its config is ${manifest.config.mediaType}${manifest.artifactType ? ` (artifact type ${manifest.artifactType})` : ''}`,
    );
  }
  const bytes = await readAll(await layout.fetch(manifest.config));
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
  return { manifestDesc: desc, manifest, configDesc: manifest.config, config };
}
