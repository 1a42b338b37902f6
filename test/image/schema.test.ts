/**
 * berth's validation against the image-spec JSON schemas: generates valid documents and
 * hundreds of mutations of them (dropped fields, wrong types, bad digests and media types, …)
 * and checks that berth and the schema agree on each, except where berth is deliberately
 * different; each such difference is listed below with its reason, and must actually occur.
 *
 * Loader note: the schemas are draft-04 (`id`, draft-04 `$schema`), which Ajv 8 cannot load as
 * they are. The loader drops `$schema`, drops the nested `id`s (annotations only; they would
 * otherwise re-base relative `$ref`s) and gives each file the `$id`
 * `https://opencontainers.org/schema/<file name>`, so that the relative `$ref`s between the files
 * ("defs-descriptor.json#/…") resolve to each other. Nothing else is changed; the keywords these
 * schemas use mean the same in draft-04 and draft-07.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { ValidateFunction } from 'ajv';
import { BerthError } from '../../src/base/errors.js';
import { EMPTY_JSON_DIGEST, MediaType } from '../../src/base/media-types.js';
import { validateConfig, validateDescriptor, validateIndex, validateLayoutHeader, validateManifest } from '../../src/image/validate.js';
import { dockerIndexToOci, dockerManifestToOci, ociIndexToDocker, ociManifestToDocker } from '../../src/image/docker.js';
import type { ImageIndex, ImageManifest } from '../../src/base/types.js';
import { skipUnless, specDir } from '../helpers/requirements.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
type Kind = 'descriptor' | 'manifest' | 'index' | 'config' | 'layout';

// The image-spec's JSON schemas, found through BERTH_SPEC_DIR (.ci/run sets it).
const schemas = specDir('image-spec/schema');
const SCHEMA_DIR = schemas.dir ?? '';
const SCHEMA_BASE = 'https://opencontainers.org/schema/';

const SCHEMA_OF: Record<Kind, string> = {
  descriptor: 'content-descriptor.json',
  manifest: 'image-manifest-schema.json',
  index: 'image-index-schema.json',
  config: 'config-schema.json',
  layout: 'image-layout-schema.json',
};

const BERTH_OF: Record<Kind, (doc: unknown) => unknown> = {
  descriptor: (d) => validateDescriptor(d),
  manifest: validateManifest,
  index: validateIndex,
  config: validateConfig,
  layout: validateLayoutHeader,
};

function toDraft07(node: Json, top: boolean, file: string): Json {
  if (Array.isArray(node)) return node.map((n) => toDraft07(n, false, file));
  if (node === null || typeof node !== 'object') return node;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema') continue;
    if (k === 'id' && typeof v === 'string') continue;
    out[k] = toDraft07(v, false, file);
  }
  if (top) out['$id'] = SCHEMA_BASE + file;
  return out;
}

// ----- fixtures -----
const hex = (c: string): string => c.repeat(64);
const D1 = `sha256:${hex('1')}`;
const D2 = `sha256:${hex('2')}`;
const D3 = `sha256:${hex('3')}`;
const D4 = `sha256:${hex('4')}`;
const SHA512 = `sha512:${'a'.repeat(128)}`;

const descriptorBases: Record<string, JsonObject> = {
  minimal: { mediaType: MediaType.layerTarGzip, digest: D1, size: 1234 },
  full: {
    mediaType: 'application/vnd.example.thing+json',
    digest: EMPTY_JSON_DIGEST,
    size: 2,
    data: 'e30=',
    urls: ['https://example.com/blobs/thing'],
    annotations: { 'org.opencontainers.image.title': 'thing', empty: '' },
    artifactType: 'application/vnd.example.sbom+json',
    platform: { architecture: 'amd64', os: 'linux', variant: 'v2', 'os.version': '6.1', 'os.features': ['x'] },
  },
};

const manifestBases: Record<string, JsonObject> = {
  image: {
    schemaVersion: 2,
    mediaType: MediaType.imageManifest,
    config: { mediaType: MediaType.imageConfig, digest: D1, size: 1500 },
    layers: [
      { mediaType: MediaType.layerTarGzip, digest: D2, size: 3000000 },
      { mediaType: MediaType.layerTarZstd, digest: SHA512, size: 12, urls: ['https://mirror.example.com/x'] },
    ],
    annotations: { 'org.opencontainers.image.created': '2024-01-31T12:00:00Z' },
  },
  artifact: {
    schemaVersion: 2,
    mediaType: MediaType.imageManifest,
    artifactType: 'application/vnd.example.signature',
    config: { mediaType: MediaType.empty, digest: EMPTY_JSON_DIGEST, size: 2, data: 'e30=' },
    layers: [{ mediaType: MediaType.empty, digest: EMPTY_JSON_DIGEST, size: 2 }],
    subject: { mediaType: MediaType.imageManifest, digest: D3, size: 500 },
  },
  docker: {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: MediaType.dockerConfig, digest: D1, size: 7023 },
    layers: [{ mediaType: MediaType.dockerLayerGzip, digest: D2, size: 32654 }],
  },
};

const indexBases: Record<string, JsonObject> = {
  oci: {
    schemaVersion: 2,
    mediaType: MediaType.imageIndex,
    manifests: [
      { mediaType: MediaType.imageManifest, digest: D1, size: 7143, platform: { architecture: 'ppc64le', os: 'linux' } },
      {
        mediaType: MediaType.imageManifest,
        digest: D2,
        size: 7682,
        platform: { architecture: 'amd64', os: 'windows', 'os.version': '10.0.17763.1', 'os.features': ['win32k'], variant: 'v2' },
        annotations: { 'org.opencontainers.image.ref.name': 'v1' },
        urls: ['https://example.com/m'],
      },
      { mediaType: MediaType.imageManifest, digest: D3, size: 600, artifactType: 'application/vnd.example.sbom' },
    ],
    annotations: { 'com.example.key1': 'value1' },
  },
  artifact: {
    schemaVersion: 2,
    mediaType: MediaType.imageIndex,
    artifactType: 'application/vnd.example.bundle',
    manifests: [],
    subject: { mediaType: MediaType.imageIndex, digest: D4, size: 321 },
  },
  dockerList: {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifestList,
    manifests: [{ mediaType: MediaType.dockerManifest, digest: D1, size: 424, platform: { architecture: 'arm', os: 'linux', variant: 'v7' } }],
  },
};

const configBases: Record<string, JsonObject> = {
  full: {
    created: '2015-10-31T22:22:56.015925234Z',
    author: 'Alyssa P. Hacker <alyspdev@example.com>',
    architecture: 'amd64',
    os: 'linux',
    'os.version': '6.1',
    'os.features': ['f'],
    variant: 'v3',
    config: {
      User: 'alice',
      ExposedPorts: { '8080/tcp': {} },
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'FOO=oci_is_a'],
      Entrypoint: ['/bin/my-app-binary'],
      Cmd: ['--foreground', '--config', '/etc/my-app.d/default.cfg'],
      Volumes: { '/var/job-result-data': {}, '/var/log/my-app-logs': {} },
      WorkingDir: '/home/alice',
      Labels: { 'com.example.project.git.url': 'https://example.com/project.git' },
      StopSignal: 'SIGTERM',
      ArgsEscaped: false,
      Memory: 2048,
      MemorySwap: 4096,
      CpuShares: 8,
      Healthcheck: { Test: ['CMD', 'true'] },
    },
    rootfs: { diff_ids: [D1, D2], type: 'layers' },
    history: [
      { created: '2015-10-31T22:22:54.690851953Z', created_by: '/bin/sh -c #(nop) ADD file in /' },
      { created: '2015-10-31T22:22:55.613815829+01:00', created_by: '/bin/sh -c #(nop) CMD ["sh"]', empty_layer: true, author: 'a', comment: 'c' },
    ],
  },
  minimal: { architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } },
};

const layoutBases: Record<string, JsonObject> = { layout: { imageLayoutVersion: '1.0.0' } };

// ----- mutations -----
const DELETE = Symbol('delete');
type Replacement = Json | typeof DELETE;

const GENERIC: Json[] = [null, 42, -1, 1.5, '', 'x', true, [], {}, ['x'], { k: 'v' }];
const DIGESTS: Json[] = [
  D4,
  SHA512,
  'sha256:abc',
  `sha256:${'A'.repeat(64)}`,
  `SHA256:${hex('a')}`,
  `sha256:${hex('a')}0`,
  `sha512:${hex('a')}`,
  `md5:${'a'.repeat(32)}`,
  `sha256+b64:${'a'.repeat(43)}=`,
  `multihash+base58:${'Q'.repeat(46)}`,
  'sha256',
  `:${hex('a')}`,
  `sha256:${'a'.repeat(63)}$`,
  `sha256:${'a'.repeat(64)} `,
];
const MEDIA_TYPES: Json[] = [
  'application/json',
  'application/vnd.example+json',
  'text',
  'a/b/c',
  'application/vnd.oci.image.manifest.v1+json; charset=utf-8',
  '/json',
  'application/',
  `${'a'.repeat(128)}/b`,
  `a/${'b'.repeat(127)}`,
  'ÿpplication/x',
  'application/x y',
  '.application/x',
];
const SIZES: Json[] = [0, 1, 2, -1, -100, 1.5, 2 ** 53, 2 ** 53 - 1, '12', 1e21];
const DATES: Json[] = [
  '2024-01-31T12:00:00Z',
  '2024-01-31t12:00:00z',
  '2024-01-31 12:00:00Z',
  '2024-01-31T12:00:00.123456789+05:30',
  '2024-01-31T12:00:00',
  '2024-01-31',
  '2024-13-01T00:00:00Z',
  '2024-02-30T00:00:00Z',
  '2024-02-29T00:00:00Z',
  '2023-02-29T00:00:00Z',
  '2024-01-31T24:00:00Z',
  '2024-01-31T12:60:00Z',
  '2016-12-31T23:59:60Z',
  'yesterday',
  '31/01/2024',
];
const URLS: Json[] = [
  'https://example.com/a/b?c=d#e',
  'http://[::1]:5000/x',
  'urn:isbn:0451450523',
  'relative/path',
  'http://exa mple.com/',
  '://missing-scheme',
  '',
  'https://example.com/%zz',
  'https://example.com/%20ok',
];
const ANNOTATION_MAPS: Json[] = [{ a: 'b' }, { a: '' }, { a: 1 }, { a: null }, { a: ['b'] }, { a: { b: 'c' } }, {}, { 'org.opencontainers.image.created': 'not a date' }];
const BASE64: Json[] = ['e30=', 'e30', '!!!!', '', 'e3 0=', 'AAAA'];

function replacementsFor(path: (string | number)[], original: Json): Replacement[] {
  const last = path[path.length - 1];
  const parentKey = path[path.length - 2];
  const out: Replacement[] = [...GENERIC];
  if (typeof last === 'string') out.push(DELETE);
  if (last === 'digest' || parentKey === 'diff_ids') out.push(...DIGESTS);
  if (last === 'diff_ids') out.push(...DIGESTS.map((d) => [d]));
  if (last === 'mediaType' || last === 'artifactType') out.push(...MEDIA_TYPES);
  if (last === 'size') out.push(...SIZES);
  if (last === 'created') out.push(...DATES);
  if (parentKey === 'urls') out.push(...URLS);
  if (last === 'urls') out.push(...URLS.map((u) => [u]));
  if (last === 'annotations' || last === 'Labels') out.push(...ANNOTATION_MAPS);
  if (last === 'schemaVersion') out.push(1, 3, '2', 2);
  if (last === 'type' && parentKey === 'rootfs') out.push('layers', 'Layers', 'foo');
  if (last === 'imageLayoutVersion') out.push('1.0.0', '1.1.0', '1');
  if (last === 'data') out.push(...BASE64);
  if (last === 'layers' || last === 'manifests') out.push([], [{}], [null]);
  if (last === 'ExposedPorts' || last === 'Volumes') out.push({ '80/tcp': {} }, { '80/tcp': 'x' }, { '80/tcp': null });
  if (last === 'Env' || last === 'Cmd' || last === 'Entrypoint' || last === 'os.features') out.push([1], ['a', 'b'], [null]);
  // Drop replacements equal to the original: they are the base document again.
  return out.filter((r) => r === DELETE || JSON.stringify(r) !== JSON.stringify(original));
}

function* walk(node: Json, path: (string | number)[] = []): Generator<[(string | number)[], Json]> {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      yield [[...path, i], node[i]!];
      yield* walk(node[i]!, [...path, i]);
    }
  } else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      yield [[...path, k], v];
      yield* walk(v, [...path, k]);
    }
  }
}

function mutate(doc: Json, path: (string | number)[], value: Replacement): Json {
  const copy = structuredClone(doc);
  let parent: Json = copy;
  for (const key of path.slice(0, -1)) parent = (parent as Record<string | number, Json>)[key]!;
  const last = path[path.length - 1]!;
  if (value === DELETE) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete (parent as JsonObject)[last as string];
  } else {
    (parent as Record<string | number, Json>)[last] = structuredClone(value);
  }
  return copy;
}

interface Case {
  kind: Kind;
  base: string;
  path: (string | number)[];
  value: Replacement;
  original: Json;
  doc: Json;
}

function parentInOriginal(c: Case): JsonObject | undefined {
  let node: Json = c.original;
  for (const key of c.path.slice(0, -1)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, Json>)[key]!;
  }
  return node !== null && typeof node === 'object' && !Array.isArray(node) ? node : undefined;
}

const last = (c: Case): string | number | undefined => c.path[c.path.length - 1];
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const CONFIG_REQUIRED = new Set(['architecture', 'os', 'rootfs', 'type', 'diff_ids']);

interface Difference {
  id: string;
  /** 'stricter': berth rejects what the schema accepts; 'looser': the reverse. */
  berth: 'stricter' | 'looser';
  reason: string;
  applies(c: Case): boolean;
}

