/**
 * `berth serve --proxy`: a pull-through cache of Debian's docker-registry, with a counting
 * relay between them so that the test sees every request that reaches the upstream.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, defaultConfig, overridesFromEnv } from '../../src/registry/config.js';
import { openRegistry, type Registry } from '../../src/registry/registry.js';
import { RegistryServer } from '../../src/registry/server.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer as Upstream } from '../helpers/distribution.js';
import { peer, skipUnless } from '../helpers/requirements.js';
import { randomBytes } from 'node:crypto';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, pushBlob, pushImage, sha256 } from './registry-client.js';

interface Relay {
  url: string;
  counts: Map<string, number>;
  /** Paths whose body stops half-way until the promise resolves. */
  hold: Map<string, Promise<void>>;
  /** Paths whose body arrives with its last byte changed. */
  tamper: Set<string>;
  close(): Promise<void>;
}

/** Forwards every request to `upstream` and counts them by method and path. */
function countingRelay(upstream: string): Promise<Relay> {
  const counts = new Map<string, number>();
  const hold = new Map<string, Promise<void>>();
  const tamper = new Set<string>();
  const server = http.createServer((req, res) => {
    const key = `${req.method} ${req.url}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const out = http.request(`${upstream}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
      const path = req.url ?? '';
      if (req.method !== 'GET' || (!hold.has(path) && !tamper.has(path))) {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        return;
      }
      const parts: Buffer[] = [];
      up.on('data', (d: Buffer) => parts.push(d));
      up.on('end', async () => {
        const body = Buffer.concat(parts);
        if (tamper.has(path)) body[body.length - 1] ^= 1;
        res.writeHead(up.statusCode ?? 502, up.headers);
        res.write(body.subarray(0, body.length >> 1));
        await hold.get(path);
        res.end(body.subarray(body.length >> 1));
      });
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        counts,
        hold,
        tamper,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      }),
    ),
  );
}

/** Reads a response body until at least `bytes` have arrived; then the rest, with whether it ended cleanly. */
async function readInTwo(res: Response, bytes: number): Promise<{ first: number; rest: () => Promise<{ body: Buffer; complete: boolean }> }> {
  const reader = res.body!.getReader();
  const parts: Buffer[] = [];
  let got = 0;
  while (got < bytes) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(Buffer.from(value));
    got += value.length;
  }
  return {
    first: got,
    rest: async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parts.push(Buffer.from(value));
        }
        return { body: Buffer.concat(parts), complete: true };
      } catch {
        return { body: Buffer.concat(parts), complete: false };
      }
    },
  };
}

describe('pull-through cache configuration', () => {
  it('takes upstreams from repeated --proxy [PREFIX=]URL and the proxies list, longest prefix first, with their credentials and TTLs', () => {
    const c = buildConfig(
      defaultConfig({}),
      { proxies: [{ prefix: 'private/team', url: 'https://reg.example', username: 'u', password: 'p', ttl: 60 }] },
      { proxy: ['http://127.0.0.1:5001', 'docker.io=http://127.0.0.1:5002/'], proxyTtl: 10, proxyUsername: 'anon' },
    );
    assert.deepEqual(
      c.proxies.map((p) => [p.prefix, p.url, p.username, p.password, p.ttlMs]),
      [
        ['private/team', 'https://reg.example', 'u', 'p', 60_000],
        ['docker.io', 'http://127.0.0.1:5002', undefined, undefined, 10_000],
        [undefined, 'http://127.0.0.1:5001', 'anon', undefined, 10_000],
      ],
    );
    assert.equal(c.sparseManifests, true);
    assert.deepEqual(buildConfig(defaultConfig({}), overridesFromEnv({ BERTH_PROXY: 'quay.io=http://127.0.0.1:1,http://127.0.0.1:2' })).proxies.map((p) => p.prefix), ['quay.io', undefined]);
    assert.throws(() => buildConfig(defaultConfig({}), { proxy: ['docker.io=http://a:1', 'docker.io=http://b:2'] }), /two proxies for the prefix docker.io/);
    assert.throws(() => buildConfig(defaultConfig({}), { proxy: ['127.0.0.1:5000=http://a:1'] }), /prefix "127.0.0.1:5000" must be a registry host without port/);
    assert.throws(() => buildConfig(defaultConfig({}), { proxy: ['docker.io=ftp://a'] }), /http\(s\):\/\/HOST\[:PORT\]/);
    assert.deepEqual(buildConfig(defaultConfig({}), {}).proxies, []);
  });
});

