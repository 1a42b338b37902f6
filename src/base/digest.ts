import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback, type Readable } from 'node:stream';
import { BerthError } from './errors.js';

/** A validated digest string, `algorithm:encoded` (descriptor.md "Digests"). */
export type Digest = string;

export type DigestAlgorithm = 'sha256' | 'sha512';

// descriptor.md grammar:
//   digest ::= algorithm ":" encoded
//   algorithm ::= algorithm-component (algorithm-separator algorithm-component)*
//   algorithm-component ::= [a-z0-9]+ ; algorithm-separator ::= [+._-]
//   encoded ::= [a-zA-Z0-9=_-]+
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const REGISTERED: Record<DigestAlgorithm, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

export const SUPPORTED_ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512'];

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  encoded: string;
}

/** Parses and validates a digest; throws DIGEST_INVALID or UNSUPPORTED_ALGORITHM with the reason. */
export function parseDigest(value: unknown): ParsedDigest {
  if (typeof value !== 'string') {
    throw new BerthError('DIGEST_INVALID', `digest must be a string of the form algorithm:encoded, got ${typeof value}`);
  }
  if (!DIGEST_GRAMMAR.test(value)) {
    throw new BerthError(
      'DIGEST_INVALID',
      `invalid digest ${JSON.stringify(value)}: expected algorithm:encoded, e.g. sha256:<64 lowercase hex characters>`,
    );
  }
  const sep = value.indexOf(':');
  const algorithm = value.slice(0, sep);
  const encoded = value.slice(sep + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new BerthError(
      'UNSUPPORTED_ALGORITHM',
      `unsupported digest algorithm ${JSON.stringify(algorithm)} in ${JSON.stringify(value)}: berth supports sha256 and sha512`,
    );
  }
  if (!REGISTERED[algorithm].test(encoded)) {
    const want = algorithm === 'sha256' ? 64 : 128;
    throw new BerthError(
      'DIGEST_INVALID',
      `invalid ${algorithm} digest ${JSON.stringify(value)}: the encoded part must be ${want} lowercase hex characters`,
    );
  }
  return { algorithm, encoded };
}

export function isValidDigest(value: unknown): value is Digest {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

/** Validates and returns the digest (for use at boundaries). */
export function validateDigest(value: unknown): Digest {
  parseDigest(value);
  return value as Digest;
}

export function algorithmOf(digest: Digest): DigestAlgorithm {
  return parseDigest(digest).algorithm;
}

export function encodedOf(digest: Digest): string {
  return parseDigest(digest).encoded;
}

export function newHash(algorithm: DigestAlgorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

/** The digest of bytes in memory. */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Reads a stream to its end and returns its digest and size, without keeping the bytes. */
export async function digestStream(
  source: Readable | AsyncIterable<Uint8Array>,
  algorithm: DigestAlgorithm = 'sha256',
): Promise<{ digest: Digest; size: number }> {
  const hash = createHash(algorithm);
  let size = 0;
  for await (const chunk of source as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: `${algorithm}:${hash.digest('hex')}`, size };
}

/**
 * A pass-through stream that computes the digest of what flows through it. When `expected`
 * is given, the stream fails with DIGEST_MISMATCH / SIZE_MISMATCH instead of ending if the
 * content does not match, and fails as soon as more bytes than the expected size arrive,
 * so that consumers never see the end of a stream whose content is wrong.
 */
export class DigestingStream extends Transform {
  private readonly hash: Hash;
  readonly algorithm: DigestAlgorithm;
  private readonly expected?: { digest?: Digest; size?: number };
  private count = 0;
  private result?: Digest;
  /** With holdLast: the newest chunk, passed on only once the next arrives or the content is verified. */
  private held?: Buffer;
  private readonly holdLast: boolean;

  /**
   * `holdLast` withholds the final chunk until digest and size are verified, so that a consumer
   * (an HTTP response with a Content-Length, say) never receives a complete body that is wrong.
   */
  constructor(options: { algorithm?: DigestAlgorithm; expectedDigest?: Digest; expectedSize?: number; holdLast?: boolean } = {}) {
    super();
    this.holdLast = options.holdLast ?? false;
    let algorithm = options.algorithm ?? 'sha256';
    if (options.expectedDigest !== undefined) algorithm = parseDigest(options.expectedDigest).algorithm;
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
    if (options.expectedDigest !== undefined || options.expectedSize !== undefined) {
      this.expected = { digest: options.expectedDigest, size: options.expectedSize };
    }
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.count;
  }

  /** The digest, available once the stream has ended. */
  get digest(): Digest {
    if (this.result === undefined) throw new BerthError('INTERNAL', 'digest read before the stream ended');
    return this.result;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    const limit = this.expected?.size;
    if (limit !== undefined && this.count > limit) {
      cb(
        new BerthError(
          'SIZE_MISMATCH',
          `content is larger than its descriptor says (${limit} bytes${this.expected?.digest ? ` for ${this.expected.digest}` : ''}): refusing it`,
        ),
      );
      return;
    }
    this.hash.update(chunk);
    if (!this.holdLast) {
      cb(null, chunk);
      return;
    }
    const previous = this.held;
    this.held = chunk;
    cb(null, previous);
  }

  override _flush(cb: TransformCallback): void {
    this.result = `${this.algorithm}:${this.hash.digest('hex')}`;
    const exp = this.expected;
    if (exp?.size !== undefined && this.count !== exp.size) {
      cb(
        new BerthError(
          'SIZE_MISMATCH',
          `size mismatch${exp.digest ? ` for ${exp.digest}` : ''}: expected ${exp.size} bytes, got ${this.count}`,
        ),
      );
      return;
    }
    if (exp?.digest !== undefined && this.result !== exp.digest) {
      cb(new BerthError('DIGEST_MISMATCH', `digest mismatch: expected ${exp.digest}, content hashes to ${this.result}`));
      return;
    }
    cb(null, this.held);
  }
}

/** Wraps a readable so that it verifies digest and size while streaming. */
export function verifyingStream(source: Readable, expectedDigest: Digest, expectedSize?: number): DigestingStream {
  const v = new DigestingStream({ expectedDigest, expectedSize });
  source.on('error', (err) => v.destroy(err));
  return source.pipe(v);
}
