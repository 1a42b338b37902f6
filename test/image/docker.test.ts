import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/errors.js';
import { digestOf } from '../../src/image/digest.js';
import {
  DOCKER_LAYER_TAR,
  convertDockerManifestToOci,
  convertOciManifestToDocker,
  dockerIndexToOci,
  dockerManifestToOci,
  encodeDocument,
  ociIndexToDocker,
  ociManifestToDocker,
} from '../../src/image/docker.js';
import { EMPTY_JSON_DIGEST, MediaType } from '../../src/image/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../../src/image/types.js';
import { parseManifestOrIndex, validateIndex, validateManifest } from '../../src/image/validate.js';

const D = (c: string): string => `sha256:${c.repeat(64)}`;

const dockerManifest = (): ImageManifest => ({
  schemaVersion: 2,
  mediaType: MediaType.dockerManifest,
  config: { mediaType: MediaType.dockerConfig, digest: D('1'), size: 7023 },
  layers: [
    { mediaType: MediaType.dockerLayerGzip, digest: D('2'), size: 32654 },
    { mediaType: DOCKER_LAYER_TAR, digest: D('3'), size: 16724 },
    { mediaType: MediaType.dockerForeignLayerGzip, digest: D('4'), size: 73109, urls: ['https://example.com/foreign'] },
  ],
});

const ociManifest = (): ImageManifest => ({
  schemaVersion: 2,
  mediaType: MediaType.imageManifest,
  config: { mediaType: MediaType.imageConfig, digest: D('1'), size: 7023 },
  layers: [
    { mediaType: MediaType.layerTarGzip, digest: D('2'), size: 32654, annotations: { 'org.opencontainers.image.title': 'base' } },
    { mediaType: MediaType.layerTar, digest: D('3'), size: 16724 },
  ],
});

function unsupported(pattern: RegExp) {
  return (e: unknown): boolean => isBerthError(e, 'UNSUPPORTED') && pattern.test(e.message);
}

describe('manifest conversion', () => {
  it('maps the Docker media types to their OCI equivalents', () => {
    const oci = dockerManifestToOci(dockerManifest());
    assert.equal(oci.mediaType, MediaType.imageManifest);
    assert.equal(oci.config.mediaType, MediaType.imageConfig);
    assert.deepEqual(
      oci.layers.map((l) => l.mediaType),
      [MediaType.layerTarGzip, MediaType.layerTar, MediaType.layerNondistributableTarGzip],
    );
    // Blobs are unchanged: same digests, sizes and urls.
    assert.deepEqual(oci.layers.map((l) => [l.digest, l.size]), dockerManifest().layers.map((l) => [l.digest, l.size]));
    assert.deepEqual(oci.layers[2]!.urls, ['https://example.com/foreign']);
    assert.doesNotThrow(() => validateManifest(oci));
  });

  it('round-trips Docker → OCI → Docker exactly', () => {
    assert.deepEqual(ociManifestToDocker(dockerManifestToOci(dockerManifest())), dockerManifest());
  });

  it('round-trips OCI → Docker → OCI exactly (descriptor annotations kept)', () => {
    const docker = ociManifestToDocker(ociManifest());
    assert.equal(docker.mediaType, MediaType.dockerManifest);
    assert.equal(docker.config.mediaType, MediaType.dockerConfig);
    assert.deepEqual(docker.layers.map((l) => l.mediaType), [MediaType.dockerLayerGzip, DOCKER_LAYER_TAR]);
    assert.deepEqual(dockerManifestToOci(docker), ociManifest());
  });

  it('drops manifest-level annotations going to Docker (schema 2 has none) and keeps them going to OCI', () => {
    const withAnnotations = { ...ociManifest(), annotations: { a: 'b' } };
    assert.equal(ociManifestToDocker(withAnnotations).annotations, undefined);
    assert.deepEqual(dockerManifestToOci({ ...dockerManifest(), annotations: { a: 'b' } }).annotations, { a: 'b' });
  });

  it('refuses what Docker schema 2 cannot express', () => {
    const zstd = ociManifest();
    zstd.layers.push({ mediaType: MediaType.layerTarZstd, digest: D('5'), size: 1 });
    assert.throws(() => ociManifestToDocker(zstd), unsupported(/layer 2 .*zstd.*recompress/));
    assert.throws(
      () => ociManifestToDocker({ ...ociManifest(), subject: { mediaType: MediaType.imageManifest, digest: D('9'), size: 1 } }),
      unsupported(/subject/),
    );
    assert.throws(() => ociManifestToDocker({ ...ociManifest(), artifactType: 'application/vnd.example.sig' }), unsupported(/artifact/));
    const artifact: ImageManifest = {
      ...ociManifest(),
      config: { mediaType: MediaType.empty, digest: EMPTY_JSON_DIGEST, size: 2 },
    };
    assert.throws(() => ociManifestToDocker(artifact), unsupported(/config is application\/vnd\.oci\.empty/));
    assert.throws(() => ociManifestToDocker(dockerManifest()), unsupported(/not an OCI image manifest/));
  });

  it('refuses Docker manifests without an OCI equivalent', () => {
    assert.throws(() => dockerManifestToOci(ociManifest()), unsupported(/not a Docker schema 2 manifest/));
    assert.throws(
      () => dockerManifestToOci({ ...dockerManifest(), config: { mediaType: MediaType.dockerPluginConfig, digest: D('1'), size: 1 } }),
      unsupported(/plugin/),
    );
    const odd = dockerManifest();
    odd.layers[0] = { mediaType: 'application/vnd.example.layer', digest: D('2'), size: 1 };
    assert.throws(() => dockerManifestToOci(odd), unsupported(/layer 0/));
  });

  it('does not modify its input', () => {
    const input = dockerManifest();
    dockerManifestToOci(input);
    assert.deepEqual(input, dockerManifest());
  });

  it('encodes the converted document with a new digest that parses back', () => {
    const original = encodeDocument(dockerManifest(), MediaType.dockerManifest);
    const converted = convertDockerManifestToOci(dockerManifest());
    assert.notEqual(converted.descriptor.digest, original.descriptor.digest);
    assert.equal(converted.descriptor.digest, digestOf(converted.bytes));
    assert.equal(converted.descriptor.size, converted.bytes.length);
    assert.equal(converted.descriptor.mediaType, MediaType.imageManifest);
    assert.deepEqual(parseManifestOrIndex(converted.bytes, converted.descriptor.mediaType).manifest, converted.manifest);
    const back = convertOciManifestToDocker(converted.manifest);
    assert.deepEqual(back.bytes, original.bytes, 'the Docker bytes are reproduced exactly');
    assert.equal(back.descriptor.digest, original.descriptor.digest);
  });
});

