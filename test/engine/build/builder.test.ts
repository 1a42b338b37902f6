/** `berth build` of Dockerfiles without RUN, end to end into an OCI layout, and the RUN seam. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { build, buildPlatforms, type BuildOptions } from '../../../src/engine/build/builder.js';
import { runSupport } from '../../../src/engine/build/emulation.js';
import { hostPlatform } from '../../../src/image/platform.js';
import type { RunStep, RunStepExecutor } from '../../../src/engine/build/run-step.js';
import type { CachedStep } from '../../../src/engine/build/cache.js';
import { OciLayout } from '../../../src/image/layout.js';
import { loadImage } from '../../../src/image/load-image.js';
import { unpackLayers } from '../../../src/layer/unpack-layers.js';
import { isBerthError } from '../../../src/base/errors.js';
import { buildBusyboxRootfs, BUSYBOX } from '../../helpers/busybox.js';
import { peer, root, skipUnless } from '../../helpers/requirements.js';

/** A RUN executor that only counts its runs, each leaving a file ranN in a fresh upper dir. */
function countingExecutor(dir: string): { executor: RunStepExecutor; runs(): number } {
  let runs = 0;
  return {
    executor: {
      async run() {
        runs++;
        const upper = await mkdtemp(join(dir, 'upper-'));
        await writeFile(join(upper, `ran${runs}`), 'x');
        return { upperDir: upper };
      },
    },
    runs: () => runs,
  };
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }, prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** Unpacks the tagged image of a layout; returns its rootfs and config. */
async function unpackTag(layoutDir: string, tag: string, into: string) {
  const layout = await OciLayout.open(layoutDir);
  const img = await loadImage(layout, tag);
  await mkdir(into, { recursive: true });
  await unpackLayers(into, img.manifest.layers.map((l, i) => ({ ...l, diffId: img.config.rootfs.diff_ids[i], open: () => layout.fetch(l) })));
  return img;
}

async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
}