const DIFFERENCES: Difference[] = [
  {
    id: 'digest-registration',
    berth: 'stricter',
    reason: 'descriptor.md: berth verifies content, so a digest must use a registered algorithm it implements (sha256, sha512) with the exact lowercase-hex length; the schema only checks the general grammar',
    applies: (c) => last(c) === 'digest' && typeof c.value === 'string' && DIGEST_GRAMMAR.test(c.value),
  },
  {
    id: 'diff-ids-are-digests',
    berth: 'stricter',
    reason: 'config.md: diff_ids are layer digests; the schema only requires strings',
    applies: (c) => c.kind === 'config' && c.path.includes('diff_ids') && (typeof c.value === 'string' || (Array.isArray(c.value) && c.value.every((v) => typeof v === 'string'))),
  },
  {
    id: 'document-media-type',
    berth: 'stricter',
    reason: 'manifest.md / image-index.md: when used, mediaType MUST be the manifest (index) media type; the schema accepts any media type',
    applies: (c) => (c.kind === 'manifest' || c.kind === 'index') && c.path.length === 1 && c.path[0] === 'mediaType' && typeof c.value === 'string',
  },
  {
    id: 'safe-integer-size',
    berth: 'stricter',
    reason: 'sizes above 2^53-1 cannot be represented exactly by JSON.parse, so berth refuses them rather than mis-verify',
    applies: (c) => last(c) === 'size' && typeof c.value === 'number' && c.value > Number.MAX_SAFE_INTEGER,
  },
  {
    id: 'platform-names-non-empty',
    berth: 'stricter',
    reason: 'an empty os or architecture cannot match any platform; the schema only requires strings',
    applies: (c) => (last(c) === 'architecture' || last(c) === 'os') && c.value === '',
  },
  {
    id: 'platform-in-any-descriptor',
    berth: 'stricter',
    reason: 'descriptor.md defines platform for every descriptor; content-descriptor.json does not list it, so the schema accepts anything there',
    applies: (c) => c.path.includes('platform') && !(c.kind === 'index' && c.path[0] === 'manifests'),
  },
  {
    id: 'embedded-data-matches',
    berth: 'stricter',
    reason: 'descriptor.md: data MUST be base64 and decode to exactly the referenced content (size and digest); the schema only requires a string',
    applies: (c) => parentInOriginal(c)?.['data'] !== undefined && ['data', 'size', 'digest'].includes(String(last(c))),
  },
  {
    id: 'empty-descriptor-is-{}',
    berth: 'stricter',
    reason: `manifest.md "Guidance for an Empty Descriptor": ${MediaType.empty} is the 2-byte blob {} with digest ${EMPTY_JSON_DIGEST}`,
    applies: (c) => parentInOriginal(c)?.['mediaType'] === MediaType.empty && (last(c) === 'size' || last(c) === 'digest'),
  },
  {
    id: 'artifact-type-required',
    berth: 'stricter',
    reason: 'manifest.md: artifactType MUST be set when config.mediaType is the empty media type (a rule across fields the schema cannot express)',
    applies: (c) => c.kind === 'manifest' && c.path.length === 1 && c.path[0] === 'artifactType' && c.value === DELETE,
  },
  {
    id: 'reserved-config-fields',
    berth: 'stricter',
    reason: 'config.md types Memory, MemorySwap, CpuShares (integers) and Healthcheck (object); the schema does not list them',
    applies: (c) => c.kind === 'config' && c.path[0] === 'config' && ['Memory', 'MemorySwap', 'CpuShares', 'Healthcheck'].includes(String(c.path[1])),
  },
  {
    id: 'index-descriptor-fields',
    berth: 'stricter',
    reason: 'index entries are descriptors (descriptor.md: artifactType is a media type, size MUST NOT be negative); the index schema omits artifactType and types size as int64',
    applies: (c) =>
      c.kind === 'index' &&
      c.path[0] === 'manifests' &&
      (c.path[2] === 'artifactType' || (last(c) === 'size' && typeof c.value === 'number' && c.value < 0)),
  },
  {
    id: 'empty-layers-allowed',
    berth: 'looser',
    reason: 'manifest.md: layers SHOULD (not MUST) have at least one entry; the schema says minItems 1',
    applies: (c) => c.kind === 'manifest' && ((c.path.length === 1 && c.path[0] === 'layers' && Array.isArray(c.value) && c.value.length === 0) ||
      (c.path[0] === 'layers' && c.path.length === 2 && c.value === DELETE && (c.original as JsonObject)['layers'] instanceof Array && ((c.original as JsonObject)['layers'] as Json[]).length === 1)),
  },
  {
    id: 'config-optional-null',
    berth: 'looser',
    reason: 'config.md: any OPTIONAL field MAY be null, which is the same as absent; the schema only allows null for a few',
    applies: (c) => c.kind === 'config' && c.value === null && typeof last(c) === 'string' && !CONFIG_REQUIRED.has(String(last(c))),
  },
];

