/**
 * `berth serve --proxy docker.io=URL` as the mirror of docker.io for real clients, the upstream
 * being Debian's docker-registry on 127.0.0.1 (standing in for docker.io, which the clients never
 * reach: no network) with its access log on, so that the test counts every upstream fetch:
 * - 20 concurrent skopeo copies through containers-registries.conf `[[registry.mirror]]` of an
 *   image the cache has never seen fetch each blob from upstream exactly once (skopeo 1.9 reads
 *   the file given with its hidden --registries-conf, not CONTAINERS_REGISTRIES_CONF as podman);
 * - podman pulls and runs the image through the same registries.conf;
 * - containerd's ctr pulls it through a hosts.toml mirror (`--hosts-dir`; containerd names the
 *   host in `?ns=docker.io`), served from the cache.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { countRequests, REGISTRY_BIN, skopeo, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { buildBusyboxImage, type BusyboxImage } from '../registry/busybox-image.js';
import { podmanEnv, removePodmanWork, unmountUnder } from '../helpers/podman.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const PODMAN = '/usr/bin/podman';
const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';
const REF = 'docker.io/library/bb:v1';

/** Runs a command, resolving with its exit status and stderr. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (status) => resolve({ status, stderr }));
  });
}

describe(
  'berth serve as the pull-through mirror of podman, skopeo and containerd (needs root)',
  {
    skip: skipUnless(
      peer(REGISTRY_BIN, 'docker-registry'),
      peer('/usr/bin/skopeo', 'skopeo'),
      peer('/usr/bin/umoci', 'umoci'),
      peer(PODMAN, 'podman'),
      peer(CONTAINERD, 'containerd'),
      peer(CTR, 'containerd'),
      root('podman\'s storage and containerd use mounts'),
    ),
  },
  () => {
    const work = mkdtempSync(join(tmpdir(), 'berth-mirror-'));
    let upstream: RegistryServer;
    let cache: BerthRegistry;
    let image: BusyboxImage;
    let blobs: string[];
    /** podman's environment; skopeo's adds a memory-only blob-info cache (as root it would remember blobs across runs). */
    let env: NodeJS.ProcessEnv;
    let skopeoEnv: NodeJS.ProcessEnv;
    let registries: string;

    before(async () => {
      image = buildBusyboxImage(work);
      upstream = await startRegistry({ accessLog: true });
      skopeo(['copy', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${upstream.host}/library/bb:v1`]);
      const manifest = JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', image.digest.slice(7)), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
      blobs = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
      cache = await startBerthRegistry({ args: ['--proxy', `docker.io=http://${upstream.host}`, '--log-format', 'off'] });
      registries = join(work, 'registries.conf');
      writeFileSync(
        registries,
        ['unqualified-search-registries = []', '[[registry]]', 'prefix = "docker.io"', 'location = "docker.io"', '[[registry.mirror]]', `location = "${cache.host}/docker.io"`, 'insecure = true', ''].join('\n'),
      );
      env = podmanEnv(work, { CONTAINERS_REGISTRIES_CONF: registries });
      skopeoEnv = { ...env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
    });
    after(async () => {
      await cache?.stop();
      await upstream?.stop();
      removePodmanWork(work, env);
    });

    it('20 concurrent skopeo copies through registries.conf [[registry.mirror]] fetch each blob from upstream exactly once', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => run('skopeo', ['--registries-conf', registries, 'copy', `docker://${REF}`, `oci:${join(work, `out${i}`)}:v1`], skopeoEnv)),
      );
      for (const r of results) assert.equal(r.status, 0, r.stderr);
      for (let i = 0; i < 20; i++) {
        const index = JSON.parse(readFileSync(join(work, `out${i}`, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
        assert.equal(index.manifests[0]?.digest, image.digest, `copy ${i} has the upstream's manifest`);
      }
      for (const d of blobs) assert.equal(countRequests(upstream, 'GET', `/v2/library/bb/blobs/${d}`), 1, `blob ${d} fetched once from upstream`);
      assert.equal(countRequests(upstream, 'GET', `/v2/library/bb/manifests/${image.digest}`), 1, 'the manifest fetched once');
      assert.ok(countRequests(upstream, 'HEAD', '/v2/library/bb/manifests/v1') <= 1, 'the tag asked once');
    });

    it('podman pulls and runs the image through the mirror, served from the cache', () => {
      const pull = spawnSync(PODMAN, ['pull', REF], { env, encoding: 'utf8', timeout: 120_000 });
      assert.equal(pull.status, 0, pull.stderr);
      const out = spawnSync(PODMAN, ['run', '--rm', REF], { env, encoding: 'utf8', timeout: 120_000 });
      assert.equal(out.status, 0, out.stderr);
      assert.match(out.stdout, /hello from berth/);
      for (const d of blobs) assert.equal(countRequests(upstream, 'GET', `/v2/library/bb/blobs/${d}`), 1, `blob ${d} still fetched once`);
    });

    it('containerd pulls the image through a hosts.toml mirror (?ns=docker.io), served from the cache', async () => {
      const hosts = join(work, 'certs.d');
      mkdirSync(join(hosts, 'docker.io'), { recursive: true });
      writeFileSync(join(hosts, 'docker.io', 'hosts.toml'), ['server = "https://registry-1.docker.io"', `[host."http://${cache.host}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'));
      const sock = join(work, 'containerd.sock');
      const config = join(work, 'containerd.toml');
      writeFileSync(
        config,
        ['version = 2', `root = "${join(work, 'ctr-root')}"`, `state = "${join(work, 'ctr-state')}"`, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]', '[grpc]', `  address = "${sock}"`, '[ttrpc]', `  address = "${sock}.ttrpc"`, ''].join('\n'),
      );
      const containerd: ChildProcess = spawn(CONTAINERD, ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      containerd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
      try {
        for (let i = 0; ; i++) {
          if (spawnSync(CTR, ['-a', sock, 'version'], { stdio: 'ignore' }).status === 0) break;
          if (i > 80 || containerd.exitCode !== null) throw new Error(`containerd did not start: ${log}`);
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
        const pull = spawnSync(CTR, ['-a', sock, 'images', 'pull', '--hosts-dir', hosts, REF], { encoding: 'utf8', timeout: 120_000 });
        assert.equal(pull.status, 0, pull.stderr);
        const list = spawnSync(CTR, ['-a', sock, 'images', 'ls'], { encoding: 'utf8' }).stdout;
        assert.ok(list.split('\n').find((l) => l.startsWith(REF))?.includes(image.digest), list);
        for (const d of blobs) assert.equal(countRequests(upstream, 'GET', `/v2/library/bb/blobs/${d}`), 1, `blob ${d} still fetched once`);
      } finally {
        const exited = containerd.exitCode === null ? new Promise((resolve) => containerd.once('exit', resolve)) : Promise.resolve();
        if (containerd.exitCode === null) containerd.kill('SIGTERM');
        const t = setTimeout(() => containerd.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
        unmountUnder(work);
      }
    });
  },
);
