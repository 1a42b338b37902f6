/**
 * Interop: an image created and unpacked by berth runs under runc (needs root; runc 1.1 from Debian).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { OciLayout } from '../../src/image/layout.js';
import { createImage } from '../../src/image/build.js';
import { unpackImage } from '../../src/image/unpack.js';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const skip = skipUnless(root('runc'), peer('runc', 'runc'), peer(BUSYBOX, 'busybox-static'));

describe('berth unpack → runc run', { skip }, () => {
  let tmp: string;
  let layout: OciLayout;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-runc-'));
    layout = await OciLayout.open(join(tmp, 'layout'), { create: true });
    const root = await buildBusyboxRootfs(join(tmp, 'rootfs-src'), {
      users: [{ name: 'worker', uid: 1234, gid: 1234, groups: [['video', 44]] }],
    });
    await createImage(layout, {
      dir: root,
      tag: 'bb',
      entrypoint: ['/bin/sh', '-c'],
      cmd: ['echo "hello from $GREETING in $(pwd) as $(id -u):$(id -g) groups $(id -G)"; exit 7'],
      env: ['GREETING=berth'],
      workdir: '/tmp',
      user: 'worker',
    });
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  function runc(bundle: string): { status: number | null; stdout: string; stderr: string } {
    const id = `berth-test-${randomBytes(6).toString('hex')}`;
    const root = join(tmp, 'runc-state');
    try {
      const r = spawnSync('runc', ['--root', root, 'run', '--bundle', bundle, id], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    } finally {
      spawnSync('runc', ['--root', root, 'delete', '--force', id], { stdio: 'ignore' });
    }
  }

  test('runs the image command with its env, cwd, user and exit code', async () => {
    const bundle = join(tmp, 'bundle');
    await unpackImage(layout, 'bb', bundle);
    const r = runc(bundle);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout.trim(), 'hello from berth in /tmp as 1234:1234 groups 1234 44');
    assert.equal(r.status, 7);
  });

  test('User resolved by name from /etc/passwd; args override Cmd', async () => {
    const bundle = join(tmp, 'bundle-args');
    await unpackImage(layout, 'bb', bundle, { runtime: { args: ['cat /etc/passwd | grep -c worker; whoami'] } });
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
    assert.deepEqual(spec.process.user, { uid: 1234, gid: 1234, additionalGids: [44] });
    const r = runc(bundle);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['1', 'worker']);
  });

  test('the same bundle runs under crun (inside a private mount namespace, as docs/ARCHITECTURE.md describes)', { skip: skipUnless(peer('crun', 'crun')) }, async () => {
    const bundle = join(tmp, 'bundle-crun');
    await unpackImage(layout, 'bb', bundle);
    const empty = join(tmp, 'empty-controllers');
    await writeFile(empty, '');
    const id = `berth-crun-${randomBytes(6).toString('hex')}`;
    const root = join(tmp, 'crun-state');
    // crun refuses hybrid cgroup hosts unless the cgroup2 controller list reads empty.
    const script = `mount --bind ${empty} /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; exec crun --root ${root} run --bundle ${bundle} ${id}`;
    try {
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(r.stdout.trim(), 'hello from berth in /tmp as 1234:1234 groups 1234 44', r.stderr);
      assert.equal(r.status, 7);
    } finally {
      spawnSync('crun', ['--root', root, 'delete', '--force', id], { stdio: 'ignore' });
    }
  });
});
