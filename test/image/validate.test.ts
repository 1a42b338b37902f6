import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError, type ErrorCode } from '../../src/base/errors.js';
import { digestOf } from '../../src/base/digest.js';
import { EMPTY_JSON_DIGEST, MediaType } from '../../src/base/media-types.js';
import {
  parseManifestOrIndex,
  validateConfig,
  validateDescriptor,
  validateIndex,
  validateLayoutHeader,
  validateManifest,
  validatePlatform,
  parseConfig,
  validateConfigForManifest,
} from '../../src/image/validate.js';
import { findDuplicateKey } from '../../src/image/json.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;

const layer = (digest = D2) => ({ mediaType: MediaType.layerTarGzip, digest, size: 100 });
const emptyDesc = () => ({ mediaType: MediaType.empty, digest: EMPTY_JSON_DIGEST, size: 2 });
const imageManifest = (): Record<string, unknown> => ({
  schemaVersion: 2,
  mediaType: MediaType.imageManifest,
  config: { mediaType: MediaType.imageConfig, digest: D1, size: 10 },
  layers: [layer(D2), layer(D3)],
});
const index = (): Record<string, unknown> => ({
  schemaVersion: 2,
  mediaType: MediaType.imageIndex,
  manifests: [{ mediaType: MediaType.imageManifest, digest: D1, size: 5, platform: { os: 'linux', architecture: 'amd64' } }],
});
const config = (): Record<string, unknown> => ({
  architecture: 'amd64',
  os: 'linux',
  rootfs: { type: 'layers', diff_ids: [D1] },
});

/** Asserts a BerthError with `code` whose message starts with the field path and matches `rule`. */
function rejects(fn: () => unknown, code: ErrorCode, field: string, rule: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    if (!isBerthError(e, code)) return false;
    assert.ok(e.message.startsWith(`${field}: `), `message ${JSON.stringify(e.message)} should start with ${field}`);
    assert.match(e.message, rule);
    assert.deepEqual(e.detail, { field });
    return true;
  });
}

function withField(doc: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(doc);
  const keys = path.split('.');
  let node: Record<string, unknown> = copy;
  for (const k of keys.slice(0, -1)) node = node[k] as Record<string, unknown>;
  if (value === undefined) delete node[keys[keys.length - 1]!];
  else node[keys[keys.length - 1]!] = value;
  return copy;
}

