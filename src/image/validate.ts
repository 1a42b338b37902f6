/**
 * Validation of image-spec documents at the boundary: every MUST of descriptor.md, manifest.md,
 * image-index.md and config.md (and the Docker schema 2 equivalents). Errors name the field
 * path and the rule broken, e.g. `manifest.layers[2].digest: …`. Unknown properties are kept
 * and never an error (considerations.md "Extensibility").
 */
import { BerthError, type ErrorCode } from '../base/errors.js';
import { validateAnnotations } from './annotations.js';
import { digestOf, parseDigest } from '../base/digest.js';
import { isBase64, isMediaType, isRfc3339DateTime, isUri } from './formats.js';
import { parseStrictJson } from './json.js';
import { EMPTY_JSON_DIGEST, MediaType } from '../base/media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, LayoutHeader, Platform } from '../base/types.js';

type Obj = Record<string, unknown>;

function fail(code: ErrorCode, field: string, rule: string): never {
  throw new BerthError(code, `${field}: ${rule}`, { detail: { field } });
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return `${typeof v} ${s.length > 80 ? `${s.slice(0, 77)}...` : s}`;
}

function requireObject(v: unknown, code: ErrorCode, field: string): Obj {
  if (!isObject(v)) fail(code, field, `must be a JSON object, got ${describe(v)}`);
  return v;
}

/** A present property (undefined = absent); `nullable` for config.md's "MAY also be set to null". */
function present(o: Obj, key: string, nullable: boolean): boolean {
  if (!Object.hasOwn(o, key) || o[key] === undefined) return false;
  return !(nullable && o[key] === null);
}

function checkString(o: Obj, key: string, code: ErrorCode, field: string, opts: { required?: boolean; nullable?: boolean; nonEmpty?: boolean } = {}): void {
  const f = `${field}.${key}`;
  if (!present(o, key, opts.nullable ?? false)) {
    if (opts.required) fail(code, f, 'is required');
    return;
  }
  const v = o[key];
  if (typeof v !== 'string') fail(code, f, `must be a string, got ${describe(v)}`);
  if (opts.nonEmpty && v === '') fail(code, f, 'must not be empty');
}

function checkStringArray(o: Obj, key: string, code: ErrorCode, field: string, nullable = false): void {
  const f = `${field}.${key}`;
  if (!present(o, key, nullable)) return;
  const v = o[key];
  if (!Array.isArray(v)) fail(code, f, `must be an array of strings, got ${describe(v)}`);
  v.forEach((item, i) => {
    if (typeof item !== 'string') fail(code, `${f}[${i}]`, `must be a string, got ${describe(item)}`);
  });
}

function checkMediaType(o: Obj, key: string, code: ErrorCode, field: string, required: boolean): void {
  checkString(o, key, code, field, { required });
  const v = o[key];
  if (typeof v === 'string' && !isMediaType(v)) {
    fail(code, `${field}.${key}`, `${JSON.stringify(v)} is not a media type: RFC 6838 requires type/subtype, each 1-127 of [A-Za-z0-9!#$&^_.+-] starting with a letter or digit`);
  }
}

function checkAnnotations(o: Obj, code: ErrorCode, field: string): void {
  if (present(o, 'annotations', false)) validateAnnotations(o['annotations'], `${field}.annotations`, code);
}

function checkSchemaVersion(o: Obj, code: ErrorCode, field: string): void {
  const v = o['schemaVersion'];
  if (v === undefined) fail(code, `${field}.schemaVersion`, 'is required and must be 2');
  if (v !== 2) fail(code, `${field}.schemaVersion`, `must be 2, got ${describe(v)}`);
}

function checkPlatform(v: unknown, code: ErrorCode, field: string): void {
  const p = requireObject(v, code, field);
  checkString(p, 'architecture', code, field, { required: true, nonEmpty: true });
  checkString(p, 'os', code, field, { required: true, nonEmpty: true });
  checkString(p, 'os.version', code, field);
  checkStringArray(p, 'os.features', code, field);
  checkString(p, 'variant', code, field);
  checkStringArray(p, 'features', code, field);
}

