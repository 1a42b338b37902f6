/**
 * berth's own client (the `berth` CLI) against `berth serve`: copy in and out with digests kept,
 * tags, attach an artifact and list it through the referrers API, with and without auth.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BERTH_BIN, startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { buildBusyboxImage, verifyPulled, type BusyboxImage } from '../registry/busybox-image.js';
import { peer, skipUnless } from '../helpers/requirements.js';


describe('the berth client against berth serve', { skip: skipUnless(peer('/usr/bin/umoci', 'umoci')) }, () => {
  const work = mkdtempSync(join(tmpdir(), 'berth-own-client-'));
  let image: BusyboxImage;
  let reg: BerthRegistry;
  let authReg: BerthRegistry;
  const env = { ...process.env, HOME: work, XDG_CONFIG_HOME: join(work, 'config'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), DOCKER_CONFIG: join(work, 'docker') };

  function berth(...args: string[]): string {
    const r = spawnSync(process.execPath, [BERTH_BIN, ...args], { env, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`berth ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  before(async () => {
    image = buildBusyboxImage(work);
    reg = await startBerthRegistry({ args: ['--log-format', 'off'] });
    const htpasswd = join(work, 'htpasswd');
    writeFileSync(htpasswd, execFileSync('htpasswd', ['-nbB', '-C', '5', 'alice', 'secret'], { encoding: 'utf8' }));
    authReg = await startBerthRegistry({ args: ['--log-format', 'off', '--htpasswd', htpasswd] });
  });
  after(async () => {
    await reg?.stop();
    await authReg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('copies in and out with the same digest, and lists tags', async () => {
    berth('copy', '-q', `oci:${image.layout}:${image.tag}`, `docker://${reg.host}/own/bb:v1`);
    assert.equal(await verifyPulled(reg.url, 'own/bb', 'v1'), image.digest);
    const out = join(work, 'out');
    berth('copy', '-q', `docker://${reg.host}/own/bb:v1`, `oci:${out}:pulled`);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.ok(index.manifests.some((m) => m.digest === image.digest));
    const tags = JSON.parse(berth('tags', '--format', 'json', `${reg.host}/own/bb`)) as unknown;
    assert.match(JSON.stringify(tags), /"v1"/);
  });

  it('attaches an artifact and finds it through the referrers API', async () => {
    const file = join(work, 'sbom.json');
    writeFileSync(file, '{"sbom":true}');
    const digest = berth('attach', '--artifact-type', 'application/vnd.example.sbom', `${reg.host}/own/bb:v1`, file).trim().split(/\s+/).pop()!;
    assert.match(digest, /^sha256:[a-f0-9]{64}$/);
    const res = await fetch(`${reg.url}/v2/own/bb/referrers/${image.digest}`);
    const body = (await res.json()) as { manifests: { digest: string; artifactType?: string }[] };
    assert.deepEqual(body.manifests.map((m) => [m.digest, m.artifactType]), [[digest, 'application/vnd.example.sbom']]);
    assert.match(berth('referrers', '--format', 'json', `${reg.host}/own/bb:v1`), new RegExp(digest));
  });

  it('logs in to an htpasswd registry and pushes', async () => {
    assert.throws(() => berth('copy', '-q', `oci:${image.layout}:${image.tag}`, `docker://${authReg.host}/own/auth:v1`));
    const login = spawnSync(process.execPath, [BERTH_BIN, 'login', '--username', 'alice', '--password-stdin', authReg.host], { env, input: 'secret\n', encoding: 'utf8' });
    assert.equal(login.status, 0, login.stderr);
    berth('copy', '-q', `oci:${image.layout}:${image.tag}`, `docker://${authReg.host}/own/auth:v1`);
    const auth = { Authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` };
    assert.equal(await verifyPulled(authReg.url, 'own/auth', 'v1', auth), image.digest);
  });
});
