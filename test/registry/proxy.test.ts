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
import { buildConfig, defaultConfig } from '../../src/registry/config.js';
import { openRegistry } from '../../src/registry/registry.js';
import { RegistryServer } from '../../src/registry/server.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer as Upstream } from '../helpers/distribution.js';
import { peer, skipUnless } from '../helpers/requirements.js';
import { OCI_MANIFEST, pushImage, sha256 } from './registry-client.js';

/** Forwards every request to `upstream` and counts them by method and path. */
function countingRelay(upstream: string): Promise<{ url: string; counts: Map<string, number>; close(): Promise<void> }> {
  const counts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const key = `${req.method} ${req.url}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const out = http.request(`${upstream}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        counts,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      }),
    ),
  );
}

describe('pull-through cache (berth serve --proxy)', { skip: skipUnless(peer(REGISTRY_BIN, 'docker-registry')) }, () => {
  let upstream: Upstream;
  let relay: Awaited<ReturnType<typeof countingRelay>>;
  let server: RegistryServer;
  const cache = { url: '' };
  const dir = mkdtempSync(join(tmpdir(), 'berth-proxy-'));
  before(async () => {
    upstream = await startRegistry();
    relay = await countingRelay(`http://${upstream.host}`);
    const config = buildConfig(defaultConfig({}), { data: dir, addr: '127.0.0.1:0', proxy: relay.url, proxyTtl: 2, logFormat: 'off' });
    assert.equal(config.sparseManifests, true, 'a pull-through cache accepts sparse manifests by default');
    server = new RegistryServer(await openRegistry(config));
    cache.url = `http://127.0.0.1:${(await server.listen()).port}`;
  });
  after(async () => {
    await server?.close();
    await relay?.close();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
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
    assert.equal((await fetch(`${cache.url}/v2/library/nothing/manifests/v1`)).status, 404, 'what was never fetched is unknown');
  });
});
