/**
 * Differential: the same Dockerfile (FROM scratch, multi-stage, COPY/ADD with their flags, RUN
 * with its mounts, SHELL, ONBUILD, build args, --target,
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

/** The paths whose entries differ, one line each (what deepEqual's diff of two large trees hides). */
function treeDifferences(theirs: Record<string, unknown>, ours: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(theirs), ...Object.keys(ours)])) {
    const [a, b] = [JSON.stringify(theirs[k]), JSON.stringify(ours[k])];
    if (a !== b) out.push(`${k}: buildah ${a ?? 'missing'}, berth ${b ?? 'missing'}`);
  }
  return out.sort();
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
  /**
   * `known`: paths where buildah 1.28 and berth differ on purpose, with the reason; they are left
   * out of the comparison (the test asserts berth's side itself).
   */
  async function compare(name: string, theirsDir: string, oursDir: string, runStubs = false, known: Record<string, string> = {}) {
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
    const [theirsTree, oursTree] = [{ ...a }, { ...b }];
    for (const p of Object.keys(known)) {
      delete theirsTree[p];
      delete oursTree[p];
    }
    assert.deepEqual(treeDifferences(theirsTree, oursTree), []);
    assert.deepEqual(oursTree, theirsTree);
    const fields = ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'Labels', 'ExposedPorts', 'Volumes', 'StopSignal'] as const;
    const pick = (img: LoadedImage) => {
      const c = img.config.config ?? {};
      const labels = { ...(c.Labels ?? {}) };
      delete labels['io.buildah.version'];
      return Object.fromEntries(fields.filter((f) => known[`config.${f}`] === undefined).map((f) => [f, f === 'Labels' ? labels : c[f]]));
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

  /** The Docker-format config buildah keeps (OnBuild, Shell, Healthcheck: `buildah push` to oci: drops them). */
  function buildahDockerConfig(name: string): Record<string, unknown> {
    const inspect = spawnSync('buildah', ['inspect', '--type', 'image', name], { env, encoding: 'utf8' });
    assert.equal(inspect.status, 0, inspect.stderr);
    return (JSON.parse(inspect.stdout) as { Docker: { config: Record<string, unknown> } }).Docker.config;
  }

  /** berth's engine for RUN steps, with its store (where RUN --mount=type=cache keeps its directories). */
  function engineBuild(ctx: string, out: string, opts: Partial<Parameters<typeof build>[0]> = {}) {
    const engineRoot = join(work, 'engine-root');
    return build({ contextDir: ctx, output: { layout: join(work, out), tag: 't' }, runExecutor: new EngineRunExecutor({ root: engineRoot }), storeRoot: engineRoot, ...opts });
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
    await engineBuild(ctx, 'berth-out3', { buildArgs: { BASE } });
    const { tree } = await compare('berth-diff3', 'buildah-out3', 'berth-out3', true);
    assert.equal(tree['bin/ls'], undefined);
    assert.deepEqual([tree['tmp/mine/file']!.uid, tree['opt/a']!.uid, tree['opt/a']!.mode], [1234, 1234, 0o700]);
  });

  it('RUN --mount=type=cache|bind|tmpfs|secret, SHELL, ARG defaults and --build-arg, ARG before FROM redeclared', async () => {
    const BASE = `oci:${join(work, 'base-layout')}:bb`;
    const ctx = join(work, 'ctx4');
    await mkdir(join(ctx, 'sub'), { recursive: true });
    await writeFile(join(ctx, 'a.txt'), 'from the context\n');
    await writeFile(join(ctx, 'sub/b.txt'), 'bee\n');
    await writeFile(join(work, 'token'), 's3cr3t\n');
    await writeFile(join(ctx, 'Dockerfile'), [
      'ARG BASE',
      'ARG TOP=top-default',
      'FROM $BASE AS first',
      'RUN mkdir -p /d && echo from-first > /d/x',
      '',
      'FROM $BASE',
      'ARG TOP',
      'ARG V=v-default',
      'ARG W',
      'ARG UNSET',
      'RUN echo "TOP=$TOP V=$V W=$W UNSET=${UNSET:-none}" > /args',
      'RUN --mount=type=cache,target=/var/cache/c,id=berth-diff-c echo line >> /var/cache/c/log && cp /var/cache/c/log /from-cache',
      'RUN --mount=type=bind,target=/ctx cat /ctx/a.txt /ctx/sub/b.txt > /from-context',
      'RUN --mount=type=bind,from=first,source=/d,target=/mnt/first cp /mnt/first/x /from-stage',
      'RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && ls /scratch > /tmpfs-list && test ! -e /tmpfs-list-missing',
      'RUN --mount=type=secret,id=tok cat /run/secrets/tok > /secret-copied',
      'RUN --mount=type=secret,id=tok,target=/etc/tok,mode=0400 wc -c < /etc/tok > /secret-size',
      'SHELL ["/bin/sh", "-c", "echo \\"via-shell: $1\\" >> /shell-log; eval \\"$1\\"", "wrapper"]',
      'RUN echo shell-form > /shell-form',
      'RUN ["/bin/sh", "-c", "echo exec-form > /exec-form"]',
      'CMD echo cmd-under-shell',
      '',
    ].join('\n'));
    const args = { BASE, W: 'w-given' };
    bud(ctx, 'berth-diff4', ['--build-arg', `BASE=${BASE}`, '--build-arg', 'W=w-given', '--secret', `id=tok,src=${join(work, 'token')}`]);
    await engineBuild(ctx, 'berth-out4', { buildArgs: args, secrets: new Map([['tok', join(work, 'token')]]) });
    // BuildKit removes the directories it made for mount points, parents included (executor/stubs.go); buildah leaves the parents.
    const stub = 'an empty parent buildah made for a mount point';
    const { ours, tree } = await compare('berth-diff4', 'buildah-out4', 'berth-out4', true, {
      mnt: stub,
      'var/cache': stub,
      'config.Cmd': 'buildah 1.28 puts a shell-form CMD under /bin/sh -c, not under SHELL as the Dockerfile reference and docker 20.10 do (interop/build-run.test.ts)',
    });
    const read = (p: string) => execFileSync('cat', [join(work, 'rootfs-berth-out4', p)], { encoding: 'utf8' });
    // ARG TOP redeclared without a value takes the default given before FROM.
    assert.equal(read('args'), 'TOP=top-default V=v-default W=w-given UNSET=none\n');
    assert.equal(read('from-context'), 'from the context\nbee\n');
    assert.equal(read('from-stage'), 'from-first\n');
    assert.equal(read('tmpfs-list'), 't\n');
    assert.equal(read('secret-copied'), 's3cr3t\n');
    assert.equal(read('secret-size').trim(), '7');
    assert.equal(read('shell-log'), 'via-shell: echo shell-form > /shell-form\n');
    assert.equal(read('shell-form'), 'shell-form\n');
    assert.equal(read('exec-form'), 'exec-form\n');
    // What the mounts showed stays out of the layers (buildah leaves the empty mount points, as the stubs).
    for (const p of ['run/secrets/tok', 'etc/tok', 'scratch/t', 'ctx/a.txt', 'mnt/first/x', 'var/cache/c/log']) assert.equal(tree[p], undefined, p);
    const docker = buildahDockerConfig('berth-diff4');
    assert.deepEqual(ours.config.config?.Shell, docker.Shell);
    assert.deepEqual(ours.config.config?.Cmd, [...(docker.Shell as string[]), 'echo cmd-under-shell']);
  });

  it('ONBUILD: recorded in the config, triggered (RUN and COPY) in the image built FROM it, not passed on', async () => {
    const BASE = `oci:${join(work, 'base-layout')}:bb`;
    const ctx = join(work, 'ctx5');
    await mkdir(ctx);
    await writeFile(join(ctx, 'trig.txt'), 'copied by a trigger\n');
    await writeFile(join(ctx, 'Dockerfile'), ['ARG BASE', 'FROM $BASE', 'ONBUILD RUN echo triggered > /onbuild-ran', 'ONBUILD COPY trig.txt /trig.txt', 'LABEL stage=parent', ''].join('\n'));
    bud(ctx, 'berth-diff5', ['--build-arg', `BASE=${BASE}`]);
    await engineBuild(ctx, 'berth-out5', { buildArgs: { BASE } });
    const parent = await compare('berth-diff5', 'buildah-out5', 'berth-out5', true);
    assert.deepEqual(parent.ours.config.config?.OnBuild, buildahDockerConfig('berth-diff5').OnBuild);
    assert.deepEqual(parent.ours.config.config?.OnBuild, ['RUN echo triggered > /onbuild-ran', 'COPY trig.txt /trig.txt']);
    assert.equal(parent.tree['onbuild-ran'], undefined);

    // Each builder builds the child FROM its own parent (buildah's OCI push would drop OnBuild).
    await writeFile(join(ctx, 'Dockerfile.child'), ['ARG BASE', 'FROM $BASE', 'RUN cat /trig.txt > /seen', ''].join('\n'));
    bud(ctx, 'berth-diff5c', ['-f', join(ctx, 'Dockerfile.child'), '--build-arg', 'BASE=berth-diff5']);
    await engineBuild(ctx, 'berth-out5c', { dockerfile: join(ctx, 'Dockerfile.child'), buildArgs: { BASE: `oci:${join(work, 'berth-out5')}:t` } });
    const child = await compare('berth-diff5c', 'buildah-out5c', 'berth-out5c', true);
    assert.equal(child.tree['onbuild-ran']?.size, 'triggered\n'.length);
    assert.equal(child.tree['seen']?.size, 'copied by a trigger\n'.length);
    // Triggers fire once: none left in the child (buildah writes [], as docker; berth leaves the field out, as BuildKit).
    assert.deepEqual(child.ours.config.config?.OnBuild ?? [], []);
    assert.deepEqual(buildahDockerConfig('berth-diff5c').OnBuild ?? [], []);
  });

  it('--target, .dockerignore with ! exceptions, ADD of local tars (plain, gzip, xz, bzip2), COPY --chmod/--chown of directories', async () => {
    const ctx = join(work, 'ctx6');
    for (const d of ['src/deep/tmpdir', 'src/keep', 'logs']) await mkdir(join(ctx, d), { recursive: true });
    const files: Record<string, string> = {
      'src/main.c': 'int main;\n', 'src/debug.log': 'ignored\n', 'src/keep.log': 'kept by !\n', 'src/deep/tmpfile': 'ignored\n',
      'src/deep/tmpdir/x': 'ignored\n', 'src/deep/tmpkeep': 'kept by !\n', 'src/keep/a': 'a\n', 'logs/one.log': 'ignored\n', 'README.md': 'readme\n', 'NOTES.md': 'ignored\n',
    };
    for (const [f, data] of Object.entries(files)) await writeFile(join(ctx, f), data);
    await chmod(join(ctx, 'src/keep/a'), 0o600);
    await writeFile(join(ctx, '.dockerignore'), ['# a comment', '**/*.log', '!src/keep.log', 'src/deep/tmp*', '!src/deep/tmpkeep', '*.md', '!README.md', 'logs', ''].join('\n'));
    const arch = join(work, 'arch6');
    await mkdir(join(arch, 'pkg/bin'), { recursive: true });
    await writeFile(join(arch, 'pkg/bin/tool'), '#!/bin/sh\n');
    await chmod(join(arch, 'pkg/bin/tool'), 0o750);
    await symlink('bin/tool', join(arch, 'pkg/tool-link'));
    execFileSync('tar', ['-cf', join(ctx, 'plain.tar'), '--owner=7', '--group=8', '--numeric-owner', '-C', arch, 'pkg']);
    execFileSync('tar', ['-cJf', join(ctx, 'packed.tar.xz'), '--owner=0', '--group=0', '-C', arch, 'pkg']);
    execFileSync('tar', ['-cjf', join(ctx, 'packed.tar.bz2'), '--owner=0', '--group=0', '-C', arch, 'pkg']);
    execFileSync('tar', ['-czf', join(ctx, 'renamed.bin'), '--owner=0', '--group=0', '-C', arch, 'pkg']);
    await writeFile(join(ctx, 'Dockerfile'), [
      'FROM scratch AS base',
      'COPY . /ctx/',
      'ADD plain.tar /plain/',
      'ADD packed.tar.xz /xz',
      'ADD packed.tar.bz2 /bz/',
      'ADD renamed.bin /sniffed/',
      'COPY plain.tar /not-extracted/',
      'COPY --chmod=751 src /chmodded',
      'COPY --chown=1:2 src/keep /chowned/',
      'COPY --chown=3 --chmod=604 src/keep/a /both',
      '',
      'FROM base AS wanted',
      'LABEL stage=wanted',
      'ENV IN=wanted',
      '',
      'FROM wanted AS after',
      'COPY does-not-exist /',
      'LABEL stage=after',
      '',
    ].join('\n'));
    bud(ctx, 'berth-diff6', ['--target', 'wanted']);
    const r = await build({ contextDir: ctx, targetStage: 'wanted', output: { layout: join(work, 'berth-out6'), tag: 't' } });
    assert.deepEqual(r.built, [0, 1]);
    // The directory COPY --chmod creates for a directory source takes the mode, as BuildKit since
    // fsutil#228 (moby/buildkit#4945); buildah 1.28 leaves it 0755 (both chmod what is inside).
    const { ours, tree } = await compare('berth-diff6', 'buildah-out6', 'berth-out6', false, { chmodded: 'the mode of the directory COPY --chmod makes' });
    assert.equal(tree['chmodded']!.mode, 0o751);
    assert.equal(ours.config.config?.Labels?.stage, 'wanted');
    const kept = Object.keys(tree).filter((k) => k.startsWith('ctx/')).sort();
    assert.deepEqual(kept, ['ctx/.dockerignore', 'ctx/Dockerfile', 'ctx/README.md', 'ctx/packed.tar.bz2', 'ctx/packed.tar.xz', 'ctx/plain.tar', 'ctx/renamed.bin', 'ctx/src', 'ctx/src/deep', 'ctx/src/deep/tmpkeep', 'ctx/src/keep', 'ctx/src/keep.log', 'ctx/src/keep/a', 'ctx/src/main.c']);
    assert.deepEqual([tree['plain/pkg/bin/tool']!.mode, tree['plain/pkg/bin/tool']!.uid, tree['plain/pkg/bin/tool']!.gid], [0o750, 7, 8]);
    assert.equal(tree['xz/pkg/tool-link']!.link, 'bin/tool');
    assert.equal(tree['sniffed/pkg/bin/tool']!.kind, 'file');
    assert.equal(tree['bz/pkg/bin/tool']!.mode, 0o750);
    assert.equal(tree['not-extracted/plain.tar']!.kind, 'file');
    assert.deepEqual([tree['chmodded/keep']!.mode, tree['chmodded/keep/a']!.mode], [0o751, 0o751]);
    assert.deepEqual([tree['chowned/a']!.uid, tree['chowned/a']!.gid, tree['chowned/a']!.mode], [1, 2, 0o600]);
    assert.deepEqual([tree['both']!.uid, tree['both']!.gid, tree['both']!.mode], [3, 3, 0o604]);
  });
  it('what buildah 1.28 lacks (heredocs, COPY --link, ADD --checksum): it refuses them; berth matches the same steps written without them', async () => {
    const ctx = join(work, 'ctx7');
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, 'a'), 'a\n');
    await writeFile(join(ctx, 'hello'), 'hi\nthere\n');
    // buildah 1.28.2 (Debian 12) has none of these: each build fails, naming the step. Docker
    // 20.10's classic builder has none either (they are BuildKit's); berth's own tests cover
    // them (builder.test.ts: --checksum against an http server, --link, heredocs).
    const refused: Record<string, RegExp> = {
      'COPY <<EOF /hello\nhi\nEOF': /COPY <<EOF \/hello/,
      'COPY --link a /a': /COPY only supports the --chmod=<permissions> --chown=<uid:gid> and the --from=<image\|stage> flags/,
      [`ADD --checksum=sha256:${'0'.repeat(64)} a /a`]: /ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flag/,
    };
    for (const [step, why] of Object.entries(refused)) {
      await writeFile(join(ctx, 'Dockerfile.lacks'), `FROM scratch\n${step}\n`);
      const r = spawnSync('buildah', ['bud', '-f', join(ctx, 'Dockerfile.lacks'), ctx], { env, encoding: 'utf8', timeout: 120_000 });
      assert.notEqual(r.status, 0, `buildah 1.28 built ${JSON.stringify(step)}: compare it here instead`);
      assert.match(r.stderr, why);
    }
    // The same image both ways: berth with a heredoc and --link, buildah from files of the context.
    await writeFile(join(ctx, 'Dockerfile.plain'), 'FROM scratch\nCOPY hello /hello\nCOPY a /a\nCOPY a /dir/a\n');
    await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY <<EOF /hello\nhi\nthere\nEOF\nCOPY --link a /a\nCOPY --link a /dir/a\n');
    bud(ctx, 'berth-diff7', ['-f', join(ctx, 'Dockerfile.plain')]);
    await build({ contextDir: ctx, output: { layout: join(work, 'berth-out7'), tag: 't' } });
    const { tree } = await compare('berth-diff7', 'buildah-out7', 'berth-out7');
    assert.equal(tree['hello']!.mode, 0o644);
  });
});
