/** The `berth build` and `berth builder prune` command modules (wired into berth.ts's table by the lead). */
import { after, before, describe, it } from 'node:test';
import { podmanEnv, removePodmanWork } from '../../helpers/podman.js';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildArgsOf, commands, outputOf, secretsOf } from '../../../src/cli/build.js';
import { parseCommand } from '../../../src/cli/common.js';
import { OciLayout } from '../../../src/image/layout.js';
import { loadImage } from '../../../src/image/load-image.js';
import { root, skipOrFail, skipUnless } from '../../helpers/requirements.js';
import { REGISTRY_BIN, startRegistry } from '../../helpers/distribution.js';
import { DOCKER, DOCKERD, startDockerd } from '../../helpers/dockerd.js';
import { MediaType } from '../../../src/base/media-types.js';
import { unpackLayers } from '../../../src/layer/unpack-layers.js';

const PODMAN = '/usr/bin/podman';

async function runCommand(name: 'build' | 'builder', argv: string[]): Promise<number> {
  const spec = commands[name]!;
  const parsed = parseCommand(name, spec, argv);
  assert.notEqual(parsed, 'help');
  return spec.run(parsed as Exclude<typeof parsed, 'help'>);
}

describe('berth build options', () => {
  it('reads --build-arg, --secret and --output', () => {
    assert.deepEqual(buildArgsOf(['A=1', 'B=', 'C', 'D=x=y']), { A: '1', B: '', C: undefined, D: 'x=y' });
    assert.throws(() => buildArgsOf(['=1']), /has no name/);
    assert.deepEqual([...secretsOf(['id=tok,src=/run/tok', 'id=k,source=/k'])], [['tok', '/run/tok'], ['k', '/k']]);
    assert.throws(() => secretsOf(['src=/x']), /id=NAME,src=FILE/);
    assert.deepEqual(outputOf('type=oci,dest=/out,name=v1'), { type: 'oci', layout: '/out', tag: 'v1' });
    assert.deepEqual(outputOf('oci:/out:v2'), { type: 'oci', layout: '/out', tag: 'v2' });
    assert.deepEqual(outputOf('type=docker,dest=/out.tar,name=app:1'), { type: 'docker', dest: '/out.tar', name: 'app:1' });
    assert.deepEqual(outputOf('type=oci,dest=/out.tar'), { type: 'oci-archive', dest: '/out.tar' });
    assert.deepEqual(outputOf('type=oci,dest=/out,tar=true,name=x'), { type: 'oci-archive', dest: '/out', name: 'x' });
    assert.throws(() => outputOf('type=docker'), /type=docker,dest=FILE/);
    assert.throws(() => outputOf('type=tar,dest=x'), /type=oci,dest=DIR/);
  });
});

describe('berth build command', { skip: skipUnless(root('COPY sets owners')) }, () => {
  it('builds into a layout with -f, --target, --build-arg and --iidfile; tags the store with -t; prunes the cache', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-build-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const ctx = join(dir, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'f'), 'file\n');
    await writeFile(join(dir, 'Build.file'), 'FROM scratch AS one\nARG WHO\nLABEL who=$WHO\nCOPY f /f\nFROM scratch AS two\n');
    const berthRoot = join(dir, 'root');
    const code = await runCommand('build', ['-f', join(dir, 'Build.file'), '--target', 'one', '--build-arg', 'WHO=me', '--iidfile', join(dir, 'iid'), '--output', `oci:${join(dir, 'out')}:x`, '--root', berthRoot, '-q', ctx]);
    assert.equal(code, 0);
    const img = await loadImage(await OciLayout.open(join(dir, 'out')), 'x');
    assert.equal(img.config.config!.Labels!.who, 'me');
    assert.equal(await readFile(join(dir, 'iid'), 'utf8'), img.manifestDesc && img.manifest.config.digest);
    assert.equal(await runCommand('build', ['-f', join(dir, 'Build.file'), '--target', 'one', '-t', 'app:1', '-t', 'localhost/app:2', '--root', berthRoot, '-q', ctx]), 0);
    const store = await OciLayout.open(join(berthRoot, 'images'));
    assert.deepEqual((await store.tags()).sort(), ['docker.io/library/app:1', 'localhost/app:2']);
    assert.equal((await store.resolve('docker.io/library/app:1')).digest, (await store.resolve('localhost/app:2')).digest);
    assert.equal(await runCommand('builder', ['prune', '--all', '--root', berthRoot, '--format', 'json']), 0);
  });
});

