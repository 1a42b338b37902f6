/** Compact JWS (RFC 7515) signing and verification with node:crypto: RS256 and ES256. */
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export type JwtAlgorithm = 'RS256' | 'ES256';

export function algorithmFor(key: KeyObject): JwtAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new Error(`unsupported token key type ${key.asymmetricKeyType}: use an RSA or EC P-256 key`);
}

export function loadPrivateKey(pem: string): KeyObject {
  return createPrivateKey(pem);
}

/** A public key from a PEM public key or an X.509 certificate. */
export function loadPublicKey(pem: string): KeyObject {
  if (pem.includes('BEGIN CERTIFICATE')) return new X509Certificate(pem).publicKey;
  return createPublicKey(pem);
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
