/**
 * podman 4.3 against `berth serve`: pull an image, run it, push it to another repository;
 * digests must match what the registry holds. podman needs the
 * CONTAINERS_CONF / CONTAINERS_STORAGE_CONF of docs/ARCHITECTURE.md "Tests and peers" on these machines (as root).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { buildBusyboxImage, verifyPulled, type BusyboxImage } from '../registry/busybox-image.js';
import { podmanEnv, removePodmanWork } from '../helpers/podman.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const PODMAN = '/usr/bin/podman';

describe('podman against berth serve (needs root)', { skip: skipUnless(peer(PODMAN, 'podman'), peer('/usr/bin/umoci', 'umoci'), root('podman\'s storage uses overlay mounts')) }, () => {
  const work = mkdtempSync(join(tmpdir(), 'berth-podman-'));
  let image: BusyboxImage;
  let reg: BerthRegistry;
  let env: NodeJS.ProcessEnv;

  function podman(...args: string[]): string {
    const r = spawnSync(PODMAN, args, { env, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  before(async () => {
    image = buildBusyboxImage(work);
    env = podmanEnv(work);
    reg = await startBerthRegistry({ args: ['--log-format', 'off'] });
  });
  after(async () => {
    await reg?.stop();
    removePodmanWork(work, env);
  });

  it('pulls an image (pushed by skopeo), runs it, and pushes it to another repository with matching digests', async () => {
    const skopeoEnv = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
    const copy = spawnSync('skopeo', ['copy', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${reg.host}/podman/bb:v1`], { env: skopeoEnv, encoding: 'utf8' });
    assert.equal(copy.status, 0, copy.stderr);
    const pushed = image.digest;
    podman('pull', '--tls-verify=false', `${reg.host}/podman/bb:v1`);
    const digests = podman('image', 'inspect', '--format', '{{json .RepoDigests}}', `${reg.host}/podman/bb:v1`);
    assert.ok((JSON.parse(digests) as string[]).includes(`${reg.host}/podman/bb@${pushed}`), digests);
    const out = podman('run', '--rm', `${reg.host}/podman/bb:v1`);
    assert.match(out, /hello from berth/);
    const again = join(work, 'digest2');
    podman('push', '--tls-verify=false', '--digestfile', again, `${reg.host}/podman/bb:v1`, `${reg.host}/podman/copy:v1`);
    assert.equal(await verifyPulled(reg.url, 'podman/copy', 'v1'), readFileSync(again, 'utf8').trim());
  });
});
