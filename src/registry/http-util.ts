/** Small response and request-body helpers for the node:http handlers. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { RegistryError } from './errors.js';

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: OutgoingHttpHeaders = {}, contentType = 'application/json'): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { ...headers, 'Content-Type': contentType, 'Content-Length': body.length, [API_VERSION_HEADER]: API_VERSION });
  res.end(body);
}

export function sendEmpty(res: ServerResponse, status: number, headers: OutgoingHttpHeaders = {}): void {
  // RFC 9110 8.6: no Content-Length on a 204.
  const length = status === 204 ? {} : { 'Content-Length': 0 };
  res.writeHead(status, { ...headers, ...length, [API_VERSION_HEADER]: API_VERSION });
  res.end();
}

export function sendError(req: IncomingMessage, res: ServerResponse, err: RegistryError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(err.body());
  const headers: OutgoingHttpHeaders = {
    ...(err.headers ?? {}),
    'Content-Type': 'application/json',
    'Content-Length': req.method === 'HEAD' ? undefined : body.length,
    [API_VERSION_HEADER]: API_VERSION,
  };
  if (headers['Content-Length'] === undefined) delete headers['Content-Length'];
  // A request body we did not read would otherwise be drained before the next request.
  if (!req.complete && bodyExpected(req)) headers.Connection = 'close';
  res.writeHead(err.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Whether the request announces a body. */
export function bodyExpected(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return len !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/** Declared Content-Length, or undefined; 400 when malformed. */
export function contentLength(req: IncomingMessage): number | undefined {
  const len = req.headers['content-length'];
  if (len === undefined) return undefined;
  if (!/^\d+$/.test(len)) throw new RegistryError(400, 'SIZE_INVALID', `malformed Content-Length ${JSON.stringify(len)}`);
  return Number(len);
}

/** Bodies over a limit are still read (and discarded) up to this size, so that the client sees the 413. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

/** Reads a request body of at most `limit` bytes; 413 beyond it. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = contentLength(req);
  const tooLarge = () => new RegistryError(413, 'SIZE_INVALID', `body of ${declared ?? 'more than ' + limit} bytes is over the limit of ${limit} bytes`);
  if (declared !== undefined && declared > MAX_DRAIN_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_DRAIN_BYTES) throw tooLarge();
    if (size <= limit) chunks.push(chunk);
  }
  if (size > limit) throw tooLarge();
  return Buffer.concat(chunks, size);
}

/** Parses `Range: bytes=a-b | a- | -n` against `size`; undefined for "whole", 'invalid' for 416. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | 'invalid' {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return header.includes(',') ? undefined : 'invalid'; // several ranges: serve the whole blob (RFC 9110 allows it)
  const [, a, b] = m;
  let start: number;
  let end: number;
  if (a === '' && b === '') return 'invalid';
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'invalid';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return 'invalid';
  }
  if (start >= size) return 'invalid';
  return { start, end };
}

/** Parses a chunk's Content-Range (`<start>-<end>`, spec.md; `bytes ` prefix and `/total` tolerated). */
export function parseContentRange(header: string | undefined): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m || Number(m[2]) < Number(m[1])) {
    throw new RegistryError(416, 'BLOB_UPLOAD_INVALID', `malformed Content-Range ${JSON.stringify(header)}: expected <start>-<end>`);
  }
  return { start: Number(m[1]), end: Number(m[2]) };
}
