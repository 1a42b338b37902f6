/**
 * Interop with umoci 0.4.7 (Debian): layouts umoci writes are read, verified and unpacked by
 * berth; images berth writes are unpacked by umoci into the same tree berth unpacks.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile, lstat, readdir, readlink, mkdir, symlink, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { OciLayout } from '../../src/image/layout.js';
import { verifyLayout } from '../../src/image/layout-verify.js';
import { appendLayer, createImage, mutateImage } from '../../src/image/build.js';
import { unpackImage } from '../../src/image/unpack.js';
import { loadImage } from '../../src/image/load-image.js';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

/** type, mode, owner, size and link target of every path under root. */
async function describeTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, r));
      const mode = (st.mode & 0o7777).toString(8);
      const owner = `${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) out[r] = `link -> ${await readlink(join(root, r))} ${owner}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode} ${owner}`;
        await walk(r);
      } else if (st.isFile()) out[r] = `file ${mode} ${owner} ${st.size}`;
      else out[r] = `other ${mode} ${owner}`;
    }
  };
  await walk('');
  return out;
}

function umoci(...args: string[]): string {
  return execFileSync('umoci', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const skip = skipUnless(peer('umoci', 'umoci'), root('umoci unpack without --rootless'), peer(BUSYBOX, 'busybox-static'));

describe('interop with umoci', { skip }, () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-umoci-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('a layout written by umoci (init, new, unpack, repack, config) is verified and unpacked by berth', async () => {
    const dir = join(tmp, 'umoci-layout');
    umoci('init', '--layout', dir);
    umoci('new', '--image', `${dir}:t`);
    // `umoci insert` of 0.4.7 (Debian) writes layers that end without tar padding or end-of-archive
    // blocks (GNU tar rejects them too), so the layer is made with unpack + repack instead.
    const work = join(tmp, 'umoci-work');
    umoci('unpack', '--image', `${dir}:t`, work);
    await mkdir(join(work, 'rootfs', 'srv'));
    await writeFile(join(work, 'rootfs', 'srv', 'hello.txt'), 'inserted by umoci\n');
    umoci('repack', '--image', `${dir}:t`, work);
    umoci('config', '--image', `${dir}:t`, '--config.cmd', '/bin/true', '--config.env', 'FROM=umoci', '--config.workingdir', '/srv');
    const layout = await OciLayout.open(dir);
    assert.deepEqual(await layout.tags(), ['t']);
    assert.deepEqual(await verifyLayout(layout), []);
    const bundle = join(tmp, 'bundle-from-umoci');
    await unpackImage(layout, 't', bundle);
    assert.equal(await readFile(join(bundle, 'rootfs', 'srv', 'hello.txt'), 'utf8'), 'inserted by umoci\n');
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
    assert.deepEqual(spec.process.args, ['/bin/true']);
    assert.equal(spec.process.cwd, '/srv');
    assert.ok(spec.process.env.includes('FROM=umoci'));
    // berth can build on umoci's image, and umoci can read the result.
    const extra = join(tmp, 'extra');
    await mkdir(extra);
    await writeFile(join(extra, 'added.txt'), 'added by berth\n');
    await appendLayer(layout, 't', { dir: extra });
    const back = join(tmp, 'bundle-umoci-reads-berth');
    umoci('unpack', '--image', `${dir}:t`, back);
    assert.equal(await readFile(join(back, 'rootfs', 'added.txt'), 'utf8'), 'added by berth\n');
    assert.equal(await readFile(join(back, 'rootfs', 'srv', 'hello.txt'), 'utf8'), 'inserted by umoci\n');
  });

  test('umoci unpack of a berth image gives the same tree as berth unpack', async () => {
    const dir = join(tmp, 'berth-layout');
    const layout = await OciLayout.open(dir, { create: true });
    const src = await buildBusyboxRootfs(join(tmp, 'bb'), { users: [{ name: 'app', uid: 1000, gid: 1000 }] });
    // Edge cases: setuid bit, a hardlink-free nested tree, odd modes, a dangling symlink, an empty file.
    await mkdir(join(src, 'opt', 'deep', 'er'), { recursive: true });
    await writeFile(join(src, 'opt', 'deep', 'er', 'empty'), '');
    await writeFile(join(src, 'opt', 'suid'), 'x');
    await chmod(join(src, 'opt', 'suid'), 0o4755);
    await chmod(join(src, 'opt', 'deep'), 0o700);
    await symlink('/does/not/exist', join(src, 'opt', 'dangling'));
    await createImage(layout, { dir: src, tag: 't', cmd: ['/bin/sh'], user: 'app' });
    const extra = join(tmp, 'layer2');
    await mkdir(join(extra, 'opt'), { recursive: true });
    await writeFile(join(extra, 'opt', 'suid'), 'replaced');
    await appendLayer(layout, 't', { dir: extra });
    await mutateImage(layout, 't', { env: ['X=1'] });
    assert.equal((await loadImage(layout, 't')).manifest.layers.length, 2);

    const theirs = join(tmp, 'umoci-bundle');
    umoci('unpack', '--image', `${dir}:t`, theirs);
    const ours = join(tmp, 'berth-bundle');
    await unpackImage(layout, 't', ours);
    const a = await describeTree(join(theirs, 'rootfs'));
    const b = await describeTree(join(ours, 'rootfs'));
    assert.ok(Object.keys(a).length > 250, 'busybox tree unpacked');
    assert.deepEqual(b, a);
    // Same process settings in both config.json files.
    const ts = JSON.parse(await readFile(join(theirs, 'config.json'), 'utf8'));
    const os = JSON.parse(await readFile(join(ours, 'config.json'), 'utf8'));
    assert.deepEqual(os.process.args, ts.process.args);
    assert.deepEqual(os.process.user.uid, ts.process.user.uid);
    assert.deepEqual(os.process.user.gid, ts.process.user.gid);
    assert.equal(os.process.cwd, ts.process.cwd);
    assert.ok(os.process.env.includes('X=1') && ts.process.env.includes('X=1'));
  });
});
