/**
 * rawGet (the plain-HTTP blob body reader) against a node:http server on 127.0.0.1: bodies
 * that span several slabs arrive intact with a slow consumer, headers and Range go out, and
 * every answer it does not handle (errors, redirects, chunked bodies) comes back as undefined;
 * a cut body fails with a network error that BlobDownload resumes from; HTTPS verifies the
 * certificate unless told not to.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net, { type AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { RawConnectionPool, rawGet } from '../../src/client/raw-get.js';
import { BlobDownload } from '../../src/client/blob-download.js';
import { isNetworkError } from '../../src/client/http.js';
import { readAll } from '../../src/base/read.js';

const BLOB = randomBytes(5 * 1024 * 1024 + 123);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('rawGet', () => {
  let server: http.Server;
  let base: string;
  const seen: http.IncomingHttpHeaders[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push(req.headers);
      const url = new URL(req.url!, 'http://x');
      switch (url.pathname) {
        case '/blob': {
          const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
          const start = m ? Number(m[1]) : 0;
          res.writeHead(m ? 206 : 200, { 'Content-Length': String(BLOB.length - start), 'X-Twice': ['a', 'b'] });
          res.end(BLOB.subarray(start));
          return;
        }
        case '/empty':
          res.writeHead(200, { 'Content-Length': '0' });
          res.end();
          return;
        case '/missing':
          res.writeHead(404, { 'Content-Type': 'application/json' });
          res.end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
          return;
        case '/close':
          res.writeHead(200, { 'Content-Length': '10', Connection: 'close' });
          res.end('0123456789');
          return;
        case '/redirect':
          res.writeHead(307, { Location: '/blob', 'Content-Length': '0' });
          res.end();
          return;
        case '/chunked':
          res.writeHead(200, { 'Transfer-Encoding': 'chunked' });
          res.end(BLOB.subarray(0, 1000));
          return;
        case '/cut':
          res.writeHead(200, { 'Content-Length': String(BLOB.length) });
          res.write(BLOB.subarray(0, 2 * 1024 * 1024), () => setTimeout(() => req.socket.destroy(), 20));
          return;
        default:
          res.writeHead(500).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('streams a body of several slabs intact to a slow consumer, sending the given headers', async () => {
    const res = await rawGet(new URL(`${base}/blob`), { headers: { Authorization: 'Bearer t0k', 'User-Agent': 'berth-test' }, timeoutMs: 10_000 });
    assert.ok(res);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(BLOB.length));
    assert.equal(res.headers['x-twice'], 'a, b');
    const parts: Buffer[] = [];
    let n = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      parts.push(chunk);
      // Pause now and then so that the socket is stopped and restarted (backpressure).
      if (++n % 4 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    const got = Buffer.concat(parts);
    assert.equal(got.length, BLOB.length);
    assert.equal(sha(got), sha(BLOB));
    const sent = seen.at(-1)!;
    assert.equal(sent.authorization, 'Bearer t0k');
    assert.equal(sent['user-agent'], 'berth-test');
  });

  it('passes Range through and returns the 206 rest', async () => {
    const res = await rawGet(new URL(`${base}/blob`), { headers: { Range: 'bytes=1000000-' }, timeoutMs: 10_000 });
    assert.ok(res);
    assert.equal(res.status, 206);
    const got = await readAll(res.body, BLOB.length);
    assert.equal(sha(got), sha(BLOB.subarray(1_000_000)));
  });

  it('ends an empty body at once', async () => {
    const res = await rawGet(new URL(`${base}/empty`), { headers: {}, timeoutMs: 10_000 });
    assert.ok(res);
    assert.equal((await readAll(res.body, 10)).length, 0);
  });

  it('returns undefined for errors, redirects and chunked bodies, so that the caller uses HttpClient', async () => {
    for (const path of ['/missing', '/redirect', '/chunked']) {
      assert.equal(await rawGet(new URL(`${base}${path}`), { headers: {}, timeoutMs: 10_000 }), undefined, path);
    }
  });

  it('leaves a header with CR or LF to HttpClient instead of splitting the request', async () => {
    const bad: Record<string, string>[] = [{ authorization: 'Bearer x\r\nX-Smuggled: 1' }, { 'x-a\nb': 'v' }];
    for (const headers of bad) {
      assert.equal(await rawGet(new URL(`${base}/blob`), { headers, timeoutMs: 10_000 }), undefined);
    }
  });

  it('reads over TLS, refusing a self-signed certificate unless verification is off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-raw-get-tls-'));
    const tlsServer = await (async () => {
      try {
        execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
        const srv = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => {
          res.writeHead(200, { 'Content-Length': String(BLOB.length) });
          res.end(BLOB);
        });
        await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
        return srv;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    })();
    try {
      const url = new URL(`https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}/blob`);
      await assert.rejects(rawGet(url, { headers: {}, timeoutMs: 10_000 }), /self[- ]signed/i);
      const res = await rawGet(url, { headers: {}, timeoutMs: 10_000, rejectUnauthorized: false });
      assert.ok(res);
      const got = await readAll(res.body, BLOB.length);
      assert.equal(sha(got), sha(BLOB));
    } finally {
      await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    }
  });

  it('fails a cut body with a network error, which BlobDownload resumes with Range', async () => {
    const res = await rawGet(new URL(`${base}/cut`), { headers: {}, timeoutMs: 10_000 });
    assert.ok(res);
    await assert.rejects(readAll(res.body, BLOB.length), (err: Error) => isNetworkError(err));

    let opened = 0;
    const download = new BlobDownload({
      size: BLOB.length,
      start: 0,
      maxFailures: 2,
      what: 'test blob',
      open: async (offset) => {
        opened++;
        const url = new URL(`${base}${offset === 0 ? '/cut' : '/blob'}`);
        const r = await rawGet(url, { headers: offset > 0 ? { Range: `bytes=${offset}-` } : {}, timeoutMs: 10_000 });
        assert.ok(r);
        return r;
      },
    });
    const got = await readAll(download, BLOB.length);
    assert.equal(opened, 2);
    assert.equal(sha(got), sha(BLOB));
  });

  it('keeps connections for the next GET in a pool, and not when the server says close', async () => {
    let connections = 0;
    const countConnections = () => connections++;
    server.on('connection', countConnections);
    const pool = new RawConnectionPool();
    try {
      for (let i = 0; i < 3; i++) {
        const res = await rawGet(new URL(`${base}/blob`), { headers: {}, timeoutMs: 10_000, pool });
        assert.ok(res);
        assert.equal(sha(await readAll(res.body, BLOB.length)), sha(BLOB));
        assert.equal(seen.at(-1)!.connection, undefined, 'no Connection: close when pooled');
      }
      assert.equal(connections, 1);
      // An answer refused (a redirect) or one that says close leaves the pool without its connection.
      assert.equal(await rawGet(new URL(`${base}/redirect`), { headers: {}, timeoutMs: 10_000, pool }), undefined);
      const closing = await rawGet(new URL(`${base}/close`), { headers: {}, timeoutMs: 10_000, pool });
      assert.ok(closing);
      await readAll(closing.body, 10);
      const again = await rawGet(new URL(`${base}/empty`), { headers: {}, timeoutMs: 10_000, pool });
      assert.ok(again);
      assert.equal(connections, 3, 'the redirect and the close answer took their connections with them');
      // The server drops its idle connections: the next GET opens a new one.
      server.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
      const fresh = await rawGet(new URL(`${base}/empty`), { headers: {}, timeoutMs: 10_000, pool });
      assert.ok(fresh);
      assert.equal(connections, 4);
    } finally {
      pool.close();
      server.off('connection', countConnections);
    }
  });

  it('sends again on a fresh connection when a pooled one turns out closed', async () => {
    // Answers the first GET on each connection and drops the connection at the second, as a
    // server does whose idle timeout fires just as the request arrives.
    let connections = 0;
    const racy = net.createServer((sock) => {
      connections++;
      let requests = 0;
      let buffered = '';
      sock.on('data', (d) => {
        buffered += d.toString('latin1');
        while (buffered.includes('\r\n\r\n')) {
          buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
          if (++requests === 1) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
          else sock.destroy();
        }
      });
    });
    await new Promise<void>((resolve) => racy.listen(0, '127.0.0.1', resolve));
    const url = new URL(`http://127.0.0.1:${(racy.address() as AddressInfo).port}/b`);
    const pool = new RawConnectionPool();
    try {
      for (let i = 0; i < 3; i++) {
        const res = await rawGet(url, { headers: {}, timeoutMs: 10_000, pool });
        assert.ok(res);
        assert.equal((await readAll(res.body, 5)).toString(), 'hello');
      }
      assert.equal(connections, 3, 'each retry opened one new connection');
    } finally {
      pool.close();
      await new Promise<void>((resolve) => racy.close(() => resolve()));
    }
  });

  it('fails with a network error when nothing listens', async () => {
    const idle = http.createServer();
    await new Promise<void>((resolve) => idle.listen(0, '127.0.0.1', resolve));
    const port = (idle.address() as AddressInfo).port;
    await new Promise<void>((resolve) => idle.close(() => resolve()));
    await assert.rejects(rawGet(new URL(`http://127.0.0.1:${port}/blob`), { headers: {}, timeoutMs: 10_000 }), (err: Error) => isNetworkError(err));
  });
});
