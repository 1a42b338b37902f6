import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
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

/**
 * The same conversions done by skopeo (a real peer): berth's result must equal skopeo's,
 * field for field, in both directions, and skopeo's documents must pass berth's validation.
 */
describe('conversion agrees with skopeo', () => {
  const skopeoMissing = spawnSync('skopeo', ['--version']).status === 0 ? undefined : 'skopeo is not installed (apt-get install -y skopeo)';
  let work: string;

  before(async () => {
    if (skopeoMissing) return;
    work = await mkdtemp(join(tmpdir(), 'berth-docker-conv-'));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  function writeBlob(layout: string, bytes: Uint8Array): Descriptor['digest'] {
    const digest = digestOf(bytes);
    writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
    return digest;
  }

  /** An OCI layout with one image: a gzip layer and an uncompressed layer, built from real tars. */
  function ociLayout(dir: string): ImageManifest {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const files = join(dir, '..', `${basename(dir)}-files`);
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, 'a.txt'), 'layer one\n');
    writeFileSync(join(files, 'b.txt'), 'layer two\n');
    const tarOf = (name: string): Buffer => execFileSync('tar', ['-C', files, '--owner=0', '--group=0', '--mtime=@0', '-cf', '-', name]);
    const tar1 = tarOf('a.txt');
    const tar2 = tarOf('b.txt');
    const gz1 = gzipSync(tar1);
    const config = Buffer.from(
      JSON.stringify({
        created: '2024-01-31T12:00:00Z',
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [digestOf(tar1), digestOf(tar2)] },
        history: [{ created_by: 'ADD a.txt' }, { created_by: 'ADD b.txt' }],
      }),
    );
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.imageManifest,
      config: { mediaType: MediaType.imageConfig, digest: writeBlob(dir, config), size: config.length },
      layers: [
        { mediaType: MediaType.layerTarGzip, digest: writeBlob(dir, gz1), size: gz1.length },
        { mediaType: MediaType.layerTar, digest: writeBlob(dir, tar2), size: tar2.length },
      ],
    };
    const { bytes, descriptor } = encodeDocument(manifest, MediaType.imageManifest);
    writeBlob(dir, bytes);
    const index = { schemaVersion: 2, manifests: [{ ...descriptor, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] };
    writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
    return manifest;
  }

  function skopeo(...args: string[]): void {
    const r = spawnSync('skopeo', ['--insecure-policy', 'copy', '--quiet', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `skopeo ${args.join(' ')} failed: ${r.stderr}`);
  }

  it('OCI → Docker schema 2 like `skopeo copy --format v2s2`, and back like `--format oci`', (t) => {
    if (skopeoMissing) {
      t.skip(skopeoMissing);
      return;
    }
    const src = join(work, 'oci');
    const oci = ociLayout(src);
    const dockerDir = join(work, 'docker-dir');
    skopeo('--format', 'v2s2', `oci:${src}:v1`, `dir:${dockerDir}`);
    const skopeoDockerBytes = readFileSync(join(dockerDir, 'manifest.json'));
    const skopeoDocker = parseManifestOrIndex(skopeoDockerBytes).manifest!;
    assert.equal(skopeoDocker.mediaType, MediaType.dockerManifest);
    assert.deepEqual(ociManifestToDocker(oci), skopeoDocker);

    const back = join(work, 'oci-back');
    // skopeo compresses uncompressed layers written to oci: unless told not to.
    skopeo('--format', 'oci', '--dest-oci-accept-uncompressed-layers', `dir:${dockerDir}`, `oci:${back}:v1`);
    const backIndex = validateIndex(JSON.parse(readFileSync(join(back, 'index.json'), 'utf8')));
    const backDesc = backIndex.manifests[0]!;
    const skopeoOci = parseManifestOrIndex(readFileSync(join(back, 'blobs', 'sha256', backDesc.digest.slice(7))), backDesc.mediaType).manifest!;
    assert.deepEqual(dockerManifestToOci(skopeoDocker), skopeoOci);
    assert.deepEqual(skopeoOci, oci, 'the round trip through skopeo reproduces the original');
  });
});
