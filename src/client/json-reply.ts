/**
 * A registry's (or token server's) JSON answer: the tags list, a referrers index, the catalog, a
 * token. What is not the JSON expected — an HTML login page from a proxy, a truncated body, a
 * list of numbers — is a REGISTRY_ERROR that names the URL that answered, not a SyntaxError or a
 * TypeError further on.
 */
import { BerthError } from '../base/errors.js';
import { MAX_MANIFEST_BYTES, readAll } from '../base/read.js';
import type { HttpResponse } from './http.js';

/** Says what is wrong with a parsed document, or undefined when it has the expected shape. */
export type ShapeCheck = (doc: unknown) => string | undefined;

/** Reads and parses `res`'s body; `what` says what was being done ("listing tags of …"). */
export async function readJsonReply<T>(res: HttpResponse, what: string, check: ShapeCheck, limit = MAX_MANIFEST_BYTES): Promise<T> {
  const bytes = await readAll(res.body, limit, `the answer from ${res.url.href}`);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    const type = res.headers['content-type'] ?? 'no Content-Type';
    throw notExpected(res, what, `${bytes.length} bytes of ${type} that are not JSON`);
  }
  const problem = check(doc);
  if (problem !== undefined) throw notExpected(res, what, `JSON ${problem}`);
  return doc as T;
}

function notExpected(res: HttpResponse, what: string, got: string): BerthError {
  return new BerthError(
    'REGISTRY_ERROR',
    `${what}: ${res.url.host} answered ${res.url.href} with ${got}, not the JSON a registry sends: check that ${res.url.host} is a registry (and not a proxy's or a web server's page)`,
  );
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringList = (v: unknown): boolean => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** `{"name": …, "tags": [string…]}` (distribution-spec end-8a; `null` or no list for none). */
export const tagList: ShapeCheck = (doc) =>
  !isObject(doc) ? 'that is not an object' : doc.tags != null && !isStringList(doc.tags) ? 'whose "tags" is not a list of strings' : undefined;

/** `{"repositories": [string…]}` (the `_catalog` extension). */
export const catalogPage: ShapeCheck = (doc) =>
  !isObject(doc) ? 'that is not an object' : doc.repositories != null && !isStringList(doc.repositories) ? 'whose "repositories" is not a list of strings' : undefined;

/** An image index whose `manifests` are descriptors (distribution-spec end-12a). */
export const referrersIndex: ShapeCheck = (doc) => {
  if (!isObject(doc)) return 'that is not an object';
  const list = doc.manifests;
  if (list == null) return undefined;
  if (!Array.isArray(list)) return 'whose "manifests" is not a list';
  const i = list.findIndex((d) => !isObject(d) || typeof d.digest !== 'string' || typeof d.mediaType !== 'string' || typeof d.size !== 'number');
  return i < 0 ? undefined : `whose manifests[${i}] is not a descriptor (mediaType, digest, size)`;
};

/** A token answer (token.md): an object; the caller checks for the token itself. */
export const tokenAnswer: ShapeCheck = (doc) => (isObject(doc) ? undefined : 'that is not an object');
