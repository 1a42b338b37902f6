/**
 * containers-registries.conf (src/client/registries-conf.ts): parsing both file versions with
 * clear errors, prefix matching, moved locations, blocked registries and mirrors; then pulls
 * through a mirror from real docker-registries (the mirror has the image, the registry does
 * not, and the other way round), blocked pushes, and the CLI reading CONTAINERS_REGISTRIES_CONF.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findEntry, loadRegistriesConf, locate, parseRegistriesConf, pullSources, type RegistriesConf } from '../../src/client/registries-conf.js';
import { RegistryClient } from '../../src/client/registry.js';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';
import { isBerthError } from '../../src/base/errors.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { runBerth } from '../helpers/run-berth.js';
import { addImage } from './fixtures.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const V2 = `
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "example.com/team"
location = "internal.example:5000/mirrored/team"
insecure = true

[[registry.mirror]]
location = "mirror-a.example/team"

[[registry.mirror]]
location = "mirror-b.example:5000/team"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
location = "example.com"
mirror-by-digest-only = true
mirror = [{ location = "digests.example" }]

[[registry]]
prefix = "*.blocked.example"
blocked = true

[[registry]]
location = "tags.example"
[[registry.mirror]]
location = "tag-mirror.example"
pull-from-mirror = "tag-only"

[aliases]
"busybox" = "docker.io/library/busybox"
`;

describe('registries.conf parsing and matching', () => {
  const conf: RegistriesConf = { entries: parseRegistriesConf(V2, 'test.conf'), files: ['test.conf'] };

  it('reads version 2 entries with their mirrors, defaults filled in', () => {
    assert.equal(conf.entries.length, 4);
    const team = conf.entries[0]!;
    assert.deepEqual({ ...team, mirrors: team.mirrors.length }, {
      prefix: 'example.com/team', location: 'internal.example:5000/mirrored/team', insecure: true, blocked: false, mirrors: 2, file: 'test.conf',
    });
    assert.deepEqual(team.mirrors[1], { location: 'mirror-b.example:5000/team', insecure: true, pullFromMirror: 'digest-only' });
    assert.equal(conf.entries[1]!.prefix, 'example.com'); // prefix defaults to location
    assert.equal(conf.entries[1]!.mirrors[0]!.pullFromMirror, 'digest-only'); // mirror-by-digest-only
  });

  it('matches the longest prefix, and wildcards only by host', () => {
    assert.equal(findEntry(conf, 'example.com/team/app')?.prefix, 'example.com/team');
    assert.equal(findEntry(conf, 'example.com/teams/app')?.prefix, 'example.com');
    assert.equal(findEntry(conf, 'example.com/other')?.prefix, 'example.com');
    assert.equal(findEntry(conf, 'x.blocked.example/app')?.prefix, '*.blocked.example');
    assert.equal(findEntry(conf, 'blocked.example/app'), undefined);
    assert.equal(findEntry(conf, 'docker.io/library/busybox'), undefined);
  });

  it('moves references to their location and refuses blocked ones', () => {
    assert.deepEqual(locate(conf, 'example.com', 'team/app'), { host: 'internal.example:5000', repository: 'mirrored/team/app' });
    assert.deepEqual(locate(conf, 'docker.io', 'library/busybox'), { host: 'docker.io', repository: 'library/busybox' });
    assert.throws(() => locate(conf, 'r.blocked.example', 'app'), (err: unknown) => isBerthError(err, 'DENIED') && /test\.conf marks registry \*\.blocked\.example blocked/.test((err as Error).message));
  });

  it('reads through the mirrors that serve the kind of reference, then the registry', () => {
    const names = (host: string, repo: string, byDigest: boolean) => pullSources(conf, host, repo, byDigest).map((s) => `${s.mirror ? 'mirror ' : ''}${s.host}/${s.repository}`);
    assert.deepEqual(names('example.com', 'team/app', false), ['mirror mirror-a.example/team/app', 'internal.example:5000/mirrored/team/app']);
    assert.deepEqual(names('example.com', 'team/app', true), ['mirror mirror-a.example/team/app', 'mirror mirror-b.example:5000/team/app', 'internal.example:5000/mirrored/team/app']);
    assert.deepEqual(names('example.com', 'x', false), ['example.com/x']);
    assert.deepEqual(names('example.com', 'x', true), ['mirror digests.example/x', 'example.com/x']);
    assert.deepEqual(names('tags.example', 'y', false), ['mirror tag-mirror.example/y', 'tags.example/y']);
    assert.deepEqual(names('tags.example', 'y', true), ['tags.example/y']);
    assert.deepEqual(names('quay.io', 'z', true), ['quay.io/z']);
  });

  it('reads version 1 insecure and block lists', () => {
    const v1 = parseRegistriesConf('[registries.search]\nregistries = ["docker.io"]\n[registries.insecure]\nregistries = ["old.example:5000"]\n[registries.block]\nregistries = ["bad.example"]\n', 'v1.conf');
    assert.deepEqual(v1.map((e) => [e.prefix, e.insecure, e.blocked]), [['old.example:5000', true, false], ['bad.example', false, true]]);
  });

  it('does not parse a file of aliases only, even with an alias named "registry" (Debian shortnames.conf)', () => {
    // Not parsed: the stray line after the alias would fail the TOML parser.
    assert.deepEqual(parseRegistriesConf('[aliases]\n  "registry" = "docker.io/library/registry"\n  this is not toml\n', 'shortnames.conf'), []);
    // A [[registry]] table after the aliases is still read.
    const after = parseRegistriesConf('[aliases]\n"registry" = "docker.io/library/registry"\n[[registry]]\nlocation = "late.example"\ninsecure = true\n', 'mixed.conf');
    assert.deepEqual(after.map((e) => [e.prefix, e.insecure]), [['late.example', true]]);
    assert.throws(() => parseRegistriesConf('[aliases]\n"a" = "b"\n[[registry]]\nlocation = "x"\n  this is not toml\n', 'bad.conf'), /not valid TOML/);
  });

  it('says what is wrong with a bad file', () => {
    const fails = (text: string, pattern: RegExp) =>
      assert.throws(() => parseRegistriesConf(text, '/etc/x.conf'), (err: unknown) => isBerthError(err, 'USAGE') && pattern.test((err as Error).message) && (err as Error).message.startsWith('/etc/x.conf'));
    fails('[[registry]\nlocation = "a"', /not valid TOML/);
    fails('[[registry]]\ninsecure = true', /neither prefix nor location/);
    fails('[[registry]]\nlocation = "a"\ninsecure = "yes"', /insecure must be true or false/);
    fails('[[registry]]\nprefix = "*.x.io"\nlocation = "y.io"', /wildcard prefix .* cannot have a location/);
    fails('[[registry]]\nlocation = "a"\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "sometimes"', /pull-from-mirror must be all, digest-only or tag-only/);
    fails('[registries.insecure]\nregistries = ["a"]\n[[registry]]\nlocation = "b"', /mixes the version 1/);
    fails('[[registry]]\nlocation = "https://a.example"', /invalid prefix/);
  });

  it('reads the user file instead of the system one, then drop-ins, later ones replacing earlier entries', () => {
    const home = mkdtempSync(join(tmpdir(), 'berth-regconf-'));
    try {
      const dir = join(home, 'containers');
      mkdirSync(join(dir, 'registries.conf.d'), { recursive: true });
      writeFileSync(join(dir, 'registries.conf'), '[[registry]]\nlocation = "a.example"\ninsecure = true\n');
      writeFileSync(join(dir, 'registries.conf.d', '10-b.conf'), '[[registry]]\nlocation = "a.example"\nblocked = true\n');
      writeFileSync(join(dir, 'registries.conf.d', '20-c.conf'), '[[registry]]\nlocation = "c.example"\n');
      writeFileSync(join(dir, 'registries.conf.d', 'ignored.txt'), 'not toml [');
      const loaded = loadRegistriesConf({ XDG_CONFIG_HOME: home });
      assert.deepEqual(loaded.files.filter((f) => f.startsWith(home)), [join(dir, 'registries.conf'), join(dir, 'registries.conf.d', '10-b.conf'), join(dir, 'registries.conf.d', '20-c.conf')]);
      assert.ok(!loaded.files.includes('/etc/containers/registries.conf'));
      const a = loaded.entries.find((e) => e.prefix === 'a.example')!;
      assert.equal(a.blocked, true);
      assert.equal(a.insecure, false);
      const only = loadRegistriesConf({ CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf.d', '20-c.conf') });
      assert.deepEqual(only.entries.map((e) => e.prefix), ['c.example']);
      assert.throws(() => loadRegistriesConf({ CONTAINERS_REGISTRIES_CONF: join(home, 'missing.conf') }), (err: unknown) => isBerthError(err, 'USAGE'));
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

const skip = skipUnless(peer(REGISTRY_BIN, 'docker-registry'));

describe('mirrors and blocked registries with docker-registry', { skip }, () => {
  let primary: RegistryServer;
  let mirror: RegistryServer;
  let dir: string;
  /** A name that only registries.conf turns into a reachable place. */
  const NAME = 'images.example';
  let confText: string;

  before(async () => {
    [primary, mirror] = await Promise.all([startRegistry(), startRegistry()]);
    dir = mkdtempSync(join(tmpdir(), 'berth-regconf-'));
    confText = [
      '[[registry]]',
      `prefix = "${NAME}"`,
      `location = "${primary.host}"`,
      '[[registry.mirror]]',
      `location = "${mirror.host}/cache"`,
      '[[registry]]',
      'prefix = "forbidden.example"',
      'blocked = true',
    ].join('\n');
  });
  after(async () => {
    await Promise.all([primary?.stop(), mirror?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const client = () => new RegistryClient({ credentials: async () => undefined, retries: 0, registriesConf: { entries: parseRegistriesConf(confText, 'test.conf'), files: ['test.conf'] } });
  const direct = () => new RegistryClient({ credentials: async () => undefined, registriesConf: { entries: [], files: [] } });

  async function seed(host: string, repo: string, label: string) {
    const src = new MemoryStore();
    const img = addImage(src, { files: [{ f: label }] });
    await src.tag(img.manifest, 'v1');
    const c = direct();
    try {
      await copy(src, 'v1', c.repository(host, repo), 'v1');
    } finally {
      c.close();
    }
    return img;
  }

  it('pulls from the mirror when it has the image, and from the registry when it does not', async () => {
    const onMirror = await seed(mirror.host, 'cache/team/both', 'mirror copy');
    await seed(primary.host, 'team/both', 'primary copy');
    const onlyPrimary = await seed(primary.host, 'team/primary-only', 'primary only');
    const c = client();
    try {
      const both = await c.resolveForPull(NAME, 'team/both', 'v1');
      assert.equal(both.descriptor.digest, onMirror.manifest.digest);
      assert.equal(both.repository.host, mirror.host);
      const fallback = await c.resolveForPull(NAME, 'team/primary-only', 'v1');
      assert.equal(fallback.descriptor.digest, onlyPrimary.manifest.digest);
      assert.equal(fallback.repository.host, primary.host);
      // The whole image comes from where it resolved.
      const back = new MemoryStore();
      await copy(both.repository, both.descriptor, back, 'v1');
      for (const layer of onMirror.layers) assert.ok(await back.exists(layer));
      await assert.rejects(c.resolveForPull(NAME, 'team/nowhere', 'v1'), (err: unknown) => isBerthError(err, 'NOT_FOUND') && /mirrors tried first: .*cache\/team\/nowhere/.test((err as Error).message));
    } finally {
      c.close();
    }
  });

  it('berth copy, pull and push follow CONTAINERS_REGISTRIES_CONF', async () => {
    const img = await seed(mirror.host, 'cache/cli/app', 'cli via mirror');
    const confFile = join(dir, 'registries.conf');
    writeFileSync(confFile, confText);
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: confFile };
    const layout = join(dir, 'layout');
    const pulled = await runBerth(['copy', '-q', `docker://${NAME}/cli/app:v1`, `oci:${layout}:v1`], env);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, new RegExp(img.manifest.digest));
    const stored = await runBerth(['pull', '-q', '--root', join(dir, 'root'), `${NAME}/cli/app:v1`], env);
    assert.equal(stored.code, 0, stored.stderr);
    assert.match(stored.stdout, new RegExp(img.manifest.digest));
    // A push goes to the registry's location, never to a mirror.
    const pushed = await runBerth(['copy', '-q', `oci:${layout}:v1`, `docker://${NAME}/cli/pushed:v2`], env);
    assert.equal(pushed.code, 0, pushed.stderr);
    const c = direct();
    try {
      assert.equal((await c.repository(primary.host, 'cli/pushed').resolve('v2')).digest, img.manifest.digest);
      await assert.rejects(c.repository(mirror.host, 'cache/cli/pushed').resolve('v2'), (err: unknown) => isBerthError(err, 'NOT_FOUND'));
    } finally {
      c.close();
    }
    const blocked = await runBerth(['copy', '-q', `oci:${layout}:v1`, 'docker://forbidden.example/app:1'], env);
    assert.notEqual(blocked.code, 0);
    assert.match(blocked.stderr, /forbidden\.example\/app is blocked: .*registries\.conf marks registry forbidden\.example blocked/);
  });
});
