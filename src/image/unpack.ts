/**
 * Image in a layout → runtime bundle (image-layout.md: follow the ref, apply the layers in
 * order, convert the config): BUNDLE/rootfs and BUNDLE/config.json.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BerthError } from '../base/errors.js';
import type { ApplyResult } from '../layer/apply.js';
import { unpackLayers } from '../layer/unpack-layers.js';
import { writeFileAtomic } from './atomic-file.js';
import type { OciLayout } from './layout.js';
import { loadImage } from './load-image.js';
import { imageConfigToRuntimeSpec, type ConversionOptions } from './runtime-config.js';
import type { Descriptor, ImageConfig, Platform } from '../base/types.js';

export interface UnpackImageOptions {
  /** Which image of an index (default: this host's platform). */
  platform?: Platform;
  /** Called after each layer is applied, base first. */
  onLayer?: (index: number, layer: Descriptor, result: ApplyResult) => void;
  /** Unpack over a rootfs that already has content (default: refuse). */
  allowNonEmpty?: boolean;
  /** Externally provided inputs for config.json (args, env, terminal, …; see ConversionOptions). */
  runtime?: Omit<ConversionOptions, 'rootfs'>;
}

async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

/** Unpacks the image `ref` names into BUNDLE/rootfs and writes BUNDLE/config.json. */
export async function unpackImage(
  layout: OciLayout,
  ref: string,
  bundleDir: string,
  opts: UnpackImageOptions = {},
): Promise<{ manifest: Descriptor; config: ImageConfig }> {
  const image = await loadImage(layout, ref, opts.platform);
  const bundle = resolve(bundleDir);
  const rootfs = join(bundle, 'rootfs');
  if (!opts.allowNonEmpty && !(await isEmptyDir(rootfs))) {
    throw new BerthError('USAGE', `${rootfs} already has content: unpack into a new bundle directory, or remove it first`);
  }
  await mkdir(bundle, { recursive: true, mode: 0o711 });
  await mkdir(rootfs, { recursive: true, mode: 0o755 });
  const layers = image.manifest.layers;
  await unpackLayers(
    rootfs,
    layers.map((layer, i) => ({
      mediaType: layer.mediaType,
      digest: layer.digest,
      size: layer.size,
      diffId: image.config.rootfs.diff_ids[i],
      open: () => layout.fetch(layer),
    })),
    { onLayer: opts.onLayer ? (i, r) => opts.onLayer!(i, layers[i]!, r) : undefined },
  );
  // After the layers: User names resolve through the unpacked /etc/passwd and /etc/group.
  const spec = await imageConfigToRuntimeSpec(image.config, { ...(opts.runtime ?? {}), rootfs });
  await writeFileAtomic(join(bundle, 'config.json'), JSON.stringify(spec, null, 2) + '\n');
  return { manifest: image.manifestDesc, config: image.config };
}
