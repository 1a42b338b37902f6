/** end-8a/b (tags list), end-12a/b (referrers), and `_catalog`, with n/last pagination and Link. */
import type { ServerResponse } from 'node:http';
import { MediaType } from '../../base/media-types.js';
import { RegistryError } from '../errors.js';
import { sendJson } from '../http-util.js';
import { checkDigest, checkTag } from '../names.js';
import type { Registry } from '../registry.js';

const CATALOG_DEFAULT_PAGE = 1000;
const MAX_PAGE = 10_000;

function pageSize(query: URLSearchParams, fallback: number | undefined): number | undefined {
  const n = query.get('n');
  if (n === null || n === '') return fallback;
  if (!/^\d+$/.test(n)) throw new RegistryError(400, 'UNSUPPORTED', `n must be a non-negative integer, got ${JSON.stringify(n)}`);
  return Math.min(Number(n), MAX_PAGE);
}

function nextLink(path: string, n: number, last: string): string {
  return `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}

export async function listTags(reg: Registry, res: ServerResponse, name: string, query: URLSearchParams): Promise<void> {
  if (!(await reg.meta.repoExists(name))) throw new RegistryError(404, 'NAME_UNKNOWN', `repository ${name} is unknown`, { name });
  const n = pageSize(query, undefined);
  const last = query.get('last') ?? undefined;
  if (last !== undefined && last !== '') checkTag(last);
  if (n === 0) {
    sendJson(res, 200, { name, tags: [] });
    return;
  }
  const limit = n ?? Number.MAX_SAFE_INTEGER;
  const tags = await reg.meta.listTags(name, last || undefined, n === undefined ? -1 : limit + 1);
  const headers: Record<string, string> = {};
  if (n !== undefined && tags.length > n) {
    tags.length = n;
    headers.Link = nextLink(`/v2/${name}/tags/list`, n, tags[n - 1]!);
  }
  sendJson(res, 200, { name, tags }, headers);
}

export async function listCatalog(reg: Registry, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const n = pageSize(query, CATALOG_DEFAULT_PAGE)!;
  const last = query.get('last') || undefined;
  if (n === 0) {
    sendJson(res, 200, { repositories: [] });
    return;
  }
  const repos = await reg.meta.listRepositories(last, n + 1);
  const headers: Record<string, string> = {};
  if (repos.length > n) {
    repos.length = n;
    headers.Link = nextLink('/v2/_catalog', n, repos[n - 1]!);
  }
  sendJson(res, 200, { repositories: repos }, headers);
}

export async function listReferrers(reg: Registry, res: ServerResponse, name: string, digest: string, query: URLSearchParams): Promise<void> {
  checkDigest(digest);
  const artifactType = query.get('artifactType') ?? undefined;
  const manifests = await reg.meta.referrers(name, digest, artifactType || undefined);
  const headers: Record<string, string> = {};
  if (artifactType) headers['OCI-Filters-Applied'] = 'artifactType';
  // spec.md: an unknown subject gets an empty index, never 404.
  sendJson(res, 200, { schemaVersion: 2, mediaType: MediaType.imageIndex, manifests }, headers, MediaType.imageIndex);
}
