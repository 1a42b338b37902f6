/**
 * BlobDownload against a small HTTP server that misbehaves on purpose, for the cases the real
 * registry (tested in repository.test.ts) never produces: a server that ignores Range and
 * answers 200 with the whole blob after a cut, and one that keeps cutting.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { BlobDownload } from '../../src/client/blob-download.js';
import { HttpClient } from '../../src/client/http.js';
import { isBerthError } from '../../src/base/errors.js';
import { readAll } from '../../src/base/read.js';

const BLOB = randomBytes(3 * 1024 * 1024 + 17);

describe('BlobDownload', () => {
  let server: http.Server;
  let base: string;
  /** How each request is answered: cut after this many bytes (undefined: send everything). */
  let cutAfter: (requestNumber: number) => number | undefined;
  let requests: { range?: string }[] = [];
  const client = new HttpClient({ retries: 0 });

  before(async () => {
    server = http.createServer((req, res) => {
      requests.push({ range: req.headers.range });
      const cut = cutAfter(requests.length);
      // Always the whole blob with 200: this server ignores Range.
      res.writeHead(200, { 'Content-Length': String(BLOB.length), 'Content-Type': 'application/octet-stream' });
      if (cut === undefined) {
        res.end(BLOB);
        return;
      }
      res.write(BLOB.subarray(0, cut), () => setTimeout(() => req.socket.destroy(), 20));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const download = (start = 0, maxFailures = 3) =>
    new BlobDownload({
      size: BLOB.length,
      start,
      maxFailures,
      what: 'test blob',
      open: (offset) => client.request({ method: 'GET', url: new URL('/blob', base), headers: offset > 0 ? { Range: `bytes=${offset}-` } : {} }),
    });

  it('resumes after a cut and skips what it has when the server ignores Range', async () => {
    requests = [];
    cutAfter = (n) => (n === 1 ? 1024 * 1024 + 5 : undefined);
    const bytes = await readAll(download(), BLOB.length + 1);
    assert.equal(bytes.length, BLOB.length);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), createHash('sha256').update(BLOB).digest('hex'));
    assert.equal(requests.length, 2);
    assert.equal(requests[0]!.range, undefined);
    assert.match(requests[1]!.range ?? '', /^bytes=\d+-$/);
  });

  it('starts at an offset: only the rest is handed on', async () => {
    requests = [];
    cutAfter = () => undefined;
    const bytes = await readAll(download(1000), BLOB.length);
    assert.ok(bytes.equals(BLOB.subarray(1000)));
    assert.equal(requests[0]!.range, 'bytes=1000-');
  });

  it('gives up with NETWORK after maxFailures cuts', async () => {
    requests = [];
    cutAfter = () => 64 * 1024;
    await assert.rejects(readAll(download(0, 2), BLOB.length + 1), (err: unknown) => {
      assert.ok(isBerthError(err, 'NETWORK'), String(err));
      assert.match((err as Error).message, /connection broke 3 times/);
      return true;
    });
    assert.equal(requests.length, 3);
  });
});
