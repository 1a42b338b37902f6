import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OciLayout } from '../../src/image/layout.js';
import { createArtifact, EMPTY_DESCRIPTOR, TITLE_ANNOTATION } from '../../src/image/artifact.js';
import { createImage } from '../../src/image/build.js';
import { digestOf } from '../../src/base/digest.js';
import { EMPTY_JSON_DIGEST, MediaType } from '../../src/base/media-types.js';
import { validateManifest } from '../../src/image/validate.js';
import type { ImageManifest } from '../../src/base/types.js';
import { isBerthError } from '../../src/base/errors.js';

describe('createArtifact', () => {
  let tmp: string;
  let layout: OciLayout;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-artifact-'));
    layout = await OciLayout.open(join(tmp, 'layout'), { create: true });
    await mkdir(join(tmp, 'files'));
    await writeFile(join(tmp, 'files', 'sbom.json'), '{"spdxVersion":"SPDX-2.3"}');
    await writeFile(join(tmp, 'files', 'readme.md'), '# hi\n');
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('writes an oras-style manifest: artifactType, empty config, titled layers, subject', async () => {
    const img = await createImage(layout, { dir: join(tmp, 'files'), tag: 'app' });
    const desc = await createArtifact(layout, {
      artifactType: 'application/spdx+json',
      files: [{ path: join(tmp, 'files', 'sbom.json'), mediaType: 'application/spdx+json' }, { path: join(tmp, 'files', 'readme.md') }],
      subject: img,
      annotations: { 'org.opencontainers.image.created': '2024-05-01T00:00:00Z', 'com.example': 'x' },
      tag: 'app-sbom',
    });
    assert.equal(desc.artifactType, 'application/spdx+json');
    const bytes = await readFile(layout.blobPath(desc.digest));
    assert.equal(digestOf(bytes), desc.digest);
    const m = validateManifest(JSON.parse(bytes.toString())) as ImageManifest;
    assert.equal(m.mediaType, MediaType.imageManifest);
    assert.equal(m.artifactType, 'application/spdx+json');
    assert.deepEqual(m.config, { mediaType: MediaType.empty, digest: EMPTY_JSON_DIGEST, size: 2 });
    assert.equal(await readFile(layout.blobPath(EMPTY_JSON_DIGEST), 'utf8'), '{}');
    assert.deepEqual(
      m.layers.map((l) => [l.mediaType, l.annotations?.[TITLE_ANNOTATION], l.digest]),
      [
        ['application/spdx+json', 'sbom.json', digestOf('{"spdxVersion":"SPDX-2.3"}')],
        ['application/vnd.oci.image.layer.v1.tar', 'readme.md', digestOf('# hi\n')],
      ],
    );
    assert.deepEqual(m.subject, { mediaType: img.mediaType, digest: img.digest, size: img.size });
    assert.deepEqual(m.annotations, { 'org.opencontainers.image.created': '2024-05-01T00:00:00Z', 'com.example': 'x' });
    assert.equal((await layout.resolve('app-sbom')).digest, desc.digest);
    const refs = await layout.referrers(img, 'application/spdx+json');
    assert.deepEqual(refs.map((r) => r.digest), [desc.digest]);
  });

  test('no files: the empty descriptor as the only layer; untagged artifacts stay in index.json; bad input refused', async () => {
    const desc = await createArtifact(layout, { artifactType: 'application/vnd.example.marker', files: [] });
    const m = JSON.parse(await readFile(layout.blobPath(desc.digest), 'utf8')) as ImageManifest;
    assert.deepEqual(m.layers, [EMPTY_DESCRIPTOR]);
    assert.match(m.annotations?.['org.opencontainers.image.created'] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok((await layout.index()).manifests.some((d) => d.digest === desc.digest));
    await assert.rejects(createArtifact(layout, { artifactType: 'not a type', files: [] }), (e) => isBerthError(e, 'USAGE'));
    await assert.rejects(createArtifact(layout, { artifactType: 'a/b', files: [{ path: join(tmp, 'nope') }] }), (e) => isBerthError(e, 'USAGE'));
    await assert.rejects(
      createArtifact(layout, { artifactType: 'a/b', files: [{ path: join(tmp, 'files', 'readme.md') }, { path: join(tmp, 'files', 'readme.md') }] }),
      (e) => isBerthError(e, 'USAGE') && /unique/.test(e.message),
    );
  });
});