describe('berth build without RUN', { skip: skipUnless(root('COPY sets owners with chown')) }, () => {
  it('builds FROM scratch with COPY, ADD and every config instruction', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { 'a.txt': 'hello\n', 'dir/x': 'x\n', 'dir/sub/y': 'y\n', 'notes.md': 'ignored\n', 'keep.md': 'kept\n' });
    await chmod(join(ctx, 'dir/x'), 0o755);
    await symlink('a.txt', join(ctx, 'link'));
    await writeFile(join(ctx, '.dockerignore'), '*.md\n!keep.md\n');
    // An archive for ADD to extract.
    await writeTree(join(dir, 'arch'), { 'inside/file': 'from the archive\n' });
    execFileSync('tar', ['-czf', join(ctx, 'bundle.tar.gz'), '-C', join(dir, 'arch'), 'inside']);
    await writeFile(join(ctx, 'Dockerfile'), [
      '# syntax=docker/dockerfile:1',
      'FROM scratch',
      'ARG V=3',
      'ENV A=1 B="two words"',
      'LABEL version=$V "x y"=z',
      'WORKDIR /app',
      'COPY a.txt link ./',
      'COPY dir /opt/d',
      'COPY --chown=10:20 --chmod=640 a.txt /etc/conf',
      'COPY *.md /docs/',
      'ADD bundle.tar.gz /unpacked/',
      'COPY <<EOF /etc/motd',
      'version $V',
      'EOF',
      'USER 10:20',
      'EXPOSE 80 53/udp 8000-8001',
      'VOLUME /data',
      'STOPSIGNAL SIGINT',
      'HEALTHCHECK --interval=5s --retries=2 CMD ["/bin/true"]',
      'SHELL ["/bin/ash", "-c"]',
      'CMD echo hi',
      'ENTRYPOINT ["/bin/sh", "-c"]',
      'ONBUILD COPY . /src',
      'MAINTAINER someone',
      '',
    ].join('\n'));
    const out = join(dir, 'out');
    const result = await build({ contextDir: ctx, output: { layout: out, tag: 't1' }, buildArgs: { UNUSED: 'x' } });
    assert.match(result.warnings.join('\n'), /syntax directive/);
    assert.match(result.warnings.join('\n'), /build args that no ARG uses: UNUSED/);
    const rootfs = join(dir, 'rootfs');
    const img = await unpackTag(out, 't1', rootfs);
    const c = img.config.config!;
    assert.deepEqual(c.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=1', 'B=two words']);
    assert.deepEqual(c.Labels, { version: '3', 'x y': 'z' });
    assert.equal(c.WorkingDir, '/app');
    assert.equal(c.User, '10:20');
    assert.deepEqual(Object.keys(c.ExposedPorts!).sort(), ['53/udp', '80/tcp', '8000/tcp', '8001/tcp']);
    assert.deepEqual(c.Volumes, { '/data': {} });
    assert.equal(c.StopSignal, 'SIGINT');
    assert.deepEqual(c.Healthcheck, { Test: ['CMD', '/bin/true'], Interval: 5e9, Retries: 2 });
    assert.deepEqual(c.Shell, ['/bin/ash', '-c']);
    assert.deepEqual(c.Cmd, ['/bin/ash', '-c', 'echo hi']);
    assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
    assert.deepEqual(c.OnBuild, ['COPY . /src']);
    assert.equal(img.config.author, 'someone');
    // Files, modes, owners.
    assert.equal(await readFile(join(rootfs, 'app/a.txt'), 'utf8'), 'hello\n');
    assert.ok((await lstat(join(rootfs, 'app/link'))).isFile(), 'a top-level symlink source is followed');
    assert.equal((await lstat(join(rootfs, 'opt/d/x'))).mode & 0o777, 0o755);
    assert.equal(await readFile(join(rootfs, 'opt/d/sub/y'), 'utf8'), 'y\n');
    const conf = await lstat(join(rootfs, 'etc/conf'));
    assert.deepEqual([conf.uid, conf.gid, conf.mode & 0o777], [10, 20, 0o640]);
    const etc = await lstat(join(rootfs, 'etc'));
    assert.deepEqual([etc.uid, etc.gid], [10, 20], 'parents COPY --chown creates are owned as it says');
    assert.deepEqual((await import('node:fs')).readdirSync(join(rootfs, 'docs')), ['keep.md']);
    assert.equal(await readFile(join(rootfs, 'unpacked/inside/file'), 'utf8'), 'from the archive\n');
    assert.equal(await readFile(join(rootfs, 'etc/motd'), 'utf8'), 'version 3\n');
    // History as BuildKit writes it.
    const h = img.config.history!;
    assert.deepEqual(h.map((e) => e.created_by), [
      'ENV A=1 B=two words',
      'LABEL version=3 x y=z',
      'WORKDIR /app',
      'COPY a.txt link ./ # buildkit',
      'COPY dir /opt/d # buildkit',
      'COPY a.txt /etc/conf # buildkit',
      'COPY *.md /docs/ # buildkit',
      'ADD bundle.tar.gz /unpacked/ # buildkit',
      'COPY <<EOF /etc/motd # buildkit',
      'USER 10:20',
      'EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{}]',
      'VOLUME [/data]',
      'STOPSIGNAL SIGINT',
      `HEALTHCHECK &{["CMD" "/bin/true"] "5s" "0s" "0s" "0s" '\\x02'}`,
      'SHELL [/bin/ash -c]',
      'CMD ["/bin/ash" "-c" "echo hi"]',
      'ENTRYPOINT ["/bin/sh" "-c"]',
      'ONBUILD COPY . /src',
      'MAINTAINER someone',
    ]);
    assert.equal(h.filter((e) => !e.empty_layer).length, img.manifest.layers.length);
    assert.equal(img.config.rootfs.diff_ids.length, 7, 'WORKDIR /app + 6 COPY/ADD layers');
    assert.equal(result.steps.length, 19);
  });

  it('is reproducible with SOURCE_DATE_EPOCH, and a change to one file changes the keys from its COPY on', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { 'one': '1\n', 'two': '2\n', Dockerfile: 'FROM scratch\nCOPY one /one\nENV X=1\nCOPY two /two\nWORKDIR /w\n' });
    const opts = (n: string): BuildOptions => ({ contextDir: ctx, output: { layout: join(dir, n), tag: 'r' }, sourceDateEpoch: 1700000000 });
    const a = await build(opts('a'));
    const b = await build(opts('b'));
    assert.equal(a.manifest.digest, b.manifest.digest);
    assert.equal(a.config.created, '2023-11-14T22:13:20Z');
    assert.deepEqual(a.steps.map((s) => s.key), b.steps.map((s) => s.key));
    await writeFile(join(ctx, 'two'), '2 changed\n');
    const c = await build(opts('c'));
    assert.deepEqual(c.steps.slice(0, 2).map((s) => s.key), a.steps.slice(0, 2).map((s) => s.key), 'steps before the changed COPY keep their keys');
    for (let i = 2; i < a.steps.length; i++) assert.notEqual(c.steps[i]!.key, a.steps[i]!.key);
    assert.notEqual(c.manifest.digest, a.manifest.digest);
  });

  it('builds only the stages --target needs, COPY --from a stage, FROM an oci: layout with ONBUILD triggers', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const baseCtx = join(dir, 'base');
    await buildBusyboxRootfs(join(baseCtx, 'rootfs'), { users: [{ name: 'app', uid: 1000, gid: 1000 }] });
    await writeFile(join(baseCtx, 'Dockerfile'), 'FROM scratch\nCOPY rootfs/ /\nONBUILD COPY trigger.txt /trigger.txt\nCMD ["sh"]\n');
    await build({ contextDir: baseCtx, output: { layout: join(dir, 'baselayout'), tag: 'bb' } });

    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { 'trigger.txt': 'triggered\n', 'app.txt': 'app\n' });
    await writeFile(join(ctx, 'Containerfile'), [
      `FROM oci:${join(dir, 'baselayout')}:bb AS base`,
      'COPY --chown=app app.txt /home/app/app.txt',
      'USER app',
      'WORKDIR /appwork/sub',
      'USER root',
      'ENTRYPOINT ["/bin/sh"]',
      'FROM scratch AS unused',
      'COPY missing /nowhere',
      'FROM base AS final',
      'COPY --from=base /bin/busybox /copied/busybox',
      'COPY --from=0 /trigger.txt /again.txt',
      '',
    ].join('\n'));
    const result = await build({ contextDir: ctx, output: { layout: join(dir, 'out'), tag: 'f' }, targetStage: 'final' });
    assert.deepEqual(result.built, [0, 2]);
    const rootfs = join(dir, 'rootfs');
    const img = await unpackTag(join(dir, 'out'), 'f', rootfs);
    assert.equal(await readFile(join(rootfs, 'trigger.txt'), 'utf8'), 'triggered\n');
    assert.equal(await readFile(join(rootfs, 'again.txt'), 'utf8'), 'triggered\n');
    assert.equal((await lstat(join(rootfs, 'home/app/app.txt'))).uid, 1000);
    assert.equal((await lstat(join(rootfs, 'home/app/app.txt'))).gid, 1000);
    assert.deepEqual([(await lstat(join(rootfs, 'appwork'))).uid, (await lstat(join(rootfs, 'appwork/sub'))).gid], [1000, 1000], 'WORKDIR makes its directories as USER (BuildKit)');
    assert.equal((await lstat(join(rootfs, 'copied/busybox'))).size, (await lstat(BUSYBOX)).size);
    assert.equal(await readlink(join(rootfs, 'bin/ls')), 'busybox');
    assert.equal(img.config.config!.OnBuild, undefined, 'triggers fire once');
    assert.equal(img.config.config!.Cmd, undefined, 'ENTRYPOINT resets the inherited CMD');
    assert.deepEqual(img.config.config!.Entrypoint, ['/bin/sh']);
    assert.match(img.manifest.annotations!['org.opencontainers.image.base.digest']!, /^sha256:/);
  });

  it('ADD https with --checksum from a server on 127.0.0.1 (http here), and the mismatch', async (t) => {
    const body = Buffer.from('downloaded\n');
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'last-modified': 'Tue, 14 Nov 2023 22:13:20 GMT', 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/files/tool.bin`;
    const sum = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    const dir = await tempDir(t, 'berth-bld-');
    const ctx = join(dir, 'ctx');
    await mkdir(ctx);
    const out = join(dir, 'out');
    await build({ contextDir: ctx, dockerfileText: `FROM scratch\nADD --checksum=${sum} ${url} /opt/\n`, output: { layout: out, tag: 'a' } });
    const rootfs = join(dir, 'rootfs');
    await unpackTag(out, 'a', rootfs);
    const st = await lstat(join(rootfs, 'opt/tool.bin'));
    assert.deepEqual([st.mode & 0o777, Math.floor(st.mtimeMs / 1000)], [0o600, 1700000000]);
    const bad = `sha256:${'0'.repeat(64)}`;
    await assert.rejects(build({ contextDir: ctx, dockerfileText: `FROM scratch\nADD --checksum=${bad} ${url} /opt/\n`, output: { layout: out } }), (err: unknown) => {
      assert.ok(isBerthError(err, 'DIGEST_MISMATCH'));
      assert.match((err as Error).message, /^Dockerfile:2:1: ADD http.*: the download has sha256:[0-9a-f]{64}, not sha256:0+ as --checksum says/);
      return true;
    });
  });

  it('fails before building when a RUN has no executor, naming the RUN', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    await assert.rejects(build({ contextDir: dir, dockerfileText: 'FROM scratch\nCOPY . /\n\n  RUN echo hi\n', output: { layout: join(dir, 'out') } }), (err: unknown) => {
      assert.ok(isBerthError(err, 'UNSUPPORTED'));
      assert.match((err as Error).message, /^Dockerfile:4:3: RUN needs the engine to run a container/);
      return true;
    });
    await assert.rejects(build({ contextDir: dir, dockerfileText: 'FROM scratch\nCOPY nothing /\n', output: { layout: join(dir, 'out') } }), /COPY nothing: not found in the build context/);
  });

  it('hands RUN to the executor and makes its upper directory a layer with whiteouts', { skip: skipUnless(peer('setfattr', 'attr')) }, async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { 'gone': 'x\n', 'keep': 'k\n', 'd/old': 'o\n' });
    const seen: RunStep[] = [];
    const executor: RunStepExecutor = {
      async run(step, rootfs) {
        seen.push(step);
        assert.equal(await readFile(join(await rootfs(), 'keep'), 'utf8'), 'k\n', 'the executor sees the stage so far');
        const upper = join(dir, `upper${seen.length}`);
        await mkdir(join(upper, 'd'), { recursive: true });
        await writeFile(join(upper, 'made-by-run'), 'ran\n');
        execFileSync('mknod', [join(upper, 'gone'), 'c', '0', '0']);
        execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(upper, 'd')]);
        await writeFile(join(upper, 'd/new'), 'n\n');
        return { upperDir: upper };
      },
    };
    const out = join(dir, 'out');
    await build({
      contextDir: ctx,
      dockerfileText: 'FROM scratch\nCOPY . /\nARG V=1\nENV E=2\nWORKDIR /w\nRUN --mount=type=cache,target=/c --network=none echo $V <<EOF\nbody\nEOF\n',
      output: { layout: out, tag: 'r' },
      runExecutor: executor,
    });
    assert.equal(seen.length, 1);
    const s = seen[0]!;
    assert.deepEqual(s.argv, ['/bin/sh', '-c', 'echo $V <<EOF\nbody\nEOF']);
    assert.deepEqual(s.env.slice(-2), ['E=2', 'V=1']);
    assert.deepEqual([s.workdir, s.network, s.mounts[0]!.type, s.mounts[0]!.target], ['/w', 'none', 'cache', '/c']);
    assert.equal(s.image.layers.length, 2, 'COPY . / and WORKDIR /w');
    assert.deepEqual(s.image.diffIds, s.image.config.rootfs.diff_ids);
    assert.ok(await s.image.layout.exists(s.image.layers[0]!));
    const rootfs = join(dir, 'rootfs');
    const img = await unpackTag(out, 'r', rootfs);
    assert.equal(await readFile(join(rootfs, 'made-by-run'), 'utf8'), 'ran\n');
    await assert.rejects(lstat(join(rootfs, 'gone')), /ENOENT/);
    await assert.rejects(lstat(join(rootfs, 'd/old')), /ENOENT/, 'the opaque directory hides what was below');
    assert.equal(await readFile(join(rootfs, 'd/new'), 'utf8'), 'n\n');
    assert.equal(img.config.history!.at(-1)!.created_by, 'RUN |1 V=1 /bin/sh -c echo $V <<EOF\nbody\nEOF # buildkit');
  });

  it('reuses cached steps: nothing changed → every layer step cached; one file changed → only the steps after its COPY run', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { 'one': '1\n', 'two': '2\n' });
    const counted = countingExecutor(dir);
    const executor = counted.executor;
    const dockerfileText = 'FROM scratch\nCOPY one /one\nRUN make one\nWORKDIR /w\nCOPY two /two\nRUN make two\n';
    const cache = join(dir, 'cache');
    const opts = (tag: string): BuildOptions => ({ contextDir: ctx, dockerfileText, output: { layout: join(dir, 'out'), tag }, runExecutor: executor, cache, sourceDateEpoch: 1 });
    const cold = await build(opts('a'));
    assert.deepEqual(cold.steps.map((s) => s.cached), [false, false, false, false, false]);
    assert.equal(counted.runs(), 2);
    const lines: string[] = [];
    const warm = await build({ ...opts('b'), log: (l) => lines.push(l) });
    assert.deepEqual(lines.slice(0, 6), ['#1 [stage-0 1/6] FROM scratch', lines[1], '#2 [stage-0 2/6] COPY one /one', '#2 CACHED', '#3 [stage-0 3/6] RUN /bin/sh -c make one', '#3 CACHED']);
    assert.match(lines[1]!, /^#1 DONE \d+\.\ds$/);
    assert.deepEqual(warm.steps.map((s) => s.cached), [true, true, true, true, true]);
    assert.equal(counted.runs(), 2, 'a cached RUN does not run');
    assert.equal(warm.manifest.digest, cold.manifest.digest);
    await writeFile(join(ctx, 'two'), 'changed\n');
    const changed = await build(opts('c'));
    assert.deepEqual(changed.steps.map((s) => s.cached), [true, true, true, false, false]);
    assert.equal(counted.runs(), 3);
    const rootfs = join(dir, 'rootfs');
    await unpackTag(join(dir, 'out'), 'c', rootfs);
    assert.equal(await readFile(join(rootfs, 'two'), 'utf8'), 'changed\n');
    assert.equal(await readFile(join(rootfs, 'ran1'), 'utf8'), 'x', 'the cached RUN layer is in the image');
    const noCache = await build({ ...opts('d'), noCache: true });
    assert.deepEqual(noCache.steps.map((s) => s.cached), [false, false, false, false, false]);
    assert.equal(counted.runs(), 5);
    const { BuildCache } = await import('../../../src/engine/build/cache.js');
    const pruned = await (await BuildCache.open(cache)).prune();
    assert.ok(pruned.records >= 7 && pruned.blobs >= 5, JSON.stringify(pruned));
    const after = await build(opts('e'));
    assert.deepEqual(after.steps.map((s) => s.cached), [false, false, false, false, false], 'nothing left after prune');
  });

  it('COPY --link makes a layer independent of the stage below: a changed base keeps it cached, with the same layer', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { base: 'base 1\n', 'app/bin': 'app\n' });
    const dockerfileText = 'FROM scratch\nCOPY base /base\nWORKDIR /srv\nCOPY --link app/ /srv/app/\nCOPY base /after\n';
    const cache = join(dir, 'cache');
    const opts = (tag: string): BuildOptions => ({ contextDir: ctx, dockerfileText, output: { layout: join(dir, 'out'), tag }, cache, sourceDateEpoch: 1 });
    const first = await build(opts('a'));
    assert.deepEqual(first.steps.map((s) => s.cached), [false, false, false, false]);
    await writeFile(join(ctx, 'base'), 'base 2\n');
    const second = await build(opts('b'));
    assert.deepEqual(second.steps.map((s) => s.cached), [false, false, true, false], 'only the --link step stays cached');
    const layout = await OciLayout.open(join(dir, 'out'));
    const a = await loadImage(layout, 'a');
    const b = await loadImage(layout, 'b');
    assert.equal(a.manifest.layers.length, 4);
    assert.equal(b.manifest.layers[2]!.digest, a.manifest.layers[2]!.digest, 'the same --link layer on the new base');
    assert.notEqual(b.manifest.layers[0]!.digest, a.manifest.layers[0]!.digest);
    // The --link layer holds only what it copies (its parents made afresh), not the stage's files.
    const alone = join(dir, 'alone');
    await mkdir(alone);
    await unpackLayers(alone, [{ ...b.manifest.layers[2]!, diffId: b.config.rootfs.diff_ids[2], open: () => layout.fetch(b.manifest.layers[2]!) }]);
    assert.equal(await readFile(join(alone, 'srv/app/bin'), 'utf8'), 'app\n');
    await assert.rejects(lstat(join(alone, 'base')));
    const rootfs = join(dir, 'rootfs');
    await unpackTag(join(dir, 'out'), 'b', rootfs);
    assert.equal(await readFile(join(rootfs, 'base'), 'utf8'), 'base 2\n');
    assert.equal(await readFile(join(rootfs, 'srv/app/bin'), 'utf8'), 'app\n');
    assert.equal(await readFile(join(rootfs, 'after'), 'utf8'), 'base 2\n');
  });

  it('--cache-to / --cache-from: a cache exported by one build makes a build with an empty cache reuse its steps (not run again)', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { one: '1\n', two: '2\n' });
    const counted = countingExecutor(dir);
    const executor = counted.executor;
    const dockerfileText = 'FROM scratch\nCOPY one /one\nRUN make one\nWORKDIR /w\nCOPY two /two\nRUN make two\n';
    const opts = (n: number): BuildOptions => ({ contextDir: ctx, dockerfileText, output: { layout: join(dir, `out${n}`), tag: 't' }, runExecutor: executor, cache: join(dir, `cache${n}`), sourceDateEpoch: 1 });
    const first = await build(opts(1));
    assert.equal(counted.runs(), 2);
    const { writeCacheLayout, importCache } = await import('../../../src/engine/build/cache-transfer.js');
    const exported = await OciLayout.open(join(dir, 'exported'), { create: true });
    await writeCacheLayout(await OciLayout.open(join(dir, 'out1')), first.cacheSteps, exported, 'latest');
    const imported = await importCache(exported, 'latest', 'the exported cache');
    assert.equal(imported.steps.size, 5);
    const second = await build({ ...opts(2), cacheFrom: [imported] });
    assert.deepEqual(second.steps.map((s) => s.cached), [true, true, true, true, true]);
    assert.equal(counted.runs(), 2, 'the imported RUN steps are not executed');
    assert.equal(second.manifest.digest, first.manifest.digest);
    // An absent cache is an empty one; a changed file reruns from its COPY on.
    assert.equal((await importCache(exported, 'nothing-here', 'x')).steps.size, 0);
    await writeFile(join(ctx, 'two'), 'changed\n');
    const third = await build({ ...opts(3), cacheFrom: [imported] });
    assert.deepEqual(third.steps.map((s) => s.cached), [true, true, true, false, false]);
    assert.equal(counted.runs(), 3);
  });

  it('--cache-from: a layer whose content does not match the diffID the cache lists is not used (a miss, with a warning); the image is right', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { one: '1\n', two: '2\n' });
    const dockerfileText = 'FROM scratch\nCOPY one /one\nCOPY two /two\n';
    const opts = (n: number): BuildOptions => ({ contextDir: ctx, dockerfileText, output: { layout: join(dir, `out${n}`), tag: 't' }, cache: join(dir, `cache${n}`), sourceDateEpoch: 1 });
    const first = await build(opts(1));
    const { writeCacheLayout, importCache } = await import('../../../src/engine/build/cache-transfer.js');
    const out1 = await OciLayout.open(join(dir, 'out1'));
    // A cache whose first COPY lists the second COPY's layer blob (a valid blob, under the first one's diffID).
    const [a, b] = first.cacheSteps as [CachedStep, CachedStep];
    const swapped: CachedStep[] = [{ ...a, layer: { desc: b.layer!.desc, diffId: a.layer!.diffId } }, b];
    const bad = await OciLayout.open(join(dir, 'bad-cache'), { create: true });
    await writeCacheLayout(out1, swapped, bad, 'latest');
    const second = await build({ ...opts(2), cacheFrom: [await importCache(bad, 'latest', 'the bad cache')] });
    assert.deepEqual(second.steps.map((s) => s.cached), [false, true], 'the swapped layer is a miss; the honest step is a hit');
    assert.equal(second.warnings.length, 1, second.warnings.join('\n'));
    assert.match(second.warnings[0]!, new RegExp(`^--cache-from: the layer ${b.layer!.desc.digest} of step "COPY one /one" decompresses to ${b.layer!.diffId}, not to the diffID ${a.layer!.diffId} the cache lists: not used, the step is built instead`));
    assert.equal(second.manifest.digest, first.manifest.digest, 'the same image as a build without the cache');
    // The bad entry is not copied into the local cache: a build from it alone builds the step again.
    const third = await build({ ...opts(2), output: { layout: join(dir, 'out3'), tag: 't' } });
    assert.deepEqual(third.steps.map((s) => s.cached), [true, true], 'the step built in the second build is cached, from its own layer');
    // A listed layer that is no gzip at all (the image's config blob): a miss too, saying why.
    const config = (await loadImage(out1, 't')).manifest.config;
    const notGzip: CachedStep[] = [{ ...a, layer: { desc: { ...a.layer!.desc, digest: config.digest, size: config.size }, diffId: a.layer!.diffId } }];
    const junk = await OciLayout.open(join(dir, 'junk-cache'), { create: true });
    await writeCacheLayout(out1, notGzip, junk, 'latest');
    const fourth = await build({ ...opts(4), cacheFrom: [await importCache(junk, 'latest', 'the junk cache')] });
    assert.deepEqual(fourth.steps.map((s) => s.cached), [false, false]);
    assert.match(fourth.warnings.join('\n'), /decompresses to nothing \(.+\), not to the diffID/);
    const img = await loadImage(await OciLayout.open(join(dir, 'out3')), 't');
    const rootfs = join(dir, 'rootfs');
    await mkdir(rootfs);
    await unpackLayers(rootfs, img.manifest.layers.map((l, i) => ({ ...l, diffId: img.config.rootfs.diff_ids[i]!, open: async () => (await OciLayout.open(join(dir, 'out3'))).fetch(l) })));
    assert.equal(await readFile(join(rootfs, 'one'), 'utf8'), '1\n');
  });

  it('--platform A,B: an image index of both; FROM of an index picks each platform\'s manifest; FROM --platform=$BUILDPLATFORM runs on the host; RUN for a platform the host cannot run fails naming the emulator', async (t) => {
    const dir = await tempDir(t, 'berth-bld-');
    const base = join(dir, 'base');
    await writeTree(base, { 'amd64.txt': 'amd64\n', 'arm64.txt': 'arm64\n' });
    const AMD64 = { os: 'linux', architecture: 'amd64' };
    const ARM64 = { os: 'linux', architecture: 'arm64' };
    // A local index of two platforms, each with its own file (steps without RUN build for any platform).
    const baseResult = await buildPlatforms({ contextDir: base, dockerfileText: 'FROM scratch\nARG TARGETARCH\nCOPY $TARGETARCH.txt /arch.txt\n', output: { layout: join(dir, 'base-layout'), tag: 'multi' } }, [AMD64, ARM64]);
    const baseLayout = await OciLayout.open(join(dir, 'base-layout'));
    const baseIndex = JSON.parse((await readFile(baseLayout.blobPath((await baseLayout.resolve('multi')).digest))).toString()) as { mediaType: string; manifests: { digest: string; platform: { architecture: string } }[] };
    assert.equal(baseIndex.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(baseIndex.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
    assert.equal(baseResult.id, (await baseLayout.resolve('multi')).digest);
    assert.deepEqual(await baseLayout.tags(), ['multi'], 'the platforms\' manifests are held by the index only');

    const ctx = join(dir, 'ctx');
    await writeTree(ctx, { f: 'f\n' });
    const from = `FROM oci:${join(dir, 'base-layout')}:multi\nARG TARGETPLATFORM\nLABEL built.for=$TARGETPLATFORM\nCOPY f /f\n`;
    await buildPlatforms({ contextDir: ctx, dockerfileText: from, output: { layout: join(dir, 'out'), tag: 'app' } }, [AMD64, ARM64]);
    const out = await OciLayout.open(join(dir, 'out'));
    for (const [p, arch] of [[AMD64, 'amd64'], [ARM64, 'arm64']] as const) {
      const img = await loadImage(out, 'app', p);
      const baseImg = await loadImage(baseLayout, 'multi', p);
      assert.equal(img.config.architecture, arch);
      assert.equal(img.config.config?.Labels?.['built.for'], `linux/${arch}`);
      assert.deepEqual(img.manifest.layers.slice(0, 1).map((l) => l.digest), baseImg.manifest.layers.map((l) => l.digest), `${arch}: FROM took the ${arch} manifest of the index`);
      const rootfs = join(dir, `rootfs-${arch}`);
      await mkdir(rootfs);
      await unpackLayers(rootfs, img.manifest.layers.map((l, i) => ({ ...l, diffId: img.config.rootfs.diff_ids[i]!, open: () => out.fetch(l) })));
      assert.equal(await readFile(join(rootfs, 'arch.txt'), 'utf8'), `${arch}\n`);
    }
    await assert.rejects(buildPlatforms({ contextDir: ctx, dockerfileText: from, output: { layout: join(dir, 'out') } }, [AMD64, { os: 'linux', architecture: 'amd64' }]), /lists linux\/amd64 twice/);

    // RUN: the host's own platform runs; another one needs a binfmt_misc handler the host has.
    const foreign = process.arch === 'arm64' ? AMD64 : ARM64;
    const counted = countingExecutor(dir);
    // FROM --platform=$BUILDPLATFORM: a stage that runs on the host for every target (cross-compiling, no emulator).
    const cross = [
      `FROM --platform=$BUILDPLATFORM oci:${join(dir, 'base-layout')}:multi AS build`,
      'ARG TARGETARCH',
      'RUN make',
      `FROM oci:${join(dir, 'base-layout')}:multi`,
      'COPY --from=build /arch.txt /build-arch.txt',
      'COPY --from=build /ran* /out/',
      '',
    ].join('\n');
    await buildPlatforms({ contextDir: ctx, dockerfileText: cross, runExecutor: counted.executor, output: { layout: join(dir, 'cross'), tag: 'app' } }, [hostPlatform(), foreign]);
    assert.equal(counted.runs(), 2, 'the build stage ran once per target (its TARGETARCH differs), on the host');
    const crossLayout = await OciLayout.open(join(dir, 'cross'));
    const hostArch = hostPlatform().architecture;
    for (const p of [hostPlatform(), foreign]) {
      const img = await loadImage(crossLayout, 'app', p);
      assert.equal(img.config.architecture, p.architecture);
      const rootfs = join(dir, `cross-${p.architecture}`);
      await mkdir(rootfs);
      await unpackLayers(rootfs, img.manifest.layers.map((l, i) => ({ ...l, diffId: img.config.rootfs.diff_ids[i]!, open: () => crossLayout.fetch(l) })));
      assert.equal(await readFile(join(rootfs, 'arch.txt'), 'utf8'), `${p.architecture}\n`);
      assert.equal(await readFile(join(rootfs, 'build-arch.txt'), 'utf8'), `${hostArch}\n`, 'the build stage is the build platform\'s');
    }
    const runFile = `FROM oci:${join(dir, 'base-layout')}:multi\nRUN make\n`;
    if (!('error' in runSupport(foreign))) return t.skip(`this host has a binfmt_misc handler for ${foreign.architecture}: the refusal is not checked here`);
    await assert.rejects(
      buildPlatforms({ contextDir: ctx, dockerfileText: runFile, runExecutor: counted.executor, output: { layout: join(dir, 'run-out'), tag: 'app' } }, [hostPlatform(), foreign]),
      (err: Error) => isBerthError(err) && new RegExp(`^Dockerfile:2:1: RUN for linux/${foreign.architecture}: .*qemu-user-static`).test(err.message),
    );
    assert.equal(counted.runs(), 3, 'the host platform\'s RUN ran, the foreign one did not');
    assert.deepEqual(await (await OciLayout.open(join(dir, 'run-out'))).tags(), [], 'nothing tagged, and no platform\'s temporary tag left');
  });
});