/** descriptor.md; `code` is the error code of the document the descriptor sits in. */
export function checkDescriptor(d: unknown, field: string, code: ErrorCode): Descriptor {
  const o = requireObject(d, code, field);
  checkMediaType(o, 'mediaType', code, field, true);

  if (!present(o, 'digest', false)) fail(code, `${field}.digest`, 'is required');
  try {
    parseDigest(o['digest']);
  } catch (err) {
    fail(code, `${field}.digest`, (err as Error).message);
  }

  const size = o['size'];
  if (size === undefined) fail(code, `${field}.size`, 'is required');
  if (typeof size !== 'number' || !Number.isInteger(size)) fail(code, `${field}.size`, `must be an integer number of bytes, got ${describe(size)}`);
  if (size < 0) fail(code, `${field}.size`, `must not be negative, got ${size}`);
  if (!Number.isSafeInteger(size)) fail(code, `${field}.size`, `${size} is beyond 2^53-1 bytes and cannot be represented exactly`);

  if (present(o, 'urls', false)) {
    const urls = o['urls'];
    if (!Array.isArray(urls)) fail(code, `${field}.urls`, `must be an array of URLs, got ${describe(urls)}`);
    urls.forEach((u, i) => {
      if (!isUri(u)) fail(code, `${field}.urls[${i}]`, `must be an RFC 3986 URI with a scheme, got ${describe(u)}`);
    });
  }
  checkAnnotations(o, code, field);
  checkMediaType(o, 'artifactType', code, field, false);
  if (present(o, 'platform', false)) checkPlatform(o['platform'], code, `${field}.platform`);

  if (present(o, 'data', false)) {
    const data = o['data'];
    if (!isBase64(data)) fail(code, `${field}.data`, 'must be standard base64 (RFC 4648 section 4)');
    // descriptor.md: the decoded data MUST be identical to the referenced content.
    const bytes = Buffer.from(data, 'base64');
    if (bytes.length !== size) fail(code, `${field}.data`, `decodes to ${bytes.length} bytes but size is ${size}`);
    const digest = o['digest'] as string;
    const actual = digestOf(bytes, parseDigest(digest).algorithm);
    if (actual !== digest) fail(code, `${field}.data`, `decodes to content with digest ${actual}, not ${digest}`);
  }

  // manifest.md "Guidance for an Empty Descriptor": the empty media type is the 2-byte blob `{}`.
  if (o['mediaType'] === MediaType.empty) {
    if (size !== 2) fail(code, `${field}.size`, `an ${MediaType.empty} descriptor has size 2 (the blob {}), got ${size}`);
    const digest = o['digest'] as string;
    if (digest.startsWith('sha256:') && digest !== EMPTY_JSON_DIGEST) {
      fail(code, `${field}.digest`, `an ${MediaType.empty} descriptor has digest ${EMPTY_JSON_DIGEST} (the blob {})`);
    }
  }
  return o as unknown as Descriptor;
}

/** Validates a descriptor (descriptor.md); throws DESCRIPTOR_INVALID naming the field. */
export function validateDescriptor(d: unknown, field = 'descriptor'): Descriptor {
  return checkDescriptor(d, field, 'DESCRIPTOR_INVALID');
}

const OCI_OR_DOCKER_MANIFEST = [MediaType.imageManifest, MediaType.dockerManifest] as string[];
const OCI_OR_DOCKER_INDEX = [MediaType.imageIndex, MediaType.dockerManifestList] as string[];

function checkDocumentMediaType(o: Obj, code: ErrorCode, field: string, allowed: string[], kind: string, otherKind: string, other: string[]): void {
  if (!present(o, 'mediaType', false)) return;
  const mt = o['mediaType'];
  if (typeof mt !== 'string') fail(code, `${field}.mediaType`, `must be a string, got ${describe(mt)}`);
  if (allowed.includes(mt)) return;
  if (other.includes(mt)) fail(code, `${field}.mediaType`, `${mt} is the media type of an ${otherKind}, not of an ${kind}`);
  if (mt === MediaType.dockerManifestV1 || mt === MediaType.dockerManifestV1Signed) {
    fail(code, `${field}.mediaType`, `${mt} is a Docker schema 1 manifest, which berth does not support`);
  }
  fail(code, `${field}.mediaType`, `when set, must be ${allowed.join(' or ')}, got ${JSON.stringify(mt)}`);
}

