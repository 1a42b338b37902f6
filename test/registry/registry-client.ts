/** Minimal HTTP helpers for the registry tests (fetch against a running `berth serve`). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function sha512(data: Buffer | string): string {
  return `sha512:${createHash('sha512').update(data).digest('hex')}`;
}

/** Asserts the spec's JSON error body and returns the first code. */
export async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { errors?: { code: string; message?: string }[] };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `error body must hold errors[]: ${JSON.stringify(body)}`);
  for (const e of body.errors) assert.match(e.code, /^[A-Z_]+$/);
  return body.errors[0]!.code;
}

export async function errorCodes(res: Response): Promise<string[]> {
  const body = (await res.json()) as { errors: { code: string }[] };
  return body.errors.map((e) => e.code);
}

/** POST then PUT; returns the digest. */
export async function pushBlob(base: string, repo: string, data: Buffer | string, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(data);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
  assert.equal(post.status, 202, `POST upload: ${post.status} ${await post.text()}`);
  const loc = new URL(post.headers.get('location')!, base);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, { method: 'PUT', body: data, headers: { 'Content-Type': 'application/octet-stream', ...headers } });
  assert.equal(put.status, 201, `PUT upload: ${put.status} ${await put.text()}`);
  return digest;
}

export interface TestImage {
  manifest: Buffer;
  digest: string;
  config: Buffer;
  layer: Buffer;
}

/** Pushes a config and a layer, and returns an image manifest (not yet pushed) referencing them. */
export async function pushImageBlobs(base: string, repo: string, seed: string, extra: Record<string, unknown> = {}): Promise<TestImage> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, seed }));
  const layer = Buffer.from(`layer bytes of ${seed} `.repeat(20));
  await pushBlob(base, repo, config);
  await pushBlob(base, repo, layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length }],
      ...extra,
    }),
  );
  return { manifest, digest: sha256(manifest), config, layer };
}

export async function putManifest(base: string, repo: string, ref: string, body: Buffer, mediaType = OCI_MANIFEST): Promise<Response> {
  return fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body, headers: { 'Content-Type': mediaType } });
}

export async function pushImage(base: string, repo: string, tag: string, seed = tag, extra: Record<string, unknown> = {}): Promise<TestImage> {
  const img = await pushImageBlobs(base, repo, seed, extra);
  const res = await putManifest(base, repo, tag, img.manifest);
  assert.equal(res.status, 201, `PUT manifest: ${res.status} ${await res.text()}`);
  return img;
}
