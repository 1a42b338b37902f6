import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGroup, parsePasswd, readRootFile, resolveInRoot, resolveUser } from '../../src/image/passwd.js';
import { isBerthError } from '../../src/base/errors.js';

describe('passwd and group', () => {
  let root: string;
  let outside: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-passwd-'));
    outside = await mkdtemp(join(tmpdir(), 'berth-outside-'));
    await mkdir(join(root, 'etc'));
    await writeFile(
      join(root, 'etc', 'passwd'),
      ['root:x:0:0:root:/root:/bin/sh', '# comment', 'broken line', 'app:x:1000:1001:App:/home/app:/bin/sh', 'svc:x:70:70::/var/svc:/sbin/nologin', ''].join('\n'),
    );
    await writeFile(
      join(root, 'etc', 'group'),
      ['root:x:0:', 'appgrp:x:1001:', 'audio:x:29:app,svc', 'video:x:44:svc', 'wheel:x:10: app ', ''].join('\n'),
    );
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  test('parses passwd and group, skipping malformed lines', () => {
    assert.deepEqual(parsePasswd('a:x:1:2:g:/h:/s\nbad\nb:x:q:1::/:\n'), [{ name: 'a', uid: 1, gid: 2, home: '/h', shell: '/s' }]);
    assert.deepEqual(parseGroup('g:x:5:a,b\nh:x:6:\n'), [
      { name: 'g', gid: 5, members: ['a', 'b'] },
      { name: 'h', gid: 6, members: [] },
    ]);
  });

  test('user forms: empty, name, uid, name:group, uid:gid, uid:group, name:gid', async () => {
    assert.deepEqual(await resolveUser(root, ''), { uid: 0, gid: 0, home: '/root' });
    assert.deepEqual(await resolveUser(root, undefined), { uid: 0, gid: 0, home: '/root' });
    // A named user without a group gets its supplementary groups from /etc/group.
    assert.deepEqual(await resolveUser(root, 'app'), { uid: 1000, gid: 1001, home: '/home/app', additionalGids: [29, 10] });
    // Numeric: copied verbatim, no supplementary groups.
    assert.deepEqual(await resolveUser(root, '1000'), { uid: 1000, gid: 1001, home: '/home/app' });
    assert.deepEqual(await resolveUser(root, '4242'), { uid: 4242, gid: 0 });
    assert.deepEqual(await resolveUser(root, '4242:77'), { uid: 4242, gid: 77 });
    assert.deepEqual(await resolveUser(root, 'svc:video'), { uid: 70, gid: 44, home: '/var/svc' });
    assert.deepEqual(await resolveUser(root, '70:audio'), { uid: 70, gid: 29, home: '/var/svc' });
    assert.deepEqual(await resolveUser(root, 'app:5'), { uid: 1000, gid: 5, home: '/home/app' });
  });

  test('a user or group absent from the image is a clear error', async () => {
    await assert.rejects(resolveUser(root, 'nobody'), (e) => isBerthError(e, 'CONFIG_INVALID') && /no user "nobody"/.test(e.message));
    await assert.rejects(resolveUser(root, 'app:nogroup'), (e) => isBerthError(e, 'CONFIG_INVALID') && /no group "nogroup"/.test(e.message));
    await assert.rejects(resolveUser(root, ':5'), (e) => isBerthError(e, 'CONFIG_INVALID'));
    const empty = await mkdtemp(join(tmpdir(), 'berth-empty-'));
    try {
      await assert.rejects(resolveUser(empty, 'app'), (e) => isBerthError(e, 'CONFIG_INVALID'));
      assert.deepEqual(await resolveUser(empty, '5:6'), { uid: 5, gid: 6 });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('symlinks resolve inside the root, never to host files', async () => {
    const evil = await mkdtemp(join(tmpdir(), 'berth-evil-'));
    try {
      await writeFile(join(outside, 'passwd'), 'evil:x:0:0::/:/bin/sh\n');
      await mkdir(join(evil, 'etc'));
      // Absolute and ../ escapes both stay inside the root.
      await symlink(join(outside, 'passwd'), join(evil, 'etc', 'passwd'));
      await symlink('../../../../../../../../' + join(outside, 'passwd'), join(evil, 'etc', 'group'));
      assert.equal(await readRootFile(evil, '/etc/passwd'), undefined);
      assert.equal(await readRootFile(evil, '/etc/group'), undefined);
      await assert.rejects(resolveUser(evil, 'evil'), (e) => isBerthError(e, 'CONFIG_INVALID'));
      // A relative link inside the root is followed.
      await mkdir(join(evil, 'data'));
      await writeFile(join(evil, 'data', 'real'), 'x');
      await symlink('../data/real', join(evil, 'etc', 'link'));
      assert.equal(await resolveInRoot(evil, '/etc/link'), join(evil, 'data', 'real'));
      await symlink('loop', join(evil, 'loop'));
      await assert.rejects(resolveInRoot(evil, '/loop'), (e) => isBerthError(e, 'UNSAFE_PATH'));
    } finally {
      await rm(evil, { recursive: true, force: true });
    }
  });
});
