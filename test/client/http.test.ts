/**
 * HttpClient behaviour that the real registry cannot show on demand, against small
 * node:http servers in the test: a redirect to another host must not carry Authorization,
 * 429 with Retry-After is retried, retries stop after the configured count, and an idle
 * connection times out. Also the header parsers (Retry-After, Link).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpClient, nextLink, retryAfterMs } from '../../src/client/http.js';
import { readAll } from '../../src/base/read.js';
import { isBerthError } from '../../src/base/errors.js';

async function serve(handler: http.RequestListener): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('HttpClient', () => {
  const servers: http.Server[] = [];
  let client: HttpClient;
  before(() => {
    client = new HttpClient({ backoffMs: 5, retries: 2, timeoutMs: 300 });
  });
  after(async () => {
    client.close();
    for (const s of servers) await close(s);
  });

  it('follows a 307 to another host without the Authorization header', async () => {
    let seen: string | undefined = 'unset';
    const storage = await serve((req, res) => {
      seen = req.headers.authorization;
      res.end('blob bytes');
    });
    // "localhost" and "127.0.0.1" are different hosts for the client.
    const storageUrl = storage.url.replace('127.0.0.1', 'localhost');
    const registry = await serve((_req, res) => res.writeHead(307, { Location: `${storageUrl}/signed?x=1` }).end());
    servers.push(storage.server, registry.server);
    const res = await client.request({ method: 'GET', url: new URL(`${registry.url}/v2/r/blobs/x`), headers: { Authorization: 'Bearer secret' } });
    assert.equal(res.status, 200);
    assert.equal((await readAll(res.body)).toString(), 'blob bytes');
    assert.equal(seen, undefined);
  });

  it('retries 429 honouring Retry-After, and gives up after the retry count', async () => {
    let calls = 0;
    const s = await serve((_req, res) => {
      calls++;
      if (calls === 1) res.writeHead(429, { 'Retry-After': '0' }).end();
      else res.end('ok');
    });
    const always = await serve((_req, res) => res.writeHead(503).end());
    servers.push(s.server, always.server);
    const res = await client.request({ method: 'GET', url: new URL(s.url) });
    assert.equal(res.status, 200);
    assert.equal(calls, 2);
    const failing = await client.request({ method: 'GET', url: new URL(always.url) });
    assert.equal(failing.status, 503, 'the last answer is returned for the caller to report');
    failing.body.resume();
  });

  it('fails with NETWORK when the server stops sending', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('partial');
    });
    servers.push(s.server);
    const res = await client.request({ method: 'GET', url: new URL(s.url), retries: 0 });
    await assert.rejects(readAll(res.body));
    await assert.rejects(
      client.request({ method: 'GET', url: new URL('http://127.0.0.1:1/'), retries: 0 }),
      (err: unknown) => isBerthError(err, 'NETWORK'),
    );
  });

  it('parses Retry-After and Link headers', () => {
    assert.equal(retryAfterMs('2'), 2000);
    assert.equal(retryAfterMs('100000'), 60_000, 'capped');
    assert.equal(retryAfterMs(undefined), undefined);
    assert.ok((retryAfterMs(new Date(Date.now() + 3000).toUTCString()) ?? 0) > 1000);
    const base = new URL('http://r.example/v2/a/tags/list?n=2');
    assert.equal(nextLink('</v2/a/tags/list?n=2&last=b>; rel="next"', base)?.href, 'http://r.example/v2/a/tags/list?n=2&last=b');
    assert.equal(nextLink('<http://x/prev>; rel="prev", <http://x/next>; rel="next"', base)?.href, 'http://x/next');
    assert.equal(nextLink(undefined, base), undefined);
  });
});