describe('validateDescriptor (descriptor.md)', () => {
  it('accepts a full descriptor and keeps unknown fields', () => {
    const d = {
      mediaType: 'application/vnd.example+json',
      digest: digestOf('{}'),
      size: 2,
      data: 'e30=',
      urls: ['https://example.com/x'],
      annotations: { a: '', b: 'c' },
      artifactType: 'application/vnd.example.sig',
      platform: { os: 'linux', architecture: 'arm', variant: 'v7' },
      'x-future': 1,
    };
    assert.equal(validateDescriptor(d), d);
  });

  it('requires mediaType, digest and size, naming the field', () => {
    const d = { mediaType: MediaType.layerTar, digest: D1, size: 1 };
    rejects(() => validateDescriptor(withField(d, 'mediaType', undefined)), 'DESCRIPTOR_INVALID', 'descriptor.mediaType', /required/);
    rejects(() => validateDescriptor(withField(d, 'digest', undefined)), 'DESCRIPTOR_INVALID', 'descriptor.digest', /required/);
    rejects(() => validateDescriptor(withField(d, 'size', undefined)), 'DESCRIPTOR_INVALID', 'descriptor.size', /required/);
    rejects(() => validateDescriptor('x'), 'DESCRIPTOR_INVALID', 'descriptor', /must be a JSON object, got string/);
    rejects(() => validateDescriptor([], 'manifest.config'), 'DESCRIPTOR_INVALID', 'manifest.config', /got an array/);
  });

  it('checks the media type against RFC 6838', () => {
    for (const bad of ['text', 'a/b/c', 'application/json; charset=utf-8', '/json', `${'a'.repeat(128)}/b`]) {
      rejects(() => validateDescriptor({ mediaType: bad, digest: D1, size: 1 }), 'DESCRIPTOR_INVALID', 'descriptor.mediaType', /RFC 6838/);
    }
    rejects(() => validateDescriptor({ mediaType: MediaType.layerTar, digest: D1, size: 1, artifactType: 'x' }), 'DESCRIPTOR_INVALID', 'descriptor.artifactType', /not a media type/);
  });

  it('checks the digest grammar and registered algorithms', () => {
    const d = (digest: unknown) => ({ mediaType: MediaType.layerTar, digest, size: 1 });
    rejects(() => validateDescriptor(d('sha256:abc')), 'DESCRIPTOR_INVALID', 'descriptor.digest', /64 lowercase hex/);
    rejects(() => validateDescriptor(d(`sha256:${'A'.repeat(64)}`)), 'DESCRIPTOR_INVALID', 'descriptor.digest', /lowercase hex/);
    rejects(() => validateDescriptor(d(`md5:${'a'.repeat(32)}`)), 'DESCRIPTOR_INVALID', 'descriptor.digest', /unsupported digest algorithm "md5"/);
    rejects(() => validateDescriptor(d(42)), 'DESCRIPTOR_INVALID', 'descriptor.digest', /must be a string/);
    assert.doesNotThrow(() => validateDescriptor(d(`sha512:${'a'.repeat(128)}`)));
  });

  it('requires a non-negative integer size', () => {
    const d = (size: unknown) => ({ mediaType: MediaType.layerTar, digest: D1, size });
    rejects(() => validateDescriptor(d(-1)), 'DESCRIPTOR_INVALID', 'descriptor.size', /must not be negative/);
    rejects(() => validateDescriptor(d(1.5)), 'DESCRIPTOR_INVALID', 'descriptor.size', /integer/);
    rejects(() => validateDescriptor(d('1')), 'DESCRIPTOR_INVALID', 'descriptor.size', /integer/);
    rejects(() => validateDescriptor(d(2 ** 53)), 'DESCRIPTOR_INVALID', 'descriptor.size', /2\^53-1/);
    assert.doesNotThrow(() => validateDescriptor(d(0)));
  });

  it('checks urls, annotations and platform', () => {
    const base = { mediaType: MediaType.layerTar, digest: D1, size: 1 };
    rejects(() => validateDescriptor({ ...base, urls: 'https://x' }), 'DESCRIPTOR_INVALID', 'descriptor.urls', /array/);
    rejects(() => validateDescriptor({ ...base, urls: ['https://ok', 'no scheme'] }), 'DESCRIPTOR_INVALID', 'descriptor.urls[1]', /RFC 3986/);
    rejects(() => validateDescriptor({ ...base, annotations: { a: 1 } }), 'DESCRIPTOR_INVALID', 'descriptor.annotations["a"]', /must be strings/);
    rejects(() => validateDescriptor({ ...base, annotations: [] }), 'DESCRIPTOR_INVALID', 'descriptor.annotations', /object mapping strings/);
    rejects(() => validateDescriptor({ ...base, platform: { os: 'linux' } }), 'DESCRIPTOR_INVALID', 'descriptor.platform.architecture', /required/);
    rejects(() => validateDescriptor({ ...base, platform: { os: 'linux', architecture: 'amd64', 'os.features': [1] } }), 'DESCRIPTOR_INVALID', 'descriptor.platform.os.features[0]', /string/);
    rejects(() => validatePlatform({ os: '', architecture: 'amd64' }), 'DESCRIPTOR_INVALID', 'platform.os', /empty/);
  });

  it('checks that embedded data is base64 of exactly the content', () => {
    const base = { mediaType: MediaType.empty, digest: EMPTY_JSON_DIGEST, size: 2 };
    assert.doesNotThrow(() => validateDescriptor({ ...base, data: 'e30=' }));
    rejects(() => validateDescriptor({ ...base, data: 'e30' }), 'DESCRIPTOR_INVALID', 'descriptor.data', /base64/);
    const hello = { mediaType: 'text/plain', digest: digestOf('hello'), size: 5 };
    assert.doesNotThrow(() => validateDescriptor({ ...hello, data: Buffer.from('hello').toString('base64') }));
    rejects(() => validateDescriptor({ ...hello, data: Buffer.from('hellp').toString('base64') }), 'DESCRIPTOR_INVALID', 'descriptor.data', /digest/);
    rejects(() => validateDescriptor({ ...hello, data: Buffer.from('hell').toString('base64') }), 'DESCRIPTOR_INVALID', 'descriptor.data', /4 bytes but size is 5/);
  });

  it('requires the empty media type to describe {}', () => {
    rejects(() => validateDescriptor({ ...emptyDesc(), size: 3 }), 'DESCRIPTOR_INVALID', 'descriptor.size', /size 2/);
    rejects(() => validateDescriptor({ ...emptyDesc(), digest: D1 }), 'DESCRIPTOR_INVALID', 'descriptor.digest', /44136fa3/);
  });
});

