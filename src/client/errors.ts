/** Turning a registry's error answer (distribution-spec "Error Codes") into a BerthError. */
import type { Readable } from 'node:stream';
import { BerthError, type ErrorCode } from '../base/errors.js';
import { readAll } from '../base/read.js';

export interface RegistryErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

/** Parses `{"errors":[{code,message,detail}]}`; anything else yields an empty list. */
export function parseErrorBody(body: Buffer): RegistryErrorEntry[] {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(parsed.errors)) return [];
    return parsed.errors
      .filter((e): e is RegistryErrorEntry => typeof e === 'object' && e !== null && typeof (e as RegistryErrorEntry).code === 'string')
      .map((e) => ({ code: e.code, message: e.message, detail: e.detail }));
  } catch {
    return [];
  }
}

function codeFor(status: number, entries: RegistryErrorEntry[]): ErrorCode {
  const first = entries[0]?.code;
  if (status === 401 || first === 'UNAUTHORIZED') return 'UNAUTHORIZED';
  if (status === 403 || first === 'DENIED') return 'DENIED';
  if (status === 404 || (first !== undefined && /UNKNOWN$/.test(first))) return 'NOT_FOUND';
  if (first === 'DIGEST_INVALID') return 'DIGEST_MISMATCH';
  if (first === 'MANIFEST_INVALID' || first === 'MANIFEST_BLOB_UNKNOWN') return 'MANIFEST_INVALID';
  if (first === 'NAME_INVALID') return 'NAME_INVALID';
  if (first === 'TAG_INVALID') return 'TAG_INVALID';
  if (first === 'UNSUPPORTED') return 'UNSUPPORTED';
  if (status === 413) return 'TOO_LARGE';
  return 'REGISTRY_ERROR';
}

/**
 * Reads the error body of a failed response and builds an error that names what was being
 * done (`what`, e.g. "pushing blob sha256:…"), the registry's code and message.
 */
export async function registryError(res: Readable & { statusCode?: number; url?: string }, what: string, hint?: string): Promise<BerthError> {
  let body: Buffer = Buffer.alloc(0);
  try {
    body = await readAll(res, 64 * 1024, 'an error answer');
  } catch {
    /* a huge or broken error body: report the status alone */
  }
  const status = res.statusCode ?? 0;
  const entries = parseErrorBody(body);
  const described = entries.length
    ? entries.map((e) => `${e.code}${e.message ? `: ${e.message}` : ''}`).join('; ')
    : body.length && body.length < 300 && /^[\x20-\x7e\s]*$/.test(body.toString('latin1'))
      ? body.toString('utf8').trim()
      : `HTTP ${status}`;
  const message = `${what}: registry answered ${status} (${described})${hint ? `. ${hint}` : ''}`;
  return new BerthError(codeFor(status, entries), message, { detail: { status, errors: entries } });
}
