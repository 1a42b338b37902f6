/**
 * docker 20.10 (dockerd started here, data in a temp dir, as docs/ARCHITECTURE.md "Tests and peers" says) against
 * `berth serve`: pull an image pushed by skopeo, run it, tag and push it to another
 * repository; digests must match what the registry holds. Needs root.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { buildBusyboxImage, verifyPulled, type BusyboxImage } from '../registry/busybox-image.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

// Another, unrelated docker client may come first in PATH: use Debian's.
const DOCKER = '/usr/bin/docker';
const DOCKERD = '/usr/sbin/dockerd';

describe('docker against berth serve (needs root)', { skip: skipUnless(peer(DOCKER, 'docker.io'), peer(DOCKERD, 'docker.io'), peer('/usr/bin/skopeo', 'skopeo'), root('dockerd')) }, () => {
  const work = mkdtempSync(join(tmpdir(), 'berth-docker-'));
  const sock = join(work, 'docker.sock');
  let dockerd: ChildProcess | undefined;
  let image: BusyboxImage;
  let reg: BerthRegistry;

  function docker(...args: string[]): string {
    const r = spawnSync(DOCKER, ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  before(async () => {
    image = buildBusyboxImage(work);
    reg = await startBerthRegistry({ args: ['--log-format', 'off'] });
    const env = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
    const copy = spawnSync('skopeo', ['copy', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${reg.host}/docker/bb:v1`], { env, encoding: 'utf8' });
    assert.equal(copy.status, 0, copy.stderr);
    dockerd = spawn(
      DOCKERD,
      [
        '--data-root', join(work, 'data'), '--exec-root', join(work, 'exec'), '--pidfile', join(work, 'pid'), '-H', `unix://${sock}`,
        '--storage-driver', 'overlay2', '--bridge', 'none', '--iptables=false', '--ip6tables=false', '--ip-masq=false',
        '--userland-proxy=false', '--default-ulimit', 'nofile=1024:1024', '--default-ulimit', 'nproc=4096:4096',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    dockerd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    for (let i = 0; ; i++) {
      if (spawnSync(DOCKER, ['-H', `unix://${sock}`, 'version'], { stdio: 'ignore' }).status === 0) break;
      if (i > 120 || dockerd.exitCode !== null) throw new Error(`dockerd did not start: ${log}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });
  after(async () => {
    await reg?.stop();
    if (dockerd && dockerd.exitCode === null) {
      const exited = new Promise((resolve) => dockerd!.once('exit', resolve));
      dockerd.kill('SIGTERM');
      const t = setTimeout(() => dockerd!.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    }
    // dockerd leaves mounts under its data root
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(work));
    for (const m of mounts.sort().reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
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
