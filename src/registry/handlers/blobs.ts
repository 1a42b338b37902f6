/** end-2 (GET/HEAD blob, with Range) and end-10 (DELETE blob). */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestingStream, digestOf, parseDigest } from '../../base/digest.js';
import { RegistryError } from '../errors.js';
import { API_VERSION, API_VERSION_HEADER, parseRange, sendEmpty } from '../http-util.js';
import { checkDigest } from '../names.js';
import { SMALL_BLOB_BYTES, type Registry } from '../registry.js';

function corruptBlob(digest: string): RegistryError {
  return new RegistryError(500, 'INTERNAL', `stored blob ${digest} does not match its digest: run "berth registry verify" and push it again`);
}

function blobUnknown(name: string, digest: string): RegistryError {
  return new RegistryError(404, 'BLOB_UNKNOWN', `blob ${digest} is unknown in ${name}`, { digest });
}

function blobHeaders(digest: string): OutgoingHttpHeaders {
  return {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    'Cache-Control': 'max-age=31536000',
    [API_VERSION_HEADER]: API_VERSION,
  };
}

export async function getBlob(reg: Registry, req: IncomingMessage, res: ServerResponse, name: string, digest: string): Promise<void> {
  checkDigest(digest);
  const head = req.method === 'HEAD';
  let size = await reg.meta.repoBlob(name, digest);
  if (size === undefined && reg.proxy?.covers(name)) {
    const got = await reg.proxy.blob(name, digest);
    if (got.kind === 'arriving') {
      const { spool } = got;
      // Arriving from the upstream: every client reads it as it arrives (a range waits for the whole).
      if (spool.size !== undefined && (head || req.headers.range === undefined)) {
        const stream = head ? undefined : spool.stream();
        if (head || stream) return sendArriving(res, digest, spool.size, stream);
      }
      if (!(await spool.finished)) throw new RegistryError(502, 'INTERNAL', `blob ${digest} could not be fetched from the upstream: try again`);
      await reg.proxy.blob(name, digest);
    }
    size = await reg.meta.repoBlob(name, digest);
  }
  let inline: Buffer | undefined;
  if (size === undefined) {
    // Manifests are content too; some clients fetch them through the blobs endpoint.
    const m = await reg.manifest(name, digest, true);
    if (!m) throw blobUnknown(name, digest);
    size = m.size;
    inline = m.content;
  }
  const range = parseRange(req.headers.range, size);
  if (range === 'invalid') {
    throw new RegistryError(416, 'RANGE_INVALID', `range ${req.headers.range} is not satisfiable for a blob of ${size} bytes`, undefined, {
      'Content-Range': `bytes */${size}`,
    });
  }
  const headers = blobHeaders(digest);
  const status = range ? 206 : 200;
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
  const length = range ? range.end - range.start + 1 : size;
  headers['Content-Length'] = length;
  if (head) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  if (inline === undefined && reg.config.redirect && reg.blobs.presign) {
    // Object storage serves the bytes (and ranges) itself, as distribution's `redirect` does.
    res.writeHead(307, { Location: await reg.blobs.presign(digest), 'Docker-Content-Digest': digest, 'Content-Length': 0, [API_VERSION_HEADER]: API_VERSION });
    res.end();
    return;
  }
  if (inline === undefined && size <= SMALL_BLOB_BYTES) {
    inline = reg.smallBlobs.get(digest);
    if (inline === undefined) {
      const data = await reg.blobs.readSmall(digest);
      if (data.length !== size) throw new RegistryError(500, 'INTERNAL', `stored blob ${digest} has the wrong size: run "berth registry verify"`);
      // Never serve content whose digest does not match: checked once, before it enters the cache.
      if (digestOf(data, parseDigest(digest).algorithm) !== digest) throw corruptBlob(digest);
      reg.smallBlobs.set(digest, data);
      inline = data;
    }
  }
  if (inline !== undefined) {
    res.writeHead(status, headers);
    res.end(range ? inline.subarray(range.start, range.end + 1) : inline);
    return;
  }
  const file = reg.blobs.read(digest, range);
  // A whole blob is hashed on its way out; on a mismatch the response is cut before its end, so
  // a client never receives a complete body that does not match its digest. A range cannot be
  // checked by itself: `berth registry verify` covers data at rest.
  const stream: Readable = range ? file : file.pipe(new DigestingStream({ expectedDigest: digest, expectedSize: size, holdLast: true }));
  if (stream !== file) {
    file.once('open', () => stream.emit('open'));
    file.once('error', (err) => stream.destroy(err));
  }
  await new Promise<void>((resolve) => {
    stream.once('open', () => {
      res.writeHead(status, headers);
      stream.pipe(res);
    });
    stream.once('error', (err) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'application/json', [API_VERSION_HEADER]: API_VERSION });
        res.end(new RegistryError(500, 'INTERNAL', `stored blob ${digest} cannot be read: ${(err as Error).message}`).body());
      } else res.destroy(err);
      resolve();
    });
    stream.once('end', resolve);
    res.once('close', () => {
      stream.destroy();
      resolve();
    });
  });
}

/** A blob arriving from a pull-through cache's upstream: the whole body, cut short if it fails verification. */
async function sendArriving(res: ServerResponse, digest: string, size: number, stream: Readable | undefined): Promise<void> {
  res.writeHead(200, { ...blobHeaders(digest), 'Content-Length': size });
  if (!stream) {
    res.end();
    return;
  }
  await pipeline(stream, res).catch(() => res.destroy());
}

export async function deleteBlob(reg: Registry, res: ServerResponse, name: string, digest: string): Promise<void> {
  checkDigest(digest);
  if (!reg.config.deleteEnabled) {
    throw new RegistryError(405, 'UNSUPPORTED', 'deletion is disabled on this registry');
  }
  if (!(await reg.meta.unlinkBlob(name, digest))) throw blobUnknown(name, digest);
  // The bytes stay until garbage collection finds no repository and no manifest using them.
  sendEmpty(res, 202, { 'Docker-Content-Digest': digest });
}
