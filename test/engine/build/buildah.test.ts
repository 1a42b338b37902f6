/**
 * Differential: the same Dockerfile (FROM scratch, multi-stage, COPY/ADD with their flags,
 * every config instruction, .dockerignore) built by `berth build` and by `buildah bud`; the root
 * filesystems compared entry by entry (timestamps aside) and the configs field by field.
 * buildah runs with the CONTAINERS_CONF / CONTAINERS_STORAGE_CONF of peers.md in a temp dir.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from '../../../src/engine/build/builder.js';
import { OciLayout } from '../../../src/image/layout.js';
import { loadImage, type LoadedImage } from '../../../src/image/load-image.js';
import { unpackLayers } from '../../../src/layer/unpack-layers.js';
import { snapshotTree } from '../../layer/layer-write-helpers.js';
import { peer, root, skipUnless } from '../../helpers/requirements.js';

async function unpack(layoutDir: string, tag: string, into: string): Promise<LoadedImage> {
  const layout = await OciLayout.open(layoutDir);
  const img = await loadImage(layout, tag);
  await mkdir(into, { recursive: true });
  await unpackLayers(into, img.manifest.layers.map((l, i) => ({ ...l, diffId: img.config.rootfs.diff_ids[i], open: () => layout.fetch(l) })));
  return img;
}

const DOCKERFILE = [
  'FROM scratch AS first',
  'COPY dir /d',
  'COPY --chmod=700 a.txt /d/private',
  '',
  'FROM scratch',
  'ARG V=3',
  'ENV A=1 B="two words" C=${V}x',
  'ENV OLD old form value',
  'LABEL version=$V "x y"=z',
  'WORKDIR /app',
  'COPY a.txt link ./',
  'COPY dir /opt/d',
  'COPY dir/ /opt/trailing/',
  'COPY --chown=10:20 --chmod=640 a.txt /etc/conf',
  'COPY *.txt /multi/',
  'COPY --from=first /d /from-first',
  'ADD bundle.tar.gz /unpacked/',
  'ADD a.txt /added.txt',
  'WORKDIR sub',
  'COPY a.txt rel.txt',
  'USER 10:20',
  'EXPOSE 80 53/udp',
  'VOLUME /data /logs',
  'STOPSIGNAL SIGINT',
  'HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=2 CMD ["/bin/true"]',
  'CMD ["/app/a.txt"]',
  'ENTRYPOINT ["/bin/sh", "-c"]',
  '',
].join('\n');

describe('berth build and buildah bud make the same image', { skip: skipUnless(peer('buildah', 'buildah'), root('buildah as root with its own storage')) }, () => {
  let work = '';
  let env: NodeJS.ProcessEnv = {};
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-buildah-'));
    await writeFile(
      join(work, 'containers.conf'),
      '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\nnetns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n',
    );
    await writeFile(join(work, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${join(work, 'graph')}"\nrunroot = "${join(work, 'run')}"\n`);
    await mkdir(join(work, 'tmp'));
    env = { ...process.env, CONTAINERS_CONF: join(work, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(work, 'storage.conf'), XDG_RUNTIME_DIR: join(work, 'xdg'), TMPDIR: join(work, 'tmp') };
  });
  after(async () => {
    if (!work) return;
    spawnSync('buildah', ['rmi', '--all', '--force'], { env, stdio: 'ignore', timeout: 60_000 });
    spawnSync('umount', ['-R', join(work, 'graph')], { stdio: 'ignore' });
    await rm(work, { recursive: true, force: true });
  });

  it('FROM scratch + multi-stage COPY/ADD/ENV/LABEL/WORKDIR/USER/EXPOSE/VOLUME/STOPSIGNAL/HEALTHCHECK/CMD/ENTRYPOINT', async () => {
    const ctx = join(work, 'ctx');
    await mkdir(join(ctx, 'dir/sub'), { recursive: true });
    await writeFile(join(ctx, 'a.txt'), 'hello\n');
    await writeFile(join(ctx, 'b.txt'), 'bee\n');
    await writeFile(join(ctx, 'dir/x'), 'x\n');
    await chmod(join(ctx, 'dir/x'), 0o755);
    await writeFile(join(ctx, 'dir/sub/y'), 'y\n');
    await chmod(join(ctx, 'dir/sub'), 0o750);
    await symlink('../x', join(ctx, 'dir/sub/up'));
    await symlink('a.txt', join(ctx, 'link'));
    await writeFile(join(ctx, 'secret.txt'), 'must not be copied\n');
    await writeFile(join(ctx, '.dockerignore'), 'secret.txt\n');
    await mkdir(join(work, 'arch/inside'), { recursive: true });
    await writeFile(join(work, 'arch/inside/file'), 'from the archive\n');
    execFileSync('tar', ['-czf', join(ctx, 'bundle.tar.gz'), '--owner=0', '--group=0', '-C', join(work, 'arch'), 'inside']);
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);

    const bud = spawnSync('buildah', ['bud', '--layers', '--format', 'docker', '-t', 'berth-diff', ctx], { env, encoding: 'utf8', timeout: 300_000 });
    assert.equal(bud.status, 0, bud.stderr);
    const push = spawnSync('buildah', ['push', 'berth-diff', `oci:${join(work, 'buildah-out')}:t`], { env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(push.status, 0, push.stderr);
    await build({ contextDir: ctx, output: { layout: join(work, 'berth-out'), tag: 't' } });

    const theirs = await unpack(join(work, 'buildah-out'), 't', join(work, 'rootfs-buildah'));
    const ours = await unpack(join(work, 'berth-out'), 't', join(work, 'rootfs-berth'));
    const a = await snapshotTree(join(work, 'rootfs-buildah'), { mtimes: false });
    const b = await snapshotTree(join(work, 'rootfs-berth'), { mtimes: false });
    assert.deepEqual(b, a);
    assert.ok(b['from-first/private'] && !b['multi/secret.txt'] && b['multi/b.txt']);

    const fields = ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'Labels', 'ExposedPorts', 'Volumes', 'StopSignal'] as const;
    const pick = (img: LoadedImage) => {
      const c = img.config.config ?? {};
      const labels = { ...(c.Labels ?? {}) };
      delete labels['io.buildah.version'];
      return Object.fromEntries(fields.map((f) => [f, f === 'Labels' ? labels : c[f]]));
    };
    assert.deepEqual(pick(ours), pick(theirs));
    // buildah keeps a Healthcheck only in the Docker format, which `buildah push` to oci: drops: read it from inspect.
    const inspect = spawnSync('buildah', ['inspect', '--type', 'image', 'berth-diff'], { env, encoding: 'utf8' });
    assert.equal(inspect.status, 0, inspect.stderr);
    const docker = (JSON.parse(inspect.stdout) as { Docker: { config: { Healthcheck?: unknown } } }).Docker.config;
    assert.deepEqual(ours.config.config?.Healthcheck, docker.Healthcheck);
    assert.equal(ours.config.architecture, theirs.config.architecture);
    assert.equal(ours.config.os, theirs.config.os);
  });
});
