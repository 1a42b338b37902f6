/** The referrers tag schema (distribution-spec "Referrers Tag Schema") and referrer descriptors. */
import type { Descriptor, ImageIndex, ImageManifest } from '../base/types.js';
import { parseDigest } from '../base/digest.js';

/** `<alg>-<ref>`: the digest with `:` replaced by `-`, truncated to the 128 characters a tag allows. */
export function referrersTag(subjectDigest: string): string {
  const { algorithm, encoded } = parseDigest(subjectDigest);
  return `${algorithm}-${encoded}`.slice(0, 128);
}

/**
 * The descriptor listed for a referrer: artifactType from the manifest, or its config's
 * media type; every annotation of the manifest copied (spec.md "Pushing Manifests with Subject").
 */
export function referrerDescriptor(desc: Descriptor, doc: Partial<ImageManifest & ImageIndex>): Descriptor {
  const out: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  const artifactType = doc.artifactType ?? doc.config?.mediaType;
  if (artifactType) out.artifactType = artifactType;
  if (doc.annotations && Object.keys(doc.annotations).length) out.annotations = { ...doc.annotations };
  return out;
}
