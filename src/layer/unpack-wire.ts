/**
 * What the unpack pool (unpack-pool.ts) and its worker threads (unpack-worker.ts) send each
 * other: a job, the blob's bytes, the result, and errors, which cross the thread boundary as
 * plain data (structured clone keeps neither BerthError's class nor its code).
 */
import { BerthError, type ErrorCode } from '../base/errors.js';
import type { MessagePort } from 'node:worker_threads';
import type { ApplyOptions, ApplyResult } from './apply.js';
import type { BlobDescriptor } from './decompress.js';

/** The options a worker can apply: everything but idMap (functions do not cross threads). */
export type WorkerApplyOptions = Omit<ApplyOptions, 'idMap'>;

/** main → worker, on its parentPort; `port` carries the rest of the job. */
export interface JobMessage {
  port: MessagePort;
  root: string;
  layer: BlobDescriptor;
  apply: WorkerApplyOptions;
  /** Also measure the unpacked tree (walk.ts diskUsage) before answering. */
  usage: boolean;
}

/** main → worker on the job's port: the next bytes of the blob, its end, or its failure. */
export type FeedMessage = { type: 'chunk'; data: Uint8Array } | { type: 'end' } | { type: 'abort'; message: string };

/** worker → main on the job's port: ask for more bytes, or the outcome. */
export type ReplyMessage = { type: 'more' } | { type: 'done'; result: WireResult } | { type: 'error'; error: WireError };

export interface WireResult {
  diffId: string;
  entries: number;
  bytes: number;
  ownership?: [string, { uid: number; gid: number }][];
  notes?: string[];
  usage?: { bytes: number; entries: number };
}

export interface WireError {
  message: string;
  /** Set for a BerthError. */
  berthCode?: ErrorCode;
  detail?: unknown;
  /** A system or zlib error's fields (describeStreamError reads code). */
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

export function resultToWire(r: ApplyResult, usage?: { bytes: number; entries: number }): WireResult {
  return {
    diffId: r.diffId,
    entries: r.entries,
    bytes: r.bytes,
    ...(r.ownership ? { ownership: [...r.ownership] } : {}),
    ...(r.notes ? { notes: r.notes } : {}),
    ...(usage ? { usage } : {}),
  };
}

export function resultFromWire(w: WireResult): ApplyResult {
  return {
    diffId: w.diffId,
    entries: w.entries,
    bytes: w.bytes,
    ...(w.ownership ? { ownership: new Map(w.ownership) } : {}),
    ...(w.notes ? { notes: w.notes } : {}),
  };
}

export function errorToWire(err: unknown): WireError {
  if (err instanceof BerthError) {
    return { message: err.message, berthCode: err.code, ...(err.detail !== undefined ? { detail: err.detail } : {}) };
  }
  const e = err as NodeJS.ErrnoException;
  const out: WireError = { message: e instanceof Error ? e.message : String(err) };
  if (typeof e?.code === 'string') out.code = e.code;
  if (typeof e?.errno === 'number') out.errno = e.errno;
  if (typeof e?.syscall === 'string') out.syscall = e.syscall;
  if (typeof e?.path === 'string') out.path = e.path;
  return out;
}

export function errorFromWire(w: WireError): Error {
  if (w.berthCode !== undefined) return new BerthError(w.berthCode, w.message, w.detail !== undefined ? { detail: w.detail } : undefined);
  const err = new Error(w.message) as NodeJS.ErrnoException;
  if (w.code !== undefined) err.code = w.code;
  if (w.errno !== undefined) err.errno = w.errno;
  if (w.syscall !== undefined) err.syscall = w.syscall;
  if (w.path !== undefined) err.path = w.path;
  return err;
}
