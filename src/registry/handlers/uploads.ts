/** end-4a/b/c (POST uploads, with mount end-11), end-5 (PATCH), end-6 (PUT), end-13 (GET status), end-14 (DELETE). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DigestAlgorithm } from '../../base/digest.js';
import type { Principal } from '../auth/access.js';
import { RegistryError } from '../errors.js';
import { bodyExpected, contentLength, parseContentRange, sendEmpty } from '../http-util.js';
import { checkDigest, checkName } from '../names.js';
import type { Registry } from '../registry.js';
import { rangeHeader } from '../uploads.js';

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

function created(res: ServerResponse, name: string, digest: string): void {
  sendEmpty(res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
}

function sessionHeaders(name: string, id: string, size: number): Record<string, string> {
  return { Location: uploadLocation(name, id), Range: rangeHeader(size), 'Docker-Upload-UUID': id };
}

async function tryMount(reg: Registry, req: IncomingMessage, principal: Principal, name: string, digest: string, from: string | null): Promise<boolean> {
  const candidates = from !== null ? [checkName(from)] : await reg.meta.reposWithBlob(digest, 20);
  for (const repo of candidates) {
    const size = await reg.meta.repoBlob(repo, digest);
    if (size === undefined) continue;
    if (!(await reg.authorizer.canPull(principal, req, repo))) continue;
    await reg.digestLocks.run(digest, () => reg.meta.linkBlob(name, digest, size));
    return true;
  }
  return false;
}

export async function startUpload(
  reg: Registry,
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
  query: URLSearchParams,
  principal: Principal,
): Promise<void> {
  const mount = query.get('mount');
  if (mount !== null) {
    checkDigest(mount);
    // spec.md: `from` MAY be optional; without it any repository the client may pull from will do.
    if (await tryMount(reg, req, principal, name, mount, query.get('from'))) {
      created(res, name, mount);
      return;
    }
  }
  const digest = query.get('digest');
  let algorithm: DigestAlgorithm = 'sha256';
  const wanted = query.get('digest-algorithm');
  if (wanted !== null) {
    if (wanted !== 'sha256' && wanted !== 'sha512') {
      throw new RegistryError(400, 'DIGEST_INVALID', `unsupported digest-algorithm ${JSON.stringify(wanted)}: use sha256 or sha512`);
    }
    algorithm = wanted;
  }
  if (digest !== null && mount === null) {
    checkDigest(digest);
    algorithm = digest.startsWith('sha512:') ? 'sha512' : 'sha256';
    // end-4b: the whole blob in one POST.
    const id = await reg.uploads.start(name, algorithm);
    try {
      const length = contentLength(req);
      await reg.uploads.append(name, id, req, undefined, length);
      await reg.uploads.finish(name, id, digest);
    } catch (err) {
      await reg.uploads.cancel(name, id).catch(() => undefined);
      throw err;
    }
    created(res, name, digest);
    return;
  }
  const id = await reg.uploads.start(name, algorithm);
  const headers: Record<string, string> = sessionHeaders(name, id, 0);
  const minLength = reg.config.chunkMinLength || reg.blobs.chunkMinLength || 0;
  if (minLength > 0) headers['OCI-Chunk-Min-Length'] = String(minLength);
  sendEmpty(res, 202, headers);
}

export async function patchUpload(reg: Registry, req: IncomingMessage, res: ServerResponse, name: string, id: string): Promise<void> {
  const range = parseContentRange(req.headers['content-range'] as string | undefined);
  const length = contentLength(req);
  const size = await reg.uploads.append(name, id, req, range, length);
  sendEmpty(res, 202, sessionHeaders(name, id, size));
}

export async function putUpload(reg: Registry, req: IncomingMessage, res: ServerResponse, name: string, id: string, query: URLSearchParams): Promise<void> {
  const digest = query.get('digest');
  if (digest === null) {
    await reg.uploads.session(name, id);
    throw new RegistryError(400, 'DIGEST_INVALID', 'closing an upload needs ?digest=<digest of the whole blob>');
  }
  checkDigest(digest);
  if (bodyExpected(req)) {
    const range = parseContentRange(req.headers['content-range'] as string | undefined);
    await reg.uploads.append(name, id, req, range, contentLength(req));
  }
  await reg.uploads.finish(name, id, digest);
  created(res, name, digest);
}

export async function uploadStatus(reg: Registry, res: ServerResponse, name: string, id: string): Promise<void> {
  const size = await reg.uploads.size(name, id);
  sendEmpty(res, 204, sessionHeaders(name, id, size));
}

export async function cancelUpload(reg: Registry, res: ServerResponse, name: string, id: string): Promise<void> {
  await reg.uploads.cancel(name, id);
  sendEmpty(res, 204);
}