/** An OCI image manifest (manifest.md) or a Docker schema 2 manifest; throws MANIFEST_INVALID. */
export function validateManifest(doc: unknown): ImageManifest {
  const code: ErrorCode = 'MANIFEST_INVALID';
  const field = 'manifest';
  const o = requireObject(doc, code, field);
  checkSchemaVersion(o, code, field);
  checkDocumentMediaType(o, code, field, OCI_OR_DOCKER_MANIFEST, 'image manifest', 'index', OCI_OR_DOCKER_INDEX);
  checkMediaType(o, 'artifactType', code, field, false);
  if (!present(o, 'config', false)) fail(code, `${field}.config`, 'is required (a descriptor of the image config)');
  const config = checkDescriptor(o['config'], `${field}.config`, code);
  if (!present(o, 'layers', false)) fail(code, `${field}.layers`, 'is required (use [] or the empty descriptor when there are no layers)');
  const layers = o['layers'];
  if (!Array.isArray(layers)) fail(code, `${field}.layers`, `must be an array of descriptors, got ${describe(layers)}`);
  layers.forEach((l, i) => checkDescriptor(l, `${field}.layers[${i}]`, code));
  // manifest.md: if config.mediaType is the empty value, artifactType MUST be defined.
  if (config.mediaType === MediaType.empty && !present(o, 'artifactType', false)) {
    fail(code, `${field}.artifactType`, `must be set when config.mediaType is ${MediaType.empty} (an artifact manifest says what it holds)`);
  }
  if (present(o, 'subject', false)) checkDescriptor(o['subject'], `${field}.subject`, code);
  checkAnnotations(o, code, field);
  return o as unknown as ImageManifest;
}

/** An OCI image index (image-index.md) or a Docker manifest list; throws INDEX_INVALID. */
export function validateIndex(doc: unknown): ImageIndex {
  const code: ErrorCode = 'INDEX_INVALID';
  const field = 'index';
  const o = requireObject(doc, code, field);
  checkSchemaVersion(o, code, field);
  checkDocumentMediaType(o, code, field, OCI_OR_DOCKER_INDEX, 'index', 'image manifest', OCI_OR_DOCKER_MANIFEST);
  checkMediaType(o, 'artifactType', code, field, false);
  // image-index.md: manifests MUST be present; the array MAY be empty.
  if (!present(o, 'manifests', false)) fail(code, `${field}.manifests`, 'is required (it may be an empty array)');
  const manifests = o['manifests'];
  if (!Array.isArray(manifests)) fail(code, `${field}.manifests`, `must be an array of descriptors, got ${describe(manifests)}`);
  manifests.forEach((m, i) => checkDescriptor(m, `${field}.manifests[${i}]`, code));
  if (present(o, 'subject', false)) checkDescriptor(o['subject'], `${field}.subject`, code);
  checkAnnotations(o, code, field);
  return o as unknown as ImageIndex;
}

function checkInteger(o: Obj, key: string, code: ErrorCode, field: string): void {
  if (!present(o, key, true)) return;
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(code, `${field}.${key}`, `must be an integer, got ${describe(v)}`);
}

function checkBoolean(o: Obj, key: string, code: ErrorCode, field: string): void {
  if (!present(o, key, true)) return;
  if (typeof o[key] !== 'boolean') fail(code, `${field}.${key}`, `must be true or false, got ${describe(o[key])}`);
}

function checkDateTime(o: Obj, key: string, code: ErrorCode, field: string): void {
  checkString(o, key, code, field, { nullable: true });
  const v = o[key];
  if (typeof v === 'string' && !isRfc3339DateTime(v)) {
    fail(code, `${field}.${key}`, `must be an RFC 3339 date-time such as 2024-01-31T12:00:00Z, got ${JSON.stringify(v)}`);
  }
}

/** Go's map[string]struct{} serialisation: an object whose values are objects (normally `{}`). */
function checkSetOfStrings(o: Obj, key: string, code: ErrorCode, field: string): void {
  if (!present(o, key, true)) return;
  const f = `${field}.${key}`;
  const v = requireObject(o[key], code, f);
  for (const [k, item] of Object.entries(v)) {
    if (!isObject(item)) fail(code, `${f}[${JSON.stringify(k)}]`, `must be an object (normally {}), got ${describe(item)}`);
  }
}

function checkExecConfig(v: unknown, code: ErrorCode, field: string): void {
  const o = requireObject(v, code, field);
  checkString(o, 'User', code, field, { nullable: true });
  checkSetOfStrings(o, 'ExposedPorts', code, field);
  checkStringArray(o, 'Env', code, field, true);
  checkStringArray(o, 'Entrypoint', code, field, true);
  checkStringArray(o, 'Cmd', code, field, true);
  checkSetOfStrings(o, 'Volumes', code, field);
  checkString(o, 'WorkingDir', code, field, { nullable: true });
  if (present(o, 'Labels', true)) validateAnnotations(o['Labels'], `${field}.Labels`, code);
  checkString(o, 'StopSignal', code, field, { nullable: true });
  checkBoolean(o, 'ArgsEscaped', code, field);
  checkInteger(o, 'Memory', code, field);
  checkInteger(o, 'MemorySwap', code, field);
  checkInteger(o, 'CpuShares', code, field);
  if (present(o, 'Healthcheck', true)) requireObject(o['Healthcheck'], code, `${field}.Healthcheck`);
}

