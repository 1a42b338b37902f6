/** end-3 (GET/HEAD manifest), end-7a/b (PUT manifest, several tags), end-9 (DELETE manifest or tag). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { digestOf, parseDigest } from '../../base/digest.js';
import { RegistryError } from '../errors.js';
import { API_VERSION, API_VERSION_HEADER, readBody, sendEmpty } from '../http-util.js';
import { parsePushedManifest } from '../manifests.js';
import { checkDigest, checkTag, isDigestReference } from '../names.js';
import type { Registry } from '../registry.js';

/** The most tags one PUT may set (spec.md: SHOULD support at least 10; MAY answer 414 beyond). */
const MAX_TAGS_PER_PUT = 100;

function checkReference(reference: string): boolean {
  if (isDigestReference(reference)) {
    checkDigest(reference);
    return true;
  }
  checkTag(reference);
  return false;
}

export async function getManifest(reg: Registry, req: IncomingMessage, res: ServerResponse, name: string, reference: string): Promise<void> {
  const byDigest = checkReference(reference);
  const m = await reg.manifest(name, reference, byDigest);
  if (!m) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest ${reference} is unknown in ${name}`, { name, reference });
  res.writeHead(200, {
    'Content-Type': m.mediaType,
    'Content-Length': m.size,
    'Docker-Content-Digest': m.digest,
    ETag: `"${m.digest}"`,
    [API_VERSION_HEADER]: API_VERSION,
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  res.end(m.content);
}

export async function putManifest(reg: Registry, req: IncomingMessage, res: ServerResponse, name: string, reference: string, query: URLSearchParams): Promise<void> {
  const byDigest = checkReference(reference);
  const extraTags = query.getAll('tag');
  if (extraTags.length > MAX_TAGS_PER_PUT) {
    throw new RegistryError(414, 'UNSUPPORTED', `at most ${MAX_TAGS_PER_PUT} tags per request`);
  }
  for (const t of extraTags) checkTag(t);
  const body = await readBody(req, reg.config.maxManifestBytes);
  const parsed = parsePushedManifest(body, req.headers['content-type']);
  const digest = byDigest ? digestOf(body, parseDigest(reference).algorithm) : digestOf(body);
  if (byDigest && digest !== reference) {
    throw new RegistryError(400, 'DIGEST_INVALID', `the manifest hashes to ${digest}, not ${reference}`, { expected: reference, actual: digest });
  }
  const tags = [...new Set([...(byDigest ? [] : [reference]), ...extraTags])];
  const { missing } = await reg.meta.putManifest({
    repo: name,
    digest,
    mediaType: parsed.mediaType,
    size: body.length,
    content: body,
    blobRefs: parsed.blobRefs,
    manifestRefs: parsed.manifestRefs,
    subject: parsed.subject,
    artifactType: parsed.artifactType,
    annotations: parsed.annotations,
    tags,
    sparse: reg.config.sparseManifests,
  });
  if (missing.length > 0 && !reg.config.sparseManifests) {
    const [first, ...rest] = missing.map((d) => ({
      code: 'MANIFEST_BLOB_UNKNOWN' as const,
      message: `the manifest references ${d}, which is not in ${name}: push it first`,
      detail: { digest: d },
    }));
    throw new RegistryError(400, 'MANIFEST_BLOB_UNKNOWN', first!.message, first!.detail, undefined, rest);
  }
  reg.invalidateManifests();
  const headers: Record<string, string | string[]> = { Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest };
  if (parsed.subject) headers['OCI-Subject'] = parsed.subject;
  if (extraTags.length > 0) headers['OCI-Tag'] = [...new Set(extraTags)];
  sendEmpty(res, 201, headers);
}

export async function deleteManifest(reg: Registry, res: ServerResponse, name: string, reference: string): Promise<void> {
  const byDigest = checkReference(reference);
  if (!reg.config.deleteEnabled) throw new RegistryError(405, 'UNSUPPORTED', 'deletion is disabled on this registry');
  const removed = byDigest ? await reg.meta.deleteManifest(name, reference) : await reg.meta.deleteTag(name, reference);
  reg.invalidateManifests();
  if (!removed) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest ${reference} is unknown in ${name}`, { name, reference });
  sendEmpty(res, 202);
}
