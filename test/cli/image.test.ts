/** The image commands run through the built CLI (node bin/berth.cjs) from the repository root. */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

function berth(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [join(repo, 'bin', 'berth.cjs'), ...args], { cwd: repo, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await berth(...args);
  assert.equal(r.code, 0, `berth ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function json<T = any>(...args: string[]): Promise<T> {
  return JSON.parse(await ok(...args, '--format', 'json')) as T;
}

const skip = skipUnless(peer(BUSYBOX, 'busybox-static'));

describe('berth image commands', { skip }, () => {
  let tmp: string;
  let lay: string;
  let rootfs: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-cli-image-'));
    lay = join(tmp, 'layout');
    rootfs = await buildBusyboxRootfs(join(tmp, 'rootfs'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('create, append, mutate, layout tags, unpack', async () => {
    const created = await json('create', rootfs, `oci:${lay}:v1`, '--cmd', '["/bin/echo","hi"]', '--env', 'A=1', '--label', 'k=v', '--expose', '80', '--source-date-epoch', '1000');
    assert.match(created.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(created.tag, 'v1');
    assert.equal(created.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const extra = join(tmp, 'extra');
    await mkdir(extra);
    await writeFile(join(extra, 'added.txt'), 'added\n');
    const appended = await json('append', `oci:${lay}:v1`, extra, '--tag', 'v2', '--compression', 'zstd');
    assert.equal(appended.tag, 'v2');
    const mutated = await json('mutate', `oci:${lay}:v2`, '--entrypoint', '/bin/sh -c', '--cmd', '["echo $A $B"]', '--env', 'B=2', '--unset-label', 'k', '--annotation', 'x=y');
    assert.notEqual(mutated.digest, appended.digest);
    assert.deepEqual(await json('layout', 'tags', `oci:${lay}`), ['v1', 'v2']);
    assert.equal((await ok('layout', 'tags', `oci:${lay}`)).trim(), 'v1\nv2');

    const bundle = join(tmp, 'bundle');
    const unpacked = await json('unpack', `oci:${lay}:v2`, bundle);
    assert.equal(unpacked.manifest.digest, mutated.digest);
    assert.equal(unpacked.layers.length, 2);
    assert.equal(await readFile(join(bundle, 'rootfs', 'added.txt'), 'utf8'), 'added\n');
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
    assert.deepEqual(spec.process.args, ['/bin/sh', '-c', 'echo $A $B']);
    assert.ok(spec.process.env.includes('A=1') && spec.process.env.includes('B=2'));
    assert.equal(spec.annotations.k, undefined);
    assert.equal(spec.annotations['org.opencontainers.image.exposedPorts'], '80/tcp');
    // Unpacking into the same bundle again is refused (a usage error, exit 2) unless --force.
    const again = await berth('unpack', `oci:${lay}:v2`, bundle);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already has content/);
    await ok('unpack', `oci:${lay}:v2`, bundle, '--force');
  });

  test('artifact with a subject; validate files and layouts; verify and gc', async () => {
    const sbom = join(tmp, 'sbom.json');
    await writeFile(sbom, '{"spdxVersion":"SPDX-2.3"}');
    const art = await json('artifact', `oci:${lay}:v1-sbom`, '--artifact-type', 'application/spdx+json', `${sbom}:application/spdx+json`, '--subject', 'v1', '--annotation', 'a=b');
    assert.equal(art.artifactType, 'application/spdx+json');
    assert.equal(art.subject.digest, (await json('create', rootfs, `oci:${lay}:v1`, '--cmd', '["/bin/echo","hi"]', '--env', 'A=1', '--label', 'k=v', '--expose', '80', '--source-date-epoch', '1000')).digest);

    const manifestPath = join(lay, 'blobs', 'sha256', art.digest.slice(7));
    const v = await json('validate', manifestPath);
    assert.deepEqual([v.valid, v.type], [true, 'manifest']);
    assert.match(await ok('validate', manifestPath), /valid manifest/);
    const badFile = join(tmp, 'bad-config.json');
    await writeFile(badFile, JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:xyz'] } }));
    const bad = await berth('validate', badFile, '--format', 'json');
    assert.equal(bad.code, 1);
    const report = JSON.parse(bad.stdout);
    assert.deepEqual([report.valid, report.type], [false, 'config']);
    assert.match(report.problems[0].problem, /diff_ids\[0\]/);
    assert.equal((await berth('validate', '--type', 'bogus', badFile)).code, 2);

    const whole = await json('validate', `oci:${lay}`);
    assert.equal(whole.valid, true);
    assert.equal((await json('layout', 'verify', `oci:${lay}`)).valid, true);

    // Untag v2 and collect: its manifest, config and layer go; v1 and the artifact stay.
    const before = await json('layout', 'gc', `oci:${lay}`, '--dry-run');
    assert.equal(before.dryRun, true);
    const index = JSON.parse(await readFile(join(lay, 'index.json'), 'utf8'));
    index.manifests = index.manifests.filter((d: any) => d.annotations?.['org.opencontainers.image.ref.name'] !== 'v2');
    await writeFile(join(lay, 'index.json'), JSON.stringify(index));
    const gc = await json('layout', 'gc', `oci:${lay}`);
    assert.ok(gc.removed.length >= 4, JSON.stringify(gc));
    assert.ok(gc.bytes > 0);
    assert.equal((await json('layout', 'verify', `oci:${lay}`)).valid, true);
    assert.deepEqual(await json('layout', 'tags', `oci:${lay}`), ['v1', 'v1-sbom']);

    // A corrupted blob makes verify fail with exit 1 and name the blob.
    await writeFile(manifestPath, (await readFile(manifestPath, 'utf8')).replace('spdx', 'xpdx'));
    const broken = await berth('layout', 'verify', `oci:${lay}`);
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, new RegExp(`error: .*${art.digest.slice(7)}.*content hashes to`));
  });

  test('usage errors exit 2, failures exit 1, --help shows examples', async () => {
    assert.equal((await berth('unpack', 'not-a-place', join(tmp, 'x'))).code, 2);
    assert.equal((await berth('create', rootfs, `oci:${lay}`)).code, 2);
    assert.equal((await berth('layout', 'frobnicate', `oci:${lay}`)).code, 2);
    assert.equal((await berth('artifact', `oci:${lay}`, 'file')).code, 2);
    const missing = await berth('unpack', `oci:${lay}:nope`, join(tmp, 'y'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no reference "nope"/);
    const notLayout = await berth('layout', 'tags', `oci:${join(tmp, 'absent')}`);
    assert.equal(notLayout.code, 1);
    for (const cmd of ['validate', 'layout', 'unpack', 'create', 'append', 'mutate', 'artifact']) {
      const help = await berth(cmd, '--help');
      assert.equal(help.code, 0);
      assert.match(help.stdout, /Examples:/, cmd);
    }
  });
});