/**
 * An image config (config.md) or a Docker container image config; throws CONFIG_INVALID.
 * config.md: any OPTIONAL field may be null, which is the same as absent.
 */
export function validateConfig(doc: unknown): ImageConfig {
  const code: ErrorCode = 'CONFIG_INVALID';
  const field = 'config';
  const o = requireObject(doc, code, field);
  checkDateTime(o, 'created', code, field);
  checkString(o, 'author', code, field, { nullable: true });
  checkString(o, 'architecture', code, field, { required: true, nonEmpty: true });
  checkString(o, 'os', code, field, { required: true, nonEmpty: true });
  checkString(o, 'os.version', code, field, { nullable: true });
  checkStringArray(o, 'os.features', code, field, true);
  checkString(o, 'variant', code, field, { nullable: true });
  if (present(o, 'config', true)) checkExecConfig(o['config'], code, `${field}.config`);

  if (!present(o, 'rootfs', false)) fail(code, `${field}.rootfs`, 'is required ({"type":"layers","diff_ids":[...]})');
  const rootfs = requireObject(o['rootfs'], code, `${field}.rootfs`);
  if (!present(rootfs, 'type', false)) fail(code, `${field}.rootfs.type`, 'is required and must be "layers"');
  // config.md: MUST be "layers"; implementations MUST error on an unknown value.
  if (rootfs['type'] !== 'layers') fail(code, `${field}.rootfs.type`, `must be "layers", got ${describe(rootfs['type'])}`);
  if (!present(rootfs, 'diff_ids', false)) fail(code, `${field}.rootfs.diff_ids`, 'is required (the digests of the uncompressed layers, base first)');
  const diffIds = rootfs['diff_ids'];
  if (!Array.isArray(diffIds)) fail(code, `${field}.rootfs.diff_ids`, `must be an array of digests, got ${describe(diffIds)}`);
  diffIds.forEach((d, i) => {
    try {
      parseDigest(d);
    } catch (err) {
      fail(code, `${field}.rootfs.diff_ids[${i}]`, (err as Error).message);
    }
  });

  if (present(o, 'history', true)) {
    const history = o['history'];
    if (!Array.isArray(history)) fail(code, `${field}.history`, `must be an array of objects, got ${describe(history)}`);
    history.forEach((h, i) => {
      const f = `${field}.history[${i}]`;
      const entry = requireObject(h, code, f);
      checkDateTime(entry, 'created', code, f);
      checkString(entry, 'author', code, f, { nullable: true });
      checkString(entry, 'created_by', code, f, { nullable: true });
      checkString(entry, 'comment', code, f, { nullable: true });
      checkBoolean(entry, 'empty_layer', code, f);
    });
  }
  return o as ImageConfig;
}

/** image-layout.md `oci-layout`: `{"imageLayoutVersion": "1.0.0"}`; throws LAYOUT_INVALID. */
export function validateLayoutHeader(doc: unknown): LayoutHeader {
  const code: ErrorCode = 'LAYOUT_INVALID';
  const o = requireObject(doc, code, 'oci-layout');
  checkString(o, 'imageLayoutVersion', code, 'oci-layout', { required: true });
  if (o['imageLayoutVersion'] !== '1.0.0') {
    fail(code, 'oci-layout.imageLayoutVersion', `berth reads image layout version 1.0.0, got ${JSON.stringify(o['imageLayoutVersion'])}`);
  }
  return o as unknown as LayoutHeader;
}

/** A platform object (image-index.md "platform"); throws DESCRIPTOR_INVALID. */
export function validatePlatform(p: unknown, field = 'platform'): Platform {
  checkPlatform(p, 'DESCRIPTOR_INVALID', field);
  return p as Platform;
}

const SCHEMA1_TYPES: readonly string[] = [MediaType.dockerManifestV1, MediaType.dockerManifestV1Signed];

function schema1Error(): BerthError {
  return new BerthError(
    'UNSUPPORTED',
    'this is a Docker schema 1 manifest, which is deprecated and not supported: push the image again with a current client (which writes schema 2 or OCI), or convert it with `skopeo copy --format v2s2`',
  );
}

/** A `Content-Type` value without parameters, lower case (`…+json; charset=utf-8` → `…+json`). */
function bareMediaType(mt: string | undefined): string | undefined {
  if (mt === undefined) return undefined;
  const bare = mt.split(';')[0]!.trim().toLowerCase();
  return bare === '' ? undefined : bare;
}

