/** Small real images and artifacts for client and copy tests: ustar layers, configs, manifests, indexes. */
import { gzipSync } from 'node:zlib';
import { digestOf } from '../../src/base/digest.js';
import { MediaType } from '../../src/base/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../../src/base/types.js';
import assert from 'node:assert/strict';
import type { RegistryClient } from '../../src/client/registry.js';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';

function header(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

/** An uncompressed tar of regular files. */
export function tarOf(files: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    parts.push(header(name, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface TestImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

/** Adds a gzip-layered image to the store and returns its descriptors. */
export function addImage(
  store: MemoryStore,
  opts: { files: Record<string, string | Buffer>[]; platform?: Platform; docker?: boolean; label?: string },
): TestImage {
  const platform = opts.platform ?? { architecture: 'amd64', os: 'linux' };
  const layerType = opts.docker ? MediaType.dockerLayerGzip : MediaType.layerTarGzip;
  const tars = opts.files.map((f) => tarOf(f));
  const layers = tars.map((t) => store.add(layerType, gzipSync(t)));
  const config = store.addJson(opts.docker ? MediaType.dockerConfig : MediaType.imageConfig, {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Cmd: ['/bin/sh'], Labels: { 'test.label': opts.label ?? 'berth' } },
    rootfs: { type: 'layers', diff_ids: tars.map((t) => digestOf(t)) },
  });
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: opts.docker ? MediaType.dockerManifest : MediaType.imageManifest,
    config,
    layers,
  };
  const desc = store.addJson(manifest.mediaType!, manifest);
  return { manifest: { ...desc, platform }, config, layers };
}

export function addIndex(store: MemoryStore, manifests: Descriptor[], docker = false): Descriptor {
  const mediaType = docker ? MediaType.dockerManifestList : MediaType.imageIndex;
  const index: ImageIndex = { schemaVersion: 2, mediaType, manifests };
  return store.addJson(mediaType, index);
}

/** An artifact manifest (empty config, files as layers) whose subject is `subject`. */
export function addArtifact(store: MemoryStore, subject: Descriptor, artifactType: string, content: string, annotations: Record<string, string> = {}): Descriptor {
  const empty = store.add(MediaType.empty, '{}');
  const layer = store.add('application/vnd.berth.test+json', content, { annotations: { 'org.opencontainers.image.title': 'payload.json' } });
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.imageManifest,
    artifactType,
    config: { mediaType: MediaType.empty, digest: empty.digest, size: empty.size },
    layers: [layer],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    ...(Object.keys(annotations).length ? { annotations } : {}),
  };
  return store.addJson(MediaType.imageManifest, manifest);
}

/** A few random-ish kilobytes so that layers differ between tests. */
export function noise(kb: number, seed: string): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; out.length * 32 < kb * 1024; i++) out.push(Buffer.from(digestOf(`${seed}-${i}`).slice(7, 71), "hex"));
  return Buffer.concat(out).subarray(0, kb * 1024);
}

/** Pushes a small two-layer image to `host/repo:v1` through `client` and pulls it back, digests compared. */
export async function pushAndPull(client: RegistryClient, host: string, repo: string): Promise<void> {
  const src = new MemoryStore();
  const img = addImage(src, { files: [{ f: `${repo} one` }, { g: `${repo} two` }] });
  await src.tag(img.manifest, 'v1');
  await copy(src, 'v1', client.repository(host, repo), 'v1');
  const back = new MemoryStore();
  const result = await copy(client.repository(host, repo), 'v1', back, 'v1');
  assert.equal(result.descriptor.digest, img.manifest.digest);
  for (const layer of img.layers) assert.ok(await back.exists(layer), `layer ${layer.digest} missing after the pull`);
}
