import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { buildConfig, defaultConfig } from '../../src/registry/config.js';
import { openRegistry } from '../../src/registry/registry.js';
import { RegistryServer } from '../../src/registry/server.js';
import { pushBlob, sha256 } from './registry-client.js';

/** GETs a URL and reports the status, the bytes received and whether the body ended cleanly. */
function get(url: string): Promise<{ status: number; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), complete: false }));
      res.on('aborted', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), complete: false }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the registry never serves a blob whose bytes do not match its digest', () => {
  let dir: string;
  let server: RegistryServer;
  let base: string;
  const small = randomBytes(1000);
  const large = randomBytes(3 * 1024 * 1024);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-integrity-'));
    const reg = await openRegistry(buildConfig(defaultConfig(), { addr: '127.0.0.1:0', data: dir, logFormat: 'off' }));
    server = new RegistryServer(reg);
    base = `http://127.0.0.1:${(await server.listen()).port}`;
    for (const blob of [small, large]) {
      assert.equal(await pushBlob(base, 'integrity/app', blob), sha256(blob));
      // the stored bytes are served intact first
      const ok = await get(`${base}/v2/integrity/app/blobs/${sha256(blob)}`);
      assert.equal(ok.status, 200);
      assert.ok(ok.complete && ok.body.equals(blob));
    }
  });

  after(async () => {
    await server.close(1000);
    rmSync(dir, { recursive: true, force: true });
  });

  function corrupt(blob: Buffer): void {
    const hex = sha256(blob).slice(7);
    writeFileSync(join(dir, 'blobs', 'sha256', hex.slice(0, 2), hex), Buffer.alloc(blob.length, 7));
  }

  it('a corrupted large blob is cut off before its end, never delivered whole', async () => {
    corrupt(large);
    const res = await get(`${base}/v2/integrity/app/blobs/${sha256(large)}`);
    assert.equal(res.complete && res.body.length === large.length, false, 'a complete body was delivered');
  });

  it('a corrupted small blob that is not cached yet is refused with a 500 that says what to do', async () => {
    // restart so that the small-blob cache is empty
    await server.close(1000);
    const reg = await openRegistry(buildConfig(defaultConfig(), { addr: '127.0.0.1:0', data: dir, logFormat: 'off' }));
    server = new RegistryServer(reg);
    base = `http://127.0.0.1:${(await server.listen()).port}`;
    corrupt(small);
    const res = await get(`${base}/v2/integrity/app/blobs/${sha256(small)}`);
    assert.equal(res.status, 500);
    assert.match(res.body.toString(), /does not match its digest.*registry verify/);
  });
});
