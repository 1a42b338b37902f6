/** Compact JWS (RFC 7515) signing and verification with node:crypto: RS256 and ES256. */
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BerthError } from '../../base/errors.js';

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export type JwtAlgorithm = 'RS256' | 'ES256';

const KEY_TYPES = 'an RSA or EC P-256 key';

/** The JWS algorithm for `key`: RSA signs RS256, EC P-256 ES256; any other key is UNSUPPORTED. */
export function algorithmFor(key: KeyObject, source = 'the token key'): JwtAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  throw new BerthError('UNSUPPORTED', `${source} is ${key.asymmetricKeyType ?? 'a'}${curve ? ` (${curve})` : ''} key: tokens are signed with ${KEY_TYPES} (RS256 or ES256)`);
}

/** What a PEM text holds, by its labels ("a CERTIFICATE", "no PEM block"), for error messages. */
function pemContents(pem: string): string {
  const labels = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
  return labels.length ? labels.map((l) => `a ${l} block`).join(' and ') : 'no PEM block';
}

function readPem(file: string, source: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BerthError('USAGE', `cannot read ${source}: ${(err as Error).message}`);
  }
}

/** The private key that signs the built-in issuer's tokens (--token-key FILE). */
export function loadSigningKey(file: string): KeyObject {
  const source = `the token signing key ${file} (--token-key)`;
  const pem = readPem(file, source);
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new BerthError('USAGE', `${source} holds ${pemContents(pem)}, not a private key that node:crypto reads: give ${KEY_TYPES} in PEM (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)`);
  }
  algorithmFor(key, source);
  return key;
}

/** A public key whose tokens are accepted, from a PEM public key or an X.509 certificate (--token-trust FILE). */
export function loadTrustedKey(file: string): KeyObject {
  const source = `the trusted token key ${file} (--token-trust)`;
  const pem = readPem(file, source);
  let key: KeyObject;
  try {
    key = pem.includes('BEGIN CERTIFICATE') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
  } catch {
    throw new BerthError('USAGE', `${source} holds ${pemContents(pem)}, not a public key or certificate that node:crypto reads: give the issuer's ${KEY_TYPES} or certificate in PEM`);
  }
  algorithmFor(key, source);
  return key;
}

export function signJwt(payload: object, key: KeyObject, kid?: string): string {
  const alg = algorithmFor(key);
  const header = b64url(JSON.stringify({ typ: 'JWT', alg, ...(kid ? { kid } : {}) }));
  const body = b64url(JSON.stringify(payload));
  const input = `${header}.${body}`;
  const sig = sign('sha256', Buffer.from(input), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${b64url(sig)}`;
}

/** The payload when the signature verifies with one of `keys`, else undefined. */
export function verifyJwt(token: string, keys: KeyObject[]): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const [h, p, s] = parts as [string, string, string];
  let header: { alg?: string };
  let payload: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const input = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  for (const key of keys) {
    let alg: JwtAlgorithm;
    try {
      alg = algorithmFor(key);
    } catch {
      continue;
    }
    if (header.alg !== alg) continue;
    const ok = verify('sha256', input, alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, sig);
    if (ok) return payload;
  }
  return undefined;
}
