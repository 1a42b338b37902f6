/**
 * Typed errors: every failure berth reports carries a stable code and a message that
 * says what was wrong and, where it can, what to do about it. The registry maps codes
 * to distribution-spec error codes; the CLI prints `berth: <message>` and exits non-zero.
 */
export type ErrorCode =
  | 'DIGEST_INVALID'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'UNSUPPORTED_ALGORITHM'
  | 'MEDIA_TYPE_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'INDEX_INVALID'
  | 'CONFIG_INVALID'
  | 'DESCRIPTOR_INVALID'
  | 'REFERENCE_INVALID'
  | 'NAME_INVALID'
  | 'TAG_INVALID'
  | 'NOT_FOUND'
  | 'LAYOUT_INVALID'
  | 'LAYER_INVALID'
  | 'UNSAFE_PATH'
  | 'PLATFORM_NOT_FOUND'
  | 'UNSUPPORTED'
  | 'USAGE'
  | 'REGISTRY_ERROR'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'NETWORK'
  | 'TOO_LARGE'
  | 'RUNTIME_CONFIG_INVALID'
  | 'RUNTIME_ERROR'
  | 'CONTAINER_EXISTS'
  | 'CONTAINER_NOT_FOUND'
  | 'CONTAINER_STATE'
  | 'INTERNAL';

export class BerthError extends Error {
  readonly code: ErrorCode;
  /** Extra structured detail (the field that failed, a registry's error body, …). */
  readonly detail?: unknown;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; detail?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'BerthError';
    this.code = code;
    this.detail = options?.detail;
  }
}

export function isBerthError(err: unknown, code?: ErrorCode): err is BerthError {
  return err instanceof BerthError && (code === undefined || err.code === code);
}
