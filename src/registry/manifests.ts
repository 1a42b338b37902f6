/**
 * What the registry needs to know about a pushed manifest: its media type, the blobs and
 * manifests it references (which must exist), its subject and the referrers descriptor fields.
 * Well-formedness is image-spec validation (src/image/validate.ts); failures are MANIFEST_INVALID.
 */
import { BerthError } from '../base/errors.js';
import { parseManifestOrIndex } from '../image/validate.js';
import { RegistryError } from './errors.js';

export interface ParsedManifest {
  mediaType: string;
  blobRefs: string[];
  manifestRefs: string[];
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * Parses manifest bytes pushed with `contentType` (parameters ignored, spec.md "Pushing Manifests").
 * The media type is the Content-Type, else the `mediaType` field, else the document's shape; a
 * Content-Type that contradicts the `mediaType` field is refused.
 */
export function parsePushedManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let parsed: ReturnType<typeof parseManifestOrIndex>;
  try {
    parsed = parseManifestOrIndex(bytes, contentType);
  } catch (err) {
    if (err instanceof BerthError) throw new RegistryError(400, 'MANIFEST_INVALID', err.message, err.detail);
    throw err;
  }
  const { mediaType, manifest, index } = parsed;
  if (manifest) {
    // Foreign layers (with urls) need not be in the registry (manifest.md "urls").
    const layers = manifest.layers.filter((l) => !(Array.isArray(l.urls) && l.urls.length > 0)).map((l) => l.digest);
    return {
      mediaType,
      blobRefs: [...new Set([manifest.config.digest, ...layers])],
      manifestRefs: [],
      subject: manifest.subject?.digest,
      // spec.md "Listing Referrers": artifactType, else the config media type.
      artifactType: manifest.artifactType || manifest.config.mediaType,
      annotations: manifest.annotations,
    };
  }
  return {
    mediaType,
    blobRefs: [],
    manifestRefs: [...new Set(index!.manifests.map((m) => m.digest))],
    subject: index!.subject?.digest,
    artifactType: index!.artifactType || undefined,
    annotations: index!.annotations,
  };
}
