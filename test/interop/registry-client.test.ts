/**
 * Interoperability with skopeo through Debian's docker-registry: what berth pushes skopeo
 * pulls with the same digests and vice versa (one image and a multi-platform index), and
 * the archive formats both ways (docker-archive, oci-archive).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../../src/client/registry.js';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';
import { openDestination, openSource, parsePlace } from '../../src/client/places.js';
import { fetchJson } from '../../src/base/read.js';
import { digestOf } from '../../src/base/digest.js';
import { OciLayout } from '../../src/image/layout.js';
import type { ImageConfig, ImageIndex, ImageManifest } from '../../src/base/types.js';
import { REGISTRY_BIN, skopeo, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { addImage, addIndex, noise } from '../client/fixtures.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const skip = skipUnless(peer(REGISTRY_BIN, 'docker-registry'), peer('/usr/bin/skopeo', 'skopeo'));

function rawDigest(ref: string, tlsFlag = '--tls-verify=false'): string {
  const args = ['inspect', '--raw', ref];
  if (ref.startsWith('docker://')) args.splice(1, 0, tlsFlag);
  return digestOf(skopeo(args));
}

describe('registry client interop with skopeo', { skip }, () => {
  let reg: RegistryServer;
  let client: RegistryClient;
  let tmp: string;
  let srcLayout: OciLayout;
  let single: ReturnType<typeof addImage>;
  let indexDigest: string;

  before(async () => {
    reg = await startRegistry();
    client = new RegistryClient({ credentials: async () => undefined });
    tmp = await mkdtemp(join(tmpdir(), 'berth-interop-client-'));
    srcLayout = await OciLayout.open(join(tmp, 'src'), { create: true });
    const mem = new MemoryStore();
    single = addImage(mem, { files: [{ 'etc/hello': 'hello from berth' }, { 'data.bin': noise(512, 'interop') }] });
    const arm = addImage(mem, { files: [{ 'etc/hello': 'arm' }], platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } });
    const index = addIndex(mem, [single.manifest, arm.manifest]);
    indexDigest = index.digest;
    await mem.tag(single.manifest, 'single');
    await mem.tag(index, 'multi');
    await copy(mem, 'single', srcLayout, 'single');
    await copy(mem, 'multi', srcLayout, 'multi', { all: true });
  });
  after(async () => {
    client?.close();
    await reg?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('berth push → skopeo copy out: same manifest digest, layout readable by berth', async () => {
    const repo = client.repository(reg.host, 'interop/berth-pushed');
    await copy(srcLayout, 'single', repo, 'v1');
    assert.equal(rawDigest(`docker://${reg.host}/interop/berth-pushed:v1`), single.manifest.digest);
    const out = join(tmp, 'skopeo-out');
    skopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/interop/berth-pushed:v1`, `oci:${out}:v1`]);
    const layout = await OciLayout.open(out);
    assert.equal((await layout.resolve('v1')).digest, single.manifest.digest);
  });

  it('skopeo push → berth pull: same digests, blobs verified', async () => {
    skopeo(['copy', '--dest-tls-verify=false', `oci:${join(tmp, 'src')}:single`, `docker://${reg.host}/interop/skopeo-pushed:v1`]);
    const pulled = await OciLayout.open(join(tmp, 'berth-pulled'), { create: true });
    const result = await copy(client.repository(reg.host, 'interop/skopeo-pushed'), 'v1', pulled, 'v1');
    assert.equal(result.descriptor.digest, single.manifest.digest);
    const manifest = await fetchJson<ImageManifest>(pulled, result.descriptor);
    for (const l of manifest.layers) assert.equal(await pulled.exists(l), true);
  });

  it('multi-platform index both ways with --all', async () => {
    await copy(srcLayout, 'multi', client.repository(reg.host, 'interop/multi'), 'm', { all: true });
    assert.equal(rawDigest(`docker://${reg.host}/interop/multi:m`), indexDigest);
    skopeo(['copy', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/interop/multi:m`, `docker://${reg.host}/interop/multi-skopeo:m`]);
    const back = new MemoryStore();
    const r = await copy(client.repository(reg.host, 'interop/multi-skopeo'), 'm', back, 'm', { all: true });
    assert.equal(r.descriptor.digest, indexDigest);
    const index = await fetchJson<ImageIndex>(back, r.descriptor);
    assert.equal(index.manifests.length, 2);
  });

  it('docker-archive: skopeo writes, berth reads; berth writes, skopeo reads', async () => {
    const saved = join(tmp, 'skopeo-save.tar');
    skopeo(['copy', `oci:${join(tmp, 'src')}:single`, `docker-archive:${saved}:interop/saved:v1`]);
    const source = await openSource(parsePlace(`docker-archive:${saved}`), { client });
    const mem = new MemoryStore();
    let manifest: ImageManifest;
    try {
      const r = await copy(source.target, source.ref!, mem, 'x');
      manifest = await fetchJson<ImageManifest>(mem, r.descriptor);
    } finally {
      await source.close(true);
    }
    const config = await fetchJson<ImageConfig>(mem, manifest.config);
    assert.equal(manifest.config.digest, single.config.digest, 'config bytes kept');
    // skopeo stores layers uncompressed in docker archives: their digests are the diff_ids.
    assert.deepEqual(manifest.layers.map((l) => l.digest), config.rootfs.diff_ids);

    const written = join(tmp, 'berth-save.tar');
    const dest = await openDestination(parsePlace(`docker-archive:${written}:interop/written:v2`), { client });
    await copy(srcLayout, 'single', dest.target, dest.ref);
    await dest.close(true);
    const archiveManifest = JSON.parse(skopeo(['inspect', '--config', '--raw', `docker-archive:${written}`])) as ImageConfig;
    assert.deepEqual(archiveManifest.rootfs.diff_ids, config.rootfs.diff_ids);
    skopeo(['copy', `docker-archive:${written}`, `oci:${join(tmp, 'from-berth-archive')}:t`]);
    const layout = await OciLayout.open(join(tmp, 'from-berth-archive'));
    const m = await fetchJson<ImageManifest>(layout, await layout.resolve('t'));
    assert.equal(m.config.digest, single.config.digest);
  });

  it('oci-archive: berth writes, skopeo reads; skopeo writes, berth reads, digests kept', async () => {
    const file = join(tmp, 'berth.oci.tar');
    const dest = await openDestination(parsePlace(`oci-archive:${file}:v1`), { client });
    await copy(srcLayout, 'single', dest.target, dest.ref);
    await dest.close(true);
    assert.equal(rawDigest(`oci-archive:${file}:v1`), single.manifest.digest);

    const skopeoFile = join(tmp, 'skopeo.oci.tar');
    skopeo(['copy', `oci:${join(tmp, 'src')}:single`, `oci-archive:${skopeoFile}:v2`]);
    const source = await openSource(parsePlace(`oci-archive:${skopeoFile}:v2`), { client });
    try {
      const mem = new MemoryStore();
      const r = await copy(source.target, source.ref!, mem, 'v2');
      assert.equal(r.descriptor.digest, single.manifest.digest);
    } finally {
      await source.close(true);
    }
    assert.ok((await readFile(skopeoFile)).length > 0);
  });
});