describe('validateManifest (manifest.md)', () => {
  it('accepts OCI and Docker schema 2 manifests', () => {
    assert.doesNotThrow(() => validateManifest(imageManifest()));
    assert.doesNotThrow(() => validateManifest(withField(imageManifest(), 'mediaType', undefined)));
    assert.doesNotThrow(() =>
      validateManifest({
        schemaVersion: 2,
        mediaType: MediaType.dockerManifest,
        config: { mediaType: MediaType.dockerConfig, digest: D1, size: 7023 },
        layers: [{ mediaType: MediaType.dockerLayerGzip, digest: D2, size: 32654 }],
      }),
    );
  });

  it('requires schemaVersion 2', () => {
    rejects(() => validateManifest(withField(imageManifest(), 'schemaVersion', undefined)), 'MANIFEST_INVALID', 'manifest.schemaVersion', /required/);
    rejects(() => validateManifest(withField(imageManifest(), 'schemaVersion', 1)), 'MANIFEST_INVALID', 'manifest.schemaVersion', /must be 2, got number 1/);
    rejects(() => validateManifest(withField(imageManifest(), 'schemaVersion', '2')), 'MANIFEST_INVALID', 'manifest.schemaVersion', /must be 2/);
  });

  it('requires the manifest media type when mediaType is set', () => {
    rejects(() => validateManifest(withField(imageManifest(), 'mediaType', MediaType.imageIndex)), 'MANIFEST_INVALID', 'manifest.mediaType', /of an index, not of an image manifest/);
    rejects(() => validateManifest(withField(imageManifest(), 'mediaType', 'application/json')), 'MANIFEST_INVALID', 'manifest.mediaType', /must be application\/vnd\.oci\.image\.manifest\.v1\+json or/);
    rejects(() => validateManifest(withField(imageManifest(), 'mediaType', MediaType.dockerManifestV1Signed)), 'MANIFEST_INVALID', 'manifest.mediaType', /schema 1/);
  });

  it('requires config and layers, and names the bad layer', () => {
    rejects(() => validateManifest(withField(imageManifest(), 'config', undefined)), 'MANIFEST_INVALID', 'manifest.config', /required/);
    rejects(() => validateManifest(withField(imageManifest(), 'layers', undefined)), 'MANIFEST_INVALID', 'manifest.layers', /required/);
    rejects(() => validateManifest(withField(imageManifest(), 'layers', {})), 'MANIFEST_INVALID', 'manifest.layers', /array/);
    const m = imageManifest();
    (m['layers'] as unknown[]).push({ mediaType: MediaType.layerTarGzip, digest: 'sha256:nothex', size: 1 });
    rejects(() => validateManifest(m), 'MANIFEST_INVALID', 'manifest.layers[2].digest', /64 lowercase hex/);
    rejects(() => validateManifest(withField(imageManifest(), 'config.size', -5)), 'MANIFEST_INVALID', 'manifest.config.size', /negative/);
  });

  it('allows no layers (layers SHOULD, not MUST, have an entry) and unknown layer media types', () => {
    assert.doesNotThrow(() => validateManifest(withField(imageManifest(), 'layers', [])));
    assert.doesNotThrow(() => validateManifest(withField(imageManifest(), 'layers', [{ mediaType: 'application/vnd.unknown.layer', digest: D2, size: 1 }])));
  });

  it('requires artifactType when config is the empty descriptor', () => {
    const artifact = { schemaVersion: 2, mediaType: MediaType.imageManifest, config: emptyDesc(), layers: [emptyDesc()] };
    rejects(() => validateManifest(artifact), 'MANIFEST_INVALID', 'manifest.artifactType', /must be set when config.mediaType is application\/vnd.oci.empty.v1\+json/);
    assert.doesNotThrow(() => validateManifest({ ...artifact, artifactType: 'application/vnd.example.sig' }));
    rejects(() => validateManifest({ ...artifact, artifactType: 'sig' }), 'MANIFEST_INVALID', 'manifest.artifactType', /not a media type/);
    // An artifact with its own config type needs no artifactType.
    assert.doesNotThrow(() => validateManifest({ ...artifact, config: { mediaType: 'application/vnd.example.config+json', digest: D1, size: 3 } }));
  });

  it('validates subject and annotations', () => {
    assert.doesNotThrow(() => validateManifest({ ...imageManifest(), subject: { mediaType: MediaType.imageManifest, digest: D3, size: 9 } }));
    rejects(() => validateManifest({ ...imageManifest(), subject: { mediaType: MediaType.imageManifest, digest: D3 } }), 'MANIFEST_INVALID', 'manifest.subject.size', /required/);
    rejects(() => validateManifest({ ...imageManifest(), annotations: { k: null } }), 'MANIFEST_INVALID', 'manifest.annotations["k"]', /strings/);
    assert.doesNotThrow(() => validateManifest({ ...imageManifest(), annotations: {} }));
  });

  it('is not an object → a clear error', () => {
    rejects(() => validateManifest(null), 'MANIFEST_INVALID', 'manifest', /JSON object, got null/);
    rejects(() => validateManifest([]), 'MANIFEST_INVALID', 'manifest', /got an array/);
  });
});

