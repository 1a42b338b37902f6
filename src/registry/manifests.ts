/**
 * What the registry needs to know about a pushed manifest: its media type, the blobs and
 * manifests it references (which must exist), its subject and the referrers descriptor fields.
 * Structural checks only: image-spec validation in depth is the client's job.
 */
import { isValidDigest } from '../image/digest.js';
import { MediaType, isIndexMediaType, isManifestMediaType } from '../image/media-types.js';
import { RegistryError } from './errors.js';

export interface ParsedManifest {
  mediaType: string;
  blobRefs: string[];
  manifestRefs: string[];
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError(400, 'MANIFEST_INVALID', message, detail);
}

interface RawDescriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  urls?: unknown;
  artifactType?: unknown;
}

function checkDescriptor(d: unknown, where: string): RawDescriptor & { digest: string; mediaType: string } {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw invalid(`${where} must be a descriptor object`);
  const desc = d as RawDescriptor;
  if (typeof desc.mediaType !== 'string' || desc.mediaType === '') throw invalid(`${where}.mediaType must be a non-empty string`);
  if (!isValidDigest(desc.digest)) throw invalid(`${where}.digest ${JSON.stringify(desc.digest)} is not a valid sha256/sha512 digest`);
  if (typeof desc.size !== 'number' || !Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw invalid(`${where}.size must be a non-negative integer`);
  }
  return desc as RawDescriptor & { digest: string; mediaType: string };
}

function stringMap(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw invalid(`${where} must be a map of strings`);
  }
  return v as Record<string, string>;
}

/**
 * Parses manifest bytes pushed with `contentType` (parameters ignored, spec.md "Pushing Manifests").
 * The media type is the Content-Type, else the `mediaType` field; when both are given they must agree.
 */
export function parsePushedManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalid(`manifest is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('manifest must be a JSON object');
  const m = doc as Record<string, unknown>;
  const header = contentType?.split(';')[0]?.trim().toLowerCase() || undefined;
  const field = typeof m.mediaType === 'string' ? m.mediaType : undefined;
  if (m.mediaType !== undefined && field === undefined) throw invalid('manifest mediaType must be a string');
  if (field === MediaType.dockerManifestV1 || field === MediaType.dockerManifestV1Signed || m.schemaVersion === 1) {
    throw invalid('Docker schema 1 manifests are not supported: push an OCI or Docker schema 2 manifest');
  }
  let mediaType = field ?? header;
  if (header && field && header !== field && header !== 'application/json' && header !== 'application/octet-stream') {
    throw invalid(`Content-Type ${header} does not match the manifest's mediaType ${field}`);
  }
  if (mediaType === undefined || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
    // No declared type: infer from the shape (image-spec allows an absent mediaType).
    mediaType = Array.isArray(m.manifests) ? MediaType.imageIndex : MediaType.imageManifest;
  }
  if (m.schemaVersion !== 2) throw invalid('manifest schemaVersion must be 2');
  const annotations = stringMap(m.annotations, 'annotations');
  let subject: string | undefined;
  if (m.subject !== undefined) subject = checkDescriptor(m.subject, 'subject').digest;
  const artifactType = m.artifactType === undefined ? undefined : String(m.artifactType);

  if (isManifestMediaType(mediaType)) {
    const config = checkDescriptor(m.config, 'config');
    if (!Array.isArray(m.layers)) throw invalid('image manifest must have a layers array');
    const blobRefs = [config.digest];
    m.layers.forEach((l, i) => {
      const d = checkDescriptor(l, `layers[${i}]`);
      // Foreign layers (with urls) need not be in the registry (manifest.md "urls").
      if (!(Array.isArray(d.urls) && d.urls.length > 0)) blobRefs.push(d.digest);
    });
    return {
      mediaType,
      blobRefs: [...new Set(blobRefs)],
      manifestRefs: [],
      subject,
      artifactType: artifactType || config.mediaType,
      annotations,
    };
  }
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(m.manifests)) throw invalid('image index must have a manifests array');
    const manifestRefs = m.manifests.map((d, i) => checkDescriptor(d, `manifests[${i}]`).digest);
    return { mediaType, blobRefs: [], manifestRefs: [...new Set(manifestRefs)], subject, artifactType: artifactType || undefined, annotations };
  }
  throw invalid(
    `unsupported manifest media type ${JSON.stringify(mediaType)}: push an OCI image manifest or index, or a Docker schema 2 manifest or manifest list`,
  );
}