describe('index conversion', () => {
  const platformArm = { architecture: 'arm', os: 'linux', variant: 'v7' };
  const platformAmd = { architecture: 'amd64', os: 'linux' };

  const dockerList = (): ImageIndex => ({
    schemaVersion: 2,
    mediaType: MediaType.dockerManifestList,
    manifests: [
      { mediaType: MediaType.dockerManifest, digest: D('a'), size: 7143, platform: platformAmd },
      { mediaType: MediaType.dockerManifest, digest: D('b'), size: 7682, platform: platformArm },
    ],
  });

  it('replaces converted children and keeps their platforms', () => {
    const newAmd: Descriptor = { mediaType: MediaType.imageManifest, digest: D('c'), size: 700 };
    const oci = dockerIndexToOci(dockerList(), new Map([[D('a'), newAmd]]));
    assert.equal(oci.mediaType, MediaType.imageIndex);
    assert.deepEqual(oci.manifests[0], { ...newAmd, platform: platformAmd });
    // A child not converted stays a Docker manifest, which an OCI index may point at.
    assert.deepEqual(oci.manifests[1], dockerList().manifests[1]);
    assert.doesNotThrow(() => validateIndex(oci));
  });

  it('round-trips a manifest list through OCI when every child is converted both ways', () => {
    const toOci = new Map<string, Descriptor>([
      [D('a'), { mediaType: MediaType.imageManifest, digest: D('c'), size: 700 }],
      [D('b'), { mediaType: MediaType.imageManifest, digest: D('d'), size: 800 }],
    ]);
    const back = new Map<string, Descriptor>([
      [D('c'), { mediaType: MediaType.dockerManifest, digest: D('a'), size: 7143 }],
      [D('d'), { mediaType: MediaType.dockerManifest, digest: D('b'), size: 7682 }],
    ]);
    assert.deepEqual(ociIndexToDocker(dockerIndexToOci(dockerList(), toOci), back), dockerList());
  });

  it('refuses to list children that are not Docker manifests', () => {
    const oci: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.imageIndex,
      manifests: [{ mediaType: MediaType.imageManifest, digest: D('c'), size: 700, platform: platformAmd }],
    };
    assert.throws(() => ociIndexToDocker(oci), unsupported(/manifests\[0\].*convert it with ociManifestToDocker/));
    assert.throws(() => ociIndexToDocker({ ...oci, subject: { mediaType: MediaType.imageManifest, digest: D('e'), size: 1 } }), unsupported(/subject/));
    assert.throws(() => ociIndexToDocker({ ...oci, artifactType: 'application/x' }), unsupported(/artifact/));
    assert.throws(() => dockerIndexToOci(oci), unsupported(/not a Docker manifest list/));
    assert.throws(() => ociIndexToDocker(dockerList()), unsupported(/not an OCI index/));
  });
});
