/**
 * The referrers API path, which Debian's docker-registry does not have: a small in-test
 * server answers GET /referrers/<digest> in two pages (Link) and applies the artifactType
 * filter (OCI-Filters-Applied), and answers pushes of manifests with a subject with
 * OCI-Subject, so the client must not maintain the referrers tag.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { RegistryClient } from '../../src/client/registry.js';
import { digestOf } from '../../src/base/digest.js';
import { MediaType } from '../../src/base/media-types.js';
import type { Descriptor } from '../../src/base/types.js';

const subject: Descriptor = { mediaType: MediaType.imageManifest, digest: digestOf('subject'), size: 7 };
const referrers: Descriptor[] = [
  { mediaType: MediaType.imageManifest, digest: digestOf('r1'), size: 2, artifactType: 'application/vnd.a' },
  { mediaType: MediaType.imageManifest, digest: digestOf('r2'), size: 2, artifactType: 'application/vnd.b' },
  { mediaType: MediaType.imageManifest, digest: digestOf('r3'), size: 2, artifactType: 'application/vnd.a' },
];

describe('referrers API', () => {
  let server: http.Server;
  let host: string;
  const requests: string[] = [];
  let client: RegistryClient;

  before(async () => {
    server = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      req.resume();
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === `/v2/r/referrers/${subject.digest}`) {
        const type = url.searchParams.get('artifactType');
        const all = type ? referrers.filter((d) => d.artifactType === type) : referrers;
        const page = url.searchParams.get('page') === '2' ? all.slice(2) : all.slice(0, 2);
        const headers: Record<string, string> = { 'Content-Type': MediaType.imageIndex };
        if (type) headers['OCI-Filters-Applied'] = 'artifactType';
        if (url.searchParams.get('page') !== '2' && all.length > 2) headers.Link = `</v2/r/referrers/${subject.digest}?page=2>; rel="next"`;
        res.writeHead(200, headers).end(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.imageIndex, manifests: page }));
        return;
      }
      if (req.method === 'PUT' && url.pathname.startsWith('/v2/r/manifests/')) {
        res.writeHead(201, { 'OCI-Subject': subject.digest, 'Docker-Content-Digest': url.pathname.split('/').pop()! }).end();
        return;
      }
      res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'no' }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = new RegistryClient({ credentials: async () => undefined, retries: 0 });
  });
  after(async () => {
    client.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('follows Link pages and uses the server-side filter', async () => {
    const repo = client.repository(host, 'r');
    assert.deepEqual((await repo.referrers(subject)).map((d) => d.digest), referrers.map((d) => d.digest));
    const filtered = await repo.referrers(subject, 'application/vnd.a');
    assert.deepEqual(filtered.map((d) => d.digest), [referrers[0]!.digest, referrers[2]!.digest]);
    assert.ok(requests.some((r) => r.includes('artifactType=application%2Fvnd.a')));
  });

  it('does not touch the referrers tag when the registry answers OCI-Subject', async () => {
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.imageManifest, artifactType: 'application/vnd.a', config: { mediaType: MediaType.empty, digest: digestOf('{}'), size: 2 }, layers: [], subject }),
    );
    const desc = { mediaType: MediaType.imageManifest, digest: digestOf(manifest), size: manifest.length };
    requests.length = 0;
    await client.repository(host, 'r').push(desc, Readable.from([manifest]));
    assert.deepEqual(requests, [`PUT /v2/r/manifests/${desc.digest}`]);
  });
});
