/**
 * Conversion between Docker Image Manifest V2 Schema 2 and OCI, where the specs allow it: the
 * media types of the manifest, config and layers, and manifest list ↔ index. Converting a
 * manifest changes its bytes and so its digest: encodeDocument() gives the new bytes and
 * descriptor, and an index is converted with the descriptors of its converted children.
 * The config and layer blobs are unchanged (only the media types that point at them change).
 *
 * The converted documents hold exactly the fields of the target format, in the order of the Go
 * types docker, containerd and skopeo serialise (annotation keys sorted, as Go sorts maps), so
 * that encodeDocument() gives byte for byte the document skopeo writes for the same conversion,
 * and so the same digest.
 */
import { BerthError } from '../base/errors.js';
import { digestOf } from '../base/digest.js';
import { MediaType } from '../base/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../base/types.js';

/** Docker's uncompressed layer type (moby schema2.MediaTypeUncompressedLayer). */
export const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';

const DOCKER_TO_OCI_LAYER: Readonly<Record<string, string>> = {
  [MediaType.dockerLayerGzip]: MediaType.layerTarGzip,
  [DOCKER_LAYER_TAR]: MediaType.layerTar,
  // Foreign layers map to the (deprecated) OCI non-distributable types, as skopeo and containerd do.
  [MediaType.dockerForeignLayerGzip]: MediaType.layerNondistributableTarGzip,
};

const OCI_TO_DOCKER_LAYER: Readonly<Record<string, string>> = {
  [MediaType.layerTarGzip]: MediaType.dockerLayerGzip,
  [MediaType.layerTar]: DOCKER_LAYER_TAR,
  [MediaType.layerNondistributableTarGzip]: MediaType.dockerForeignLayerGzip,
};

function unsupported(message: string): BerthError {
  return new BerthError('UNSUPPORTED', message);
}

// Object.fromEntries keeps a "__proto__" key as data, where assignment would not.
function sortedMap(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function nonEmptyMap(m: Record<string, string> | undefined): m is Record<string, string> {
  return m !== undefined && Object.keys(m).length > 0;
}

/** image-spec specs-go Platform field order. */
function ociPlatform(p: Platform): Platform {
  const out: Platform = { architecture: p.architecture, os: p.os };
  if (p['os.version']) out['os.version'] = p['os.version'];
  if (p['os.features']?.length) out['os.features'] = [...p['os.features']];
  if (p.variant) out.variant = p.variant;
  if (p.features?.length) out.features = [...p.features];
  return out;
}

/** image-spec specs-go Descriptor: mediaType, digest, size, urls, annotations, data, platform, artifactType. */
function ociDescriptor(d: Descriptor, mediaType = d.mediaType): Descriptor {
  const out: Descriptor = { mediaType, digest: d.digest, size: d.size };
  if (d.urls?.length) out.urls = [...d.urls];
  if (nonEmptyMap(d.annotations)) out.annotations = sortedMap(d.annotations);
  if (d.data) out.data = d.data;
  if (d.platform) out.platform = ociPlatform(d.platform);
  if (d.artifactType) out.artifactType = d.artifactType;
  return out;
}

/**
 * manifest-v2-2.md descriptor fields: mediaType, size, digest, urls, then a list entry's
 * platform. Schema 2 has no descriptor annotations: they are dropped, as skopeo does.
 */
function dockerDescriptor(d: Descriptor, mediaType = d.mediaType): Descriptor {
  const out = { mediaType, size: d.size, digest: d.digest } as Descriptor;
  if (d.urls?.length) out.urls = [...d.urls];
  if (d.platform) out.platform = ociPlatform(d.platform);
  return out;
}

/** Whether a manifest document is Docker schema 2 (by its mediaType). */
export function isDockerManifest(m: ImageManifest): boolean {
  return m.mediaType === MediaType.dockerManifest;
}

export function isDockerIndex(i: ImageIndex): boolean {
  return i.mediaType === MediaType.dockerManifestList;
}

/** Docker schema 2 manifest → OCI image manifest. Throws UNSUPPORTED for configs or layers with no OCI equivalent. */
export function dockerManifestToOci(m: ImageManifest): ImageManifest {
  if (m.mediaType !== MediaType.dockerManifest) {
    throw unsupported(`not a Docker schema 2 manifest (mediaType ${JSON.stringify(m.mediaType)}): nothing to convert to OCI`);
  }
  if (m.config.mediaType !== MediaType.dockerConfig) {
    throw unsupported(`cannot convert a Docker manifest whose config is ${m.config.mediaType} to OCI: only ${MediaType.dockerConfig} has an OCI equivalent`);
  }
  const layers = m.layers.map((l, i) => {
    const oci = DOCKER_TO_OCI_LAYER[l.mediaType];
    if (oci === undefined) {
      throw unsupported(`cannot convert layer ${i} (${l.mediaType}) to OCI: it has no OCI equivalent`);
    }
    return ociDescriptor(l, oci);
  });
  const out: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.imageManifest,
    config: ociDescriptor(m.config, MediaType.imageConfig),
    layers,
  };
  if (nonEmptyMap(m.annotations)) out.annotations = sortedMap(m.annotations);
  return out;
}

/**
 * OCI image manifest → Docker schema 2 manifest. Throws UNSUPPORTED for what Docker schema 2
 * cannot express: zstd layers, artifacts (artifactType or a non-image config), a subject.
 * Annotations are dropped (schema 2 has none, neither on the manifest nor on descriptors).
 */