describe('berth build outputs and formats', { skip: skipUnless(root('COPY sets owners')) }, () => {
  let dir = '';
  let ctx = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-cli-build-out-'));
    ctx = join(dir, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'f'), 'file\n');
    await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY f /f\nLABEL a=b\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('--format docker writes Docker schema 2 media types over the same config and layer blobs', async () => {
    const out = join(dir, 'fmt');
    assert.equal(await runCommand('build', ['--format', 'docker', '--source-date-epoch', '0', '--output', `oci:${out}:d`, '--root', join(dir, 'root'), '--iidfile', join(dir, 'iid-d'), '-q', ctx]), 0);
    assert.equal(await runCommand('build', ['--source-date-epoch', '0', '--output', `oci:${out}:o`, '--root', join(dir, 'root'), '--iidfile', join(dir, 'iid-o'), '-q', ctx]), 0);
    const layout = await OciLayout.open(out);
    const d = await loadImage(layout, 'd');
    const o = await loadImage(layout, 'o');
    assert.equal(d.manifest.mediaType, MediaType.dockerManifest);
    assert.equal(d.manifest.config.mediaType, MediaType.dockerConfig);
    assert.deepEqual(d.manifest.layers.map((l) => l.mediaType), [MediaType.dockerLayerGzip]);
    assert.equal(d.manifest.annotations, undefined, 'schema 2 has no annotations');
    assert.equal(o.manifest.mediaType, MediaType.imageManifest);
    assert.deepEqual(o.manifest.layers.map((l) => l.mediaType), [MediaType.layerTarGzip]);
    assert.deepEqual(d.manifest.layers.map((l) => l.digest), o.manifest.layers.map((l) => l.digest));
    assert.equal(await readFile(join(dir, 'iid-d'), 'utf8'), await readFile(join(dir, 'iid-o'), 'utf8'));
    await assert.rejects(runCommand('build', ['--format', 'docker', '--compression', 'zstd', '--output', `oci:${out}:z`, '--root', join(dir, 'root'), '-q', ctx]), /no zstd layers/);
    await assert.rejects(runCommand('build', ['--format', 'v1', '--output', `oci:${out}:z`, '-q', ctx]), /--format must be oci or docker \(or json/);
  });

  it('--platform linux/amd64,linux/arm64 writes an image index of both (not into a docker archive)', async () => {
    const out = join(dir, 'multi');
    assert.equal(await runCommand('build', ['--platform', 'linux/amd64,linux/arm64', '--output', `oci:${out}:m`, '--root', join(dir, 'root'), '--iidfile', join(dir, 'iid-m'), '-q', ctx]), 0);
    const layout = await OciLayout.open(out);
    const desc = await layout.resolve('m');
    assert.equal(desc.mediaType, MediaType.imageIndex);
    assert.equal(await readFile(join(dir, 'iid-m'), 'utf8'), desc.digest);
    for (const arch of ['amd64', 'arm64']) assert.equal((await loadImage(layout, 'm', { os: 'linux', architecture: arch })).config.architecture, arch);
    await assert.rejects(runCommand('build', ['--platform', 'linux/amd64,linux/arm64', '--output', `type=docker,dest=${join(dir, 'm.tar')}`, '--root', join(dir, 'root'), '-q', ctx]), /type=docker holds one platform/);
  });

  it('--compression zstd makes zstd layers that berth reads back', async () => {
    const out = join(dir, 'zstd');
    assert.equal(await runCommand('build', ['--compression', 'zstd', '--output', `oci:${out}:z`, '--root', join(dir, 'root'), '-q', ctx]), 0);
    const layout = await OciLayout.open(out);
    const img = await loadImage(layout, 'z');
    assert.deepEqual(img.manifest.layers.map((l) => l.mediaType), [MediaType.layerTarZstd]);
    const blob = await readFile(join(out, 'blobs', 'sha256', img.manifest.layers[0]!.digest.slice(7)));
    assert.deepEqual([...blob.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], 'a zstd frame');
    const rootfs = join(dir, 'zstd-rootfs');
    await mkdir(rootfs);
    await unpackLayers(rootfs, img.manifest.layers.map((l, i) => ({ ...l, diffId: img.config.rootfs.diff_ids[i]!, open: () => layout.fetch(l) })));
    assert.equal(await readFile(join(rootfs, 'f'), 'utf8'), 'file\n');
  });

  it('--output type=docker,dest=FILE writes an archive that podman load reads', async (t) => {
    const tar = join(dir, 'app.tar');
    assert.equal(await runCommand('build', ['--output', `type=docker,dest=${tar}`, '-t', 'localhost/out/app:1', '--root', join(dir, 'root'), '--iidfile', join(dir, 'iid-tar'), '-q', ctx]), 0);
    const files = spawnSync('tar', ['-tf', tar], { encoding: 'utf8' }).stdout.split('\n').map((f) => f.replace(/^\.\//, ''));
    assert.ok(files.includes('manifest.json'), files.join(' '));
    const extracted = join(dir, 'tar-x');
    await mkdir(extracted);
    spawnSync('tar', ['-xf', tar, '-C', extracted, './manifest.json']);
    const entries = JSON.parse(await readFile(join(extracted, 'manifest.json'), 'utf8')) as { Config: string; RepoTags: string[] }[];
    assert.deepEqual(entries[0]!.RepoTags, ['localhost/out/app:1']);
    const id = (await readFile(join(dir, 'iid-tar'), 'utf8')).slice('sha256:'.length);
    assert.ok(entries[0]!.Config.includes(id), `the archive's config ${entries[0]!.Config} is the image ID ${id}`);
    // Without -t: nothing is tagged in the store, the archive still is written.
    const untagged = join(dir, 'untagged.tar');
    assert.equal(await runCommand('build', ['--output', `type=docker,dest=${untagged}`, '--root', join(dir, 'root2'), '-q', ctx]), 0);
    assert.ok(spawnSync('tar', ['-tf', untagged], { encoding: 'utf8' }).stdout.includes('manifest.json'));
    assert.deepEqual(await (await OciLayout.open(join(dir, 'root2', 'images'), { create: true })).tags(), []);

    if (!existsSync(PODMAN)) return skipOrFail(t, 'podman is not installed (apt-get install -y podman)');
    const pd = join(dir, 'podman');
    await mkdir(pd);
    const env = podmanEnv(pd);
    t.after(() => removePodmanWork(pd, env));
    const load = spawnSync(PODMAN, ['load', '-i', tar], { env, encoding: 'utf8' });
    assert.equal(load.status, 0, load.stderr);
    const inspect = spawnSync(PODMAN, ['image', 'inspect', '--format', '{{.Id}} {{index .Labels "a"}}', 'localhost/out/app:1'], { env, encoding: 'utf8' });
    assert.equal(inspect.stdout.trim(), `${id} b`);
  });

  it('--output type=oci,dest=FILE.tar writes a tar of an OCI layout that skopeo reads', async (t) => {
    const tar = join(dir, 'oci.tar');
    assert.equal(await runCommand('build', ['--output', `type=oci,dest=${tar},name=app`, '--root', join(dir, 'root-ocitar'), '--iidfile', join(dir, 'iid-ocitar'), '-q', ctx]), 0);
    const files = spawnSync('tar', ['-tf', tar], { encoding: 'utf8' }).stdout.split('\n').map((f) => f.replace(/^\.\//, ''));
    assert.ok(files.includes('oci-layout') && files.includes('index.json'), files.join(' '));
    if (!existsSync('/usr/bin/skopeo')) return skipOrFail(t, 'skopeo is not installed (apt-get install -y skopeo)');
    const r = spawnSync('skopeo', ['inspect', '--config', `oci-archive:${tar}:app`], { encoding: 'utf8', env: { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { config: { Labels: Record<string, string> } }).config.Labels.a, 'b');
  });

  it('--output type=docker,dest=FILE: docker load reads the archive (a dockerd in a temp dir)', async (t) => {
    if (!existsSync(DOCKERD) || !existsSync(DOCKER)) return skipOrFail(t, 'docker is not installed (apt-get install -y docker.io)');
    const tar = join(dir, 'for-docker.tar');
    assert.equal(await runCommand('build', ['--format', 'docker', '--output', `type=docker,dest=${tar},name=localhost/out/docker:1`, '--root', join(dir, 'root-docker'), '--iidfile', join(dir, 'iid-docker'), '-q', ctx]), 0);
    const d = await startDockerd();
    t.after(() => d.stop());
    d.docker('load', '-i', tar);
    const id = await readFile(join(dir, 'iid-docker'), 'utf8');
    assert.equal(d.docker('image', 'inspect', '--format', '{{.Id}} {{index .Config.Labels "a"}}', 'localhost/out/docker:1').trim(), `${id} b`);
  });

  it('--push sends each -t name to its registry (docker-registry on 127.0.0.1)', async (t) => {
    if (!existsSync(REGISTRY_BIN)) return skipOrFail(t, 'docker-registry is not installed (apt-get install -y docker-registry)');
    const reg = await startRegistry();
    t.after(() => reg.stop());
    const berthRoot = join(dir, 'push-root');
    assert.equal(await runCommand('build', ['--push', '-t', `${reg.host}/app:1`, '-t', `${reg.host}/other/app:2`, '--root', berthRoot, '-q', ctx]), 0);
    const local = await (await OciLayout.open(join(berthRoot, 'images'))).resolve(`${reg.host}/app:1`);
    for (const [repo, tag] of [['app', '1'], ['other/app', '2']] as const) {
      const res = await fetch(`http://${reg.host}/v2/${repo}/manifests/${tag}`, { headers: { Accept: MediaType.imageManifest } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), local.digest, `${repo}:${tag} is the built manifest`);
    }
    await assert.rejects(runCommand('build', ['--push', '--root', berthRoot, '-q', ctx]), /--push sends the -t names/);
  });

  it('--cache-to type=registry exports the steps; --cache-from on an empty root reuses them', async (t) => {
    if (!existsSync(REGISTRY_BIN)) return skipOrFail(t, 'docker-registry is not installed (apt-get install -y docker-registry)');
    const reg = await startRegistry();
    t.after(() => reg.stop());
    const built = async (args: string[]): Promise<{ steps: { cached: boolean }[]; id: string }> => {
      const chunks: string[] = [];
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((c: string | Uint8Array) => (chunks.push(String(c)), true)) as typeof process.stdout.write;
      try {
        assert.equal(await runCommand('build', [...args, '--source-date-epoch', '0', '--format', 'json', ctx]), 0);
      } finally {
        process.stdout.write = write;
      }
      return JSON.parse(chunks.join('')) as { steps: { cached: boolean }[]; id: string };
    };
    const one = await built(['--root', join(dir, 'cache-root1'), '--cache-to', `type=registry,ref=${reg.host}/cache/app:buildcache`, '--output', `oci:${join(dir, 'c1')}:x`]);
    assert.deepEqual(one.steps.map((s) => s.cached), [false, false]);
    const two = await built(['--root', join(dir, 'cache-root2'), '--cache-from', `${reg.host}/cache/app:buildcache`, '--output', `oci:${join(dir, 'c2')}:x`]);
    assert.deepEqual(two.steps.map((s) => s.cached), [true, false], 'the COPY comes from the registry cache (LABEL is a config step)');
    assert.equal(two.id, one.id);
    const local = join(dir, 'local-cache');
    await built(['--root', join(dir, 'cache-root3'), '--cache-to', `type=local,dest=${local}`, '--output', `oci:${join(dir, 'c3')}:x`]);
    const four = await built(['--root', join(dir, 'cache-root4'), '--cache-from', `type=local,src=${local}`, '--output', `oci:${join(dir, 'c4')}:x`]);
    assert.deepEqual(four.steps.map((s) => s.cached), [true, false]);
    const none = await built(['--root', join(dir, 'cache-root6'), '--cache-from', `type=local,src=${join(dir, 'no-cache-yet')}`, '--output', `oci:${join(dir, 'c6')}:x`]);
    assert.deepEqual(none.steps.map((s) => s.cached), [false, false], 'a cache not there yet is an empty one');
    assert.ok(!existsSync(join(dir, 'no-cache-yet')), '--cache-from creates nothing');
    await assert.rejects(runCommand('build', ['--cache-to', 'type=s3,bucket=x', '--root', join(dir, 'cache-root5'), ctx]), /--cache-to type=local,dest=DIR/);
  });
});
