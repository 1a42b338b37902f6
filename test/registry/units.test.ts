/** Unit tests of the registry's pure parts: routes, ranges, config layering, names, policy, JWTs. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseScope } from '../../src/registry/auth/access.js';
import { signJwt, verifyJwt } from '../../src/registry/auth/jwt.js';
import { AccessPolicy } from '../../src/registry/auth/policy.js';
import { buildConfig, defaultConfig, defaultDataDir, overridesFromEnv, overridesFromFile } from '../../src/registry/config.js';
import { RegistryError } from '../../src/registry/errors.js';
import { parseContentRange, parseRange } from '../../src/registry/http-util.js';
import { parsePushedManifest } from '../../src/registry/manifests.js';
import { checkName, checkTag } from '../../src/registry/names.js';
import { matchRoute } from '../../src/registry/routes.js';

describe('routes', () => {
  it('recognises every endpoint from the end of the path, with multi-component names', () => {
    assert.deepEqual(matchRoute('/v2/'), { kind: 'base' });
    assert.deepEqual(matchRoute('/v2/_catalog'), { kind: 'catalog' });
    assert.deepEqual(matchRoute('/v2/a/b/c/tags/list'), { kind: 'tags', name: 'a/b/c' });
    assert.deepEqual(matchRoute('/v2/a/blobs/uploads/'), { kind: 'uploadStart', name: 'a' });
    assert.deepEqual(matchRoute('/v2/a/b/blobs/uploads/123e4567-e89b-12d3-a456-426614174000'), {
      kind: 'upload',
      name: 'a/b',
      id: '123e4567-e89b-12d3-a456-426614174000',
    });
    assert.deepEqual(matchRoute('/v2/x/blobs/sha256:ab'), { kind: 'blob', name: 'x', digest: 'sha256:ab' });
    assert.deepEqual(matchRoute('/v2/x/manifests/latest'), { kind: 'manifest', name: 'x', reference: 'latest' });
    assert.deepEqual(matchRoute('/v2/x/referrers/sha256%3Aab'), { kind: 'referrers', name: 'x', digest: 'sha256:ab' });
    // a repository whose last component is "blobs" or "manifests"
    assert.deepEqual(matchRoute('/v2/team/blobs/manifests/v1'), { kind: 'manifest', name: 'team/blobs', reference: 'v1' });
    assert.deepEqual(matchRoute('/nope'), { kind: 'unknown' });
  });
});

describe('ranges', () => {
  it('parses Range against a size (RFC 9110 14.1.2)', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=90-200', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=50-', 100), { start: 50, end: 99 });
    assert.equal(parseRange('bytes=100-', 100), 'invalid');
    assert.equal(parseRange('bytes=5-1', 100), 'invalid');
    assert.equal(parseRange('lines=1-2', 100), 'invalid');
    assert.equal(parseRange('bytes=0-1,5-6', 100), undefined);
    assert.equal(parseRange(undefined, 100), undefined);
  });

  it('parses chunk Content-Range and refuses malformed ones with 416', () => {
    assert.deepEqual(parseContentRange('0-9'), { start: 0, end: 9 });
    assert.deepEqual(parseContentRange('bytes 10-19/*'), { start: 10, end: 19 });
    assert.throws(() => parseContentRange('9-0'), (e: RegistryError) => e.status === 416);
    assert.throws(() => parseContentRange('abc'), (e: RegistryError) => e.status === 416);
  });
});

describe('names and tags (spec.md grammars)', () => {
  it('accepts and refuses per the grammar', () => {
    for (const ok of ['a', 'library/ubuntu', 'a.b_c__d-e---f/g0', 'x'.repeat(255)]) assert.equal(checkName(ok), ok);
    for (const bad of ['', 'A', 'a/', '/a', 'a..b', 'a_-b', 'x'.repeat(256), 'a//b']) {
      assert.throws(() => checkName(bad), (e: RegistryError) => e.code === 'NAME_INVALID' && e.status === 400, bad);
    }
    for (const ok of ['latest', '_x', 'V1.2-rc_3', 'x'.repeat(128)]) assert.equal(checkTag(ok), ok);
    for (const bad of ['', '.x', '-x', 'a/b', 'x'.repeat(129), 'a:b']) assert.throws(() => checkTag(bad), bad);
  });
});

describe('config layering', () => {
  it('defaults: 127.0.0.1:5000, data under XDG_DATA_HOME (or /var/lib as root)', () => {
    const c = defaultConfig({ XDG_DATA_HOME: '/xdg' });
    assert.equal(c.addr, '127.0.0.1:5000');
    assert.equal(c.dataDir, '/xdg/berth/registry');
    assert.equal(c.deleteEnabled, true);
    assert.equal(c.maxManifestBytes, 4 * 1024 * 1024);
    if (process.getuid?.() === 0) assert.equal(defaultDataDir({}), '/var/lib/berth/registry');
  });

  it('file < environment < flags, with validation', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-config-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ addr: '0.0.0.0:6000', data: '/from/file', delete: false, logFormat: 'json', uploadPurgeAfter: 60 }));
      const env = overridesFromEnv({ BERTH_ADDR: '127.0.0.1:7000', BERTH_MAX_MANIFEST_BYTES: '1000' });
      const c = buildConfig(defaultConfig({}), overridesFromFile(file), env, { data: '/from/flag' });
      assert.equal(c.addr, '127.0.0.1:7000');
      assert.equal(c.dataDir, '/from/flag');
      assert.equal(c.deleteEnabled, false);
      assert.equal(c.logFormat, 'json');
      assert.equal(c.uploadPurgeAfterMs, 60_000);
      assert.equal(c.maxManifestBytes, 1000);
      writeFileSync(file, JSON.stringify({ adr: 'typo' }));
      assert.throws(() => overridesFromFile(file), /unknown key "adr"/);
      assert.throws(() => buildConfig(defaultConfig({}), { tlsCert: 'c.pem' }), /both a certificate and a key/);
      assert.throws(() => buildConfig(defaultConfig({}), { addr: 'nope' }), /HOST:PORT/);
      assert.throws(() => buildConfig(defaultConfig({}), { logFormat: 'xml' }), /text, json or off/);
      assert.throws(() => overridesFromEnv({ BERTH_DELETE: 'maybe' }), /true or false/);
      assert.throws(() => buildConfig(defaultConfig({}), { warnings: ['x'.repeat(4090)] }), /4096 bytes/);
      assert.throws(() => buildConfig(defaultConfig({}), { warnings: ['say "hi"'] }), /printable ASCII/);
      const t = buildConfig(defaultConfig({}), { tokenKey: '/k.pem' });
      assert.deepEqual(t.auth.token, { realm: undefined, service: 'berth-registry', issuer: 'berth', signingKey: '/k.pem', trustedKeys: [], expiresIn: 300 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('access policy', () => {
  const policy = AccessPolicy.fromObject({
    groups: { devs: ['alice'] },
    rules: [
      { who: ['group:devs'], repositories: ['team/*'], actions: ['pull', 'push'] },
      { who: ['authenticated'], repositories: ['shared/**'], actions: ['pull'] },
      { who: ['anonymous'], repositories: ['public'], actions: ['pull'], catalog: false },
      { who: ['user:root'], repositories: ['**'], actions: ['*'], catalog: true },
    ],
  });
  const scope = (name: string, ...actions: string[]) => ({ type: 'repository', name, actions });
  it('matches users, groups, globs and catalog access', () => {
    assert.ok(policy.allows('alice', scope('team/app', 'pull', 'push')));
    assert.ok(!policy.allows('alice', scope('team/app/sub', 'pull')), '* stays within one component');
    assert.ok(!policy.allows('alice', scope('team/app', 'delete')));
    assert.ok(policy.allows('bob', scope('shared/a/b/c', 'pull')));
    assert.ok(!policy.allows(undefined, scope('shared/a', 'pull')));
    assert.ok(policy.allows(undefined, scope('public', 'pull')));
    assert.ok(policy.allows('root', scope('any/thing', 'pull', 'push', 'delete')));
    assert.ok(policy.allows('root', { type: 'registry', name: 'catalog', actions: ['*'] }));
    assert.ok(!policy.allows('alice', { type: 'registry', name: 'catalog', actions: ['*'] }));
    assert.deepEqual(policy.granted('alice', scope('team/app', 'pull', 'push', 'delete')), ['pull', 'push']);
    assert.throws(() => AccessPolicy.fromObject({ rules: [{ who: ['a'], repositories: ['x'], actions: ['fly'] }] }), /unknown action/);
  });

  it('parses scopes whose names carry a port', () => {
    assert.deepEqual(parseScope('repository:host:5000/app:pull,push'), { type: 'repository', name: 'host:5000/app', actions: ['pull', 'push'] });
    assert.deepEqual(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] });
    assert.equal(parseScope('nonsense'), undefined);
  });
});

describe('JWT', () => {
  it('signs and verifies RS256 and ES256, refusing other keys and tampering', () => {
    for (const [type, opts] of [['rsa', { modulusLength: 2048 }], ['ec', { namedCurve: 'P-256' }]] as const) {
      const { privateKey, publicKey } = generateKeyPairSync(type as 'rsa', opts as { modulusLength: number });
      const other = generateKeyPairSync(type as 'rsa', opts as { modulusLength: number });
      const t = signJwt({ sub: 'x', n: 1 }, privateKey);
      assert.deepEqual(verifyJwt(t, [publicKey]), { sub: 'x', n: 1 });
      assert.equal(verifyJwt(t, [other.publicKey]), undefined);
      const [h, , s] = t.split('.');
      assert.equal(verifyJwt(`${h}.${Buffer.from('{"sub":"y","n":1}').toString('base64url')}.${s}`, [publicKey]), undefined);
      assert.equal(verifyJwt('a.b', [publicKey]), undefined);
    }
  });
});

describe('pushed manifest parsing', () => {
  const d = (c: string) => `sha256:${c.repeat(64)}`;
  it('collects references, subject and the referrers artifactType', () => {
    const m = parsePushedManifest(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.example.config', digest: d('a'), size: 1 },
          layers: [
            { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d('b'), size: 1 },
            { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d('c'), size: 1, urls: ['https://example.com/c'] },
          ],
          subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('e'), size: 1 },
        }),
      ),
      'application/vnd.oci.image.manifest.v1+json; charset=utf-8',
    );
    assert.deepEqual(m.blobRefs, [d('a'), d('b')], 'foreign layers (urls) need not be present');
    assert.equal(m.subject, d('e'));
    assert.equal(m.artifactType, 'application/vnd.example.config');
    const idx = parsePushedManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('f'), size: 3 }] })), undefined);
    assert.equal(idx.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(idx.manifestRefs, [d('f')]);
    assert.equal(idx.artifactType, undefined);
    assert.throws(() => parsePushedManifest(Buffer.from('{"schemaVersion":2,"mediaType":"application/x"}'), undefined), /unknown manifest media type|mediaType/);
    assert.throws(
      () => parsePushedManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:zz', size: 1 }, layers: [] })), undefined),
      /config\.digest/,
    );
  });
});
