/**
 * /metrics tells repository and blob counts: on the main port it takes the same auth as the
 * API and the catalog right (any authenticated user without a policy, "catalog": true with one);
 * a separate listener (--debug-addr, BERTH_DEBUG_ADDR, "debugAddr"; distribution's debug.addr)
 * serves /metrics and /healthz without auth, and nothing of the API.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { isBerthError } from '../../src/base/errors.js';
import { buildConfig, defaultConfig, overridesFromEnv, overridesFromFile } from '../../src/registry/config.js';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { freePort } from '../helpers/distribution.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-debug-addr-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

describe('metrics on the main port and on the debug listener', () => {
  let reg: BerthRegistry;
  let debug: string;

  before(async () => {
    const htpasswd = join(dir, 'htpasswd');
    writeFileSync(htpasswd, ['alice', 'bob'].map((u) => `${u}:${bcrypt.hashSync(`${u}-secret`, 4)}`).join('\n') + '\n');
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ rules: [
      { who: ['user:alice'], repositories: ['**'], actions: ['*'], catalog: true },
      { who: ['user:bob'], repositories: ['team/*'], actions: ['pull'] },
    ] }));
    const port = await freePort();
    debug = `http://127.0.0.1:${port}`;
    reg = await startBerthRegistry({ args: ['--htpasswd', htpasswd, '--policy', policy, '--debug-addr', `127.0.0.1:${port}`] });
  });
  after(async () => {
    await reg?.stop();
  });

  it('main port: /metrics needs credentials and the catalog right; /healthz stays open', async () => {
    const anonymous = await fetch(`${reg.url}/metrics`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic /);
    assert.doesNotMatch(await anonymous.text(), /berth_/);
    const bob = await fetch(`${reg.url}/metrics`, { headers: basic('bob', 'bob-secret') });
    assert.equal(bob.status, 403, 'bob may not list the catalog, so not the counts either');
    assert.doesNotMatch(await bob.text(), /berth_/);
    const alice = await fetch(`${reg.url}/metrics`, { headers: basic('alice', 'alice-secret') });
    assert.equal(alice.status, 200);
    assert.match(await alice.text(), /^berth_blobs_stored \d+$/m);
    const health = await fetch(`${reg.url}/healthz`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
  });

  it('debug listener: /metrics and /healthz without auth, no API', async () => {
    const metrics = await fetch(`${debug}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    assert.match(text, /^berth_http_requests_total\{route="metrics",method="GET",status="401"\} [1-9]\d*$/m, 'counts the main port\'s requests');
    assert.match(text, /^berth_blobs_stored \d+$/m);
    const health = await fetch(`${debug}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok', storage: 'ok', metadata: 'ok' });
    for (const path of ['/v2/', '/v2/_catalog', '/token']) {
      const res = await fetch(`${debug}${path}`);
      assert.equal(res.status, 404, path);
      await res.arrayBuffer();
    }
    const post = await fetch(`${debug}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    await post.arrayBuffer();
  });
});

describe('the debug address setting', () => {
  it('comes from --debug-addr, BERTH_DEBUG_ADDR or "debugAddr", later ones winning', () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ debugAddr: '127.0.0.1:5001' }));
    const base = defaultConfig({});
    assert.equal(base.debugAddr, undefined, 'off unless asked for');
    assert.equal(buildConfig(base, overridesFromFile(file)).debugAddr, '127.0.0.1:5001');
    assert.equal(buildConfig(base, overridesFromFile(file), overridesFromEnv({ BERTH_DEBUG_ADDR: '127.0.0.1:5002' })).debugAddr, '127.0.0.1:5002');
    assert.equal(buildConfig(base, overridesFromFile(file), overridesFromEnv({ BERTH_DEBUG_ADDR: '127.0.0.1:5002' }), { debugAddr: '[::1]:5003' }).debugAddr, '[::1]:5003');
    assert.throws(() => buildConfig(base, { debugAddr: 'localhost' }), (err) => isBerthError(err, 'USAGE') && /the debug address \(--debug-addr\) must be HOST:PORT/.test(err.message));
  });

  it('berth serve refuses a debug address in use, naming --debug-addr', async () => {
    const port = await freePort();
    await assert.rejects(
      startBerthRegistry({ port, args: ['--debug-addr', `127.0.0.1:${port}`] }),
      /address 127\.0\.0\.1:\d+ is in use: choose another with --debug-addr HOST:PORT/,
    );
  });
});