describe('validateIndex (image-index.md)', () => {
  it('accepts OCI indexes, empty ones and Docker manifest lists', () => {
    assert.doesNotThrow(() => validateIndex(index()));
    assert.doesNotThrow(() => validateIndex({ schemaVersion: 2, manifests: [] }));
    assert.doesNotThrow(() =>
      validateIndex({
        schemaVersion: 2,
        mediaType: MediaType.dockerManifestList,
        manifests: [{ mediaType: MediaType.dockerManifest, digest: D1, size: 424, platform: { architecture: 'arm', os: 'linux', variant: 'v7' } }],
      }),
    );
    // image-index.md: an unknown child media type MUST NOT be an error.
    assert.doesNotThrow(() => validateIndex(withField(index(), 'manifests', [{ mediaType: 'application/vnd.example.thing', digest: D1, size: 1 }])));
  });

  it('requires manifests and checks each entry', () => {
    rejects(() => validateIndex(withField(index(), 'manifests', undefined)), 'INDEX_INVALID', 'index.manifests', /required/);
    rejects(() => validateIndex(withField(index(), 'manifests', null)), 'INDEX_INVALID', 'index.manifests', /array of descriptors, got null/);
    const i = index();
    (i['manifests'] as Record<string, unknown>[])[0]!['platform'] = { os: 'linux', architecture: 5 };
    rejects(() => validateIndex(i), 'INDEX_INVALID', 'index.manifests[0].platform.architecture', /string/);
  });

  it('requires the index media type when set', () => {
    rejects(() => validateIndex(withField(index(), 'mediaType', MediaType.imageManifest)), 'INDEX_INVALID', 'index.mediaType', /of an image manifest, not of an index/);
    rejects(() => validateIndex(withField(index(), 'schemaVersion', 3)), 'INDEX_INVALID', 'index.schemaVersion', /must be 2/);
  });

  it('validates artifactType, subject and annotations', () => {
    assert.doesNotThrow(() => validateIndex({ ...index(), artifactType: 'application/vnd.example', subject: { mediaType: MediaType.imageIndex, digest: D2, size: 3 } }));
    rejects(() => validateIndex({ ...index(), artifactType: 7 }), 'INDEX_INVALID', 'index.artifactType', /string/);
    rejects(() => validateIndex({ ...index(), subject: {} }), 'INDEX_INVALID', 'index.subject.mediaType', /required/);
    rejects(() => validateIndex({ ...index(), annotations: 'x' }), 'INDEX_INVALID', 'index.annotations', /object/);
  });
});

