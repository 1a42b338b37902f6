/**
 * Access control against `berth serve`: htpasswd Basic auth (entries written by the real
 * `htpasswd -B`), the access policy, token auth with the built-in issuer, and tokens of an
 * external issuer. Unauthenticated or unauthorised requests get 401 (with the right challenge)
 * or 403, and never data.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signJwt } from '../../src/registry/auth/jwt.js';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { errorCode, pushBlob, sha256 } from './registry-client.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-auth-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function basic(user: string, password: string): Record<string, string> {
  return { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

function htpasswdFile(): string {
  const path = join(dir, 'htpasswd');
  const lines = [['alice', 'alice-secret'], ['bob', 'bob-secret']].map(([u, p]) =>
    execFileSync('htpasswd', ['-nbB', '-C', '5', u!, p!], { encoding: 'utf8' }).trim(),
  );
  assert.match(lines[0]!, /^alice:\$2y\$05\$/, 'htpasswd -B writes $2y$ bcrypt entries');
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

function policyFile(): string {
  const path = join(dir, 'policy.json');
  writeFileSync(
    path,
    JSON.stringify({
      groups: { admins: ['alice'] },
      rules: [
        { who: ['group:admins'], repositories: ['**'], actions: ['pull', 'push', 'delete'], catalog: true },
        { who: ['user:bob'], repositories: ['team/*'], actions: ['pull'] },
        { who: ['anonymous'], repositories: ['public/**'], actions: ['pull'] },
      ],
    }),
  );
  return path;
}

describe('htpasswd Basic auth with an access policy', () => {
  let reg: BerthRegistry;
  before(async () => {
    reg = await startBerthRegistry({ args: ['--htpasswd', htpasswdFile(), '--policy', policyFile(), '--realm', 'test-realm'] });
  });
  after(async () => {
    await reg?.stop();
  });

  it('401 with a Basic challenge without credentials or with a wrong password', async () => {
    for (const headers of [{}, basic('alice', 'wrong'), basic('mallory', 'x')]) {
      const res = await fetch(`${reg.url}/v2/team/app/tags/list`, { headers });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="test-realm"');
      assert.equal(await errorCode(res), 'UNAUTHORIZED');
    }
  });

  it('a user the policy allows can push and pull; /v2/ answers 200 once authenticated', async () => {
    const ping = await fetch(`${reg.url}/v2/`, { headers: basic('alice', 'alice-secret') });
    assert.equal(ping.status, 200);
    const data = Buffer.from('alice data');
    const post = await fetch(`${reg.url}/v2/team/app/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data, headers: basic('alice', 'alice-secret') });
    assert.equal(post.status, 201);
    const get = await fetch(`${reg.url}/v2/team/app/blobs/${sha256(data)}`, { headers: basic('bob', 'bob-secret') });
    assert.equal(get.status, 200);
    assert.equal(await get.text(), 'alice data');
  });

  it('403 DENIED beyond the policy, without data', async () => {
    const data = Buffer.from('bob tries');
    const push = await fetch(`${reg.url}/v2/team/app/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data, headers: basic('bob', 'bob-secret') });
    assert.equal(push.status, 403);
    assert.equal(await errorCode(push), 'DENIED');
    const other = await fetch(`${reg.url}/v2/secret/app/tags/list`, { headers: basic('bob', 'bob-secret') });
    assert.equal(other.status, 403);
    const catalog = await fetch(`${reg.url}/v2/_catalog`, { headers: basic('bob', 'bob-secret') });
    assert.equal(catalog.status, 403);
    await catalog.arrayBuffer();
    const adminCatalog = await fetch(`${reg.url}/v2/_catalog`, { headers: basic('alice', 'alice-secret') });
    assert.equal(adminCatalog.status, 200);
    assert.ok(((await adminCatalog.json()) as { repositories: string[] }).repositories.includes('team/app'));
  });

  it('anonymous clients get what the policy grants anonymous, and 401 elsewhere', async () => {
    const data = Buffer.from('public data');
    const post = await fetch(`${reg.url}/v2/public/lib/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data, headers: basic('alice', 'alice-secret') });
    assert.equal(post.status, 201);
    const get = await fetch(`${reg.url}/v2/public/lib/blobs/${sha256(data)}`);
    assert.equal(get.status, 200);
    assert.equal(await get.text(), 'public data');
    const push = await fetch(`${reg.url}/v2/public/lib/blobs/uploads/`, { method: 'POST' });
    assert.equal(push.status, 401);
    await push.arrayBuffer();
    const priv = await fetch(`${reg.url}/v2/team/app/blobs/${sha256('alice data')}`);
    assert.equal(priv.status, 401);
    assert.doesNotMatch(await priv.text(), /alice data/);
  });
});

describe('token auth with the built-in issuer', () => {
  let reg: BerthRegistry;
  before(async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyPath = join(dir, 'token-key.pem');
    writeFileSync(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    reg = await startBerthRegistry({ args: ['--htpasswd', htpasswdFile(), '--policy', policyFile(), '--token-key', keyPath, '--token-service', 'test-service'] });
  });
  after(async () => {
    await reg?.stop();
  });

  async function token(scope: string, headers: Record<string, string> = {}): Promise<string> {
    const res = await fetch(`${reg.url}/token?service=test-service&scope=${encodeURIComponent(scope)}`, { headers });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { token: string; access_token: string; expires_in: number };
    assert.equal(body.token, body.access_token);
    assert.ok(body.expires_in > 0);
    return body.token;
  }

  it('401 with a Bearer challenge naming realm, service and scope', async () => {
    const ping = await fetch(`${reg.url}/v2/`);
    assert.equal(ping.status, 401);
    assert.equal(ping.headers.get('www-authenticate'), `Bearer realm="${reg.url}/token",service="test-service"`);
    await ping.arrayBuffer();
    const res = await fetch(`${reg.url}/v2/team/app/manifests/latest`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${reg.url}/token",service="test-service",scope="repository:team/app:pull"`);
    assert.equal(await errorCode(res), 'UNAUTHORIZED');
  });

  it('a token for the granted scope lets the client push and pull', async () => {
    const t = await token('repository:team/app:pull,push', basic('alice', 'alice-secret'));
    const auth = { Authorization: `Bearer ${t}` };
    const digest = await pushBlob(reg.url, 'team/app', 'token pushed', auth);
    const get = await fetch(`${reg.url}/v2/team/app/blobs/${digest}`, { headers: auth });
    assert.equal(await get.text(), 'token pushed');
    const ping = await fetch(`${reg.url}/v2/`, { headers: auth });
    assert.equal(ping.status, 200);
    await ping.arrayBuffer();
  });

  it('the issuer grants only what the policy allows: insufficient_scope beyond it', async () => {
    const t = await token('repository:team/app:pull,push', basic('bob', 'bob-secret'));
    const auth = { Authorization: `Bearer ${t}` };
    const pull = await fetch(`${reg.url}/v2/team/app/blobs/${sha256('token pushed')}`, { headers: auth });
    assert.equal(pull.status, 200);
    await pull.arrayBuffer();
    const push = await fetch(`${reg.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: auth });
    assert.equal(push.status, 401);
    assert.match(push.headers.get('www-authenticate')!, /error="insufficient_scope"/);
    await push.arrayBuffer();
    const anon = await token('repository:team/app:pull');
    const res = await fetch(`${reg.url}/v2/team/app/blobs/${sha256('token pushed')}`, { headers: { Authorization: `Bearer ${anon}` } });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
  });

  it('refuses wrong passwords at the token endpoint, and accepts the OAuth2 password grant', async () => {
    const bad = await fetch(`${reg.url}/token?service=test-service&scope=repository:team/app:pull`, { headers: basic('alice', 'nope') });
    assert.equal(bad.status, 401);
    await bad.arrayBuffer();
    const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'alice-secret', service: 'test-service', scope: 'repository:team/app:pull', client_id: 'test' });
    const res = await fetch(`${reg.url}/token`, { method: 'POST', body: form });
    assert.equal(res.status, 200);
    const t = ((await res.json()) as { access_token: string }).access_token;
    const tags = await fetch(`${reg.url}/v2/team/app/blobs/${sha256('token pushed')}`, { headers: { Authorization: `Bearer ${t}` } });
    assert.equal(tags.status, 200);
    await tags.arrayBuffer();
  });

  it('refuses tampered tokens', async () => {
    const t = await token('repository:team/app:pull', basic('bob', 'bob-secret'));
    const [h, p, s] = t.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    claims.access[0].actions = ['pull', 'push'];
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    const res = await fetch(`${reg.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${forged}` } });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate')!, /error="invalid_token"/);
    await res.arrayBuffer();
  });
});

describe('tokens of an external issuer (public key configured)', () => {
  let reg: BerthRegistry;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  before(async () => {
    // The issuer's certificate, as distribution's rootcertbundle holds it.
    const keyPath = join(dir, 'issuer-key.pem');
    const certPath = join(dir, 'issuer-cert.pem');
    writeFileSync(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    execFileSync('openssl', ['req', '-x509', '-new', '-key', keyPath, '-subj', '/CN=issuer', '-days', '2', '-out', certPath], { stdio: 'ignore' });
    reg = await startBerthRegistry({
      args: ['--token-trust', certPath, '--token-realm', 'https://auth.example/token', '--token-service', 'reg', '--token-issuer', 'external'],
    });
  });
  after(async () => {
    await reg?.stop();
  });

  function mint(claims: Record<string, unknown>, key = privateKey): string {
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ iss: 'external', sub: 'carol', aud: 'reg', exp: now + 300, nbf: now - 5, iat: now, jti: randomUUID(), ...claims }, key);
  }

  it('accepts valid tokens and refuses wrong issuers, audiences, expired or foreign-signed ones', async () => {
    const access = [{ type: 'repository', name: 'ext/app', actions: ['pull', 'push'] }];
    const good = { Authorization: `Bearer ${mint({ access })}` };
    const digest = await pushBlob(reg.url, 'ext/app', 'external token', good);
    const get = await fetch(`${reg.url}/v2/ext/app/blobs/${digest}`, { headers: good });
    assert.equal(await get.text(), 'external token');
    const now = Math.floor(Date.now() / 1000);
    const bad = [
      mint({ access, iss: 'someone-else' }),
      mint({ access, aud: 'another-registry' }),
      mint({ access, exp: now - 3600 }),
      mint({ access }, other.privateKey),
    ];
    for (const t of bad) {
      const res = await fetch(`${reg.url}/v2/ext/app/blobs/${digest}`, { headers: { Authorization: `Bearer ${t}` } });
      assert.equal(res.status, 401);
      assert.equal(
        res.headers.get('www-authenticate'),
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:ext/app:pull",error="invalid_token"',
      );
      assert.doesNotMatch(await res.text(), /external token/);
    }
    const otherRepo = await fetch(`${reg.url}/v2/ext/other/blobs/${digest}`, { headers: good });
    assert.equal(otherRepo.status, 401);
    assert.match(otherRepo.headers.get('www-authenticate')!, /error="insufficient_scope"/);
    await otherRepo.arrayBuffer();
  });
});
