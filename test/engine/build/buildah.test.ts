/**
 * Differential: the same Dockerfile (FROM scratch, multi-stage, COPY/ADD with their flags,
 * every config instruction, .dockerignore) built by `berth build` and by `buildah bud`; the root
 * filesystems compared entry by entry (timestamps aside) and the configs field by field.
 * buildah runs with the CONTAINERS_CONF / CONTAINERS_STORAGE_CONF of peers.md in a temp dir.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from '../../../src/engine/build/builder.js';
import { EngineRunExecutor } from '../../../src/engine/build/engine-run.js';
import { buildBusyboxRootfs } from '../../helpers/busybox.js';
import { OciLayout } from '../../../src/image/layout.js';
import { loadImage, type LoadedImage } from '../../../src/image/load-image.js';
import { unpackLayers } from '../../../src/layer/unpack-layers.js';
import { snapshotTree } from '../../layer/layer-write-helpers.js';
import { removeMountedTree } from '../../helpers/podman.js';
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
    // Lower case: buildah reads an oci: path in FROM as a reference, which must be lower case.
    work = join(tmpdir(), `berth-buildah-${randomBytes(6).toString('hex')}`);
    await mkdir(work);
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
    spawnSync('buildah', ['rm', '--all'], { env, stdio: 'ignore', timeout: 60_000 });
    spawnSync('buildah', ['rmi', '--all', '--force'], { env, stdio: 'ignore', timeout: 60_000 });
    removeMountedTree(work);
  });

  /** Unpacks buildah's and berth's results; asserts the same files and config fields. */
  async function compare(name: string, theirsDir: string, oursDir: string, runStubs = false) {
    const push = spawnSync('buildah', ['push', name, `oci:${join(work, theirsDir)}:t`], { env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(push.status, 0, push.stderr);
    const theirs = await unpack(join(work, theirsDir), 't', join(work, `rootfs-${theirsDir}`));
    const ours = await unpack(join(work, oursDir), 't', join(work, `rootfs-${oursDir}`));
    const a = await snapshotTree(join(work, `rootfs-${theirsDir}`), { mtimes: false });
    const b = await snapshotTree(join(work, `rootfs-${oursDir}`), { mtimes: false });
    if (runStubs) {
      // buildah leaves the empty mount points of RUN (/etc/hosts, /etc/hostname, /run and what it
      // mounts there) in the image; BuildKit and berth do not.
      for (const stub of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf', 'run/.containerenv', 'run/secrets', 'run']) {
        const e = a[stub];
        if (e && b[stub] === undefined && (e.kind === 'dir' || e.size === 0) && !Object.keys(a).some((k) => k.startsWith(`${stub}/`))) delete a[stub];
      }
    }
    assert.deepEqual(b, a);
    const fields = ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'Labels', 'ExposedPorts', 'Volumes', 'StopSignal'] as const;
    const pick = (img: LoadedImage) => {
      const c = img.config.config ?? {};
      const labels = { ...(c.Labels ?? {}) };
      delete labels['io.buildah.version'];
      return Object.fromEntries(fields.map((f) => [f, f === 'Labels' ? labels : c[f]]));
    };
    assert.deepEqual(pick(ours), pick(theirs));
    assert.equal(ours.config.architecture, theirs.config.architecture);
    assert.equal(ours.config.os, theirs.config.os);
    return { ours, theirs, tree: b };
  }

  function bud(ctx: string, name: string, args: string[] = []): void {
    const r = spawnSync('buildah', ['bud', '--layers', '--format', 'docker', ...args, '-t', name, ctx], { env, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
  }

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

    bud(ctx, 'berth-diff');
    await build({ contextDir: ctx, output: { layout: join(work, 'berth-out'), tag: 't' } });

    const { ours, theirs, tree } = await compare('berth-diff', 'buildah-out', 'berth-out');
    assert.ok(tree['from-first/private'] && !tree['multi/secret.txt'] && tree['multi/b.txt']);
    // buildah keeps a Healthcheck only in the Docker format, which `buildah push` to oci: drops: read it from inspect.
    const inspect = spawnSync('buildah', ['inspect', '--type', 'image', 'berth-diff'], { env, encoding: 'utf8' });
    assert.equal(inspect.status, 0, inspect.stderr);
    const docker = (JSON.parse(inspect.stdout) as { Docker: { config: { Healthcheck?: unknown } } }).Docker.config;
    assert.deepEqual(ours.config.config?.Healthcheck, docker.Healthcheck);
    void theirs;
  });

  it('FROM an image of an OCI layout (ARG before FROM): --chown by name, WORKDIR, COPY into existing directories, ENTRYPOINT resetting CMD', async () => {
    const base = join(work, 'base');
    await buildBusyboxRootfs(join(base, 'rootfs'), { users: [{ name: 'app', uid: 1000, gid: 1000 }] });
    await writeFile(join(base, 'Dockerfile'), 'FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n');
    await build({ contextDir: base, output: { layout: join(work, 'base-layout'), tag: 'bb' } });
    const ctx = join(work, 'ctx2');
    await mkdir(ctx);
    await writeFile(join(ctx, 'f'), 'hi\n');
    await writeFile(join(ctx, 'Dockerfile'), [
      'ARG BASE',
      'FROM $BASE',
      'COPY --chown=app f /home/app/f',
      'COPY --chown=app:app f /newdir/sub/f',
      // Before USER: buildah makes a WORKDIR root's, BuildKit (and berth) the USER's.
      'WORKDIR /made/by/workdir',
      'USER app',
      'COPY f rel',
      'COPY f /usr/bin/',
      'COPY f /bin',
      'ENTRYPOINT ["/bin/sh"]',
      '',
    ].join('\n'));
    const BASE = `oci:${join(work, 'base-layout')}:bb`;
    bud(ctx, 'berth-diff2', ['--build-arg', `BASE=${BASE}`]);
    await build({ contextDir: ctx, buildArgs: { BASE }, output: { layout: join(work, 'berth-out2'), tag: 't' } });
    const { ours, tree } = await compare('berth-diff2', 'buildah-out2', 'berth-out2');
    assert.deepEqual([tree['home/app/f']!.uid, tree['home/app/f']!.gid], [1000, 1000]);
    assert.deepEqual([tree['made/by/workdir']!.uid, tree['made/by/workdir/rel']!.uid], [0, 0]);
    assert.equal(tree['bin/f']!.kind, 'file');
    assert.equal(ours.config.config!.Cmd, undefined);
  });

  it('RUN steps (berth through its engine, buildah through runc): the same root filesystem', async () => {
    const BASE = `oci:${join(work, 'base-layout')}:bb`;
    const ctx = join(work, 'ctx3');
    await mkdir(ctx);
    await writeFile(join(ctx, 'Dockerfile'), [
      'ARG BASE',
      'FROM $BASE',
      'ARG V=1',
      'RUN echo "v$V" > /version && rm /bin/ls && mkdir -p /opt/a/b && echo x > /opt/a/b/f && chmod 700 /opt/a',
      'RUN rm -r /opt/a/b && echo runner:x:1234:1234::/tmp:/bin/sh >> /etc/passwd && chown runner /opt/a',
      'USER runner',
      'RUN mkdir /tmp/mine && echo me > /tmp/mine/file',
      '',
    ].join('\n'));
    bud(ctx, 'berth-diff3', ['--build-arg', `BASE=${BASE}`]);
    const engineRoot = join(work, 'engine-root');
    await build({ contextDir: ctx, buildArgs: { BASE }, output: { layout: join(work, 'berth-out3'), tag: 't' }, runExecutor: new EngineRunExecutor({ root: engineRoot }), storeRoot: engineRoot });
    const { tree } = await compare('berth-diff3', 'buildah-out3', 'berth-out3', true);
    assert.equal(tree['bin/ls'], undefined);
    assert.deepEqual([tree['tmp/mine/file']!.uid, tree['opt/a']!.uid, tree['opt/a']!.mode], [1234, 1234, 0o700]);
  });
});
