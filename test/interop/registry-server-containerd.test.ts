/**
 * containerd 1.6 (`ctr`, containerd started here with CRI disabled, everything in a temp dir)
 * against `berth serve`: pull with --plain-http, push to another repository; digests must
 * match what the registry holds. Needs root.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { buildBusyboxImage, verifyPulled, type BusyboxImage } from '../registry/busybox-image.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';

describe('containerd ctr against berth serve (needs root)', { skip: skipUnless(peer(CONTAINERD, 'containerd'), peer(CTR, 'containerd'), peer('/usr/bin/skopeo', 'skopeo'), root('containerd')) }, () => {
  const work = mkdtempSync(join(tmpdir(), 'berth-ctr-'));
  const sock = join(work, 'containerd.sock');
  let containerd: ChildProcess | undefined;
  let image: BusyboxImage;
  let reg: BerthRegistry;

  function ctr(...args: string[]): string {
    const r = spawnSync(CTR, ['-a', sock, ...args], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  before(async () => {
    image = buildBusyboxImage(work);
    reg = await startBerthRegistry({ args: ['--log-format', 'off'] });
    const env = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
    const copy = spawnSync('skopeo', ['copy', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${reg.host}/ctr/bb:v1`], { env, encoding: 'utf8' });
    assert.equal(copy.status, 0, copy.stderr);
    const config = join(work, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = "${join(work, 'root')}"`,
        `state = "${join(work, 'state')}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${sock}"`,
        '[ttrpc]',
        `  address = "${sock}.ttrpc"`,
        '',
      ].join('\n'),
    );
    containerd = spawn(CONTAINERD, ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    containerd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    for (let i = 0; ; i++) {
      if (spawnSync(CTR, ['-a', sock, 'version'], { stdio: 'ignore' }).status === 0) break;
      if (i > 80 || containerd.exitCode !== null) throw new Error(`containerd did not start: ${log}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });
  after(async () => {
    await reg?.stop();
    if (containerd && containerd.exitCode === null) {
      const exited = new Promise((resolve) => containerd!.once('exit', resolve));
      containerd.kill('SIGTERM');
      const t = setTimeout(() => containerd!.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(work));
    for (const m of mounts.sort().reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  });

  it('pulls with --plain-http and pushes to another repository with matching digests', async () => {
    ctr('images', 'pull', '--plain-http', `${reg.host}/ctr/bb:v1`);
    const list = ctr('images', 'ls');
    const line = list.split('\n').find((l) => l.startsWith(`${reg.host}/ctr/bb:v1`));
    assert.ok(line?.includes(image.digest), list);
    ctr('images', 'tag', `${reg.host}/ctr/bb:v1`, `${reg.host}/ctr/pushed:v2`);
    ctr('images', 'push', '--plain-http', `${reg.host}/ctr/pushed:v2`);
    assert.equal(await verifyPulled(reg.url, 'ctr/pushed', 'v2'), image.digest);
  });
});