describe('validateConfig (config.md)', () => {
  it('accepts a minimal config, a Docker config with extra fields and nulls for optional fields', () => {
    assert.doesNotThrow(() => validateConfig(config()));
    assert.doesNotThrow(() =>
      validateConfig({
        ...config(),
        created: '2024-01-31T12:00:00.123456789Z',
        container: 'abc',
        docker_version: '24.0.0',
        container_config: { Hostname: 'x' },
        config: { Env: null, Cmd: null, Entrypoint: null, Volumes: null, Labels: null, OnBuild: null, User: '' },
        history: [{ created_by: 'x', empty_layer: true }],
        author: null,
      }),
    );
  });

  it('requires architecture, os and rootfs', () => {
    rejects(() => validateConfig(withField(config(), 'architecture', undefined)), 'CONFIG_INVALID', 'config.architecture', /required/);
    rejects(() => validateConfig(withField(config(), 'os', null)), 'CONFIG_INVALID', 'config.os', /string, got null/);
    rejects(() => validateConfig(withField(config(), 'rootfs', undefined)), 'CONFIG_INVALID', 'config.rootfs', /required/);
  });

  it('requires rootfs.type "layers" and digests in diff_ids', () => {
    rejects(() => validateConfig(withField(config(), 'rootfs.type', 'snapshot')), 'CONFIG_INVALID', 'config.rootfs.type', /must be "layers", got string "snapshot"/);
    rejects(() => validateConfig(withField(config(), 'rootfs.type', undefined)), 'CONFIG_INVALID', 'config.rootfs.type', /required/);
    rejects(() => validateConfig(withField(config(), 'rootfs.diff_ids', undefined)), 'CONFIG_INVALID', 'config.rootfs.diff_ids', /required/);
    rejects(() => validateConfig(withField(config(), 'rootfs.diff_ids', [D1, 'sha256:x'])), 'CONFIG_INVALID', 'config.rootfs.diff_ids[1]', /64 lowercase hex/);
  });

  it('checks the types of the execution parameters', () => {
    rejects(() => validateConfig({ ...config(), config: { Env: 'A=1' } }), 'CONFIG_INVALID', 'config.config.Env', /array of strings/);
    rejects(() => validateConfig({ ...config(), config: { Cmd: ['a', 1] } }), 'CONFIG_INVALID', 'config.config.Cmd[1]', /string/);
    rejects(() => validateConfig({ ...config(), config: { ExposedPorts: { '80/tcp': true } } }), 'CONFIG_INVALID', 'config.config.ExposedPorts["80/tcp"]', /object/);
    rejects(() => validateConfig({ ...config(), config: { Labels: { a: 1 } } }), 'CONFIG_INVALID', 'config.config.Labels["a"]', /strings/);
    rejects(() => validateConfig({ ...config(), config: { ArgsEscaped: 'yes' } }), 'CONFIG_INVALID', 'config.config.ArgsEscaped', /true or false/);
    rejects(() => validateConfig({ ...config(), config: { Memory: 1.5 } }), 'CONFIG_INVALID', 'config.config.Memory', /integer/);
    rejects(() => validateConfig({ ...config(), config: [] }), 'CONFIG_INVALID', 'config.config', /object/);
  });

  it('checks created times and history entries', () => {
    rejects(() => validateConfig({ ...config(), created: '2024-01-31' }), 'CONFIG_INVALID', 'config.created', /RFC 3339/);
    rejects(() => validateConfig({ ...config(), history: [{}, { created: 'yesterday' }] }), 'CONFIG_INVALID', 'config.history[1].created', /RFC 3339/);
    rejects(() => validateConfig({ ...config(), history: [{ empty_layer: 'true' }] }), 'CONFIG_INVALID', 'config.history[0].empty_layer', /true or false/);
    rejects(() => validateConfig({ ...config(), history: {} }), 'CONFIG_INVALID', 'config.history', /array/);
  });
});

