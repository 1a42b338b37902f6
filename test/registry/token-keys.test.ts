/**
 * A token key of the wrong kind (a certificate or public key given as the signing key, a curve
 * other than P-256, an Ed25519 key, an RSA label around an EC key, a file that is not PEM) stops
 * `berth serve` at start with one line that names the file and the flag: never a stack trace,
 * and never a server whose /token fails at the first request.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../../src/base/errors.js';
import { loadSigningKey, loadTrustedKey } from '../../src/registry/auth/jwt.js';
import { runBerth } from '../helpers/run-berth.js';

let dir: string;
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const pems = (type: 'rsa' | 'ec' | 'ed25519', namedCurve?: string) => {
  const { privateKey, publicKey } =
    type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ec' ? generateKeyPairSync('ec', { namedCurve: namedCurve ?? 'prime256v1' })
        : generateKeyPairSync('ed25519');
  return { priv: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), pub: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
};

describe('token keys of the wrong kind', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-token-keys-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const refused = (code: string, re: RegExp) => (err: unknown) => {
    assert.ok(isBerthError(err), `not a BerthError: ${(err as Error)?.stack}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  };

  it('signing keys: RSA and EC P-256 load; the rest is refused with the file named', () => {
    assert.equal(loadSigningKey(file('rsa.pem', pems('rsa').priv)).asymmetricKeyType, 'rsa');
    assert.equal(loadSigningKey(file('p256.pem', pems('ec').priv)).asymmetricKeyType, 'ec');
    const p384 = file('p384.pem', pems('ec', 'secp384r1').priv);
    assert.throws(() => loadSigningKey(p384), refused('UNSUPPORTED', /p384\.pem \(--token-key\) is ec \(secp384r1\) key: tokens are signed with an RSA or EC P-256 key/));
    assert.throws(() => loadSigningKey(file('ed.pem', pems('ed25519').priv)), refused('UNSUPPORTED', /ed\.pem.* is ed25519 key/));
    // A public key where the private key belongs.
    assert.throws(() => loadSigningKey(file('pub.pem', pems('ec').pub)), refused('USAGE', /pub\.pem \(--token-key\) holds a PUBLIC KEY block, not a private key/));
    // An EC key inside an RSA label: the label and the contents disagree.
    const ecBody = pems('ec').priv.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '-----$1 RSA PRIVATE KEY-----');
    assert.throws(() => loadSigningKey(file('mislabelled.pem', ecBody)), refused('USAGE', /holds a RSA PRIVATE KEY block, not a private key/));
    assert.throws(() => loadSigningKey(file('text.pem', 'hello\n')), refused('USAGE', /holds no PEM block/));
    assert.throws(() => loadSigningKey(join(dir, 'missing.pem')), refused('USAGE', /cannot read the token signing key .*missing\.pem/));
  });

  it('trusted keys: public keys load; other types and non-keys are refused', () => {
    assert.equal(loadTrustedKey(file('trust-rsa.pem', pems('rsa').pub)).asymmetricKeyType, 'rsa');
    assert.throws(() => loadTrustedKey(file('trust-ed.pem', pems('ed25519').pub)), refused('UNSUPPORTED', /trust-ed\.pem \(--token-trust\) is ed25519 key/));
    assert.throws(() => loadTrustedKey(file('trust-p384.pem', pems('ec', 'secp384r1').pub)), refused('UNSUPPORTED', /secp384r1/));
    const csr = '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n';
    assert.throws(() => loadTrustedKey(file('csr.pem', csr)), refused('USAGE', /csr\.pem \(--token-trust\) holds a CERTIFICATE REQUEST block, not a public key or certificate/));
  });

  it('berth serve stops at start with one line', async () => {
    const key = file('serve-p384.pem', pems('ec', 'secp384r1').priv);
    const r = await runBerth(['serve', '--addr', '127.0.0.1:0', '--data', join(dir, 'data'), '--token-key', key]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '', 'the server must not have started');
    assert.match(r.stderr, /^berth: the token signing key .*serve-p384\.pem \(--token-key\) is ec \(secp384r1\) key/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });
});
