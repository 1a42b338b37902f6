import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { digestOf } from '../../src/base/digest.js';
import { isMediaType } from '../../src/image/formats.js';
import {
  ALL_MANIFEST_MEDIA_TYPES,
  EMPTY_JSON_BYTES,
  EMPTY_JSON_DIGEST,
  MediaType,
  isIndexMediaType,
  isLayerMediaType,
  isManifestMediaType,
  isManifestOrIndexMediaType,
  layerCompression,
  ociLayerMediaType,
} from '../../src/base/media-types.js';

import { skipUnless, specDir } from '../helpers/requirements.js';

// The spec documents, found through BERTH_SPEC_DIR (.ci/run sets it).
const specs = specDir('image-spec');
const SPEC = join(specs.dir ?? '', '..');

describe('media types', () => {
  it('define every media type of image-spec media-types.md', { skip: skipUnless(specs.need) }, () => {
    const text = readFileSync(join(SPEC, 'image-spec', 'media-types.md'), 'utf8');
    const listed = new Set([...text.matchAll(/^- `(application\/vnd\.oci\.[^`]+)`/gm)].map((m) => m[1]!));
    assert.ok(listed.size >= 12, `found only ${listed.size} media types in media-types.md`);
    const ours = new Set<string>(Object.values(MediaType));
    for (const mt of listed) assert.ok(ours.has(mt), `MediaType lacks ${mt}`);
  });

  it('define the Docker schema 2 types of manifest-v2-2.md', { skip: skipUnless(specDir('docker-registry').need) }, () => {
    const text = readFileSync(join(SPEC, 'docker-registry', 'manifest-v2-2.md'), 'utf8');
    const listed = new Set([...text.matchAll(/`(application\/vnd\.docker\.[^`]+)`/g)].map((m) => m[1]!));
    const ours = new Set<string>(Object.values(MediaType));
    for (const mt of listed) assert.ok(ours.has(mt), `MediaType lacks ${mt}`);
  });

  it('are all valid RFC 6838 names', () => {
    for (const mt of Object.values(MediaType)) assert.ok(isMediaType(mt), mt);
  });

  it('classify manifests and indexes', () => {
    assert.deepEqual([...ALL_MANIFEST_MEDIA_TYPES].sort(), [MediaType.imageIndex, MediaType.imageManifest, MediaType.dockerManifestList, MediaType.dockerManifest].sort());
    assert.ok(isManifestMediaType(MediaType.imageManifest) && isManifestMediaType(MediaType.dockerManifest));
    assert.ok(!isManifestMediaType(MediaType.imageIndex) && !isManifestMediaType(undefined));
    assert.ok(isIndexMediaType(MediaType.dockerManifestList) && !isIndexMediaType(MediaType.dockerManifest));
    assert.ok(isManifestOrIndexMediaType(MediaType.imageIndex) && !isManifestOrIndexMediaType(MediaType.imageConfig));
  });

  it('know the compression of every layer type and nothing else', () => {
    assert.equal(layerCompression(MediaType.layerTar), 'none');
    assert.equal(layerCompression(MediaType.layerTarGzip), 'gzip');
    assert.equal(layerCompression(MediaType.layerTarZstd), 'zstd');
    assert.equal(layerCompression(MediaType.layerNondistributableTarZstd), 'zstd');
    assert.equal(layerCompression(MediaType.dockerLayerGzip), 'gzip');
    assert.equal(layerCompression(MediaType.dockerForeignLayerGzip), 'gzip');
    assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar+bzip2'), undefined);
    assert.equal(layerCompression(MediaType.imageConfig), undefined);
    assert.ok(isLayerMediaType(MediaType.layerTar) && !isLayerMediaType(MediaType.empty));
    for (const c of ['none', 'gzip', 'zstd'] as const) assert.equal(layerCompression(ociLayerMediaType(c)), c);
  });

  it('describe the empty descriptor blob {}', () => {
    assert.equal(EMPTY_JSON_BYTES.toString(), '{}');
    assert.equal(digestOf(EMPTY_JSON_BYTES), EMPTY_JSON_DIGEST);
  });
});
