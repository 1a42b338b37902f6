/**
 * Whom registry connections trust (src/client/trust.ts): the system's CA bundle ($SSL_CERT_FILE,
 * $SSL_CERT_DIR), certs.d directories named after the registry (*.crt CAs, *.cert/*.key client
 * certificates) and `--cert-dir`, against docker-registry serving a certificate from a private
 * CA, once plain and once demanding client certificates (mutual TLS). The registry is
 * addressed as registry.test:PORT through a forward proxy on 127.0.0.1 (loopback names are
 * plain HTTP by rule), so certificate names are checked as for any remote registry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../../src/client/registry.js';
import { RegistryTrust, readCertsDir, systemCaPems } from '../../src/client/trust.js';
import { isBerthError } from '../../src/base/errors.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { startForwardProxy, type ForwardProxy } from '../helpers/forward-proxy.js';
import { runBerth } from '../helpers/run-berth.js';
import { issue, makeCa, type PemPair } from '../helpers/test-ca.js';
import { pushAndPull } from './fixtures.js';
import { peer, skipUnless } from '../helpers/requirements.js';

describe('certs.d directories and the system CA bundle', () => {
  let dir: string;
  let ca: PemPair;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-trust-'));
    ca = makeCa(dir, 'unit-ca');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads *.crt as CAs and a *.cert with its *.key as the client certificate', () => {
    const d = join(dir, 'host-a');
    mkdirSync(d);
    copyFileSync(ca.cert, join(d, 'ca.crt'));
    const client = issue(dir, ca, 'unit-client');
    copyFileSync(client.cert, join(d, 'client.cert'));
    copyFileSync(client.key, join(d, 'client.key'));
    const certs = readCertsDir(d);
    assert.equal(certs.cas.length, 1);
    assert.match(certs.cas[0]!, /^-----BEGIN CERTIFICATE-----/);
    assert.equal(certs.client?.file, join(d, 'client.cert'));
    assert.match(certs.client!.key, /PRIVATE KEY/);
    assert.deepEqual(readCertsDir(join(dir, 'no-such-host')), { cas: [] });
  });

  it('refuses a client certificate without its key, a key without its certificate, and a CA file without a certificate', () => {
    const lone = join(dir, 'host-b');
    mkdirSync(lone);
    writeFileSync(join(lone, 'client.cert'), 'x');
    assert.throws(() => readCertsDir(lone), (err: unknown) => isBerthError(err, 'USAGE') && /client\.cert has no key: put it in .*client\.key/.test((err as Error).message));
    const keyOnly = join(dir, 'host-c');
    mkdirSync(keyOnly);
    writeFileSync(join(keyOnly, 'client.key'), 'x');
    assert.throws(() => readCertsDir(keyOnly), (err: unknown) => isBerthError(err, 'USAGE') && /has no client certificate/.test((err as Error).message));
    const junk = join(dir, 'host-d');
    mkdirSync(junk);
    writeFileSync(join(junk, 'ca.crt'), 'not a certificate');
    assert.throws(() => readCertsDir(junk), (err: unknown) => isBerthError(err, 'USAGE') && /no PEM certificate/.test((err as Error).message));
  });

  it('finds the system CAs in $SSL_CERT_FILE and $SSL_CERT_DIR', () => {
    const certDir = join(dir, 'ssl-dir');
    mkdirSync(certDir);
    const other = makeCa(dir, 'unit-ca-2');
    copyFileSync(other.cert, join(certDir, 'other.pem'));
    const pems = systemCaPems({ SSL_CERT_FILE: ca.cert, SSL_CERT_DIR: `${certDir}:${join(dir, 'missing')}` });
    assert.equal(pems.length, 2);
    assert.deepEqual(systemCaPems({ SSL_CERT_FILE: join(dir, 'missing.pem') }), []);
  });

  it('looks a host up under every certs.d root, or only in --cert-dir', () => {
    assert.deepEqual(new RegistryTrust({ certsDirRoots: ['/r1', '/r2'] }).certsDirsFor('reg.example:5000'), ['/r1/reg.example:5000', '/r2/reg.example:5000']);
    assert.deepEqual(new RegistryTrust({ certDir: '/mine', certsDirRoots: ['/r1'] }).certsDirsFor('reg.example'), ['/mine']);
    const roots = new RegistryTrust({ env: { XDG_CONFIG_HOME: '/home/u/.cfg' } }).certsDirsFor('r.io');
    assert.deepEqual(roots, ['/etc/containers/certs.d/r.io', '/etc/docker/certs.d/r.io', '/home/u/.cfg/containers/certs.d/r.io']);
  });
});

const skip = skipUnless(peer(REGISTRY_BIN, 'docker-registry'));

describe('registries with a private CA', { skip }, () => {
  let dir: string;
  let serverCa: PemPair;
  let clientCa: PemPair;
  let clientCert: PemPair;
  let reg: RegistryServer;
  let mtlsReg: RegistryServer;
  let proxy: ForwardProxy;
  /** A certs.d root with nothing for registry.test: Node's and the system's CAs only. */
  let emptyRoot: string;
  const name = (r: RegistryServer) => `registry.test:${r.host.split(':')[1]}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-trust-'));
    emptyRoot = join(dir, 'empty-root');
    mkdirSync(emptyRoot);
    serverCa = makeCa(dir, 'server-ca');
    clientCa = makeCa(dir, 'client-ca');
    // Also valid for 127.0.0.1 as IPv4-mapped IPv6, the address a registry on loopback is reached by over HTTPS without the proxy.
    const server = issue(dir, serverCa, 'registry', ['registry.test', '127.0.0.1', '::ffff:127.0.0.1']);
    clientCert = issue(dir, clientCa, 'berth-client');
    [reg, mtlsReg, proxy] = await Promise.all([
      startRegistry({ tls: server }),
      startRegistry({ tls: { ...server, clientCa: clientCa.cert, probe: clientCert } }),
      startForwardProxy({ hosts: { 'registry.test': '127.0.0.1' } }),
    ]);
  });
  after(async () => {
    await Promise.all([reg?.stop(), mtlsReg?.stop(), proxy?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const clientWith = (trust: RegistryTrust) => new RegistryClient({ credentials: async () => undefined, retries: 0, trust, proxy: { httpsProxy: proxy.url } });

  /** A certs.d-style directory with the server CA (and the client certificate when asked). */
  function certDir(label: string, withClient: boolean): string {
    const d = join(dir, label);
    mkdirSync(d, { recursive: true });
    copyFileSync(serverCa.cert, join(d, 'ca.crt'));
    if (withClient) {
      copyFileSync(clientCert.cert, join(d, 'client.cert'));
      copyFileSync(clientCert.key, join(d, 'client.key'));
    }
    return d;
  }

  it('refuses the certificate of an unknown CA, saying where to put the CA', async () => {
    const client = clientWith(new RegistryTrust({ certsDirRoots: [emptyRoot], env: {} }));
    try {
      await assert.rejects(client.ping(name(reg)), (err: unknown) => {
        assert.ok(isBerthError(err, 'NETWORK'), String(err));
        assert.match((err as Error).message, new RegExp(`certs\\.d/${name(reg)}/ca\\.crt`));
        return true;
      });
    } finally {
      client.close();
    }
  });

  it('trusts a CA in the registry\'s certs.d directory, with verification on', async () => {
    const root = join(dir, 'certs.d');
    certDir(join('certs.d', name(reg)), false);
    const client = clientWith(new RegistryTrust({ certsDirRoots: [emptyRoot, root], env: {} }));
    try {
      await pushAndPull(client, name(reg), 'trust/certsd');
      assert.equal(client.baseUrl(name(reg)).protocol, 'https:');
    } finally {
      client.close();
    }
  });

  it('trusts a CA in the system bundle ($SSL_CERT_FILE)', async () => {
    const client = clientWith(new RegistryTrust({ certsDirRoots: [emptyRoot], env: { SSL_CERT_FILE: serverCa.cert } }));
    try {
      await pushAndPull(client, name(reg), 'trust/system');
    } finally {
      client.close();
    }
  });

  it('shows the client certificate from the cert directory to a registry that demands one', async () => {
    const without = clientWith(new RegistryTrust({ certDir: certDir('mtls-ca-only', false), env: {} }));
    try {
      await assert.rejects(without.ping(name(mtlsReg)), (err: unknown) => isBerthError(err, 'NETWORK'));
    } finally {
      without.close();
    }
    const withCert = clientWith(new RegistryTrust({ certDir: certDir('mtls-full', true), env: {} }));
    try {
      await pushAndPull(withCert, name(mtlsReg), 'trust/mtls');
    } finally {
      withCert.close();
    }
  });

  it('fetches blobs over verified TLS with the raw reader too', async () => {
    const host = `[::ffff:127.0.0.1]:${reg.host.split(':')[1]}`;
    const client = new RegistryClient({ credentials: async () => undefined, retries: 0, trust: new RegistryTrust({ certDir: certDir('direct', false), env: {} }), proxy: {} });
    let rawBodies = 0;
    const rawGet = client.rawGet.bind(client);
    client.rawGet = async (h, opts) => {
      const res = await rawGet(h, opts);
      if (res) rawBodies++;
      return res;
    };
    try {
      await pushAndPull(client, host, 'trust/direct');
      assert.equal(client.baseUrl(host).protocol, 'https:');
    } finally {
      client.close();
    }
    // The manifest, the config and two layers; a raw GET that failed verification would have left them to HttpClient.
    assert.ok(rawBodies >= 4, `only ${rawBodies} raw answers`);
  });

  it('berth --cert-dir', async () => {
    const d = certDir('cli', true);
    const env: NodeJS.ProcessEnv = { ...process.env, HTTPS_PROXY: proxy.url };
    delete env.SSL_CERT_FILE;
    const seeded = clientWith(new RegistryTrust({ certDir: d, env: {} }));
    try {
      await pushAndPull(seeded, name(mtlsReg), 'trust/cli');
    } finally {
      seeded.close();
    }
    const ok = await runBerth(['tags', '--cert-dir', d, `${name(mtlsReg)}/trust/cli`], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'v1');
    const refused = await runBerth(['tags', `${name(reg)}/trust/certsd`], env);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /certs\.d|--cert-dir/);
  });
});
