import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, readFile, readlink, stat, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OciLayout } from '../../src/image/layout.js';
import { appendLayer, createImage, pushJson } from '../../src/image/build.js';
import { unpackImage } from '../../src/image/unpack.js';
import { MediaType } from '../../src/base/media-types.js';
import { isBerthError } from '../../src/base/errors.js';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import type { RuntimeSpec } from '../../src/image/runtime-config.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const skip = skipUnless(peer(BUSYBOX, 'busybox-static'));

describe('unpackImage', { skip }, () => {
  let tmp: string;
  let layout: OciLayout;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-unpack-'));
    layout = await OciLayout.open(join(tmp, 'layout'), { create: true });
    const root = await buildBusyboxRootfs(join(tmp, 'busybox'), { users: [{ name: 'app', uid: 1000, gid: 1000, groups: [['audio', 29]] }] });
    await createImage(layout, { dir: root, tag: 'bb', cmd: ['/bin/sh', '-c', 'id'], user: 'app', env: ['GREETING=hi'], workdir: '/home/app' });
    const extra = join(tmp, 'extra');
    await mkdir(join(extra, 'srv'), { recursive: true });
    await writeFile(join(extra, 'srv', 'data.txt'), 'layer two\n');
    await appendLayer(layout, 'bb', { dir: extra, tag: 'bb2' });
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('writes rootfs from all layers and config.json from the image config', async () => {
    const bundle = join(tmp, 'bundle1');
    const seen: number[] = [];
    const r = await unpackImage(layout, 'bb2', bundle, { onLayer: (i) => seen.push(i) });
    assert.deepEqual(seen, [0, 1]);
    assert.equal(r.manifest.digest, (await layout.resolve('bb2')).digest);
    const rootfs = join(bundle, 'rootfs');
    assert.equal(await readlink(join(rootfs, 'bin', 'sh')), 'busybox');
    assert.equal((await stat(join(rootfs, 'bin', 'busybox'))).mode & 0o777, 0o755);
    assert.equal((await lstat(join(rootfs, 'tmp'))).mode & 0o7777, 0o1777);
    assert.equal(await readFile(join(rootfs, 'srv', 'data.txt'), 'utf8'), 'layer two\n');
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as RuntimeSpec;
    assert.deepEqual(spec.process.args, ['/bin/sh', '-c', 'id']);
    assert.deepEqual(spec.process.user, { uid: 1000, gid: 1000, additionalGids: [29] });
    assert.equal(spec.process.cwd, '/home/app');
    assert.ok(spec.process.env.includes('GREETING=hi'));
    assert.equal(spec.root.path, 'rootfs');
  });

  test('refuses a non-empty rootfs unless allowed; runtime inputs reach config.json', async () => {
    const bundle = join(tmp, 'bundle2');
    await mkdir(join(bundle, 'rootfs'), { recursive: true });
    await writeFile(join(bundle, 'rootfs', 'junk'), 'x');
    await assert.rejects(unpackImage(layout, 'bb', bundle), (e) => isBerthError(e, 'USAGE') && /already has content/.test(e.message));
    await unpackImage(layout, 'bb', bundle, { allowNonEmpty: true, runtime: { args: ['echo', 'x'], terminal: true } });
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as RuntimeSpec;
    assert.deepEqual(spec.process.args, ['echo', 'x']);
    assert.equal(spec.process.terminal, true);
  });

  test('chooses the platform from an index; clear error for a missing platform and for artifacts', async () => {
    const small = join(tmp, 'small');
    await mkdir(small, { recursive: true });
    await writeFile(join(small, 'which'), 'amd64');
    const amd = await createImage(layout, { dir: small, platform: { os: 'linux', architecture: 'amd64' } });
    await writeFile(join(small, 'which'), 'arm64');
    const arm = await createImage(layout, { dir: small, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const index = await pushJson(layout, MediaType.imageIndex, {
      schemaVersion: 2,
      mediaType: MediaType.imageIndex,
      manifests: [
        { ...amd, platform: { os: 'linux', architecture: 'amd64' } },
        { ...arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    });
    await layout.tag(index, 'multi');
    const r = await unpackImage(layout, 'multi', join(tmp, 'b-arm'), { platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(r.manifest.digest, arm.digest);
    assert.equal(await readFile(join(tmp, 'b-arm', 'rootfs', 'which'), 'utf8'), 'arm64');
    await unpackImage(layout, 'multi', join(tmp, 'b-amd'), { platform: { os: 'linux', architecture: 'amd64' } });
    assert.equal(await readFile(join(tmp, 'b-amd', 'rootfs', 'which'), 'utf8'), 'amd64');
    await assert.rejects(
      unpackImage(layout, 'multi', join(tmp, 'b-s390'), { platform: { os: 'linux', architecture: 's390x' } }),
      (e) => isBerthError(e, 'PLATFORM_NOT_FOUND') && /linux\/amd64/.test(e.message),
    );
    const empty = await pushJson(layout, MediaType.empty, {});
    const artifact = await pushJson(layout, MediaType.imageManifest, {
      schemaVersion: 2,
      mediaType: MediaType.imageManifest,
      artifactType: 'application/example',
      config: empty,
      layers: [empty],
    });
    await layout.tag(artifact, 'art');
    await assert.rejects(unpackImage(layout, 'art', join(tmp, 'b-art')), (e) => isBerthError(e, 'UNSUPPORTED') && /not a container image/.test(e.message));
  });
});
