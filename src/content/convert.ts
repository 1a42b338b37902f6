/**
 * Docker schema 2 → OCI media types for `copy --format oci` (image-spec media-types.md
 * "Compatibility Matrix"). Converting rewrites manifests, so their digests change; blobs
 * (config and layers) keep their bytes and digests, only the descriptors' media types change.
 */
import { MediaType } from '../base/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../base/types.js';

const BLOB_TYPES: Record<string, string> = {
  [MediaType.dockerConfig]: MediaType.imageConfig,
  [MediaType.dockerLayerGzip]: MediaType.layerTarGzip,
  [MediaType.dockerForeignLayerGzip]: MediaType.layerNondistributableTarGzip,
  'application/vnd.docker.image.rootfs.diff.tar': MediaType.layerTar,
};

const DOC_TYPES: Record<string, string> = {
  [MediaType.dockerManifest]: MediaType.imageManifest,
  [MediaType.dockerManifestList]: MediaType.imageIndex,
};

export function ociBlobMediaType(mt: string): string {
  return BLOB_TYPES[mt] ?? mt;
}

export function ociDocumentMediaType(mt: string): string {
  return DOC_TYPES[mt] ?? mt;
}

function convertDescriptor(d: Descriptor): Descriptor {
  return { ...d, mediaType: ociBlobMediaType(d.mediaType) };
}

export function manifestToOci(m: ImageManifest): ImageManifest {
  return { ...m, mediaType: MediaType.imageManifest, config: convertDescriptor(m.config), layers: m.layers.map(convertDescriptor) };
}

/** The index with OCI media types; children are replaced by the caller (their digests changed). */
export function indexToOci(i: ImageIndex, children: Descriptor[]): ImageIndex {
  return { ...i, mediaType: MediaType.imageIndex, manifests: children };
}