describe('pull-through cache (berth serve --proxy)', { skip: skipUnless(peer(REGISTRY_BIN, 'docker-registry')) }, () => {
  let upstream: Upstream;
  let privateUpstream: Upstream;
  let tokenUpstream: Upstream;
  /** The upstream without prefix, and the same registry as docker.io. */
  let relay: Relay;
  let hub: Relay;
  let server: RegistryServer;
  let registry: Registry;
  const cache = { url: '' };
  const dir = mkdtempSync(join(tmpdir(), 'berth-proxy-'));
  before(async () => {
    upstream = await startRegistry();
    privateUpstream = await startRegistry({ auth: 'htpasswd' });
    tokenUpstream = await startRegistry({ auth: 'token' });
    relay = await countingRelay(`http://${upstream.host}`);
    hub = await countingRelay(`http://${upstream.host}`);
    const config = buildConfig(
      defaultConfig({}),
      {
        proxies: [
          { prefix: 'private', url: `http://${privateUpstream.host}`, username: privateUpstream.username, password: privateUpstream.password },
          { prefix: 'tokened', url: `http://${tokenUpstream.host}`, username: tokenUpstream.username, password: tokenUpstream.password },
        ],
      },
      { data: dir, addr: '127.0.0.1:0', proxy: [relay.url, `docker.io=${hub.url}`], proxyTtl: 2, logFormat: 'off' },
    );
    assert.equal(config.sparseManifests, true, 'a pull-through cache accepts sparse manifests by default');
    registry = await openRegistry(config);
    server = new RegistryServer(registry);
    cache.url = `http://127.0.0.1:${(await server.listen()).port}`;
  });
  after(async () => {
    await server?.close();
    await relay?.close();
    await hub?.close();
    await upstream?.stop();
    await privateUpstream?.stop();
    await tokenUpstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An image in the upstream whose one layer is `size` random bytes. */
  async function pushBig(repo: string, tag: string, size: number): Promise<{ digest: string; layer: Buffer; layerDigest: string }> {
    const layer = randomBytes(size);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, tag }));
    await pushBlob(`http://${upstream.host}`, repo, layer);
    await pushBlob(`http://${upstream.host}`, repo, config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
        layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size }],
      }),
    );
    const put = await fetch(`http://${upstream.host}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(put.status, 201);
    return { digest: sha256(manifest), layer, layerDigest: sha256(layer) };
  }

  it('streams a blob to 20 clients while it arrives from the upstream keyed by host (docker.io/NAME and NAME?ns=docker.io), fetched once', async () => {
    const img = await pushBig('library/big', 'v1', 4 << 20);
    const m = await fetch(`${cache.url}/v2/docker.io/library/big/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('docker-content-digest'), img.digest);
    await m.arrayBuffer();
    assert.equal(hub.counts.get('GET /v2/library/big/manifests/v1') ?? 0, 0, 'a tag is asked with HEAD');
    assert.equal(hub.counts.get(`GET /v2/library/big/manifests/${img.digest}`), 1);
    assert.equal(relay.counts.size, 0, 'the upstream without prefix is not asked for docker.io/…');
    const path = `/v2/library/big/blobs/${img.layerDigest}`;
    let release!: () => void;
    hub.hold.set(path, new Promise<void>((r) => (release = r)));
    const responses = await Promise.all(Array.from({ length: 20 }, () => fetch(`${cache.url}/v2/docker.io/library/big/blobs/${img.layerDigest}`)));
    for (const r of responses) assert.equal(r.headers.get('content-length'), String(img.layer.length));
    // Half of the blob has reached the cache and the upstream holds the rest back: every client has bytes already.
    const halves = await Promise.all(responses.map((r) => readInTwo(r, 1 << 20)));
    for (const h of halves) assert.ok(h.first >= 1 << 20, 'each client reads the blob while it arrives');
    release();
    for (const h of halves) {
      const { body, complete } = await h.rest();
      assert.ok(complete && body.equals(img.layer), 'each client gets the whole blob');
    }
    assert.equal(hub.counts.get(`GET ${path}`), 1, 'one upstream fetch for 20 clients');
    // containerd's mirror request names the host in ?ns=: the same cached repository.
    const viaNs = await fetch(`${cache.url}/v2/library/big/blobs/${img.layerDigest}?ns=docker.io`);
    assert.ok(Buffer.from(await viaNs.arrayBuffer()).equals(img.layer));
    const tagViaNs = await fetch(`${cache.url}/v2/library/big/manifests/v1?ns=docker.io`, { method: 'HEAD' });
    assert.equal(tagViaNs.headers.get('docker-content-digest'), img.digest);
    assert.equal(hub.counts.get(`GET ${path}`), 1, 'served from the cache');
    const push = await fetch(`${cache.url}/v2/docker.io/library/big/blobs/uploads/`, { method: 'POST' });
    assert.equal(push.status, 405, 'a cached repository takes no pushes');
    assert.match(await push.text(), /pull-through cache/);
    const pushNs = await fetch(`${cache.url}/v2/library/big/manifests/v2?ns=docker.io`, { method: 'PUT', body: '{}', headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(pushNs.status, 405);
  });

  it('cuts every response short and stores nothing when the upstream sends a blob that does not match its digest', async () => {
    const img = await pushBig('library/bad', 'v1', 1 << 20);
    const path = `/v2/library/bad/blobs/${img.layerDigest}`;
    hub.tamper.add(path);
    const results = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const r = await fetch(`${cache.url}/v2/docker.io/library/bad/blobs/${img.layerDigest}`);
        return (await readInTwo(r, 0)).rest();
      }),
    );
    for (const { body, complete } of results) assert.ok(!complete || body.length < img.layer.length, 'no client receives a complete body');
    assert.equal(await registry.meta.blob(img.layerDigest), undefined, 'nothing stored');
    hub.tamper.delete(path);
    const again = await fetch(`${cache.url}/v2/docker.io/library/bad/blobs/${img.layerDigest}`);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(img.layer), 'the next request fetches it again');
  });

  it('authenticates to an upstream with the credentials of its proxies entry', async () => {
    const auth = { Authorization: `Basic ${Buffer.from(`${privateUpstream.username}:${privateUpstream.password}`).toString('base64')}` };
    const base = `http://${privateUpstream.host}`;
    const layer = Buffer.from('private layer');
    await pushBlob(base, 'team/app', layer, auth);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: sha256(layer), size: layer.length }, layers: [] }));
    const put = await fetch(`${base}/v2/team/app/manifests/v1`, { method: 'PUT', body: manifest, headers: { ...auth, 'Content-Type': OCI_MANIFEST } });
    assert.equal(put.status, 201);
    const m = await fetch(`${cache.url}/v2/private/team/app/manifests/v1`);
    assert.equal(m.status, 200);
    assert.ok(Buffer.from(await m.arrayBuffer()).equals(manifest));
    const b = await fetch(`${cache.url}/v2/private/team/app/blobs/${sha256(layer)}`);
    assert.ok(Buffer.from(await b.arrayBuffer()).equals(layer));
  });

  it('fetches a token from an upstream\'s token server (Bearer challenge) with the credentials of its proxies entry', async () => {
    const ts = tokenUpstream.tokenServer!;
    const basic = `Basic ${Buffer.from(`${tokenUpstream.username}:${tokenUpstream.password}`).toString('base64')}`;
    const tokenRes = await fetch(`${ts.realm}?service=${ts.service}&scope=repository:team/app:pull,push`, { headers: { Authorization: basic } });
    const auth = { Authorization: `Bearer ${((await tokenRes.json()) as { token: string }).token}` };
    const base = `http://${tokenUpstream.host}`;
    const layer = Buffer.from('layer behind a token');
    await pushBlob(base, 'team/app', layer, auth);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: sha256(layer), size: layer.length }, layers: [] }));
    assert.equal((await fetch(`${base}/v2/team/app/manifests/v1`, { method: 'PUT', body: manifest, headers: { ...auth, 'Content-Type': OCI_MANIFEST } })).status, 201);
    const before = ts.requests.length;
    const m = await fetch(`${cache.url}/v2/tokened/team/app/manifests/v1`);
    assert.ok(Buffer.from(await m.arrayBuffer()).equals(manifest));
    const b = await fetch(`${cache.url}/v2/tokened/team/app/blobs/${sha256(layer)}`);
    assert.ok(Buffer.from(await b.arrayBuffer()).equals(layer));
    const asked = ts.requests.slice(before);
    assert.ok(asked.length >= 1 && asked.every((r) => r.user === tokenUpstream.username && r.scopes.includes('repository:team/app:pull')), JSON.stringify(asked));
  });

  it('links a blob stored for one repository into another only when the other\'s upstream has it (HEAD)', async () => {
    // The private layer is stored now; docker.io's upstream never had it.
    const privateLayer = sha256(Buffer.from('private layer'));
    const leak = await fetch(`${cache.url}/v2/docker.io/library/big/blobs/${privateLayer}`);
    assert.equal(leak.status, 404, 'a digest learnt elsewhere does not open another repository\'s content');
    // library/app's layer, stored through the upstream without prefix, is in docker.io's too (the same registry).
    const img = await pushImage(`http://${upstream.host}`, 'library/shared', 'v1', 'shared');
    const layer = sha256(img.layer);
    const first = await fetch(`${cache.url}/v2/library/shared/blobs/${layer}`);
    assert.ok(Buffer.from(await first.arrayBuffer()).equals(img.layer));
    const viaHub = await fetch(`${cache.url}/v2/docker.io/library/shared/blobs/${layer}`);
    assert.ok(Buffer.from(await viaHub.arrayBuffer()).equals(img.layer));
    assert.equal(hub.counts.get(`HEAD /v2/library/shared/blobs/${layer}`), 1, 'asked with a HEAD');
    assert.equal(hub.counts.get(`GET /v2/library/shared/blobs/${layer}`) ?? 0, 0, 'not fetched again');
  });

  it('serves an upstream image, fetching each blob once for 20 concurrent clients, and tags from cache within the TTL', async () => {
    const img = await pushImage(`http://${upstream.host}`, 'library/app', 'v1', 'proxied');
    const m = await fetch(`${cache.url}/v2/library/app/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('docker-content-digest'), img.digest);
    assert.ok(Buffer.from(await m.arrayBuffer()).equals(img.manifest));
    const before = relay.counts.get('HEAD /v2/library/app/manifests/v1') ?? 0;
    assert.equal((await fetch(`${cache.url}/v2/library/app/manifests/v1`, { method: 'HEAD' })).status, 200);
    assert.equal(relay.counts.get('HEAD /v2/library/app/manifests/v1') ?? 0, before, 'within the TTL the upstream is not asked');
    const layer = sha256(img.layer);
    const bodies = await Promise.all(
      Array.from({ length: 20 }, async () => Buffer.from(await (await fetch(`${cache.url}/v2/library/app/blobs/${layer}`)).arrayBuffer())),
    );
    for (const b of bodies) assert.ok(b.equals(img.layer));
    assert.equal(relay.counts.get(`GET /v2/library/app/blobs/${layer}`), 1, 'one upstream fetch for 20 clients');
  });

  it('revalidates a tag after its TTL and serves the cache when the upstream is down', async () => {
    const moved = await pushImage(`http://${upstream.host}`, 'library/app', 'v1', 'moved');
    await new Promise((r) => setTimeout(r, 2100));
    const m = await fetch(`${cache.url}/v2/library/app/manifests/v1`, { method: 'HEAD' });
    assert.equal(m.headers.get('docker-content-digest'), moved.digest, 'the moved tag after the TTL');
    const config = sha256(moved.config);
    assert.ok(Buffer.from(await (await fetch(`${cache.url}/v2/library/app/blobs/${config}`)).arrayBuffer()).equals(moved.config));

    await relay.close();
    await new Promise((r) => setTimeout(r, 2100));
    const offline = await fetch(`${cache.url}/v2/library/app/manifests/v1`, { method: 'HEAD' });
    assert.equal(offline.status, 200, 'cached content is served while the upstream is down');
    assert.equal(offline.headers.get('docker-content-digest'), moved.digest);
    assert.equal((await fetch(`${cache.url}/v2/library/app/blobs/${config}`, { method: 'HEAD' })).status, 200);
    const never = await fetch(`${cache.url}/v2/library/nothing/manifests/v1`);
    assert.equal(never.status, 502, 'what was never fetched cannot be served: the upstream is down');
    assert.match(await never.text(), /did not answer/);
  });
});
