/** Reading small JSON documents (manifests, indexes, configs) from any Fetcher, size-capped. */
import type { Readable } from 'node:stream';
import { BerthError } from './errors.js';
import type { Descriptor } from './types.js';
import type { Fetcher } from './target.js';

/** distribution-spec: registries MAY refuse manifests over 4 MiB; we never read more into memory. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Reads a whole stream into memory, failing with TOO_LARGE past `limit` bytes (`what` names it there). */
export async function readAll(stream: Readable, limit: number = MAX_MANIFEST_BYTES, what = 'document'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      stream.destroy();
      throw new BerthError('TOO_LARGE', `${what} is larger than ${limit} bytes: refusing to read it into memory`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Fetches a blob (verified by the fetcher) and returns its bytes; for manifests and configs. */
export async function fetchBytes(fetcher: Fetcher, desc: Descriptor, limit: number = MAX_MANIFEST_BYTES): Promise<Buffer> {
  if (desc.size > limit) {
    throw new BerthError('TOO_LARGE', `${desc.digest} is ${desc.size} bytes, over the ${limit}-byte limit for documents`);
  }
  return readAll(await fetcher.fetch(desc), limit);
}

/** Fetches and parses a JSON blob. */
export async function fetchJson<T = unknown>(fetcher: Fetcher, desc: Descriptor, limit?: number): Promise<T> {
  const bytes = await fetchBytes(fetcher, desc, limit);
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw new BerthError('MANIFEST_INVALID', `${desc.digest} (${desc.mediaType}) is not valid JSON: ${(err as Error).message}`);
  }
}
