/** The `berth build` and `berth builder prune` command modules (wired into berth.ts's table by the lead). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildArgsOf, commands, outputOf, secretsOf } from '../../../src/cli/build.js';
import { parseCommand } from '../../../src/cli/common.js';
import { OciLayout } from '../../../src/image/layout.js';
import { loadImage } from '../../../src/image/load-image.js';
import { root, skipUnless } from '../../helpers/requirements.js';

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
    assert.deepEqual(outputOf('type=oci,dest=/out,name=v1'), { layout: '/out', tag: 'v1' });
    assert.deepEqual(outputOf('oci:/out:v2'), { layout: '/out', tag: 'v2' });
    assert.throws(() => outputOf('type=docker'), /type=oci,dest=DIR/);
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