export function ociManifestToDocker(m: ImageManifest): ImageManifest {
  if (m.mediaType !== undefined && m.mediaType !== MediaType.imageManifest) {
    throw unsupported(`not an OCI image manifest (mediaType ${JSON.stringify(m.mediaType)}): nothing to convert to Docker`);
  }
  if (m.artifactType !== undefined) {
    throw unsupported(`cannot convert an artifact manifest (artifactType ${m.artifactType}) to Docker schema 2, which has no artifacts`);
  }
  if (m.subject !== undefined) {
    throw unsupported('cannot convert a manifest with a subject (a referrer) to Docker schema 2, which has no subject field');
  }
  if (m.config.mediaType !== MediaType.imageConfig) {
    throw unsupported(`cannot convert a manifest whose config is ${m.config.mediaType} to Docker schema 2: only image configs (${MediaType.imageConfig}) convert`);
  }
  const layers = m.layers.map((l, i) => {
    const docker = OCI_TO_DOCKER_LAYER[l.mediaType];
    if (docker === undefined) {
      const why = l.mediaType.endsWith('+zstd') ? 'Docker schema 2 has no zstd layers; recompress it with gzip first' : 'it has no Docker equivalent';
      throw unsupported(`cannot convert layer ${i} (${l.mediaType}) to Docker schema 2: ${why}`);
    }
    return dockerDescriptor(l, docker);
  });
  return {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: dockerDescriptor(m.config, MediaType.dockerConfig),
    layers,
  };
}

/** Child descriptors after their manifests were converted: old digest → new descriptor. */
export type ConvertedChildren = ReadonlyMap<string, Descriptor>;

/** A child descriptor of an index, with its converted identity when it was converted. */
function replaceChild(d: Descriptor, converted: ConvertedChildren | undefined): Descriptor {
  const replacement = converted?.get(d.digest);
  if (replacement === undefined) return d;
  // Keep what the index says about the child (platform, annotations); take the new identity.
  const out: Descriptor = { ...d, mediaType: replacement.mediaType, digest: replacement.digest, size: replacement.size };
  delete out.data;
  return out;
}

/**
 * Docker manifest list → OCI index. Children listed in `converted` (converted with
 * dockerManifestToOci and encoded with encodeDocument) are replaced by their new descriptors;
 * the others are kept as they are (an OCI index may point at Docker manifests).
 */
export function dockerIndexToOci(i: ImageIndex, converted?: ConvertedChildren): ImageIndex {
  if (i.mediaType !== MediaType.dockerManifestList) {
    throw unsupported(`not a Docker manifest list (mediaType ${JSON.stringify(i.mediaType)}): nothing to convert to OCI`);
  }
  const out: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.imageIndex,
    manifests: i.manifests.map((d) => ociDescriptor(replaceChild(d, converted))),
  };
  if (nonEmptyMap(i.annotations)) out.annotations = sortedMap(i.annotations);
  return out;
}

/**
 * OCI index → Docker manifest list. Every child must end up a Docker schema 2 manifest: either
 * it already is one, or its converted descriptor is in `converted`. Throws UNSUPPORTED for
 * artifacts, subjects and children that cannot be listed (nested indexes, OCI manifests not
 * converted). Annotations are dropped (manifest lists have none).
 */
export function ociIndexToDocker(i: ImageIndex, converted?: ConvertedChildren): ImageIndex {
  if (i.mediaType !== undefined && i.mediaType !== MediaType.imageIndex) {
    throw unsupported(`not an OCI index (mediaType ${JSON.stringify(i.mediaType)}): nothing to convert to Docker`);
  }
  if (i.artifactType !== undefined) throw unsupported(`cannot convert an artifact index (artifactType ${i.artifactType}) to a Docker manifest list`);
  if (i.subject !== undefined) throw unsupported('cannot convert an index with a subject to a Docker manifest list, which has no subject field');
  const manifests = i.manifests.map((d, n) => {
    const child = replaceChild(d, converted);
    if (child.mediaType !== MediaType.dockerManifest) {
      throw unsupported(
        `cannot list manifests[${n}] (${d.mediaType} ${d.digest}) in a Docker manifest list: convert it with ociManifestToDocker and pass its new descriptor`,
      );
    }
    return dockerDescriptor(child);
  });
  return { schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests };
}

/**
 * Serialises a manifest, index or config as compact JSON (in the key order of the object, which
 * the converters set to Go's) and describes it. The result is a new blob with its own digest.
 */
export function encodeDocument(doc: object, mediaType: string): { bytes: Uint8Array; descriptor: Descriptor } {
  const bytes = Buffer.from(JSON.stringify(doc), 'utf8');
  return { bytes, descriptor: { mediaType, digest: digestOf(bytes), size: bytes.length } };
}

/** Converts a Docker manifest and encodes it: the new bytes and the descriptor to use in its place. */
export function convertDockerManifestToOci(m: ImageManifest): { manifest: ImageManifest; bytes: Uint8Array; descriptor: Descriptor } {
  const manifest = dockerManifestToOci(m);
  return { manifest, ...encodeDocument(manifest, MediaType.imageManifest) };
}

/** Converts an OCI manifest and encodes it: the new bytes and the descriptor to use in its place. */
export function convertOciManifestToDocker(m: ImageManifest): { manifest: ImageManifest; bytes: Uint8Array; descriptor: Descriptor } {
  const manifest = ociManifestToDocker(m);
  return { manifest, ...encodeDocument(manifest, MediaType.dockerManifest) };
}
