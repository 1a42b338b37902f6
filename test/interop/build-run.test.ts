/**
 * An image `berth build` made (COPY, RUN through berth's engine, ENV, WORKDIR, USER, CMD) runs,
 * not only loads: under `berth run`, under `podman run` (from the OCI layout --output wrote),
 * and under docker 20.10 (`docker load` of --output type=docker, `docker run`), each printing
 * what the Dockerfile made. With docker, the classic builder also builds a SHELL + shell-form
 * CMD Dockerfile, whose Cmd buildah 1.28 writes otherwise (build/buildah.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OciLayout } from '../../src/image/layout.js';
import { loadImage } from '../../src/image/load-image.js';
import { BUSYBOX } from '../helpers/busybox.js';
import { DOCKER, DOCKERD, startDockerd } from '../helpers/dockerd.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { podmanEnv } from '../helpers/podman.js';
import { peer, root, skipOrFail, skipUnless } from '../helpers/requirements.js';

const DOCKERFILE = [
  'FROM busybox',
  'ENV GREETING="hello from ENV"',
  'WORKDIR /app',
  'COPY msg.txt .',
  'RUN echo "made by RUN" > run.txt && echo "runner:x:1234:1234::/app:/bin/sh" >> /etc/passwd && chown runner /app',
  'USER runner',
  'CMD ["sh", "-c", "cat msg.txt run.txt; echo \\"$GREETING\\"; pwd; id -un; touch /app/writable && echo can-write"]',
  '',
].join('\n');
const EXPECTED = 'from the context\nmade by RUN\nhello from ENV\n/app\nrunner\ncan-write\n';

describe('images berth build makes run under berth, podman and docker', { skip: skipUnless(root('RUN steps run in containers'), peer(BUSYBOX, 'busybox-static')) }, () => {
  let e: EngineRoot;
  let dir = '';
  let ctx = '';
  before(async () => {
    e = await engineRoot();
    // Lower case: podman reads an oci: path as a reference, which must be lower case.
    dir = join(tmpdir(), `berth-build-run-${randomBytes(6).toString('hex')}`);
    await mkdir(dir);
    ctx = join(dir, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'msg.txt'), 'from the context\n');
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });
  after(async () => {
    await e?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function berth(args: string[]): Promise<string> {
    const r = await e.berth(args);
    assert.equal(r.code, 0, `berth ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  it('berth build -t, then berth run prints what the Dockerfile made', async () => {
    await berth(['build', '-q', '-t', 'localhost/built:1', ctx]);
    assert.equal(await berth(['run', '--rm', '--network', 'none', 'localhost/built:1']), EXPECTED);
  });

  it('--output type=oci, then podman run of the layout', async (t) => {
    if (!existsSync('/usr/bin/podman')) return skipOrFail(t, 'podman is not installed (apt-get install -y podman)');
    const layout = join(dir, 'oci');
    await berth(['build', '-q', '--output', `type=oci,dest=${layout},name=app`, ctx]);
    const pd = join(dir, 'podman');
    await mkdir(pd);
    const env = podmanEnv(pd);
    t.after(() => {
      spawnSync('podman', ['rmi', '--all', '--force'], { env, stdio: 'ignore' });
      spawnSync('umount', ['-R', join(pd, 'graph')], { stdio: 'ignore' });
    });
    const r = spawnSync('podman', ['run', '--rm', `oci:${layout}:app`], { env, encoding: 'utf8', timeout: 180_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, EXPECTED);
  });

  it('--output type=docker, docker load and docker run (dockerd 20.10 in a temp dir); SHELL and CMD as the classic builder writes them', async (t) => {
    if (!existsSync(DOCKERD) || !existsSync(DOCKER)) return skipOrFail(t, 'docker is not installed (apt-get install -y docker.io)');
    const tar = join(dir, 'app.tar');
    await berth(['build', '-q', '--output', `type=docker,dest=${tar},name=localhost/built:docker`, ctx]);
    const d = await startDockerd();
    t.after(() => d.stop());
    d.docker('load', '-i', tar);
    const r = d.run(['run', '--rm', '--network', 'none', 'localhost/built:docker']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, EXPECTED);

    // The same base in docker (the store's busybox as a docker archive), and a Dockerfile with SHELL.
    const shellCtx = join(dir, 'shell');
    await mkdir(shellCtx);
    const shellDockerfile = ['FROM localhost/base:1', 'SHELL ["/bin/sh", "-c", "echo via-shell; eval \\"$1\\"", "wrapper"]', 'RUN echo shell-form > /shell-form', 'CMD echo cmd-under-shell', 'ENTRYPOINT exec echo'].join('\n');
    await writeFile(join(shellCtx, 'Dockerfile'), 'FROM busybox\n');
    const baseTar = join(dir, 'base.tar');
    await berth(['build', '-q', '--output', `type=docker,dest=${baseTar},name=localhost/base:1`, shellCtx]);
    d.docker('load', '-i', baseTar);
    await berth(['build', '-q', '-t', 'localhost/base:1', shellCtx]);
    await writeFile(join(shellCtx, 'Dockerfile'), shellDockerfile);
    const classic = spawnSync(DOCKER, ['-H', `unix://${join(d.dir, 'docker.sock')}`, 'build', '--network', 'none', '-t', 'localhost/shell:1', shellCtx], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      encoding: 'utf8',
      timeout: 300_000,
    });
    assert.equal(classic.status, 0, classic.stderr);
    const theirs = JSON.parse(d.docker('image', 'inspect', '--format', '{{json .Config}}', 'localhost/shell:1')) as Record<string, unknown>;
    const layout = join(dir, 'shell-oci');
    await berth(['build', '-q', '--output', `type=oci,dest=${layout},name=s`, shellCtx]);
    const ours = (await loadImage(await OciLayout.open(layout), 's')).config.config!;
    for (const f of ['Shell', 'Cmd', 'Entrypoint'] as const) assert.deepEqual(ours[f], theirs[f], f);
    const ran = d.run(['run', '--rm', '--network', 'none', '--entrypoint', 'cat', 'localhost/shell:1', '/shell-form']);
    assert.equal(ran.stdout, 'shell-form\n');
  });
});
