/**
 * RUN through berth's engine: a Dockerfile FROM the store's busybox with RUN steps (shell and
 * exec form, heredoc, cache/bind/tmpfs/secret mounts, --network=none), the image run with
 * `berth run`, a cached rebuild, and a RUN that fails (its exit code, nothing tagged).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build, type BuildOptions } from '../../../src/engine/build/builder.js';
import { EngineRunExecutor, inOverlayLowers, pruneMountpoints } from '../../../src/engine/build/engine-run.js';
import { execFileSync } from 'node:child_process';
import { openImageStore } from '../../../src/engine/store.js';
import { isBerthError } from '../../../src/base/errors.js';
import { loadImage } from '../../../src/image/load-image.js';
import { BUSYBOX } from '../../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../../helpers/engine.js';
import { peer, root, skipUnless } from '../../helpers/requirements.js';

describe('berth build with RUN steps', { skip: skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static')) }, () => {
  let e: EngineRoot;
  let ctx = '';
  before(async () => {
    e = await engineRoot();
    ctx = join(e.root, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'input.txt'), 'from the context\n');
    await writeFile(join(e.root, 'secret'), 's3cret\n');
  });
  after(async () => {
    await e.close();
  });

  const opts = (dockerfileText: string, tag: string, extra: Partial<BuildOptions> = {}): BuildOptions => ({
    contextDir: ctx,
    dockerfileText,
    output: { layout: join(e.root, 'images'), tag: `docker.io/library/${tag}` },
    storeRoot: e.root,
    snapshotRoot: e.root,
    workDir: join(e.root, 'build-work'),
    cache: join(e.root, 'build-cache'),
    runExecutor: new EngineRunExecutor({ root: e.root }),
    secrets: new Map([['tok', join(e.root, 'secret')]]),
    ...extra,
  });

  const DOCKERFILE = [
    'FROM busybox',
    'ARG WHO=berth',
    'RUN echo "hello from $WHO" > /greeting && rm /bin/ls',
    'RUN ["/bin/sh", "-c", "mkdir -p /data && echo exec > /data/form"]',
    'RUN --mount=type=bind,target=/ctx --mount=type=secret,id=tok --mount=type=tmpfs,target=/scratch cp /ctx/input.txt /copied && wc -c < /run/secrets/tok > /secret-size && touch /scratch/gone',
    'RUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /cache-lines',
    'RUN --network=none <<EOF',
    'ip link | grep -c "^[0-9]" > /links',
    'EOF',
    'CMD ["cat", "/greeting", "/data/form", "/copied", "/secret-size", "/links"]',
    '',
  ].join('\n');

  it('runs each RUN in a container and makes its changes a layer; the image runs with berth run', async () => {
    const r = await build(opts(DOCKERFILE, 'app:1'));
    assert.deepEqual(r.steps.map((s) => s.cached), [false, false, false, false, false, false]);
    const run = await e.berth(['run', '--rm', 'app:1']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'hello from berth\nexec\nfrom the context\n7\n1\n');
    const ls = await e.berth(['run', '--rm', 'app:1', 'sh', '-c', 'test -e /bin/ls || echo removed; test -e /scratch/gone || echo tmpfs; test -e /run/secrets/tok || echo nosecret; cat /cache-lines']);
    assert.equal(ls.stdout, 'removed\ntmpfs\nnosecret\n1\n');
  });

  it('reuses cached RUN steps; the cache mount keeps its files between builds', async () => {
    const again = await build(opts(DOCKERFILE, 'app:2'));
    assert.deepEqual(again.steps.map((s) => s.cached), [true, true, true, true, true, false]);
    const fresh = await build(opts(DOCKERFILE, 'app:3', { noCache: true }));
    assert.ok(fresh.steps.every((s) => !s.cached));
    const lines = await e.berth(['run', '--rm', 'app:3', 'cat', '/cache-lines']);
    assert.equal(lines.stdout, '2\n', 'the second run of the step saw the first one\'s file');
  });

  it('berth build -t from the command line, then berth run', async () => {
    const dir = join(e.root, 'cli-ctx');
    await mkdir(dir);
    await writeFile(join(dir, 'Containerfile'), 'FROM busybox\nRUN echo built by the cli > /cli\nCMD ["cat", "/cli"]\n');
    const b = await e.berth(['build', '-t', 'cli:1', '-t', 'cli:2', dir]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /#2 \[stage-0 2\/3\] RUN \/bin\/sh -c echo built by the cli > \/cli\n#2 DONE/);
    assert.match(b.stdout, /^built sha256:[0-9a-f]{64} as docker.io\/library\/cli:1, docker.io\/library\/cli:2/);
    const r = await e.berth(['run', '--rm', 'cli:2']);
    assert.equal(r.stdout, 'built by the cli\n');
    await writeFile(join(dir, 'Containerfile'), 'FROM busybox\nRUN echo failing; exit 5\n');
    const bad = await e.berth(['build', '-t', 'cli:bad', dir]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout + bad.stderr, /failing/);
    assert.match(bad.stderr, /Containerfile:2:1: RUN \/bin\/sh -c echo failing; exit 5 failed with exit code 5/);
  });

  it('a RUN after VOLUME writes into the layer (as BuildKit) and leaves no volume; the image\'s runs get one', async () => {
    await build(opts('FROM busybox\nVOLUME /vol\nRUN mkdir -p /vol && echo kept > /vol/f\n', 'vol:1'));
    assert.equal((await e.berth(['volume', 'ls', '-q'])).stdout, '');
    const r = await e.berth(['run', '--rm', '--network', 'none', 'vol:1', 'sh', '-c', 'cat /vol/f; grep -c " /vol " /proc/self/mountinfo']);
    assert.equal(r.stdout, 'kept\n1\n', 'the container\'s anonymous volume got the image\'s /vol');
    assert.equal((await e.berth(['volume', 'ls', '-q'])).stdout, '', '--rm removed it');
  });

  it('stops at a RUN that fails, with its exit code, and tags nothing', async () => {
    await assert.rejects(build(opts('FROM busybox\nRUN echo before\n\nRUN exit 3\n', 'bad:1')), (err: unknown) => {
      assert.ok(isBerthError(err, 'RUNTIME_ERROR'));
      assert.match((err as Error).message, /^Dockerfile:4:1: RUN \/bin\/sh -c exit 3 failed with exit code 3/);
      return true;
    });
    const store = await openImageStore({ root: e.root });
    assert.ok(!(await store.tags()).includes('docker.io/library/bad:1'));
    assert.ok(!(await store.tags()).some((t) => t.includes('berth-build-step')), 'the temporary step images are gone');
    const ps = await e.berth(['ps', '-aq']);
    assert.equal(ps.stdout, '', 'no container is left');
  });

  it('leaves no step image documents in the store: the build adds only its layers and its image', async () => {
    const blobs = join(e.root, 'images', 'blobs', 'sha256');
    const before = new Set(await readdir(blobs));
    // (the COPY reads the stage through an overlay view of its snapshots)
    const r = await build(opts('FROM busybox\nRUN echo one > /one\nENV X=1\nCOPY input.txt /in/\nRUN echo two > /two\n', 'docs:1'));
    const store = await openImageStore({ root: e.root });
    const img = await loadImage(store, 'docker.io/library/docs:1');
    assert.equal(img.manifestDesc.digest, r.manifest.digest);
    const added = (await readdir(blobs)).filter((n) => !before.has(n)).map((n) => `sha256:${n}`).sort();
    const expected = [img.manifestDesc.digest, img.configDesc.digest, ...img.manifest.layers.slice(-3).map((l) => l.digest)].sort();
    assert.deepEqual(added, expected, 'configs or manifests of the temporary step images are left in the store');
    const views = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(join(e.root, 'build-work')));
    assert.deepEqual(views, [], 'the overlay views of the stages are unmounted');
  });

  it('tells what the image below an overlay has: the topmost snapshot with the path, a whiteout hiding it', async () => {
    const low = join(e.root, 'lowers', 'a');
    const high = join(e.root, 'lowers', 'b');
    await mkdir(join(low, 'etc'), { recursive: true });
    await mkdir(high, { recursive: true });
    await writeFile(join(low, 'etc', 'hosts'), '');
    await writeFile(join(low, 'gone'), '');
    execFileSync('mknod', [join(high, 'gone'), 'c', '0', '0']);
    assert.equal(await inOverlayLowers([low, high], '/etc/hosts'), true);
    assert.equal(await inOverlayLowers([low, high], '/gone'), false, 'whited out in the upper snapshot');
    assert.equal(await inOverlayLowers([low, high], '/nothing'), false);
    // A mount point the runtime made where the image had nothing goes; one over an image file stays.
    const changes = join(e.root, 'changes');
    await mkdir(join(changes, 'etc'), { recursive: true });
    await writeFile(join(changes, 'etc', 'hosts'), '');
    await mkdir(join(changes, 'run', 'secrets'), { recursive: true });
    await writeFile(join(changes, 'run', 'secrets', 'tok'), '');
    await pruneMountpoints(changes, (p) => inOverlayLowers([low, high], p), ['/etc/hosts', '/run/secrets/tok']);
    assert.deepEqual(await readdir(changes), ['etc']);
    assert.deepEqual(await readdir(join(changes, 'etc')), ['hosts']);
  });
});
