/**
 * Test/bench-only: writes a minimal OCI image layout by hand (oci-layout, index.json with a
 * ref.name, blobs/sha256/…, manifest and config with rootfs.diff_ids), as umoci reads it.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { LayerSource } from '../../src/layer/unpack-layers.js';

export interface FixtureLayer {
  mediaType: string;
  /** A file holding the (compressed) blob. */
  file: string;
  /** sha256 of the uncompressed tar. */
  diffId: string;
}

async function fileDigest(file: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

function putJson(dir: string, value: unknown): { digest: string; size: number } {
  const bytes = Buffer.from(JSON.stringify(value));
  const hex = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(dir, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** Writes the layout and returns the layers as LayerSources reading from it. */
export async function writeOciLayout(dir: string, tag: string, layers: FixtureLayer[], opts: { move?: boolean } = {}): Promise<LayerSource[]> {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const descriptors: Array<{ mediaType: string; digest: string; size: number }> = [];
  const sources: LayerSource[] = [];
  for (const layer of layers) {
    const { digest, size } = await fileDigest(layer.file);
    const path = join(dir, 'blobs', 'sha256', digest.slice(7));
    if (opts.move) renameSync(layer.file, path);
    else copyFileSync(layer.file, path);
    descriptors.push({ mediaType: layer.mediaType, digest, size });
    sources.push({
      mediaType: layer.mediaType,
      digest,
      size,
      diffId: layer.diffId,
      open: async (): Promise<Readable> => createReadStream(path, { highWaterMark: 1 << 20 }),
    });
  }
  const config = putJson(dir, {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created_by: 'berth test fixture' })),
  });
  const manifest = putJson(dir, {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: descriptors,
  });
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return sources;
}
