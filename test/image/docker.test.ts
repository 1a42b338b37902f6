import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { isBerthError } from '../../src/base/errors.js';
import { digestOf } from '../../src/base/digest.js';
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
import { EMPTY_JSON_DIGEST, MediaType } from '../../src/base/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../../src/base/types.js';
import { parseManifestOrIndex, validateIndex, validateManifest } from '../../src/image/validate.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const D = (c: string): string => `sha256:${c.repeat(64)}`;

// Field order as docker writes it (distribution's Descriptor: mediaType, size, digest).
const dockerManifest = (): ImageManifest => ({
  schemaVersion: 2,
  mediaType: MediaType.dockerManifest,
  config: { mediaType: MediaType.dockerConfig, size: 7023, digest: D('1') },
  layers: [
    { mediaType: MediaType.dockerLayerGzip, size: 32654, digest: D('2') },
    { mediaType: DOCKER_LAYER_TAR, size: 16724, digest: D('3') },
    { mediaType: MediaType.dockerForeignLayerGzip, size: 73109, digest: D('4'), urls: ['https://example.com/foreign'] },
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

  it('round-trips OCI → Docker → OCI exactly, annotations aside', () => {
    const docker = ociManifestToDocker(ociManifest());
    assert.equal(docker.mediaType, MediaType.dockerManifest);
    assert.equal(docker.config.mediaType, MediaType.dockerConfig);
    assert.deepEqual(docker.layers.map((l) => l.mediaType), [MediaType.dockerLayerGzip, DOCKER_LAYER_TAR]);
    const back = dockerManifestToOci(docker);
    assert.equal(back.layers[0]!.annotations, undefined, 'schema 2 descriptors have no annotations');
    const expected = ociManifest();
    delete expected.layers[0]!.annotations;
    assert.deepEqual(back, expected);
  });

  it('drops annotations going to Docker (schema 2 has none) and keeps them going to OCI', () => {
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

  it('sorts annotation keys as Go does and keeps unusual keys as data', () => {
    const annotations = JSON.parse('{"z":"1","__proto__":"p","a":"2"}') as Record<string, string>;
    const oci = dockerManifestToOci({ ...dockerManifest(), annotations });
    assert.deepEqual(Object.keys(oci.annotations!), ['__proto__', 'a', 'z']);
    assert.equal(JSON.stringify(oci.annotations), '{"__proto__":"p","a":"2","z":"1"}');
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
 * The same conversions done by skopeo (a real peer): berth's converted documents must be byte for
 * byte the ones skopeo writes (so the digests agree), for manifests and for manifest lists, in
 * both directions.
 */
describe('conversion agrees with skopeo byte for byte', () => {
  const skopeoMissing = skipUnless(peer('skopeo', 'skopeo'));
  let work = '';

  before(async () => {
    if (!skopeoMissing) work = await mkdtemp(join(tmpdir(), 'berth-docker-conv-'));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const blobPath = (layout: string, digest: string): string => join(layout, 'blobs', 'sha256', digest.slice(7));

  function writeBlob(layout: string, bytes: Uint8Array): string {
    const digest = digestOf(bytes);
    writeFileSync(blobPath(layout, digest), bytes);
    return digest;
  }

  /** An image in an OCI layout: a gzip layer and an uncompressed layer, built from real tars. */
  function writeImage(layout: string, architecture: string, layerAnnotations?: Record<string, string>): { manifest: ImageManifest; descriptor: Descriptor } {
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const files = `${layout}-files-${architecture}`;
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, 'a.txt'), `layer one for ${architecture}\n`);
    writeFileSync(join(files, 'b.txt'), 'layer two\n');
    const tarOf = (name: string): Buffer => execFileSync('tar', ['-C', files, '--owner=0', '--group=0', '--mtime=@0', '-cf', '-', name]);
    const tar1 = tarOf('a.txt');
    const tar2 = tarOf('b.txt');
    const gz1 = gzipSync(tar1);
    const config = Buffer.from(
      JSON.stringify({
        created: '2024-01-31T12:00:00Z',
        architecture,
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [digestOf(tar1), digestOf(tar2)] },
        history: [{ created_by: 'ADD a.txt' }, { created_by: 'ADD b.txt' }],
      }),
    );
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.imageManifest,
      config: { mediaType: MediaType.imageConfig, digest: writeBlob(layout, config), size: config.length },
      layers: [
        { mediaType: MediaType.layerTarGzip, digest: writeBlob(layout, gz1), size: gz1.length },
        { mediaType: MediaType.layerTar, digest: writeBlob(layout, tar2), size: tar2.length, ...(layerAnnotations ? { annotations: layerAnnotations } : {}) },
      ],
    };
    const { bytes, descriptor } = encodeDocument(manifest, MediaType.imageManifest);
    writeBlob(layout, bytes);
    return { manifest, descriptor };
  }

  function writeIndexJson(layout: string, ref: string, descriptor: Descriptor): void {
    const index = { schemaVersion: 2, manifests: [{ ...descriptor, annotations: { 'org.opencontainers.image.ref.name': ref } }] };
    writeFileSync(join(layout, 'index.json'), JSON.stringify(index));
  }

  /** The root descriptor skopeo wrote to an OCI layout. */
  function rootOf(layout: string): Descriptor {
    return validateIndex(JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'))).manifests[0]!;
  }

  function skopeo(...args: string[]): void {
    const r = spawnSync('skopeo', ['--insecure-policy', 'copy', '--quiet', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `skopeo ${args.join(' ')} failed: ${r.stderr}`);
  }

  it('converts a manifest to Docker schema 2 and back exactly as `skopeo copy --format v2s2 / oci` does', (t) => {
    if (skopeoMissing) {
      t.skip(skopeoMissing);
      return;
    }
    const src = join(work, 'single');
    const { manifest: oci, descriptor } = writeImage(src, 'amd64', { z: '1', a: '2' });
    writeIndexJson(src, 'v1', descriptor);

    const dockerDir = join(work, 'single-docker');
    skopeo('--format', 'v2s2', `oci:${src}:v1`, `dir:${dockerDir}`);
    const skopeoDockerBytes = readFileSync(join(dockerDir, 'manifest.json'));
    const berthDocker = convertOciManifestToDocker(oci);
    assert.equal(Buffer.from(berthDocker.bytes).toString(), skopeoDockerBytes.toString());
    assert.equal(berthDocker.descriptor.digest, digestOf(skopeoDockerBytes));

    // skopeo compresses uncompressed layers written to oci: unless told not to.
    const back = join(work, 'single-back');
    skopeo('--format', 'oci', '--dest-oci-accept-uncompressed-layers', `dir:${dockerDir}`, `oci:${back}:v1`);
    const root = rootOf(back);
    const skopeoOciBytes = readFileSync(blobPath(back, root.digest));
    const berthOci = convertDockerManifestToOci(parseManifestOrIndex(skopeoDockerBytes).manifest!);
    assert.equal(Buffer.from(berthOci.bytes).toString(), skopeoOciBytes.toString());
    assert.equal(berthOci.descriptor.digest, root.digest);
    // Both drop the layer annotations (schema 2 has none); all else survives the round trip.
    delete oci.layers[1]!.annotations;
    assert.deepEqual(berthOci.manifest, oci);
  });

  it('converts a multi-platform index to a manifest list and back exactly as `skopeo copy --all` does', (t) => {
    if (skopeoMissing) {
      t.skip(skopeoMissing);
      return;
    }
    const src = join(work, 'multi');
    const images = (['amd64', 'arm64'] as const).map((arch) => ({ arch, ...writeImage(src, arch) }));
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.imageIndex,
      manifests: images.map(({ arch, descriptor }) => ({ ...descriptor, platform: { architecture: arch, os: 'linux' } })),
    };
    const indexDoc = encodeDocument(index, MediaType.imageIndex);
    writeBlob(src, indexDoc.bytes);
    writeIndexJson(src, 'list', indexDoc.descriptor);

    const dockerDir = join(work, 'multi-docker');
    skopeo('--all', '--format', 'v2s2', `oci:${src}:list`, `dir:${dockerDir}`);
    const converted = new Map<string, Descriptor>();
    for (const { manifest, descriptor } of images) {
      const child = convertOciManifestToDocker(manifest);
      assert.equal(Buffer.from(child.bytes).toString(), readFileSync(join(dockerDir, `${child.descriptor.digest.slice(7)}.manifest.json`), 'utf8'));
      converted.set(descriptor.digest, child.descriptor);
    }
    const berthList = encodeDocument(ociIndexToDocker(index, converted), MediaType.dockerManifestList);
    const skopeoListBytes = readFileSync(join(dockerDir, 'manifest.json'));
    assert.equal(Buffer.from(berthList.bytes).toString(), skopeoListBytes.toString());

    const back = join(work, 'multi-back');
    skopeo('--all', '--format', 'oci', '--dest-oci-accept-uncompressed-layers', `dir:${dockerDir}`, `oci:${back}:list`);
    const skopeoList = parseManifestOrIndex(skopeoListBytes).index!;
    const toOci = new Map<string, Descriptor>();
    for (const d of skopeoList.manifests) {
      const child = convertDockerManifestToOci(parseManifestOrIndex(readFileSync(join(dockerDir, `${d.digest.slice(7)}.manifest.json`))).manifest!);
      toOci.set(d.digest, child.descriptor);
    }
    const berthIndex = encodeDocument(dockerIndexToOci(skopeoList, toOci), MediaType.imageIndex);
    const root = rootOf(back);
    assert.equal(Buffer.from(berthIndex.bytes).toString(), readFileSync(blobPath(back, root.digest), 'utf8'));
    assert.equal(berthIndex.descriptor.digest, root.digest);
    assert.equal(berthIndex.descriptor.digest, indexDoc.descriptor.digest, 'the round trip reproduces the original index');
  });
});
