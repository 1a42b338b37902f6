import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PATH, imageConfigToRuntimeSpec, mergeEnv } from '../../src/image/runtime-config.js';
import type { ImageConfig } from '../../src/base/types.js';
import { isBerthError } from '../../src/base/errors.js';
import { OCI_VERSION } from '../../src/runtime/spec/version.js';

function image(config: ImageConfig['config'], extra: Partial<ImageConfig> = {}): ImageConfig {
  return { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config, ...extra };
}

describe('imageConfigToRuntimeSpec (conversion.md)', () => {
  let rootfs: string;
  before(async () => {
    rootfs = await mkdtemp(join(tmpdir(), 'berth-rc-'));
    await mkdir(join(rootfs, 'etc'));
    await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nweb:x:33:33:www:/var/www:/bin/sh\n');
    await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nwww:x:33:\nlog:x:4:web\nstaff:x:50:web,root\n');
  });
  after(async () => {
    await rm(rootfs, { recursive: true, force: true });
  });

  test('Entrypoint then Cmd; args override Cmd only; runc defaults when neither', async () => {
    let spec = await imageConfigToRuntimeSpec(image({ Entrypoint: ['/bin/app', '-v'], Cmd: ['serve', '--port=80'] }), { rootfs });
    assert.deepEqual(spec.process.args, ['/bin/app', '-v', 'serve', '--port=80']);
    spec = await imageConfigToRuntimeSpec(image({ Cmd: ['echo', 'hi'] }), { rootfs });
    assert.deepEqual(spec.process.args, ['echo', 'hi']);
    spec = await imageConfigToRuntimeSpec(image({ Entrypoint: ['/bin/app'] }), { rootfs });
    assert.deepEqual(spec.process.args, ['/bin/app']);
    spec = await imageConfigToRuntimeSpec(image({ Entrypoint: ['/bin/app'], Cmd: ['x'] }), { rootfs, args: ['y', 'z'] });
    assert.deepEqual(spec.process.args, ['/bin/app', 'y', 'z']);
    spec = await imageConfigToRuntimeSpec(image({ Entrypoint: null, Cmd: null }), { rootfs });
    assert.deepEqual(spec.process.args, ['sh']);
    spec = await imageConfigToRuntimeSpec(image(undefined), { rootfs, entrypoint: ['/x'], args: [] });
    assert.deepEqual(spec.process.args, ['/x']);
    await assert.rejects(imageConfigToRuntimeSpec(image({ Cmd: 'echo' as unknown as string[] }), { rootfs }), (e) => isBerthError(e, 'CONFIG_INVALID'));
  });

  test('Env verbatim; defaults never replace image variables; external env adds and replaces', async () => {
    let spec = await imageConfigToRuntimeSpec(image({ Env: ['PATH=/opt/bin', 'A=1'] }), { rootfs });
    assert.deepEqual(spec.process.env, ['PATH=/opt/bin', 'A=1', 'HOME=/root']);
    spec = await imageConfigToRuntimeSpec(image({ Env: ['A=1', 'HOME=/h'] }), { rootfs, terminal: true, env: ['A=2', 'B=3'] });
    assert.deepEqual(spec.process.env, ['A=2', 'HOME=/h', DEFAULT_PATH, 'TERM=xterm', 'B=3']);
    assert.equal(spec.process.terminal, true);
    assert.deepEqual(mergeEnv(['X=1', 'Y=2'], ['Y=3', 'Z=']), ['X=1', 'Y=3', 'Z=']);
    assert.throws(() => mergeEnv([], ['NOEQUALS']), (e) => isBerthError(e, 'USAGE'));
  });

  test('WorkingDir to cwd (default /)', async () => {
    assert.equal((await imageConfigToRuntimeSpec(image({ WorkingDir: '/srv/app' }), { rootfs })).process.cwd, '/srv/app');
    assert.equal((await imageConfigToRuntimeSpec(image({}), { rootfs })).process.cwd, '/');
    assert.equal((await imageConfigToRuntimeSpec(image({ WorkingDir: 'rel/dir' }), { rootfs })).process.cwd, '/rel/dir');
  });

  test('User by name, uid, name:group and uid:gid; additional groups only for a bare name', async () => {
    const user = async (u: string) => (await imageConfigToRuntimeSpec(image({ User: u }), { rootfs })).process.user;
    assert.deepEqual(await user('web'), { uid: 33, gid: 33, additionalGids: [4, 50] });
    assert.deepEqual(await user('33'), { uid: 33, gid: 33 });
    assert.deepEqual(await user('web:staff'), { uid: 33, gid: 50 });
    assert.deepEqual(await user('1234:5678'), { uid: 1234, gid: 5678 });
    assert.deepEqual(await user(''), { uid: 0, gid: 0 });
    await assert.rejects(user('ghost'), (e) => isBerthError(e, 'CONFIG_INVALID') && /ghost/.test(e.message));
  });

  test('annotations from os/arch/variant/os.version/os.features/author/created/StopSignal/ExposedPorts; Labels win', async () => {
    const cfg = image(
      {
        StopSignal: 'SIGTERM',
        ExposedPorts: { '80/tcp': {}, '53/udp': {} },
        Volumes: { '/data': {} },
        Labels: { 'org.opencontainers.image.os': 'from-label', 'com.example.x': 'y' },
      },
      { variant: 'v8', architecture: 'arm64', 'os.version': '10.0', 'os.features': ['a', 'b'], author: 'me', created: '2024-01-02T03:04:05Z' },
    );
    const spec = await imageConfigToRuntimeSpec(cfg, { rootfs });
    assert.deepEqual(spec.annotations, {
      'org.opencontainers.image.os': 'from-label',
      'org.opencontainers.image.architecture': 'arm64',
      'org.opencontainers.image.variant': 'v8',
      'org.opencontainers.image.os.version': '10.0',
      'org.opencontainers.image.os.features': 'a,b',
      'org.opencontainers.image.author': 'me',
      'org.opencontainers.image.created': '2024-01-02T03:04:05Z',
      'org.opencontainers.image.stopSignal': 'SIGTERM',
      'org.opencontainers.image.exposedPorts': '80/tcp,53/udp',
      'com.example.x': 'y',
    });
    assert.ok(!spec.mounts.some((m) => m.destination === '/data'), 'volumes are not mounted by default');
    const withVolumes = await imageConfigToRuntimeSpec(cfg, { rootfs, volumes: 'tmpfs' });
    assert.deepEqual(withVolumes.mounts.at(-1), { destination: '/data', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755'] });
  });

  test('runc spec defaults: namespaces, mounts, masked/readonly paths, capabilities, rlimits', async () => {
    const spec = await imageConfigToRuntimeSpec(image({}), { rootfs, rootPath: '/abs/rootfs' });
    assert.equal(spec.ociVersion, OCI_VERSION, 'the one version berth writes');
    assert.deepEqual(spec.root, { path: '/abs/rootfs', readonly: false });
    assert.deepEqual((spec.linux.namespaces ?? []).map((n) => n.type), ['pid', 'network', 'ipc', 'uts', 'mount']);
    assert.deepEqual(spec.mounts.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup']);
    assert.ok(spec.linux.maskedPaths?.includes('/proc/kcore'));
    assert.ok(spec.linux.readonlyPaths?.includes('/proc/sysrq-trigger'));
    assert.deepEqual(spec.process.capabilities.bounding, ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']);
    assert.deepEqual(spec.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }]);
    assert.equal(spec.process.noNewPrivileges, true);
    assert.equal(spec.process.terminal, false);
  });
});
