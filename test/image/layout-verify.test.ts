import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, unlink, utimes, readdir, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OciLayout, BLOB_TEMP_PREFIX } from '../../src/image/layout.js';
import { verifyLayout, gcLayout } from '../../src/image/layout-verify.js';
import { createImage, pushJson } from '../../src/image/build.js';
import { createArtifact } from '../../src/image/artifact.js';
import { loadImage } from '../../src/image/load-image.js';
import { digestOf } from '../../src/base/digest.js';
import { MediaType } from '../../src/base/media-types.js';
import { isBerthError } from '../../src/base/errors.js';

describe('verifyLayout and gcLayout', () => {
  let tmp: string;
  let src: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-verify-'));
    src = join(tmp, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'a\n');
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('a layout berth wrote verifies clean', async () => {
    const layout = await OciLayout.open(join(tmp, 'clean'), { create: true });
    const img = await createImage(layout, { dir: src, tag: 'v1' });
    await createArtifact(layout, { artifactType: 'application/example', files: [{ path: join(src, 'a.txt') }], subject: img });
    assert.deepEqual(await verifyLayout(layout), []);
  });

  test('reports every problem at once: missing blob, digest and size mismatches, bad documents, bad names, stray temps', async () => {
    const layout = await OciLayout.open(join(tmp, 'broken'), { create: true });
    await createImage(layout, { dir: src, tag: 'missing-layer', cmd: ['1'] });
    await createImage(layout, { dir: src, tag: 'corrupt-config', cmd: ['2'] });
    await createImage(layout, { dir: src, tag: 'bad-config', cmd: ['3'] });
    const missing = await loadImage(layout, 'missing-layer');
    const corrupt = await loadImage(layout, 'corrupt-config');
    // The layer is shared by all three images: remove it, and reach it only through one path each.
    await unlink(layout.blobPath(missing.manifest.layers[0]!.digest));
    await writeFile(layout.blobPath(corrupt.configDesc.digest), JSON.stringify({ tampered: true }).padEnd(corrupt.configDesc.size, ' '));
    // A config that is valid JSON but not a valid image config, under its true digest.
    const badConfig = await pushJson(layout, MediaType.imageConfig, { architecture: 'amd64', os: 'linux', rootfs: { type: 'nope', diff_ids: [] } });
    const badManifest = await pushJson(layout, MediaType.imageManifest, {
      schemaVersion: 2,
      mediaType: MediaType.imageManifest,
      config: badConfig,
      layers: [],
    });
    await layout.tag(badManifest, 'bad-config');
    // A manifest that is not a manifest, a size lie in index.json, a bad blob name, a stray temp file.
    const junk = await pushJson(layout, MediaType.imageManifest, { hello: 'world' });
    await layout.tag(junk, 'junk');
    const index = await layout.index();
    index.manifests.push({ mediaType: MediaType.imageManifest, digest: junk.digest, size: junk.size + 1 });
    await writeFile(join(layout.dir, 'index.json'), JSON.stringify(index));
    await writeFile(join(layout.dir, 'blobs', 'sha256', 'NOT-A-DIGEST'), 'x');
    await writeFile(join(layout.dir, 'blobs', `${BLOB_TEMP_PREFIX}abc`), 'partial');

    const problems = await verifyLayout(layout);
    const has = (re: RegExp, digest?: string) =>
      assert.ok(
        problems.some((p) => re.test(p.problem) && (digest === undefined || p.digest === digest)),
        `expected a problem matching ${re}${digest ? ` for ${digest}` : ''}; got ${JSON.stringify(problems, null, 1)}`,
      );
    has(/missing blob/, missing.manifest.layers[0]!.digest);
    has(/content hashes to/, corrupt.configDesc.digest);
    has(/invalid image config.*rootfs\.type/, badConfig.digest);
    has(/invalid manifest/, junk.digest);
    has(/size mismatch/, junk.digest);
    has(/not a valid sha256 digest/);
    has(/stray temporary file/);
    assert.equal(problems.find((p) => /stray/.test(p.problem))?.severity, 'warning');
    assert.ok(problems.filter((p) => p.severity === 'error').length >= 6);

    // Restricted to one reference: only what it reaches.
    const one = await verifyLayout(layout, { ref: 'corrupt-config' });
    // (the layer all three images share is missing too)
    assert.deepEqual(one.map((p) => [p.digest, p.problem.replace(/ .*/, '')]), [
      [corrupt.configDesc.digest, 'content'],
      [missing.manifest.layers[0]!.digest, 'missing'],
    ]);
    assert.match(one[0]!.path ?? '', /\(corrupt-config\) → config/);
    await assert.rejects(verifyLayout(layout, { ref: 'no-such-tag' }), (e) => isBerthError(e, 'NOT_FOUND'));
  });

  test('gc removes only unreferenced blobs; referrers in index.json and their subjects stay; stale temps go', async () => {
    const layout = await OciLayout.open(join(tmp, 'gc'), { create: true });
    const kept = await createImage(layout, { dir: src, tag: 'kept', cmd: ['kept'] });
    const gone = await createImage(layout, { dir: src, tag: 'gone', cmd: ['gone'] });
    const sig = await createArtifact(layout, { artifactType: 'application/example.sig', files: [{ path: join(src, 'a.txt'), mediaType: 'text/plain' }], subject: kept });
    const orphanBytes = Buffer.from('orphan blob');
    await pushJson(layout, 'application/json', { orphan: true });
    const goneImage = await loadImage(layout, 'gone');
    const keptImage = await loadImage(layout, 'kept');
    await layout.untag('gone');
    const staleTemp = join(layout.dir, 'blobs', `${BLOB_TEMP_PREFIX}stale`);
    const freshTemp = join(layout.dir, 'blobs', `${BLOB_TEMP_PREFIX}fresh`);
    const staleIndexTemp = join(layout.dir, `${BLOB_TEMP_PREFIX}index.json-0123`);
    await writeFile(staleIndexTemp, '{}');
    await writeFile(staleTemp, orphanBytes);
    await writeFile(freshTemp, orphanBytes);
    const old = new Date(Date.now() - 3600_000);
    await utimes(staleTemp, old, old);
    await utimes(staleIndexTemp, old, old);

    const dry = await gcLayout(layout, { dryRun: true });
    const expected = [gone.digest, goneImage.configDesc.digest, digestOf(JSON.stringify({ orphan: true }))];
    assert.deepEqual(dry.removed.filter((r) => r.startsWith('sha256:')).sort(), expected.sort());
    assert.ok(dry.removed.includes(`blobs/${BLOB_TEMP_PREFIX}stale`));
    assert.ok(dry.removed.includes(`${BLOB_TEMP_PREFIX}index.json-0123`));
    assert.ok(!dry.removed.includes(`blobs/${BLOB_TEMP_PREFIX}fresh`), 'a recent temp file may be a write in progress');
    assert.ok(await layout.exists(gone), 'dry run removes nothing');

    const real = await gcLayout(layout);
    assert.deepEqual(real.removed.sort(), dry.removed.sort());
    assert.ok(real.bytes > 0);
    assert.equal(await layout.exists(gone), false);
    // The shared layer, the kept image, the referrer and its blobs are all still there.
    for (const d of [kept, sig, keptImage.configDesc, ...keptImage.manifest.layers]) assert.ok(await layout.exists(d), d.digest);
    assert.deepEqual(await verifyLayout(layout).then((p) => p.filter((x) => x.severity === 'error')), []);
    assert.deepEqual((await readdir(join(layout.dir, 'blobs'))).sort(), [`${BLOB_TEMP_PREFIX}fresh`, 'sha256']);
    assert.deepEqual((await gcLayout(layout)).removed, []);
  });

  test('gc refuses to guess when a manifest in index.json is unreadable', async () => {
    const layout = await OciLayout.open(join(tmp, 'gc-bad'), { create: true });
    const junk = await pushJson(layout, MediaType.imageManifest, { schemaVersion: 1 });
    await layout.tag(junk, 'junk');
    await assert.rejects(gcLayout(layout), (e) => isBerthError(e, 'LAYOUT_INVALID') && /verify/.test(e.message));
  });
});
