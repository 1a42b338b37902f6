import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isBerthError, type ErrorCode } from '../../src/base/errors.js';
import {
  DigestingStream,
  algorithmOf,
  digestOf,
  digestStream,
  encodedOf,
  isValidDigest,
  parseDigest,
  validateDigest,
  verifyingStream,
} from '../../src/base/digest.js';

const HELLO_SHA256 = 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
const HELLO_SHA512 = `sha512:${createHash('sha512').update('hello').digest('hex')}`;

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    assert.ok(isBerthError(e), `expected a BerthError, got ${String(e)}`);
    return e.code;
  }
}

async function drain(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('digest grammar (descriptor.md "Digests")', () => {
  it('accepts registered sha256 and sha512 digests', () => {
    assert.deepEqual(parseDigest(HELLO_SHA256), { algorithm: 'sha256', encoded: HELLO_SHA256.slice(7) });
    assert.equal(parseDigest(HELLO_SHA512).algorithm, 'sha512');
    assert.equal(algorithmOf(HELLO_SHA512), 'sha512');
    assert.equal(encodedOf(HELLO_SHA256), HELLO_SHA256.slice(7));
    assert.equal(validateDigest(HELLO_SHA256), HELLO_SHA256);
  });

  it('rejects malformed digests with DIGEST_INVALID', () => {
    for (const bad of ['', 'sha256', 'sha256:', ':abc', 'sha256:abc$', 'SHA256:abc', 'sha256::abc', 'sha256:ab cd', ' sha256:abc', 'sha-:abc']) {
      assert.equal(codeOf(() => parseDigest(bad)), 'DIGEST_INVALID', bad);
      assert.equal(isValidDigest(bad), false);
    }
    for (const bad of [undefined, null, 42, {}]) assert.equal(codeOf(() => parseDigest(bad)), 'DIGEST_INVALID');
  });

  it('rejects uppercase hex and wrong lengths for registered algorithms, saying what is expected', () => {
    const upper = `sha256:${'A'.repeat(64)}`;
    assert.throws(() => parseDigest(upper), (e: unknown) => isBerthError(e, 'DIGEST_INVALID') && /64 lowercase hex/.test(e.message));
    assert.equal(codeOf(() => parseDigest(`sha256:${'a'.repeat(63)}`)), 'DIGEST_INVALID');
    assert.equal(codeOf(() => parseDigest(`sha256:${'a'.repeat(65)}`)), 'DIGEST_INVALID');
    assert.throws(() => parseDigest(`sha512:${'a'.repeat(64)}`), (e: unknown) => isBerthError(e, 'DIGEST_INVALID') && /128 lowercase hex/.test(e.message));
  });

  it('refuses grammatical but unknown algorithms with UNSUPPORTED_ALGORITHM', () => {
    for (const d of [`md5:${'a'.repeat(32)}`, `blake3:${'a'.repeat(64)}`, 'multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8', 'sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564']) {
      assert.throws(
        () => parseDigest(d),
        (e: unknown) => isBerthError(e, 'UNSUPPORTED_ALGORITHM') && /supports sha256 and sha512/.test(e.message) && e.message.includes(d.split(':')[0]!),
        d,
      );
      assert.equal(isValidDigest(d), false);
    }
  });

  it('computes sha256 and sha512 digests of bytes and streams', async () => {
    assert.equal(digestOf('hello'), HELLO_SHA256);
    assert.equal(digestOf(Buffer.from('hello'), 'sha512'), HELLO_SHA512);
    assert.deepEqual(await digestStream(Readable.from([Buffer.from('hel'), Buffer.from('lo')])), { digest: HELLO_SHA256, size: 5 });
    assert.deepEqual(await digestStream(Readable.from([Buffer.from('hello')]), 'sha512'), { digest: HELLO_SHA512, size: 5 });
  });
});

describe('DigestingStream', () => {
  it('passes content through and reports its digest and size', async () => {
    const s = new DigestingStream();
    const out = drain(s);
    s.end(Buffer.from('hello'));
    assert.equal((await out).toString(), 'hello');
    assert.equal(s.digest, HELLO_SHA256);
    assert.equal(s.size, 5);
  });

  it('takes the algorithm from the expected digest', async () => {
    const s = new DigestingStream({ expectedDigest: HELLO_SHA512, expectedSize: 5 });
    assert.equal(s.algorithm, 'sha512');
    const out = drain(s);
    s.end(Buffer.from('hello'));
    await out;
    assert.equal(s.digest, HELLO_SHA512);
  });

  it('fails with DIGEST_MISMATCH instead of ending when the content differs', async () => {
    const s = new DigestingStream({ expectedDigest: HELLO_SHA256, expectedSize: 5 });
    await assert.rejects(pipeline(Readable.from([Buffer.from('hellp')]), s, async function* (src) {
      for await (const _ of src) void _;
    }), (e: unknown) => isBerthError(e, 'DIGEST_MISMATCH') && e.message.includes(HELLO_SHA256));
  });

  it('fails with SIZE_MISMATCH as soon as too many bytes arrive', async () => {
    const s = new DigestingStream({ expectedDigest: HELLO_SHA256, expectedSize: 5 });
    let passed = 0;
    await assert.rejects(
      pipeline(Readable.from([Buffer.from('hel'), Buffer.from('lo'), Buffer.from('!')]), s, async function* (src) {
        for await (const c of src) passed += (c as Buffer).length;
      }),
      (e: unknown) => isBerthError(e, 'SIZE_MISMATCH') && /larger than its descriptor/.test(e.message),
    );
    assert.ok(passed <= 5, 'no byte beyond the expected size is passed on');
  });

  it('fails with SIZE_MISMATCH when too few bytes arrive', async () => {
    const s = new DigestingStream({ expectedDigest: HELLO_SHA256, expectedSize: 5 });
    await assert.rejects(
      pipeline(Readable.from([Buffer.from('hell')]), s, async function* (src) {
        for await (const _ of src) void _;
      }),
      (e: unknown) => isBerthError(e, 'SIZE_MISMATCH') && /expected 5 bytes, got 4/.test(e.message),
    );
  });

  it('refuses an invalid expected digest up front', () => {
    assert.throws(() => new DigestingStream({ expectedDigest: 'sha256:nope' }), (e: unknown) => isBerthError(e, 'DIGEST_INVALID'));
  });
});

describe('DigestingStream with holdLast', () => {
  const chunks = [Buffer.alloc(1000, 1), Buffer.alloc(1000, 2), Buffer.alloc(1000, 3)];
  const whole = Buffer.concat(chunks);
  const digest = `sha256:${createHash('sha256').update(whole).digest('hex')}`;

  async function received(expectedDigest: string): Promise<{ bytes: number; error?: unknown }> {
    let bytes = 0;
    try {
      await pipeline(Readable.from(chunks), new DigestingStream({ expectedDigest, expectedSize: whole.length, holdLast: true }), async (src: AsyncIterable<Buffer>) => {
        for await (const c of src) bytes += c.length;
      });
      return { bytes };
    } catch (error) {
      return { bytes, error };
    }
  }

  it('passes every byte on when the content matches', async () => {
    assert.deepEqual(await received(digest), { bytes: whole.length });
  });

  it('withholds the last chunk when the content does not match, so no consumer sees it whole', async () => {
    const r = await received(`sha256:${'0'.repeat(64)}`);
    assert.ok(isBerthError(r.error, 'DIGEST_MISMATCH'));
    assert.ok(r.bytes < whole.length, `received ${r.bytes} of ${whole.length} bytes`);
  });
});

describe('verifyingStream', () => {
  it('yields verified content', async () => {
    assert.equal((await drain(verifyingStream(Readable.from([Buffer.from('hello')]), HELLO_SHA256, 5))).toString(), 'hello');
    assert.equal((await drain(verifyingStream(Readable.from([Buffer.from('hello')]), HELLO_SHA256))).toString(), 'hello');
  });

  it('errors on wrong content', async () => {
    await assert.rejects(drain(verifyingStream(Readable.from([Buffer.from('HELLO')]), HELLO_SHA256, 5)), (e: unknown) => isBerthError(e, 'DIGEST_MISMATCH'));
  });

  it('propagates an error of the source', async () => {
    const source = new Readable({
      read() {
        this.destroy(new Error('connection reset'));
      },
    });
    await assert.rejects(drain(verifyingStream(source, HELLO_SHA256, 5)), /connection reset/);
  });
});
