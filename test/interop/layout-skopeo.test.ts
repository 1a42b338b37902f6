/**
 * Interop with skopeo 1.9.3 (Debian): berth layouts pass `skopeo inspect`, and layouts that
 * `skopeo copy` writes (also with zstd recompression) are read, verified and unpacked by berth.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { OciLayout } from '../../src/image/layout.js';
import { verifyLayout } from '../../src/image/layout-verify.js';
import { createImage } from '../../src/image/build.js';
import { createArtifact } from '../../src/image/artifact.js';
import { unpackImage } from '../../src/image/unpack.js';
import { loadImage } from '../../src/image/load-image.js';
import { MediaType } from '../../src/base/media-types.js';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const run = promisify(execFile);
// skopeo as root keeps a blob-info cache; point it elsewhere so runs are independent (docs/ARCHITECTURE.md "Tests and peers").
const env = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
async function skopeo(...args: string[]): Promise<string> {
  return (await run('skopeo', args, { env, maxBuffer: 16 << 20 })).stdout;
}

const skip = skipUnless(peer('skopeo', 'skopeo'), peer(BUSYBOX, 'busybox-static'));

describe('interop with skopeo', { skip }, () => {
  let tmp: string;
  let src: OciLayout;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-skopeo-'));
    src = await OciLayout.open(join(tmp, 'src'), { create: true });
    const root = await buildBusyboxRootfs(join(tmp, 'rootfs'));
    await createImage(src, { dir: root, tag: 'bb', cmd: ['/bin/echo', 'hi'], labels: { 'com.example': 'berth' }, exposedPorts: ['8080'] });
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('skopeo inspect reads a berth layout', async () => {
    const manifest = await src.resolve('bb');
    const info = JSON.parse(await skopeo('inspect', `oci:${src.dir}:bb`));
    assert.equal(info.Digest, manifest.digest);
    assert.equal(info.Labels['com.example'], 'berth');
    assert.equal(info.Layers.length, 1);
    const raw = JSON.parse(await skopeo('inspect', '--raw', `oci:${src.dir}:bb`));
    assert.equal(raw.mediaType, MediaType.imageManifest);
    const config = JSON.parse(await skopeo('inspect', '--config', `oci:${src.dir}:bb`));
    assert.deepEqual(config.config.ExposedPorts, { '8080/tcp': {} });
  });

  test('skopeo copy oci→oci keeps digests; berth verifies and unpacks the copy', async () => {
    const dst = join(tmp, 'copy');
    await skopeo('copy', `oci:${src.dir}:bb`, `oci:${dst}:bb`);
    const layout = await OciLayout.open(dst);
    assert.deepEqual(await verifyLayout(layout), []);
    assert.equal((await layout.resolve('bb')).digest, (await src.resolve('bb')).digest);
    const bundle = join(tmp, 'bundle-copy');
    await unpackImage(layout, 'bb', bundle);
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
    assert.deepEqual(spec.process.args, ['/bin/echo', 'hi']);
    assert.equal(spec.annotations['org.opencontainers.image.exposedPorts'], '8080/tcp');
  });

  test('skopeo copy with zstd recompression: berth reads the zstd layers', async () => {
    const dst = join(tmp, 'zstd');
    await skopeo('copy', '--dest-compress-format', 'zstd', `oci:${src.dir}:bb`, `oci:${dst}:bb`);
    const layout = await OciLayout.open(dst);
    assert.deepEqual(await verifyLayout(layout), []);
    const img = await loadImage(layout, 'bb');
    assert.equal(img.manifest.layers[0]!.mediaType, MediaType.layerTarZstd);
    const bundle = join(tmp, 'bundle-zstd');
    await unpackImage(layout, 'bb', bundle);
    assert.ok((await readFile(join(bundle, 'rootfs', 'bin', 'busybox'))).length > 100_000);
  });

  test('an artifact berth writes is copied by skopeo with its blobs', async () => {
    const subject = await src.resolve('bb');
    await createArtifact(src, { artifactType: 'application/vnd.example.note', files: [{ path: join(src.dir, 'oci-layout'), mediaType: 'application/json' }], subject, tag: 'note' });
    const dst = join(tmp, 'art');
    await skopeo('copy', `oci:${src.dir}:note`, `oci:${dst}:note`);
    const layout = await OciLayout.open(dst);
    assert.deepEqual(await verifyLayout(layout).then((p) => p.filter((x) => x.severity === 'error')), []);
    assert.equal((await layout.resolve('note')).digest, (await src.resolve('note')).digest);
  });
});