function schemaSays(validate: ValidateFunction, doc: Json): boolean {
  return validate(doc) === true;
}

function berthSays(kind: Kind, doc: Json): { valid: boolean; message?: string } {
  try {
    BERTH_OF[kind](doc);
    return { valid: true };
  } catch (err) {
    if (!(err instanceof BerthError)) throw new Error(`berth threw a non-BerthError on ${JSON.stringify(doc)}: ${String(err)}`, { cause: err });
    const field = (err.detail as { field?: string } | undefined)?.field;
    assert.ok(field !== undefined && err.message.startsWith(`${field}: `), `the error names the field: ${err.message}`);
    return { valid: false, message: err.message };
  }
}

function* allCases(): Generator<Case> {
  const bases: [Kind, Record<string, JsonObject>][] = [
    ['descriptor', descriptorBases],
    ['manifest', manifestBases],
    ['index', indexBases],
    ['config', configBases],
    ['layout', layoutBases],
  ];
  for (const [kind, group] of bases) {
    for (const [base, original] of Object.entries(group)) {
      for (const root of [null, 42, 'x', [], {}] as Json[]) yield { kind, base, path: [], value: root, original, doc: root };
      yield { kind, base, path: ['unknown-field'], value: { any: 'thing' }, original, doc: { ...original, 'unknown-field': { any: 'thing' } } };
      for (const [path, value] of walk(original)) {
        for (const r of replacementsFor(path, value)) yield { kind, base, path, value: r, original, doc: mutate(original, path, r) };
      }
    }
  }
}

