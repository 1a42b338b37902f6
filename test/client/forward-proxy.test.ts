/**
 * Forward proxies (src/client/proxy.ts): which requests go through HTTPS_PROXY / HTTP_PROXY and
 * which NO_PROXY exempts (Go's rules, as docker, skopeo and crane apply them), and real
 * transfers through a proxy on 127.0.0.1 to docker-registry: HTTPS inside a CONNECT tunnel,
 * plain HTTP in absolute form, proxy credentials, and the CLI reading the environment. The
 * registry is addressed as registry.test:PORT, a name only the proxy resolves (to 127.0.0.1):
 * loopback addresses are never proxied.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxyUrl, proxyFor, proxySettingsFromEnv } from '../../src/client/proxy.js';
import { RegistryClient } from '../../src/client/registry.js';
import { isBerthError } from '../../src/base/errors.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { startForwardProxy, type ForwardProxy } from '../helpers/forward-proxy.js';
import { runBerth } from '../helpers/run-berth.js';
import { pushAndPull } from './fixtures.js';
import { peer, skipUnless } from '../helpers/requirements.js';

describe('proxy choice (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)', () => {
  const settings = {
    httpsProxy: 'http://proxy.corp:3128',
    httpProxy: 'plain.corp:8080',
    noProxy: 'example.com, .corp.local, *.wild.org, reg.io:5000, 10.0.0.0/8, 192.168.1.5, fd00::/8, [2001:db8::1]:443',
  };
  const via = (url: string) => proxyFor(new URL(url), settings)?.href;

  it('picks the proxy by the scheme of the request', () => {
    assert.equal(via('https://docker.io/v2/'), 'http://proxy.corp:3128/');
    // A value without a scheme is an http:// proxy (as Go reads it).
    assert.equal(via('http://docker.io/v2/'), 'http://plain.corp:8080/');
    assert.equal(proxyFor(new URL('https://docker.io/'), { httpProxy: 'http://p:1' }), undefined);
  });

  it('never proxies localhost or loopback addresses', () => {
    for (const u of ['https://localhost:5000/', 'https://127.0.0.1/', 'https://127.5.0.1/', 'http://[::1]:5000/', 'https://[::ffff:127.0.0.1]:5000/']) {
      assert.equal(via(u), undefined, u);
    }
  });

  it('exempts what NO_PROXY names, and nothing else', () => {
    const exempt = ['https://example.com/', 'https://a.b.example.com/', 'https://x.corp.local/', 'https://q.wild.org/', 'https://reg.io:5000/', 'https://10.2.3.4/', 'https://192.168.1.5/', 'https://[fd12::1]/', 'https://[2001:db8::1]/'];
    const proxied = ['https://badexample.com/', 'https://corp.local/', 'https://wild.org/', 'https://reg.io/', 'https://11.0.0.1/', 'https://192.168.1.6/', 'https://[fe80::1]/', 'https://[2001:db8::1]:8443/'];
    for (const u of exempt) assert.equal(via(u), undefined, `${u} should be exempt`);
    for (const u of proxied) assert.equal(via(u), 'http://proxy.corp:3128/', `${u} should be proxied`);
    assert.equal(proxyFor(new URL('https://anything.io/'), { httpsProxy: 'http://p:1', noProxy: '*' }), undefined);
  });

  it('reads upper-case variables first, then lower-case ones', () => {
    assert.deepEqual(proxySettingsFromEnv({ HTTPS_PROXY: 'http://a:1', https_proxy: 'http://b:1', http_proxy: 'http://c:1', no_proxy: 'x.io' }), {
      httpsProxy: 'http://a:1',
      httpProxy: 'http://c:1',
      noProxy: 'x.io',
    });
    assert.deepEqual(proxySettingsFromEnv({}), {});
  });

  it('refuses proxies it cannot speak to, saying which', () => {
    assert.throws(() => parseProxyUrl('socks5://127.0.0.1:1080'), (err: unknown) => isBerthError(err, 'UNSUPPORTED') && /only http:\/\/ and https:\/\//.test((err as Error).message));
    assert.throws(() => parseProxyUrl('http://[bad'), (err: unknown) => isBerthError(err, 'USAGE'));
  });
});

const skip = skipUnless(peer(REGISTRY_BIN, 'docker-registry'));

describe('transfers through a forward proxy', { skip }, () => {
  let tlsReg: RegistryServer;
  let plainReg: RegistryServer;
  let proxy: ForwardProxy;
  let authProxy: ForwardProxy;
  const hosts: Record<string, string> = { 'registry.test': '127.0.0.1' };
  const name = (reg: RegistryServer) => `registry.test:${reg.host.split(':')[1]}`;

  before(async () => {
    [tlsReg, plainReg, proxy, authProxy] = await Promise.all([
      startRegistry({ tls: true }),
      startRegistry(),
      startForwardProxy({ hosts }),
      startForwardProxy({ hosts, credentials: { user: 'pxuser', pass: 'p@ss:word' } }),
    ]);
  });
  after(async () => {
    await Promise.all([tlsReg?.stop(), plainReg?.stop(), proxy?.close(), authProxy?.close()]);
  });

  it('pushes and pulls over HTTPS inside a CONNECT tunnel', async () => {
    const host = name(tlsReg);
    proxy.log.length = 0;
    // The test certificate names 127.0.0.1, not registry.test: verification is off for this host.
    const client = new RegistryClient({ credentials: async () => undefined, insecure: [host], proxy: { httpsProxy: proxy.url } });
    try {
      await pushAndPull(client, host, 'proxied/tls');
      assert.equal(client.baseUrl(host).protocol, 'https:');
    } finally {
      client.close();
    }
    assert.ok(proxy.log.length > 0 && proxy.log.every((l) => l === `CONNECT ${host}`), proxy.log.join('\n'));
  });

  it('verifies the registry certificate inside the tunnel', async () => {
    const client = new RegistryClient({ credentials: async () => undefined, retries: 0, proxy: { httpsProxy: proxy.url } });
    try {
      await assert.rejects(client.ping(name(tlsReg)), (err: unknown) => isBerthError(err, 'NETWORK') && /certificate|altnames|self.signed/i.test((err as Error).message));
    } finally {
      client.close();
    }
  });

  it('sends plain HTTP to the proxy in absolute form', async () => {
    const host = name(plainReg);
    proxy.log.length = 0;
    const client = new RegistryClient({ credentials: async () => undefined, insecure: [host], proxy: { httpProxy: proxy.url, httpsProxy: proxy.url } });
    try {
      await pushAndPull(client, host, 'proxied/plain');
      assert.equal(client.baseUrl(host).protocol, 'http:');
    } finally {
      client.close();
    }
    // One HTTPS probe (a tunnel) first, however many requests wanted it at once; everything
    // after it went as absolute-form requests, blobs too (the raw blob reader stands aside
    // when a proxy is in the way).
    assert.equal(proxy.log[0], `CONNECT ${host}`);
    const rest = proxy.log.slice(1);
    assert.ok(!rest.some((l) => l.startsWith('CONNECT')), proxy.log.join('\n'));
    assert.ok(rest.length > 0 && rest.every((l) => l.includes(` http://${host}/v2/`)), rest.join('\n'));
    assert.ok(rest.some((l) => /^GET http:\/\/\S+\/blobs\/sha256:/.test(l)), 'no blob GET went through the proxy');
  });

  it('sends the credentials in the proxy URL, and says what to do when they are missing', async () => {
    const host = name(tlsReg);
    const refused = (err: unknown) => isBerthError(err, 'UNAUTHORIZED') && /407.*credentials.*user:password@/.test((err as Error).message);
    // Refused tunnel (HTTPS), also when it is the insecure host's HTTPS probe; refused absolute-form request (HTTP).
    for (const [target, insecure] of [[host, []], [host, [host]], [name(plainReg), []]] as const) {
      const settings = target === host ? { httpsProxy: authProxy.url } : { httpProxy: authProxy.url };
      const client = new RegistryClient({ credentials: async () => undefined, insecure: [...insecure], retries: 0, proxy: settings });
      try {
        if (target === host) await assert.rejects(client.ping(target), refused);
        else await assert.rejects(client.http.request({ method: 'GET', url: new URL(`http://${target}/v2/`) }), refused);
      } finally {
        client.close();
      }
    }
    const withCreds = new RegistryClient({ credentials: async () => undefined, insecure: [host], proxy: { httpsProxy: authProxy.urlWithCredentials } });
    try {
      await pushAndPull(withCreds, host, 'proxied/auth');
    } finally {
      withCreds.close();
    }
  });

  it('goes direct to what NO_PROXY names', async () => {
    const host = name(plainReg);
    proxy.log.length = 0;
    // registry.test resolves only at the proxy: going direct cannot reach it.
    const client = new RegistryClient({ credentials: async () => undefined, insecure: [host], retries: 0, proxy: { httpProxy: proxy.url, httpsProxy: proxy.url, noProxy: 'registry.test' } });
    try {
      await assert.rejects(client.ping(host));
    } finally {
      client.close();
    }
    assert.deepEqual(proxy.log, []);
  });

  it('berth reads HTTPS_PROXY and NO_PROXY from the environment', async () => {
    const host = name(plainReg);
    const client = new RegistryClient({ credentials: async () => undefined, insecure: [host], proxy: { httpProxy: proxy.url, httpsProxy: proxy.url } });
    try {
      await pushAndPull(client, host, 'proxied/cli');
    } finally {
      client.close();
    }
    proxy.log.length = 0;
    const env = { ...process.env, HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: 'other.test' };
    const run = await runBerth(['tags', '--tls-verify=false', `${host}/proxied/cli`], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'v1');
    assert.ok(proxy.log.some((l) => l.startsWith(`GET http://${host}/v2/proxied/cli/tags/list`)), proxy.log.join('\n'));
    // `digest` asks with HEAD only (Docker Hub does not count HEADs against pull limits), as crane does.
    proxy.log.length = 0;
    const digest = await runBerth(['digest', '--tls-verify=false', `${host}/proxied/cli:v1`], env);
    assert.equal(digest.code, 0, digest.stderr);
    assert.match(digest.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(proxy.log.filter((l) => l.includes('/manifests/')), [`HEAD http://${host}/v2/proxied/cli/manifests/v1`]);
  });
});
