/** annotations.md: the rules for annotation maps and the pre-defined `org.opencontainers.image.*` keys. */
import { BerthError, type ErrorCode } from '../base/errors.js';
import { isValidDigest } from '../base/digest.js';
import { isRfc3339DateTime, isUri } from './formats.js';
import { parseReference } from './reference.js';
import type { Annotations } from '../base/types.js';

/** Every pre-defined annotation key of annotations.md. */
export const Annotation = {
  created: 'org.opencontainers.image.created',
  authors: 'org.opencontainers.image.authors',
  url: 'org.opencontainers.image.url',
  documentation: 'org.opencontainers.image.documentation',
  source: 'org.opencontainers.image.source',
  version: 'org.opencontainers.image.version',
  revision: 'org.opencontainers.image.revision',
  vendor: 'org.opencontainers.image.vendor',
  licenses: 'org.opencontainers.image.licenses',
  refName: 'org.opencontainers.image.ref.name',
  title: 'org.opencontainers.image.title',
  description: 'org.opencontainers.image.description',
  baseImageDigest: 'org.opencontainers.image.base.digest',
  baseImageName: 'org.opencontainers.image.base.name',
} as const;

export type AnnotationKey = (typeof Annotation)[keyof typeof Annotation];

/** Keys used by Docker/containerd that berth reads (not part of the image-spec). */
export const DockerAnnotation = {
  /** containerd / docker image layouts: the full image name of an index.json entry. */
  imageName: 'io.containerd.image.name',
  /** buildkit attestation manifests: `attestation-manifest`. */
  referenceType: 'vnd.docker.reference.type',
  referenceDigest: 'vnd.docker.reference.digest',
} as const;

// annotations.md "Back-compatibility with Label Schema": Label Schema keys → OCI keys.
export const LABEL_SCHEMA_EQUIVALENTS: Readonly<Record<string, AnnotationKey>> = {
  'org.label-schema.build-date': Annotation.created,
  'org.label-schema.url': Annotation.url,
  'org.label-schema.vcs-url': Annotation.source,
  'org.label-schema.version': Annotation.version,
  'org.label-schema.vcs-ref': Annotation.revision,
  'org.label-schema.vendor': Annotation.vendor,
  'org.label-schema.name': Annotation.title,
  'org.label-schema.description': Annotation.description,
  'org.label-schema.usage': Annotation.documentation,
};

// annotations.md: ref.name's value SHOULD use alphanum and the separators -._:@/+
export const REF_NAME_REGEXP = /^[A-Za-z0-9]+(?:[-._:@/+][A-Za-z0-9]+)*$/;

/**
 * annotations.md "Rules": a map whose keys and values are all strings (values may be empty).
 * Throws `code` naming `field` (e.g. `manifest.annotations["x"]`).
 */
export function validateAnnotations(value: unknown, field: string, code: ErrorCode = 'MANIFEST_INVALID'): Annotations {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BerthError(code, `${field}: annotations must be an object mapping strings to strings`, { detail: { field } });
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      const f = `${field}[${JSON.stringify(key)}]`;
      throw new BerthError(code, `${f}: annotation values must be strings (use "" for an empty value), got ${describe(v)}`, {
        detail: { field: f },
      });
    }
  }
  return value as Annotations;
}

type Check = (v: string) => string | undefined;

const urlCheck: Check = (v) => (isUri(v) ? undefined : 'must be a URL (RFC 3986)');
const FORMAT_CHECKS: Partial<Record<AnnotationKey, Check>> = {
  [Annotation.created]: (v) => (isRfc3339DateTime(v) ? undefined : 'must be an RFC 3339 date-time, e.g. 2024-01-31T12:00:00Z'),
  [Annotation.url]: urlCheck,
  [Annotation.documentation]: urlCheck,
  [Annotation.source]: urlCheck,
  [Annotation.refName]: (v) =>
    REF_NAME_REGEXP.test(v) ? undefined : 'should use only A-Za-z0-9 separated by one of - . _ : @ / +',
  [Annotation.baseImageDigest]: (v) => (isValidDigest(v) ? undefined : 'must be a digest, e.g. sha256:<64 hex characters>'),
  [Annotation.baseImageName]: (v) => {
    try {
      parseReference(v);
      return undefined;
    } catch (err) {
      return `must be an image reference: ${(err as Error).message}`;
    }
  },
};

/** The format problems of the pre-defined keys present in `annotations`, as `field["key"]: reason` strings. */
export function annotationFormatProblems(annotations: Annotations, field = 'annotations'): string[] {
  const problems: string[] = [];
  for (const [key, check] of Object.entries(FORMAT_CHECKS) as [AnnotationKey, Check][]) {
    const value = annotations[key];
    if (value === undefined) continue;
    const why = check(value);
    if (why !== undefined) problems.push(`${field}[${JSON.stringify(key)}]: ${JSON.stringify(value)} ${why}`);
  }
  return problems;
}

/**
 * Checks the values of the pre-defined keys that have a format (created: RFC 3339; url,
 * documentation, source: URLs; base.digest: a digest; base.name: a reference; ref.name: its
 * character set). Not applied when reading images (consumers must not fail on them); used when
 * berth writes annotations and by `validate --strict`. Throws `code` listing every problem.
 */
export function validateAnnotationValues(annotations: Annotations, field = 'annotations', code: ErrorCode = 'MANIFEST_INVALID'): void {
  const problems = annotationFormatProblems(annotations, field);
  if (problems.length > 0) throw new BerthError(code, problems.join('; '), { detail: { problems } });
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}