describe('validateLayoutHeader (image-layout.md)', () => {
  it('accepts version 1.0.0 only', () => {
    assert.deepEqual(validateLayoutHeader({ imageLayoutVersion: '1.0.0' }), { imageLayoutVersion: '1.0.0' });
    rejects(() => validateLayoutHeader({ imageLayoutVersion: '2.0.0' }), 'LAYOUT_INVALID', 'oci-layout.imageLayoutVersion', /1\.0\.0/);
    rejects(() => validateLayoutHeader({}), 'LAYOUT_INVALID', 'oci-layout.imageLayoutVersion', /required/);
  });
});

describe('parseManifestOrIndex', () => {
  const bytes = (doc: unknown): Uint8Array => Buffer.from(JSON.stringify(doc));

  it('detects the kind from the hint, the mediaType field, or the shape', () => {
    assert.equal(parseManifestOrIndex(bytes(imageManifest())).mediaType, MediaType.imageManifest);
    assert.ok(parseManifestOrIndex(bytes(imageManifest())).manifest);
    const bare = withField(imageManifest(), 'mediaType', undefined);
    assert.equal(parseManifestOrIndex(bytes(bare)).mediaType, MediaType.imageManifest);
    assert.equal(parseManifestOrIndex(bytes(bare), `${MediaType.imageManifest}; charset=utf-8`).mediaType, MediaType.imageManifest);
    const bareIndex = withField(index(), 'mediaType', undefined);
    const r = parseManifestOrIndex(bytes(bareIndex), 'application/octet-stream');
    assert.equal(r.mediaType, MediaType.imageIndex);
    assert.ok(r.index && !r.manifest);
    assert.equal(parseManifestOrIndex(bytes(bareIndex), MediaType.dockerManifestList).mediaType, MediaType.dockerManifestList);
  });

  it('refuses Docker schema 1 with a clear message', () => {
    const v1 = { schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] };
    for (const hint of [undefined, MediaType.dockerManifestV1Signed]) {
      assert.throws(() => parseManifestOrIndex(bytes(v1), hint), (e: unknown) => isBerthError(e, 'UNSUPPORTED') && /schema 1.*not supported/.test(e.message));
    }
    assert.throws(() => parseManifestOrIndex(bytes(imageManifest()), MediaType.dockerManifestV1), (e: unknown) => isBerthError(e, 'UNSUPPORTED'));
  });

  it('refuses ambiguous and contradictory documents', () => {
    assert.throws(() => parseManifestOrIndex(bytes({ ...imageManifest(), mediaType: undefined, manifests: [] })), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && /both/.test(e.message));
    assert.throws(() => parseManifestOrIndex(bytes(imageManifest()), MediaType.imageIndex), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && /mismatch/.test(e.message));
    assert.throws(() => parseManifestOrIndex(bytes(withField(imageManifest(), 'mediaType', undefined)), MediaType.imageIndex), (e: unknown) => isBerthError(e, 'INDEX_INVALID'));
    assert.throws(() => parseManifestOrIndex(bytes({ schemaVersion: 2 })), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && /neither/.test(e.message));
    assert.throws(() => parseManifestOrIndex(bytes({ schemaVersion: 2, mediaType: 'application/x-thing' })), (e: unknown) => isBerthError(e, 'MEDIA_TYPE_UNKNOWN'));
  });

  it('refuses what is not JSON or not UTF-8, and validates what it parses', () => {
    assert.throws(() => parseManifestOrIndex(Buffer.from('{not json')), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && /not valid UTF-8 JSON/.test(e.message));
    assert.throws(() => parseManifestOrIndex(Uint8Array.from([0x7b, 0xff, 0x7d])), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID'));
    assert.throws(() => parseManifestOrIndex(bytes([1, 2])), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && /got an array/.test(e.message));
    rejects(() => parseManifestOrIndex(bytes(withField(imageManifest(), 'config.digest', 'bad'))), 'MANIFEST_INVALID', 'manifest.config.digest', /invalid digest/);
  });
});

