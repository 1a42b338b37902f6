/**
 * docker 20.10 (dockerd started here, data in a temp dir, as docs/ARCHITECTURE.md "Tests and peers" says) against
 * `berth serve`: pull an image pushed by skopeo, run it, tag and push it to another
 * repository; digests must match what the registry holds. Needs root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { DOCKER, DOCKERD, startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { buildBusyboxImage, verifyPulled, type BusyboxImage } from '../registry/busybox-image.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

describe('docker against berth serve (needs root)', { skip: skipUnless(peer(DOCKER, 'docker.io'), peer(DOCKERD, 'docker.io'), peer('/usr/bin/skopeo', 'skopeo'), root('dockerd')) }, () => {
  const work = mkdtempSync(join(tmpdir(), 'berth-docker-'));
  let dockerd: Dockerd | undefined;
  let image: BusyboxImage;
  let reg: BerthRegistry;
  const docker = (...args: string[]) => dockerd!.docker(...args);

  before(async () => {
    image = buildBusyboxImage(work);
    reg = await startBerthRegistry({ args: ['--log-format', 'off'] });
    const env = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
    const copy = spawnSync('skopeo', ['copy', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${reg.host}/docker/bb:v1`], { env, encoding: 'utf8' });
    assert.equal(copy.status, 0, copy.stderr);
    dockerd = await startDockerd();
  });
  after(async () => {
    await reg?.stop();
    await dockerd?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('pulls and runs an image, then pushes it to another repository with matching digests', async () => {
    docker('pull', `${reg.host}/docker/bb:v1`);
    const repoDigests = JSON.parse(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', `${reg.host}/docker/bb:v1`)) as string[];
    assert.ok(repoDigests.includes(`${reg.host}/docker/bb@${image.digest}`), JSON.stringify(repoDigests));
    assert.match(docker('run', '--rm', '--network', 'none', `${reg.host}/docker/bb:v1`), /hello from berth/);
    docker('tag', `${reg.host}/docker/bb:v1`, `${reg.host}/docker/pushed:v2`);
    const out = docker('push', `${reg.host}/docker/pushed:v2`);
    const m = /digest: (sha256:[a-f0-9]{64})/.exec(out);
    assert.ok(m, out);
    assert.equal(await verifyPulled(reg.url, 'docker/pushed', 'v2'), m[1]);
  });
});
