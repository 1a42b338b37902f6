/** Test-only: images built from fixture tar entries, written into an OCI layout (the local store) and tagged. */
import { spawn } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import type { OciLayout } from '../../src/image/layout.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../../src/base/types.js';
import { sha256, tarArchive, type FixtureEntry } from '../layer/tar-fixture.js';

export interface FixtureImage {
  manifestDesc: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** The uncompressed layer tars, base first. */
  tars: Buffer[];
}

async function putBlob(layout: OciLayout, mediaType: string, bytes: Buffer): Promise<Descriptor> {
  const desc = { mediaType, digest: sha256(bytes), size: bytes.length };
  await layout.push(desc, Readable.from([bytes]));
  return desc;
}

/** Writes an image whose layers hold `layers` (gzip), tags it `tag`; `diffIdOverride` corrupts a diff_id. */
export async function storeFixtureImage(
  layout: OciLayout,
  tag: string,
  layers: FixtureEntry[][],
  opts: { diffIdOverride?: Record<number, string> } = {},
): Promise<FixtureImage> {
  const tars = layers.map((entries) => tarArchive(entries));
  const layerDescs: Descriptor[] = [];
  for (const tar of tars) layerDescs.push(await putBlob(layout, 'application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(tar)));
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: tars.map((t, i) => opts.diffIdOverride?.[i] ?? sha256(t)) },
  } as ImageConfig;
  const configDesc = await putBlob(layout, 'application/vnd.oci.image.config.v1+json', Buffer.from(JSON.stringify(config)));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: configDesc,
    layers: layerDescs,
  } as ImageManifest;
  const manifestDesc = await putBlob(layout, 'application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify(manifest)));
  await layout.tag(manifestDesc, tag);
  return { manifestDesc, manifest, config, tars };
}

const T = 1_700_000_000;

/** A base layer: dirs, files, a symlink, a hardlink pair, files to delete later. */
export const BASE: FixtureEntry[] = [
  { path: 'etc/', type: 'dir', mtime: T },
  { path: 'etc/os-release', body: 'ID=fixture\n', mtime: T },
  { path: 'a/', type: 'dir', mtime: T },
  { path: 'a/b/', type: 'dir', mtime: T },
  { path: 'a/b/file', body: 'deep', mtime: T },
  { path: 'd/', type: 'dir', mode: 0o750, mtime: T },
  { path: 'd/x', body: 'x', mtime: T },
  { path: 'd/y', body: 'y', mtime: T },
  { path: 'e/', type: 'dir', mtime: T },
  { path: 'e/old', body: 'old', mtime: T },
  { path: 'f', body: 'gone soon', mtime: T },
  { path: 'bin/', type: 'dir', mtime: T },
  { path: 'bin/tool', body: '#!/bin/sh\n', mode: 0o755, mtime: T },
  { path: 'bin/alias', type: 'hardlink', linkname: 'bin/tool', mtime: T },
  { path: 'link', type: 'symlink', linkname: 'etc/os-release', mtime: T },
  { path: 'keep', body: 'kept', uid: 1000, gid: 1000, mode: 0o600, mtime: T },
];

/** Deletes a file and a directory, makes d opaque with a new child, replaces a file by a directory. */
export const CHANGES: FixtureEntry[] = [
  { path: '.wh.f', mtime: T + 1 },
  { path: '.wh.a', mtime: T + 1 },
  { path: 'd/', type: 'dir', mode: 0o755, mtime: T + 1 },
  { path: 'd/.wh..wh..opq', mtime: T + 1 },
  { path: 'd/z', body: 'z', mtime: T + 1 },
  { path: 'keep/', type: 'dir', mtime: T + 1 },
  { path: 'keep/inside', body: 'now a dir', mtime: T + 1 },
  { path: 'n', body: 'new', mtime: T + 1 },
];

/** Deletes e and makes a new e in the same layer (its old content must not show), deletes n. */
export const TOP: FixtureEntry[] = [
  { path: '.wh.e', mtime: T + 2 },
  { path: 'e/', type: 'dir', mtime: T + 2 },
  { path: 'e/new', body: 'new', mtime: T + 2 },
  { path: '.wh.n', mtime: T + 2 },
  { path: 'etc/', type: 'dir', mtime: T + 2 },
  { path: 'etc/hostname', body: 'top\n', mtime: T + 2 },
];

/** A layer of many small files under DIR/: slow enough to kill in the middle of its unpack. */
export function manyFiles(n: number, dir = 'many'): FixtureEntry[] {
  const entries: FixtureEntry[] = [{ path: `${dir}/`, type: 'dir', mtime: T }];
  for (let i = 0; i < n; i++) entries.push({ path: `${dir}/f${i}`, body: `${dir} ${i}\n`.repeat(40), mtime: T });
  return entries;
}

export interface ChildRun {
  done: Promise<{ code: number | null; out: string; err: string }>;
  pid: number;
}

/** Runs an ES module script in a separate Node process (a second berth process), collecting its output. */
export function nodeScript(script: string): ChildRun {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { done: new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err }))), pid: child.pid! };
}