describe('strict JSON (considerations.md: I-JSON)', () => {
  it('finds duplicate names anywhere, with their path, including escaped spellings', () => {
    assert.equal(findDuplicateKey('{"a":1,"b":[{"c":1},{"c":2,"d":"x\\"y","c":3}]}', 'doc'), 'doc.b[1].c');
    assert.equal(findDuplicateKey('{"a":1,"\\u0061":2}'), '$.a');
    assert.equal(findDuplicateKey('{"a":{"a":{"a":1}},"b":"a","c":["a","a"]}'), undefined);
    assert.equal(findDuplicateKey('[{"k":1},{"k":2}] '), undefined);
    assert.equal(findDuplicateKey('{"x":"}{\\"","x":1}'), '$.x');
    assert.equal(findDuplicateKey('{"a\\\\":1,"b":"\\\\","a\\\\":2}'), '$.a\\');
    assert.equal(findDuplicateKey('{"a\\\\":1,"a":2}'), undefined);
  });

  it('refuses a manifest with a duplicate name, naming it', () => {
    const m = JSON.stringify(imageManifest());
    const twoLayers = m.replace('"layers":', '"layers":[],"layers":');
    assert.throws(
      () => parseManifestOrIndex(Buffer.from(twoLayers)),
      (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && e.message.startsWith('manifest.layers: ') && /I-JSON/.test(e.message),
    );
    const dupDigest = m.replace(`"digest":"${D2}"`, `"digest":"${D2}","digest":"${D3}"`);
    assert.throws(() => parseManifestOrIndex(Buffer.from(dupDigest)), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && e.message.startsWith('manifest.layers[0].digest: '));
  });

  it('refuses a byte order mark (the digest covers the bytes; Go parsers refuse it too)', () => {
    const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(imageManifest()))]);
    assert.throws(() => parseManifestOrIndex(withBom), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && /not valid UTF-8 JSON/.test(e.message));
  });
});

describe('parseConfig and validateConfigForManifest', () => {
  it('parse and validate config bytes strictly', () => {
    assert.equal(parseConfig(Buffer.from(JSON.stringify(config()))).architecture, 'amd64');
    assert.throws(() => parseConfig(Buffer.from('{"architecture":"amd64","architecture":"arm64"}')), (e: unknown) => isBerthError(e, 'CONFIG_INVALID') && e.message.startsWith('config.architecture: '));
    assert.throws(() => parseConfig(Buffer.from('{"os":"linux"}')), (e: unknown) => isBerthError(e, 'CONFIG_INVALID') && e.message.startsWith('config.architecture: '));
  });

  it('require one diff_id per layer', () => {
    const m = validateManifest(imageManifest());
    assert.doesNotThrow(() => validateConfigForManifest(m, validateConfig({ ...config(), rootfs: { type: 'layers', diff_ids: [D1, D2] } })));
    assert.throws(() => validateConfigForManifest(m, validateConfig(config())), (e: unknown) => isBerthError(e, 'CONFIG_INVALID') && /1 entries but the manifest has 2 layers/.test(e.message));
  });
});

