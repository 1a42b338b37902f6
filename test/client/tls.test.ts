/**
 * HTTPS by default, and registries marked insecure: docker-registry serving TLS with a
 * self-signed certificate is refused unless marked insecure (then HTTPS without verification);
 * a plain-HTTP registry marked insecure is reached over HTTP after the HTTPS probe fails.
 * The registry is addressed as [::ffff:127.0.0.1]:PORT, which is not a loopback *name*, so
 * that the loopback rule (always plain HTTP) does not apply.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient } from '../../src/client/registry.js';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';
import { isBerthError } from '../../src/base/errors.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { addImage } from './fixtures.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const skip = skipUnless(peer(REGISTRY_BIN, 'docker-registry'));

function mapped(host: string): string {
  return `[::ffff:127.0.0.1]:${host.split(':')[1]}`;
}

describe('TLS and insecure registries', { skip }, () => {
  let tlsReg: RegistryServer;
  let plainReg: RegistryServer;
  before(async () => {
    [tlsReg, plainReg] = await Promise.all([startRegistry({ tls: true }), startRegistry()]);
  });
  after(async () => {
    await tlsReg?.stop();
    await plainReg?.stop();
  });

  it('refuses a self-signed certificate by default', async () => {
    const client = new RegistryClient({ credentials: async () => undefined, retries: 0 });
    try {
      assert.equal(client.baseUrl(mapped(tlsReg.host)).protocol, 'https:');
      await assert.rejects(client.ping(mapped(tlsReg.host)), (err: unknown) => {
        assert.ok(isBerthError(err, 'NETWORK'), String(err));
        assert.match((err as Error).message, /certificate/i);
        return true;
      });
    } finally {
      client.close();
    }
  });

  it('uses HTTPS without verification for a TLS registry marked insecure', async () => {
    const host = mapped(tlsReg.host);
    const client = new RegistryClient({ credentials: async () => undefined, insecure: [host] });
    try {
      const src = new MemoryStore();
      const img = addImage(src, { files: [{ f: 'tls' }] });
      await src.tag(img.manifest, 't');
      await copy(src, 't', client.repository(host, 'tls/app'), 't');
      assert.equal(client.baseUrl(host).protocol, 'https:');
      assert.equal((await client.repository(host, 'tls/app').resolve('t')).digest, img.manifest.digest);
      // And back: the blobs come over TLS through the raw blob reader (raw-get.ts).
      const back = new MemoryStore();
      const result = await copy(client.repository(host, 'tls/app'), 't', back, 't');
      assert.equal(result.blobsCopied, 2);
      for (const layer of img.layers) assert.ok(await back.exists(layer), `layer ${layer.digest} missing after the pull`);
    } finally {
      client.close();
    }
  });

  it('falls back to plain HTTP for an insecure registry that does not speak TLS', async () => {
    const host = mapped(plainReg.host);
    const client = new RegistryClient({ credentials: async () => undefined, insecureAll: true });
    try {
      await client.ping(host);
      assert.equal(client.baseUrl(host).protocol, 'http:');
    } finally {
      client.close();
    }
  });
});