/**
 * Parses manifest bytes: strict JSON (UTF-8, no duplicate names), detect the kind (from the hint, e.g. a registry's
 * Content-Type, when it names a manifest or index type; else the document's mediaType; else its
 * shape), validate. Refuses Docker schema 1 (UNSUPPORTED), documents that are both a manifest
 * and an index, and a hint that contradicts the document's own mediaType.
 */
export function parseManifestOrIndex(
  bytes: Uint8Array,
  mediaTypeHint?: string,
): { mediaType: string; manifest?: ImageManifest; index?: ImageIndex } {
  const doc = parseStrictJson(bytes, 'manifest', 'MANIFEST_INVALID');
  const hint = bareMediaType(mediaTypeHint);
  if ((hint !== undefined && SCHEMA1_TYPES.includes(hint)) || (isObject(doc) && doc['schemaVersion'] === 1)) throw schema1Error();
  if (!isObject(doc)) throw new BerthError('MANIFEST_INVALID', `manifest: must be a JSON object, got ${describe(doc)}`);

  const own = typeof doc['mediaType'] === 'string' ? doc['mediaType'] : undefined;
  if (own !== undefined && SCHEMA1_TYPES.includes(own)) throw schema1Error();
  const hintKnown = hint !== undefined && (OCI_OR_DOCKER_MANIFEST.includes(hint) || OCI_OR_DOCKER_INDEX.includes(hint));
  if (hintKnown && own !== undefined && own !== hint) {
    throw new BerthError(
      'MANIFEST_INVALID',
      `manifest media type mismatch: it was served as ${hint} but its mediaType field says ${own}; refusing an ambiguous document`,
    );
  }
  const looksLikeIndex = Object.hasOwn(doc, 'manifests');
  const looksLikeManifest = Object.hasOwn(doc, 'config') || Object.hasOwn(doc, 'layers');
  // image-index.md / manifest.md security: a document that is both cannot be interpreted safely.
  if (looksLikeIndex && looksLikeManifest) {
    throw new BerthError('MANIFEST_INVALID', 'document has both "manifests" (index) and "config"/"layers" (manifest) fields: refusing an ambiguous document');
  }
  let mediaType = hintKnown ? hint! : own;
  if (mediaType === undefined) {
    if (looksLikeIndex) mediaType = MediaType.imageIndex;
    else if (looksLikeManifest) mediaType = MediaType.imageManifest;
    else throw new BerthError('MANIFEST_INVALID', 'document is neither an image manifest (config, layers) nor an index (manifests), and has no mediaType');
  }
  if (OCI_OR_DOCKER_INDEX.includes(mediaType)) {
    if (looksLikeManifest) throw new BerthError('INDEX_INVALID', `document has media type ${mediaType} but the fields of an image manifest`);
    return { mediaType, index: validateIndex(doc) };
  }
  if (OCI_OR_DOCKER_MANIFEST.includes(mediaType)) {
    if (looksLikeIndex) throw new BerthError('MANIFEST_INVALID', `document has media type ${mediaType} but the fields of an index`);
    return { mediaType, manifest: validateManifest(doc) };
  }
  throw new BerthError('MEDIA_TYPE_UNKNOWN', `unknown manifest media type ${JSON.stringify(mediaType)}: expected one of ${[...OCI_OR_DOCKER_MANIFEST, ...OCI_OR_DOCKER_INDEX].join(', ')}`);
}

/** Parses and validates image config bytes (strict JSON, then validateConfig); throws CONFIG_INVALID. */
export function parseConfig(bytes: Uint8Array): ImageConfig {
  return validateConfig(parseStrictJson(bytes, 'config', 'CONFIG_INVALID'));
}

/**
 * Checks that a manifest and its config describe the same layers: config.md's rootfs.diff_ids
 * has one entry per layer, in order (only for image configs; artifacts have no rootfs).
 * Throws CONFIG_INVALID.
 */
export function validateConfigForManifest(manifest: ImageManifest, config: ImageConfig): void {
  const layers = manifest.layers.length;
  const diffIds = config.rootfs.diff_ids.length;
  if (layers !== diffIds) {
    throw new BerthError(
      'CONFIG_INVALID',
      `config.rootfs.diff_ids: has ${diffIds} entries but the manifest has ${layers} layers; each layer needs its uncompressed digest, in order`,
      { detail: { field: 'config.rootfs.diff_ids' } },
    );
  }
}