/** Documents written by a real peer (umoci) must pass berth's validation unchanged. */
describe('documents written by umoci', () => {
  const umociMissing = skipUnless(peer('umoci', 'umoci'));
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  function umoci(...args: string[]): void {
    const r = spawnSync('umoci', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `umoci ${args.join(' ')} failed: ${r.stderr}`);
  }

  it('validates the layout, index, manifests and configs of an image built with umoci', async (t) => {
    if (umociMissing) {
      t.skip(umociMissing);
      return;
    }
    const work = await mkdtemp(join(tmpdir(), 'berth-validate-umoci-'));
    dirs.push(work);
    const layout = join(work, 'layout');
    const bundle = join(work, 'bundle');
    umoci('init', '--layout', layout);
    umoci('new', '--image', `${layout}:base`);
    umoci(
      'config', '--image', `${layout}:base`, '--tag', 'configured',
      '--config.cmd', '/bin/sh', '--config.env', 'A=1', '--config.exposedports', '80/tcp', '--config.volume', '/data',
      '--config.label', 'a=b', '--config.workingdir', '/srv', '--architecture', 'arm64', '--os', 'linux',
      '--author', 'berth tests', '--history.comment', 'configured',
    );
    umoci('unpack', '--image', `${layout}:configured`, bundle);
    writeFileSync(join(bundle, 'rootfs', 'hello.txt'), 'hello\n');
    umoci('repack', '--image', `${layout}:layered`, bundle);

    const blob = (digest: string): Buffer => readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)));
    validateLayoutHeader(JSON.parse(readFileSync(join(layout, 'oci-layout'), 'utf8')));
    const idx = validateIndex(JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')));
    assert.equal(idx.manifests.length, 3);
    for (const desc of idx.manifests) {
      const { manifest, mediaType } = parseManifestOrIndex(blob(desc.digest), desc.mediaType);
      assert.equal(mediaType, MediaType.imageManifest);
      validateConfigForManifest(manifest!, parseConfig(blob(manifest!.config.digest)));
    }
    const layered = idx.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === 'layered')!;
    const m = parseManifestOrIndex(blob(layered.digest)).manifest!;
    assert.equal(m.layers.length, 1);
    const cfg = parseConfig(blob(m.config.digest));
    assert.equal(cfg.architecture, 'arm64');
    assert.deepEqual(cfg.config?.Cmd, ['/bin/sh']);
  });
});

describe('robustness', () => {
  /** A deterministic PRNG (mulberry32) so that failures reproduce. */
  function prng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const KEYS = ['schemaVersion', 'mediaType', 'config', 'layers', 'manifests', 'digest', 'size', 'platform', 'annotations', 'rootfs', 'diff_ids', 'type', 'history', 'os', 'architecture', 'urls', 'data', 'subject', 'artifactType', '__proto__', 'constructor'];
  const LEAVES: unknown[] = [null, true, 0, 2, -1, 1.5, '', 'x', D1, MediaType.imageManifest, MediaType.imageIndex, MediaType.empty, 'layers', 'e30=', 2 ** 60];

  function randomValue(rand: () => number, depth: number): unknown {
    const r = rand();
    if (depth > 4 || r < 0.4) return LEAVES[Math.floor(rand() * LEAVES.length)];
    if (r < 0.55) return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rand() * 6); i > 0; i--) Object.defineProperty(o, KEYS[Math.floor(rand() * KEYS.length)]!, { value: randomValue(rand, depth + 1), enumerable: true, configurable: true, writable: true });
    return o;
  }

  it('answers random documents with a BerthError or a result, never a crash', () => {
    const rand = prng(20261128);
    const validators: ((d: unknown) => unknown)[] = [validateManifest, validateIndex, validateConfig, (d) => validateDescriptor(d), validateLayoutHeader, (d) => parseManifestOrIndex(Buffer.from(JSON.stringify(d) ?? 'null'))];
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const doc = randomValue(rand, 0);
      for (const validate of validators) {
        try {
          validate(doc);
          accepted++;
        } catch (err) {
          assert.ok(isBerthError(err), `non-BerthError for ${JSON.stringify(doc)}: ${String(err)}`);
        }
      }
    }
    assert.ok(accepted < 3000 * validators.length);
  });
});
