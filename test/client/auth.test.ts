/**
 * Authentication against docker-registry: htpasswd Basic, and the Bearer token flow with a
 * token server in the test (GET with Basic credentials, the OAuth2 refresh-token POST, token
 * caching per scope); 401 without credentials gives a clear error. Credentials come from a
 * REGISTRY_AUTH_FILE written the way `berth login` writes it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseChallenges } from '../../src/client/auth.js';
import { findCredentials, storeCredentials } from '../../src/client/credentials.js';
import { RegistryClient } from '../../src/client/registry.js';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';
import { isBerthError } from '../../src/base/errors.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { addImage } from './fixtures.js';
import { peer, skipUnless } from '../helpers/requirements.js';

describe('parseChallenges', () => {
  it('reads Bearer parameters, quoted commas included, and several challenges', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"');
    assert.equal(c!.scheme, 'bearer');
    assert.deepEqual(c!.params, { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' });
    const both = parseChallenges(['Basic realm="x"', 'Bearer realm="y"']);
    assert.deepEqual(both.map((x) => [x.scheme, x.params.realm]), [['basic', 'x'], ['bearer', 'y']]);
  });
});

const skip = skipUnless(peer(REGISTRY_BIN, 'docker-registry'));

for (const kind of ['htpasswd', 'token'] as const) {
  describe(`docker-registry with ${kind} auth`, { skip }, () => {
    let reg: RegistryServer;
    let tmp: string;
    before(async () => {
      reg = await startRegistry({ auth: kind });
      tmp = await mkdtemp(join(tmpdir(), `berth-auth-${kind}-`));
    });
    after(async () => {
      await reg?.stop();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    it('refuses anonymous access with an error that says to log in', async () => {
      const client = new RegistryClient({ backoffMs: 10, credentials: async () => undefined });
      try {
        await assert.rejects(client.repository(reg.host, 'auth/test').resolve('latest'), (err: unknown) => {
          assert.ok(isBerthError(err, 'UNAUTHORIZED'), String(err));
          assert.match((err as Error).message, new RegExp(`berth login ${reg.host.replace(/\./g, '\\.')}`));
          return true;
        });
      } finally {
        client.close();
      }
    });

    it('refuses wrong credentials and says they were refused', async () => {
      const client = new RegistryClient({ backoffMs: 10, credentials: async () => ({ username: reg.username, password: 'wrong' }) });
      try {
        await assert.rejects(client.repository(reg.host, 'auth/test').resolve('latest'), (err: unknown) => {
          assert.ok(isBerthError(err, 'UNAUTHORIZED'), String(err));
          return true;
        });
      } finally {
        client.close();
      }
    });

    it('pushes and pulls with credentials from an auth file', async () => {
      const authFile = join(tmp, 'auth.json');
      await storeCredentials(reg.host, { username: reg.username, password: reg.password }, authFile);
      const env = { ...process.env, REGISTRY_AUTH_FILE: authFile, DOCKER_CONFIG: join(tmp, 'nodocker'), XDG_RUNTIME_DIR: join(tmp, 'norun') };
      const client = new RegistryClient({ backoffMs: 10, credentials: (host) => findCredentials(host, env) });
      try {
        const src = new MemoryStore();
        const img = addImage(src, { files: [{ f: `auth ${kind}` }] });
        await src.tag(img.manifest, 'v1');
        const repo = client.repository(reg.host, 'auth/test');
        await copy(src, 'v1', repo, 'v1');
        assert.equal((await repo.resolve('v1')).digest, img.manifest.digest);
        const back = new MemoryStore();
        await copy(repo, 'v1', back, 'v1');
        assert.equal((await back.resolve('v1')).digest, img.manifest.digest);
        // Mount between repositories needs pull on the source too.
        const mounted = await copy(repo, 'v1', client.repository(reg.host, 'auth/other'), 'v1');
        assert.equal(mounted.blobsMounted, 2);
        assert.ok((await client.catalog(reg.host)).includes('auth/test'));
        await client.ping(reg.host);
      } finally {
        client.close();
      }
    });

    if (kind === 'token') {
      it('asks the token server once per scope set and reuses the token', async () => {
        const client = new RegistryClient({ backoffMs: 10, credentials: async () => ({ username: reg.username, password: reg.password }) });
        try {
          const before = reg.tokenServer!.requests.length;
          const repo = client.repository(reg.host, 'auth/test');
          for (let i = 0; i < 5; i++) await repo.resolve('v1');
          const asked = reg.tokenServer!.requests.slice(before);
          assert.equal(asked.length, 1);
          assert.equal(asked[0]!.user, reg.username);
          assert.deepEqual(asked[0]!.scopes, ['repository:auth/test:pull']);
        } finally {
          client.close();
        }
      });

      it('uses an identity token with the OAuth2 refresh_token POST', async () => {
        const client = new RegistryClient({ backoffMs: 10, credentials: async () => ({ identityToken: reg.tokenServer!.refreshToken }) });
        try {
          const before = reg.tokenServer!.requests.length;
          const desc = await client.repository(reg.host, 'auth/test').resolve('v1');
          assert.match(desc.digest, /^sha256:/);
          const asked = reg.tokenServer!.requests.slice(before);
          assert.equal(asked[0]!.method, 'POST');
          assert.equal(asked[0]!.grant, 'refresh_token');
        } finally {
          client.close();
        }
      });
    }
  });
}