describe('validation agrees with the image-spec JSON schemas', { skip: skipUnless(schemas.need) }, () => {
  const validators = new Map<Kind, ValidateFunction>();

  before(async () => {
    const require = createRequire(import.meta.url);
    const Ajv = require('ajv').default as typeof import('ajv').default;
    const addFormats = require('ajv-formats').default as typeof import('ajv-formats').default;
    // strict: false because the schemas use draft-04-era annotations Ajv does not know ("media").
    const ajv = new Ajv({ strict: false, allErrors: false });
    addFormats(ajv);
    for (const file of readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.json'))) {
      ajv.addSchema(toDraft07(JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as Json, true, file) as object);
    }
    for (const [kind, file] of Object.entries(SCHEMA_OF) as [Kind, string][]) {
      const v = ajv.getSchema(SCHEMA_BASE + file);
      assert.ok(v, `schema ${file} did not load from ${SCHEMA_DIR}`);
      validators.set(kind, v);
    }
  });

  it('accepts every base document, as the schema does', () => {
    const groups: [Kind, Record<string, JsonObject>][] = [
      ['descriptor', descriptorBases],
      ['manifest', manifestBases],
      ['index', indexBases],
      ['config', configBases],
      ['layout', layoutBases],
    ];
    for (const [kind, group] of groups) {
      for (const [name, doc] of Object.entries(group)) {
        assert.ok(schemaSays(validators.get(kind)!, doc), `schema rejects base ${kind}/${name}: ${JSON.stringify(validators.get(kind)!.errors)}`);
        assert.deepEqual(berthSays(kind, doc), { valid: true }, `berth rejects base ${kind}/${name}`);
      }
    }
  });

  it('accepts the documents the Docker ↔ OCI converters produce', () => {
    const fromDocker = dockerManifestToOci(manifestBases['docker'] as unknown as ImageManifest);
    const toDocker = ociManifestToDocker({ ...(manifestBases['image'] as unknown as ImageManifest), layers: [(manifestBases['image']!['layers'] as unknown as ImageManifest['layers'])[0]!] });
    const listToOci = dockerIndexToOci(indexBases['dockerList'] as unknown as ImageIndex);
    const ociToList = ociIndexToDocker(listToOci);
    for (const [kind, doc] of [['manifest', fromDocker], ['manifest', toDocker], ['index', listToOci], ['index', ociToList]] as unknown as [Kind, Json][]) {
      assert.ok(schemaSays(validators.get(kind)!, doc), `schema rejects converted ${kind}: ${JSON.stringify(validators.get(kind)!.errors)}`);
      assert.deepEqual(berthSays(kind, doc), { valid: true });
    }
  });

  it('agrees on every generated mutation, except the listed deliberate differences', (t) => {
    const used = new Map<string, number>();
    const disagreements: string[] = [];
    let total = 0;
    let invalid = 0;
    for (const c of allCases()) {
      total++;
      const schema = schemaSays(validators.get(c.kind)!, c.doc);
      const berth = berthSays(c.kind, c.doc);
      if (!berth.valid) {
        invalid++;
        assert.ok(berth.message && berth.message.length > 20, 'error messages say what is wrong');
      }
      if (schema === berth.valid) continue;
      const direction = berth.valid ? 'looser' : 'stricter';
      const known = DIFFERENCES.find((d) => d.berth === direction && d.applies(c));
      if (known) {
        used.set(known.id, (used.get(known.id) ?? 0) + 1);
        continue;
      }
      const what = c.value === DELETE ? 'deleted' : `= ${JSON.stringify(c.value)}`;
      disagreements.push(
        `${c.kind}/${c.base} ${c.path.join('.')} ${what}: schema says ${schema ? 'valid' : `invalid (${JSON.stringify(validators.get(c.kind)!.errors?.[0])})`}, berth says ${berth.valid ? 'valid' : `invalid (${berth.message})`}`,
      );
    }
    t.diagnostic(`${total} cases, ${invalid} invalid for berth; deliberate differences: ${[...used].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    assert.deepEqual(disagreements, [], `${disagreements.length} unexplained disagreements`);
    assert.ok(total >= 1000, `only ${total} cases generated`);
    assert.ok(invalid >= 500, `only ${invalid} invalid cases generated`);
    for (const d of DIFFERENCES) assert.ok((used.get(d.id) ?? 0) > 0, `listed difference ${d.id} never occurred: remove it or fix the generator`);
  });
});
