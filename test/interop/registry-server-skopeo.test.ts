/**
 * skopeo 1.9 against `berth serve`: copy in and out (digests kept), inspect, list-tags, delete,
 * zstd layers, with and without auth (htpasswd Basic, and token auth with the built-in issuer).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { buildBusyboxImage, verifyPulled, type BusyboxImage } from '../registry/busybox-image.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const SKOPEO = '/usr/bin/skopeo';
const skip = skipUnless(peer(SKOPEO, 'skopeo'), peer('/usr/bin/umoci', 'umoci'));

// The memory-only blob-info cache (docs/ARCHITECTURE.md "Tests and peers"): otherwise skopeo as root turns pushes into mounts.
const env = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };

function skopeo(...args: string[]): string {
  const r = spawnSync(SKOPEO, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`skopeo ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function layoutDigest(layout: string, tag: string): string {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!.digest;
}

describe('skopeo against berth serve', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'berth-skopeo-'));
  let image: BusyboxImage;
  let reg: BerthRegistry;
  before(async () => {
    image = buildBusyboxImage(work);
    reg = await startBerthRegistry({ args: ['--log-format', 'off'] });
  });
  after(async () => {
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('copies an image in and out with the same digests; inspect and list-tags agree', async () => {
    skopeo('copy', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${reg.host}/interop/bb:v1`);
    assert.equal(await verifyPulled(reg.url, 'interop/bb', 'v1'), image.digest);
    const inspect = JSON.parse(skopeo('inspect', '--tls-verify=false', `docker://${reg.host}/interop/bb:v1`)) as { Digest: string; Layers: string[] };
    assert.equal(inspect.Digest, image.digest);
    assert.equal(inspect.Layers.length, 2);
    skopeo('copy', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${reg.host}/interop/bb:v2`);
    const tags = JSON.parse(skopeo('list-tags', '--tls-verify=false', `docker://${reg.host}/interop/bb`)) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['v1', 'v2']);
    const out = join(work, 'out');
    skopeo('copy', '--src-tls-verify=false', `docker://${reg.host}/interop/bb:v1`, `oci:${out}:pulled`);
    assert.equal(layoutDigest(out, 'pulled'), image.digest);
    // the raw manifest skopeo reads is byte-identical to the layout's
    const raw = skopeo('inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/interop/bb:v1`);
    assert.equal(raw, readFileSync(join(image.layout, 'blobs', 'sha256', image.digest.slice(7)), 'utf8'));
  });

  it('copies between repositories (mounts) and pushes zstd layers', async () => {
    skopeo('copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/interop/bb:v1`, `docker://${reg.host}/interop/copy:v1`);
    assert.equal(await verifyPulled(reg.url, 'interop/copy', 'v1'), image.digest);
    skopeo('copy', '--dest-tls-verify=false', '--dest-compress-format', 'zstd', `oci:${image.layout}:${image.tag}`, `docker://${reg.host}/interop/zstd:v1`);
    const digest = await verifyPulled(reg.url, 'interop/zstd', 'v1');
    const manifest = JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/interop/zstd:v1`)) as { layers: { mediaType: string }[] };
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'));
    assert.match(digest, /^sha256:/);
  });

  it('deletes an image', async () => {
    skopeo('delete', '--tls-verify=false', `docker://${reg.host}/interop/bb:v2`);
    const res = await fetch(`${reg.url}/v2/interop/bb/manifests/${image.digest}`);
    assert.equal(res.status, 404);
    await res.arrayBuffer();
  });
});

describe('skopeo with auth', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'berth-skopeo-auth-'));
  let image: BusyboxImage;
  let basic: BerthRegistry;
  let token: BerthRegistry;
  before(async () => {
    image = buildBusyboxImage(work);
    const htpasswd = join(work, 'htpasswd');
    writeFileSync(htpasswd, execFileSync('htpasswd', ['-nbB', '-C', '5', 'alice', 'secret'], { encoding: 'utf8' }));
    const key = join(work, 'key.pem');
    writeFileSync(key, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    basic = await startBerthRegistry({ args: ['--log-format', 'off', '--htpasswd', htpasswd] });
    token = await startBerthRegistry({ args: ['--log-format', 'off', '--htpasswd', htpasswd, '--token-key', key] });
  });
  after(async () => {
    await basic?.stop();
    await token?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  for (const kind of ['Basic', 'token'] as const) {
    it(`${kind} auth: refused without credentials, works with them`, async () => {
      const reg = kind === 'Basic' ? basic : token;
      const dest = `docker://${reg.host}/auth/bb:v1`;
      assert.throws(() => skopeo('copy', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, dest), /unauthorized|authentication required|401/i);
      skopeo('copy', '--dest-tls-verify=false', '--dest-creds', 'alice:secret', `oci:${image.layout}:${image.tag}`, dest);
      assert.throws(() => skopeo('inspect', '--tls-verify=false', '--creds', 'alice:wrong', dest));
      const inspect = JSON.parse(skopeo('inspect', '--tls-verify=false', '--creds', 'alice:secret', dest)) as { Digest: string };
      assert.equal(inspect.Digest, image.digest);
      const out = join(work, `out-${kind}`);
      skopeo('copy', '--src-tls-verify=false', '--src-creds', 'alice:secret', dest, `oci:${out}:x`);
      assert.equal(layoutDigest(out, 'x'), image.digest);
      skopeo('delete', '--tls-verify=false', '--creds', 'alice:secret', dest);
    });
  }
});
