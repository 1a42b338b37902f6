/**
 * Operating `berth serve`: graceful shutdown with a request in flight, TLS, the JSON access log,
 * configuration from a file and the environment, and the default start-up message.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BERTH_BIN, startBerthRegistry } from '../helpers/berth-registry.js';
import { sha256 } from './registry-client.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-ops-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('berth serve operations', () => {
  it('SIGTERM: stops accepting, finishes the request in flight, exits 0', async () => {
    const reg = await startBerthRegistry({ args: ['--log-format', 'off'] });
    try {
      const post = await fetch(`${reg.url}/v2/shut/down/blobs/uploads/`, { method: 'POST' });
      const loc = new URL(post.headers.get('location')!, reg.url);
      const agent = new http.Agent({ keepAlive: false });
      const data = Buffer.alloc(200_000, 3);
      const answer = new Promise<number>((resolve, reject) => {
        const req = http.request(loc, { method: 'PATCH', agent, headers: { 'Content-Length': data.length, 'Content-Range': `0-${data.length - 1}` } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.write(data.subarray(0, 1000));
        setTimeout(() => {
          reg.child.kill('SIGTERM');
          setTimeout(() => req.end(data.subarray(1000)), 500);
        }, 200);
      });
      const exited = new Promise<number | null>((resolve) => reg.child.once('exit', (code) => resolve(code)));
      assert.equal(await answer, 202, 'the request in flight completes');
      assert.equal(await exited, 0);
      await assert.rejects(fetch(`${reg.url}/v2/`), 'no longer accepting');
    } finally {
      await reg.stop();
    }
  });

  it('serves HTTPS with the given certificate and key', async () => {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2'], { stdio: 'ignore' });
    const reg = await startBerthRegistry({ args: ['--tls-cert', cert, '--tls-key', key, '--log-format', 'off'] });
    try {
      assert.match(reg.url, /^https:\/\//);
      const status = await new Promise<number>((resolve, reject) => {
        https.get(`${reg.url}/v2/`, { ca: readFileSync(cert) }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        }).on('error', reject);
      });
      assert.equal(status, 200);
      await assert.rejects(fetch(`${reg.url}/v2/`), 'an unknown CA is refused by default clients');
    } finally {
      await reg.stop();
    }
  });

  it('reads a JSON config file and BERTH_* variables; writes one JSON access-log line per request', async () => {
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ delete: false, maxManifestBytes: 100 }));
    let log = '';
    const reg = await startBerthRegistry({ args: ['--config', config], env: { BERTH_LOG_FORMAT: 'json' }, onLog: (t) => (log += t) });
    try {
      const del = await fetch(`${reg.url}/v2/x/blobs/${sha256('x')}`, { method: 'DELETE' });
      assert.equal(del.status, 405, 'delete disabled by the file');
      await del.arrayBuffer();
      const big = await fetch(`${reg.url}/v2/x/manifests/v1`, { method: 'PUT', body: 'x'.repeat(101), headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(big.status, 413, 'limit from the file');
      await big.arrayBuffer();
      await (await fetch(`${reg.url}/v2/`)).arrayBuffer();
      for (let i = 0; i < 40 && !log.includes('"path":"/v2/"'); i++) await new Promise((r) => setTimeout(r, 50));
      const lines = log.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const access = lines.filter((l) => l.method !== undefined);
      assert.equal(access.length, 3);
      assert.deepEqual(access.map((l) => [l.method, l.status]), [['DELETE', 405], ['PUT', 413], ['GET', 200]]);
      assert.equal(typeof access[0]!.ms, 'number');
      assert.equal(access[2]!.route, 'base');
    } finally {
      await reg.stop();
    }
  });

  it('an address in use is reported in one clear line', async () => {
    const first = await startBerthRegistry({ args: ['--log-format', 'off'] });
    try {
      await assert.rejects(startBerthRegistry({ port: first.port }), /address 127\.0\.0\.1:\d+ is in use: choose another with --addr/);
    } finally {
      await first.stop();
    }
  });

  it('--gc-interval collects garbage inside the running server', async () => {
    const reg = await startBerthRegistry({ args: ['--log-format', 'off', '--gc-interval', '1', '--gc-grace', '0'] });
    try {
      const data = Buffer.from('collect me');
      const post = await fetch(`${reg.url}/v2/gc/live/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data });
      assert.equal(post.status, 201);
      let status = 200;
      for (let i = 0; i < 60 && status === 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const res = await fetch(`${reg.url}/v2/gc/live/blobs/${sha256(data)}`, { method: 'HEAD' });
        status = res.status;
      }
      assert.equal(status, 404, 'an unreferenced blob past the grace period is collected');
      const hex = sha256(data).slice(7);
      assert.ok(!existsSync(join(reg.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)));
    } finally {
      await reg.stop();
    }
  });

  it('without --data, keeps its data under $XDG_DATA_HOME/berth/registry and says so', async () => {
    const xdg = join(dir, 'xdg');
    const child = spawn(process.execPath, [BERTH_BIN, 'serve', '--addr', '127.0.0.1:0', '--log-format', 'off'], { env: { ...process.env, XDG_DATA_HOME: xdg }, stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const line = await new Promise<string>((resolve) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.trim());
        });
      });
      assert.match(line, new RegExp(`^berth registry listening on http://127\\.0\\.0\\.1:\\d+, data in ${xdg}/berth/registry$`));
      assert.ok(existsSync(join(xdg, 'berth', 'registry', 'registry.db')));
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
});
