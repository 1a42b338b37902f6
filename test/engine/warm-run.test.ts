/**
 * The warm path of `run`: what create asks of the image's root is answered from the chain's
 * facts cache (engine/image-root.ts) and the container's monitor mounts the root. Also what
 * that changes for `start` (the root mounted again where it is gone) and for a root that cannot
 * be mounted. As root, with the built CLI, on a busybox image built in the test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const needs = skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'));

/** The facts files of the root's snapshots (one per chain that a container used). */
function factsFiles(berthRoot: string): string[] {
  const dir = join(berthRoot, 'snapshots');
  return readdirSync(dir).map((n) => join(dir, n, 'facts.json')).filter((f) => existsSync(f));
}

function mountedAt(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path);
}

describe('berth run: the warm path', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => { e = await engineRoot(); });
  after(async () => { await e.close(); });

  it('keeps what create learnt of the image (accounts, paths) beside its snapshot, and uses it', async () => {
    const first = await e.berth(['run', '--rm', '--network', 'none', 'busybox', 'id', '-u']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, '0\n');
    const [file, ...more] = factsFiles(e.root);
    assert.ok(file, 'a facts file for the chain');
    assert.deepEqual(more, []);
    const facts = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(facts.overlay, true);
    assert.equal(facts.kinds['/bin/id'], 'exec');
    assert.equal(facts.kinds['/usr/bin/id'], 'missing');
    assert.match(facts.files['/etc/passwd'], /^root:x:0:0:/);
    // The next run answers from the file: a user only the cache knows is found (the image has
    // no such user), and the container runs under the root its monitor mounted.
    facts.files['/etc/passwd'] += 'ghost:x:4242:4242::/home/ghost:/bin/sh\n';
    writeFileSync(file, JSON.stringify(facts));
    const cached = await e.berth(['run', '--rm', '--network', 'none', '-u', 'ghost', 'busybox', 'id', '-u']);
    assert.equal(cached.code, 0, cached.stderr);
    assert.equal(cached.stdout, '4242\n');
    // A missing command is still 127 when the answer comes from the cache.
    for (let i = 0; i < 2; i++) {
      const nf = await e.berth(['run', '--rm', '--network', 'none', 'busybox', 'no-such-command']);
      assert.equal(nf.code, 127, `run ${i + 1}: ${nf.stderr}`);
      assert.match(nf.stderr, /executable file not found in \$PATH/);
    }
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).kinds['/bin/no-such-command'], 'missing');
  });

  it('ignores a facts file that is not what it should be, and writes a good one', async () => {
    const [file] = factsFiles(e.root);
    assert.ok(file);
    writeFileSync(file, '{"overlay":true,"kinds":{"/bin/id":"yes","/bin/sh":7},"files":{"/etc/passwd":42}');
    const r = await e.berth(['run', '--rm', '--network', 'none', 'busybox', 'id', '-un']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'root\n');
    const facts = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(facts.kinds['/bin/id'], 'exec');
    assert.equal(typeof facts.files['/etc/passwd'], 'string');
  });

  it('start mounts the root again where it is gone (as after a reboot)', async () => {
    const c = await e.berth(['create', '--network', 'none', 'busybox', 'sh', '-c', 'cat /etc/mark 2>/dev/null || echo none; echo kept > /etc/mark']);
    assert.equal(c.code, 0, c.stderr);
    const id = c.stdout.trim();
    const rootfs = join(e.root, 'containers', id, 'rootfs');
    assert.equal((await e.berth(['start', '-a', id])).stdout, 'none\n');
    assert.ok(mountedAt(rootfs), 'mounted while the container exists');
    assert.equal(spawnSync('umount', [rootfs]).status, 0);
    const again = await e.berth(['start', '-a', id]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'kept\n', 'the upper dir is the same: the change survives');
    assert.ok(mountedAt(rootfs));
    assert.equal((await e.berth(['rm', id])).code, 0);
    assert.equal(mountedAt(rootfs), false);
  });

  it('a root that cannot be mounted: 125 and one line that says why, and the container stays', async () => {
    const c = await e.berth(['create', '--network', 'none', 'busybox', 'true']);
    const id = c.stdout.trim();
    const dir = join(e.root, 'containers', id);
    assert.equal(spawnSync('umount', [join(dir, 'rootfs')]).status, 0);
    rmSync(join(dir, 'work'), { recursive: true });
    writeFileSync(join(dir, 'work'), 'not a directory');
    const r = await e.berth(['start', '-a', id]);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /cannot mount the container's root \(overlay on .*rootfs\): .*: Invalid argument; .*remove it \(berth rm\)/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match((await e.berth(['ps', '-a'])).stdout, new RegExp(id.slice(0, 12)));
    assert.equal((await e.berth(['rm', id])).code, 0);
  });
});
