/**
 * berth run against Debian's docker-registry (distribution 2.8) on 127.0.0.1, and the bad inputs
 * of the engine issue's section 3 that need a registry or a damaged store: a registry that is
 * down, an image that is not there, a platform the image lacks, a corrupt blob in the store, an
 * unknown container. Each gets one line saying what and what to do, docker's exit status, and
 * leaves the store as it was.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX } from '../helpers/busybox.js';
import { freePort, REGISTRY_BIN, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

describe('berth run from docker-registry, and what goes wrong', { skip: skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'), peer(REGISTRY_BIN, 'docker-registry')) }, () => {
  let e: EngineRoot;
  let reg: RegistryServer;
  let ref: string;
  /** What the store holds: image names and blob files; a failed command must not change it. */
  const storeState = async () => {
    const names = (await e.berth(['images', '--format', 'json'])).stdout;
    const index = readFileSync(join(e.root, 'images', 'index.json'), 'utf8');
    return { names, index, containers: (await e.berth(['ps', '-aq'])).stdout };
  };

  before(async () => {
    e = await engineRoot();
    reg = await startRegistry();
    ref = `${reg.host}/demo/bb:v1`;
    const push = await e.berth(['copy', `oci:${join(e.root, 'images')}:docker.io/library/busybox:latest`, `docker://${ref}`]);
    assert.equal(push.code, 0, push.stderr);
  });
  after(async () => {
    await reg?.stop();
    await e?.close();
  });

  it('pulls from docker-registry and runs; a second run uses the store', async () => {
    const r = await e.berth(['run', '--rm', ref, 'sh', '-c', 'echo from distribution']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from distribution\n');
    assert.match((await e.berth(['images'])).stdout, /demo\/bb/);
    const again = await e.berth(['run', '--rm', '--pull', 'never', ref, 'true']);
    assert.equal(again.code, 0, again.stderr);
  });

  it('a registry that is down, an image that is not there, a platform the image lacks: 125 and one line each, the store unchanged', async () => {
    const before = await storeState();
    const down = await e.berth(['run', '--rm', `127.0.0.1:${await freePort()}/demo/bb:v1`, 'true']);
    assert.equal(down.code, 125);
    assert.match(down.stderr, /^berth: cannot pull 127\.0\.0\.1:\d+\/demo\/bb:v1: .*(refused|connect)/i);
    assert.equal(down.stderr.trim().split('\n').length, 1, down.stderr);

    const missing = await e.berth(['run', '--rm', `${reg.host}/demo/nothing:v1`, 'true']);
    assert.equal(missing.code, 125);
    assert.match(missing.stderr, /cannot pull .*demo\/nothing:v1/);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);

    const platform = await e.berth(['run', '--rm', '--platform', 'linux/s390x', '--pull', 'always', ref, 'true']);
    assert.equal(platform.code, 125);
    assert.match(platform.stderr, /s390x/);
    assert.deepEqual(await storeState(), before);
  });

  it('an unknown container: one line and a failing status, for rm, stop, logs, exec, inspect', async () => {
    for (const args of [['rm', 'nosuch'], ['stop', 'nosuch'], ['logs', 'nosuch'], ['exec', 'nosuch', 'true'], ['inspect', 'nosuch']]) {
      const r = await e.berth(args);
      assert.notEqual(r.code, 0, args.join(' '));
      // (inspect looks for an image once no container has the name, and says so.)
      assert.match(r.stderr, args[0] === 'inspect' ? /no image "nosuch" in the local store/ : /no such container: nosuch/, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  it('a corrupt config blob in the store: 125 naming the blob and what to do; nothing is created', async () => {
    const inspect = JSON.parse((await e.berth(['image', 'inspect', ref])).stdout) as { Id?: string }[] | { Id?: string };
    const id = (Array.isArray(inspect) ? inspect[0]! : inspect).Id!;
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    const blob = join(e.root, 'images', 'blobs', 'sha256', id.slice('sha256:'.length));
    const good = readFileSync(blob);
    try {
      writeFileSync(blob, Buffer.concat([good.subarray(0, good.length - 2), Buffer.from('}}')]));
      const r = await e.berth(['run', '--rm', '--pull', 'never', ref, 'true']);
      assert.equal(r.code, 125);
      assert.match(r.stderr, /digest|corrupt|does not match/i);
      assert.match(r.stderr, new RegExp(id.slice('sha256:'.length, 'sha256:'.length + 12)));
      assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
    } finally {
      writeFileSync(blob, good);
    }
    assert.equal((await e.berth(['run', '--rm', '--pull', 'never', ref, 'true'])).code, 0);
  });
});
