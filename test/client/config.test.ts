/** Which registries berth reaches over plain HTTP: loopback always, others when marked insecure. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiHost, configuredInsecureRegistries, isLoopbackHost } from '../../src/client/config.js';
import { RegistryClient } from '../../src/client/registry.js';

describe('registry transport config', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-regconf-'));
  });
  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('treats loopback names as plain HTTP and others as HTTPS', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['registry.example', '10.0.0.1:5000', 'localhost.example']) assert.equal(isLoopbackHost(h), false, h);
    const client = new RegistryClient({ credentials: async () => undefined, insecure: ['intranet:5000'] });
    try {
      assert.equal(client.baseUrl('localhost:5000').protocol, 'http:');
      assert.equal(client.baseUrl('registry.example').protocol, 'https:');
      // Insecure hosts are tried over HTTPS (unverified) first; tls.test.ts covers the fallback.
      assert.equal(client.baseUrl('intranet:5000').protocol, 'https:');
      assert.equal(client.baseUrl('docker.io').host, 'registry-1.docker.io');
    } finally {
      client.close();
    }
    assert.equal(apiHost('quay.io'), 'quay.io');
  });

  it('reads BERTH_INSECURE_REGISTRIES and the registries.json config file', async () => {
    await mkdir(join(tmp, 'berth'), { recursive: true });
    await writeFile(join(tmp, 'berth', 'registries.json'), JSON.stringify({ insecure: ['file.example:5000'] }));
    assert.deepEqual(configuredInsecureRegistries({ BERTH_INSECURE_REGISTRIES: 'a.example, b.example:443', XDG_CONFIG_HOME: tmp }), [
      'a.example',
      'b.example:443',
      'file.example:5000',
    ]);
    assert.deepEqual(configuredInsecureRegistries({ XDG_CONFIG_HOME: join(tmp, 'none') }), []);
  });
});
