/** Every media type of image-spec media-types.md, and the Docker schema 2 types registries serve. */
export const MediaType = {
  // OCI (media-types.md)
  descriptor: 'application/vnd.oci.descriptor.v1+json',
  layoutHeader: 'application/vnd.oci.layout.header.v1+json',
  imageIndex: 'application/vnd.oci.image.index.v1+json',
  imageManifest: 'application/vnd.oci.image.manifest.v1+json',
  imageConfig: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerTarGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerTarZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  empty: 'application/vnd.oci.empty.v1+json',
  // Deprecated non-distributable layers: still defined, still readable (media-types.md).
  layerNondistributableTar: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  layerNondistributableTarGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  layerNondistributableTarZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  // Docker Image Manifest V2 Schema 2 (docker-registry/manifest-v2-2.md)
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  dockerPluginConfig: 'application/vnd.docker.plugin.v1+json',
  // Docker schema 1: recognised so that it can be refused with a clear message.
  dockerManifestV1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerManifestV1: 'application/vnd.docker.distribution.manifest.v1+json',
} as const;

export type KnownMediaType = (typeof MediaType)[keyof typeof MediaType];

/** The empty descriptor of manifest.md "Guidance for an Empty Descriptor": the 2-byte blob `{}`. */
export const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
export const EMPTY_JSON_BYTES = Buffer.from('{}');

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MediaType.imageManifest, MediaType.dockerManifest];
export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.imageIndex, MediaType.dockerManifestList];
/** Everything a registry may answer for a manifest GET: the `Accept` list clients send. */
export const ALL_MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.imageIndex,
  MediaType.imageManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
];

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt !== undefined && MANIFEST_MEDIA_TYPES.includes(mt);
}
export function isIndexMediaType(mt: string | undefined): boolean {
  return mt !== undefined && INDEX_MEDIA_TYPES.includes(mt);
}
export function isManifestOrIndexMediaType(mt: string | undefined): boolean {
  return isManifestMediaType(mt) || isIndexMediaType(mt);
}

export type LayerCompression = 'none' | 'gzip' | 'zstd';

/**
 * The compression of a layer, from its media type. Unknown `+suffix` types are refused
 * by callers that must decompress (layer.md: implementations SHOULD NOT guess).
 */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  switch (mediaType) {
    case MediaType.layerTar:
    case MediaType.layerNondistributableTar:
      return 'none';
    case MediaType.layerTarGzip:
    case MediaType.layerNondistributableTarGzip:
    case MediaType.dockerLayerGzip:
    case MediaType.dockerForeignLayerGzip:
      return 'gzip';
    case MediaType.layerTarZstd:
    case MediaType.layerNondistributableTarZstd:
      return 'zstd';
    default:
      return undefined;
  }
}

export function isLayerMediaType(mt: string): boolean {
  return layerCompression(mt) !== undefined;
}

/** The OCI layer media type for a compression. */
export function ociLayerMediaType(c: LayerCompression): string {
  return c === 'gzip' ? MediaType.layerTarGzip : c === 'zstd' ? MediaType.layerTarZstd : MediaType.layerTar;
}
