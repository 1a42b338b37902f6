import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  NAME_REGEXP,
  TAG_REGEXP,
  familiarReference,
  formatReference,
  parseReference,
  referenceTarget,
  registryApiHost,
  validateRepositoryName,
  validateTag,
} from '../../src/image/reference.js';
import { isBerthError, type ErrorCode } from '../../src/base/errors.js';

const D = `sha256:${'ab'.repeat(32)}`;

function throwsCode(fn: () => unknown, code: ErrorCode, pattern: RegExp, label?: string): void {
  assert.throws(fn, (e: unknown) => isBerthError(e, code) && pattern.test(e.message), label);
}

describe('parseReference', () => {
  it('applies the Docker Hub defaults', () => {
    assert.deepEqual(parseReference('busybox'), { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' });
    assert.deepEqual(parseReference('busybox:1.36'), { registry: 'docker.io', repository: 'library/busybox', tag: '1.36' });
    assert.deepEqual(parseReference('user/app'), { registry: 'docker.io', repository: 'user/app', tag: 'latest' });
    assert.deepEqual(parseReference('docker.io/busybox'), { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' });
    assert.deepEqual(parseReference('index.docker.io/user/app:v1'), { registry: 'docker.io', repository: 'user/app', tag: 'v1' });
  });

  it('recognises a registry by a dot, a port, localhost or upper case', () => {
    assert.equal(parseReference('ghcr.io/owner/repo').registry, 'ghcr.io');
    assert.equal(parseReference('localhost/repo').registry, 'localhost');
    assert.deepEqual(parseReference('localhost:5000/a/b:t'), { registry: 'localhost:5000', repository: 'a/b', tag: 't' });
    assert.equal(parseReference('myhost:443/x').registry, 'myhost:443');
    assert.equal(parseReference('Registry/x').registry, 'Registry');
    // Without any of those, the first component is a Docker Hub namespace.
    assert.deepEqual(parseReference('myhost/x'), { registry: 'docker.io', repository: 'myhost/x', tag: 'latest' });
    // A port with no path is a tag on a Docker Hub image, as docker reads it.
    assert.deepEqual(parseReference('registry:5000'), { registry: 'docker.io', repository: 'library/registry', tag: '5000' });
  });

  it('accepts IPv6 registries in brackets', () => {
    assert.deepEqual(parseReference('[::1]:5000/foo:bar'), { registry: '[::1]:5000', repository: 'foo', tag: 'bar' });
    assert.deepEqual(parseReference('[2001:db8::1]/foo'), { registry: '[2001:db8::1]', repository: 'foo', tag: 'latest' });
    throwsCode(() => parseReference('[zz::1]/foo'), 'REFERENCE_INVALID', /bad registry "\[zz::1\]"/);
  });

  it('keeps no tag when there is a digest, and both when both are given', () => {
    assert.deepEqual(parseReference(`localhost:5000/a/b@${D}`), { registry: 'localhost:5000', repository: 'a/b', digest: D });
    assert.deepEqual(parseReference(`busybox:1@${D}`), { registry: 'docker.io', repository: 'library/busybox', tag: '1', digest: D });
    assert.equal(referenceTarget(parseReference(`busybox:1@${D}`)), D);
    assert.equal(referenceTarget(parseReference('busybox:1')), '1');
  });

  it('refuses bad parts with a message naming them', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['Busybox', /"library\/Busybox" must be lowercase/],
      ['docker.io/User/app', /"User\/app" must be lowercase/],
      ['busybox:', /bad tag ""/],
      ['busybox:-1', /bad tag "-1"/],
      [`busybox:${'t'.repeat(129)}`, /bad tag/],
      ['busybox@sha256:abc', /bad digest.*64 lowercase hex/],
      [`busybox@md5:${'a'.repeat(32)}`, /bad digest.*unsupported digest algorithm "md5"/],
      ['busy box', /whitespace/],
      ['a/b//c', /bad repository name "a\/b\/\/c"/],
      ['foo/-bar', /bad repository name "foo\/-bar"/],
      ['foo__/bar', /bad repository name/],
      ['ghcr.io/', /missing after the registry/],
      [':tag', /repository name is missing/],
      ['-host.io/foo', /bad registry "-host.io"/],
      ['a'.repeat(64), /image ID/],
    ];
    for (const [s, pattern] of cases) throwsCode(() => parseReference(s), 'REFERENCE_INVALID', pattern, s);
  });

  it('allows separators the spec allows', () => {
    for (const s of ['a.b/c_d', 'a__b/c---d', 'x/y.z/w_v', 'registry.example.com:5000/team/app-1.2_x']) {
      assert.doesNotThrow(() => parseReference(s), s);
    }
  });

  it('limits registry + "/" + name to 255 characters', () => {
    const host = 'registry.example.org:5000'; // 25 characters
    const ok = `${host}/${'a'.repeat(229)}`; // 255
    assert.equal(parseReference(ok).repository.length, 229);
    throwsCode(() => parseReference(`${host}/${'a'.repeat(230)}`), 'REFERENCE_INVALID', /256 characters; at most 255/);
    // docker.io/library/ counts too.
    throwsCode(() => parseReference('b'.repeat(240)), 'REFERENCE_INVALID', /at most 255/);
  });
});

describe('formatReference and familiarReference', () => {
  it('round-trips through the canonical form', () => {
    for (const s of ['busybox', 'user/app:1', `localhost:5000/a/b@${D}`, `ghcr.io/x/y:z@${D}`, '[::1]:5000/foo:bar']) {
      const r = parseReference(s);
      assert.deepEqual(parseReference(formatReference(r)), r, s);
      assert.deepEqual(parseReference(familiarReference(r)), r, s);
    }
  });

  it('prints the forms docker prints', () => {
    assert.equal(formatReference(parseReference('busybox')), 'docker.io/library/busybox:latest');
    assert.equal(familiarReference(parseReference('busybox')), 'busybox:latest');
    assert.equal(familiarReference(parseReference('docker.io/library/a/b:1')), 'library/a/b:1');
    assert.equal(familiarReference(parseReference('user/app:1')), 'user/app:1');
    assert.equal(familiarReference(parseReference(`quay.io/x/y@${D}`)), `quay.io/x/y@${D}`);
  });

  it('knows where Docker Hub is served', () => {
    assert.equal(registryApiHost('docker.io'), 'registry-1.docker.io');
    assert.equal(registryApiHost('index.docker.io'), 'registry-1.docker.io');
    assert.equal(registryApiHost('localhost:5000'), 'localhost:5000');
  });
});

describe('validateRepositoryName and validateTag', () => {
  it('follow the distribution-spec regular expressions', () => {
    for (const ok of ['a', 'a/b', 'a-b/c.d/e__f', 'a---b', '0/1']) {
      assert.ok(NAME_REGEXP.test(ok), ok);
      assert.doesNotThrow(() => validateRepositoryName(ok));
    }
    for (const bad of ['', 'A', 'a/', '/a', 'a..b', 'a___b', 'a-', '-a', 'a/b c', 'a:b']) {
      assert.ok(!NAME_REGEXP.test(bad), bad);
      throwsCode(() => validateRepositoryName(bad), 'NAME_INVALID', /repository name/, bad);
    }
    throwsCode(() => validateRepositoryName('Upper'), 'NAME_INVALID', /must be lowercase/);
  });

  it('applies the 255-character guidance, with the registry when given', () => {
    assert.doesNotThrow(() => validateRepositoryName('a'.repeat(255)));
    throwsCode(() => validateRepositoryName('a'.repeat(256)), 'NAME_INVALID', /256 characters/);
    assert.doesNotThrow(() => validateRepositoryName('a'.repeat(229), 'registry.example.org:5000'));
    throwsCode(() => validateRepositoryName('a'.repeat(230), 'registry.example.org:5000'), 'NAME_INVALID', /registry \+ "\/" \+ name has 256/);
  });

  it('accept tags of 1 to 128 characters that do not start with . or -', () => {
    for (const ok of ['latest', '1.0', '_x', 'A-b.C_d', 't'.repeat(128)]) {
      assert.ok(TAG_REGEXP.test(ok), ok);
      assert.doesNotThrow(() => validateTag(ok));
    }
    throwsCode(() => validateTag(''), 'TAG_INVALID', /empty/);
    throwsCode(() => validateTag('t'.repeat(129)), 'TAG_INVALID', /129 characters/);
    throwsCode(() => validateTag('.x'), 'TAG_INVALID', /must start with/);
    throwsCode(() => validateTag('a/b'), 'TAG_INVALID', /must start with/);
  });
});
