/** Distribution-spec errors: an HTTP status plus the JSON error body of spec.md "Error Codes". */
import { BerthError } from '../base/errors.js';

export type SpecErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  // Legacy Docker codes the spec allows (spec.md "Legacy Docker support error codes").
  | 'TAG_INVALID'
  | 'RANGE_INVALID'
  | 'INTERNAL';

export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: SpecErrorCode,
    message: string,
    readonly detail?: unknown,
    readonly headers?: Record<string, string | string[]>,
    /** Further errors of the same response (e.g. one MANIFEST_BLOB_UNKNOWN per missing blob). */
    readonly more: { code: SpecErrorCode; message: string; detail?: unknown }[] = [],
  ) {
    super(message);
    this.name = 'RegistryError';
  }

  body(): string {
    const entry: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return JSON.stringify({ errors: [entry, ...this.more] });
  }
}

/** Maps any failure to a RegistryError; unknown failures become 500 without leaking internals. */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  if (err instanceof BerthError) {
    switch (err.code) {
      case 'DIGEST_INVALID':
      case 'UNSUPPORTED_ALGORITHM':
      case 'DIGEST_MISMATCH':
        return new RegistryError(400, 'DIGEST_INVALID', err.message);
      case 'SIZE_MISMATCH':
        return new RegistryError(400, 'SIZE_INVALID', err.message);
      case 'NAME_INVALID':
        return new RegistryError(400, 'NAME_INVALID', err.message);
      case 'TAG_INVALID':
        return new RegistryError(400, 'TAG_INVALID', err.message);
      case 'MANIFEST_INVALID':
      case 'INDEX_INVALID':
      case 'DESCRIPTOR_INVALID':
      case 'MEDIA_TYPE_UNKNOWN':
        return new RegistryError(400, 'MANIFEST_INVALID', err.message);
      case 'TOO_LARGE':
        return new RegistryError(413, 'SIZE_INVALID', err.message);
      default:
        break;
    }
  }
  return new RegistryError(500, 'INTERNAL', 'internal server error: see the registry log');
}
