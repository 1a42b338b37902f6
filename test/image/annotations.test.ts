import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isBerthError } from '../../src/base/errors.js';
import {
  Annotation,
  LABEL_SCHEMA_EQUIVALENTS,
  annotationFormatProblems,
  validateAnnotationValues,
  validateAnnotations,
} from '../../src/image/annotations.js';
import { isRfc3339DateTime } from '../../src/image/formats.js';

import { skipUnless, specDir } from '../helpers/requirements.js';

// annotations.md, found through BERTH_SPEC_DIR (.ci/run sets it).
const spec = specDir('image-spec');
const ANNOTATIONS_MD = join(spec.dir ?? '', 'annotations.md');

describe('pre-defined annotation keys', () => {
  it('has a constant for every key annotations.md defines', { skip: skipUnless(spec.need) }, () => {
    const text = readFileSync(ANNOTATIONS_MD, 'utf8');
    const defined = new Set([...text.matchAll(/^- \*\*(org\.opencontainers\.image\.[a-z.]+)\*\*/gm)].map((m) => m[1]));
    assert.ok(defined.size >= 14, `found only ${defined.size} keys in annotations.md`);
    assert.deepEqual(new Set(Object.values(Annotation)), defined);
  });

  it('names the keys as the brief and the spec do', () => {
    assert.equal(Annotation.created, 'org.opencontainers.image.created');
    assert.equal(Annotation.refName, 'org.opencontainers.image.ref.name');
    assert.equal(Annotation.baseImageDigest, 'org.opencontainers.image.base.digest');
    assert.equal(Annotation.baseImageName, 'org.opencontainers.image.base.name');
  });

  it('maps Label Schema keys onto OCI keys', () => {
    assert.equal(LABEL_SCHEMA_EQUIVALENTS['org.label-schema.build-date'], Annotation.created);
    assert.equal(LABEL_SCHEMA_EQUIVALENTS['org.label-schema.vcs-ref'], Annotation.revision);
  });
});

describe('validateAnnotations (annotations.md "Rules")', () => {
  it('accepts string maps, empty values and unknown keys', () => {
    const a = { 'com.example.x': '', [Annotation.title]: 'T', 'x': 'y' };
    assert.equal(validateAnnotations(a, 'manifest.annotations'), a);
    assert.deepEqual(validateAnnotations({}, 'f'), {});
  });

  it('refuses non-string values and non-objects, naming the key and using the caller’s code', () => {
    assert.throws(
      () => validateAnnotations({ a: 'b', n: 3 }, 'index.annotations', 'INDEX_INVALID'),
      (e: unknown) => isBerthError(e, 'INDEX_INVALID') && e.message.startsWith('index.annotations["n"]: ') && /got number 3/.test(e.message),
    );
    assert.throws(
      () => validateAnnotations(JSON.parse('{"__proto__":1}'), 'm.annotations'),
      (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && e.message.startsWith('m.annotations["__proto__"]: '),
    );
    for (const bad of [null, [], 'x', 1]) {
      assert.throws(() => validateAnnotations(bad, 'a'), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && /object mapping strings to strings/.test(e.message));
    }
  });
});

describe('formats of pre-defined annotations', () => {
  it('accepts well-formed values', () => {
    assert.deepEqual(
      annotationFormatProblems({
        [Annotation.created]: '2024-01-31T12:00:00.5+01:00',
        [Annotation.url]: 'https://example.com',
        [Annotation.documentation]: 'https://example.com/docs',
        [Annotation.source]: 'git+https://example.com/repo.git',
        [Annotation.refName]: 'v1.2.3',
        [Annotation.baseImageDigest]: `sha256:${'a'.repeat(64)}`,
        [Annotation.baseImageName]: 'docker.io/library/alpine:3.19',
        [Annotation.licenses]: 'MIT OR Apache-2.0',
        [Annotation.authors]: 'anyone <a@example.com>',
      }),
      [],
    );
  });

  it('reports each malformed value with its key', () => {
    const problems = annotationFormatProblems(
      {
        [Annotation.created]: '2024-01-31',
        [Annotation.url]: 'example.com',
        [Annotation.refName]: 'bad name!',
        [Annotation.baseImageDigest]: 'sha256:xyz',
        [Annotation.baseImageName]: 'docker.io/Upper/case',
      },
      'manifest.annotations',
    );
    assert.equal(problems.length, 5);
    assert.match(problems[0]!, /^manifest\.annotations\["org\.opencontainers\.image\.created"\]: "2024-01-31" must be an RFC 3339/);
    assert.ok(problems.some((p) => p.includes('image.url') && /URL/.test(p)));
    assert.ok(problems.some((p) => p.includes('ref.name')));
    assert.ok(problems.some((p) => p.includes('base.digest') && /digest/.test(p)));
    assert.ok(problems.some((p) => p.includes('base.name') && /lowercase/.test(p)));
    assert.throws(() => validateAnnotationValues({ [Annotation.created]: 'now' }), (e: unknown) => isBerthError(e, 'MANIFEST_INVALID') && /RFC 3339/.test(e.message));
    assert.doesNotThrow(() => validateAnnotationValues({ [Annotation.created]: '2024-01-31T00:00:00Z', other: 'now' }));
  });

  it('checks RFC 3339 date-times precisely', () => {
    for (const ok of ['2024-02-29T00:00:00Z', '1985-04-12T23:20:50.52Z', '1996-12-19T16:39:57-08:00', '1990-12-31T23:59:60Z', '1990-12-31T15:59:60-08:00', '2024-01-01t00:00:00z']) {
      assert.ok(isRfc3339DateTime(ok), ok);
    }
    for (const bad of ['2023-02-29T00:00:00Z', '2024-04-31T00:00:00Z', '2024-01-01T00:00:00', '2024-01-01T25:00:00Z', '2024-01-01T12:00:60Z', '2024-01-01T00:00:00+24:00', '24-01-01T00:00:00Z', 42]) {
      assert.ok(!isRfc3339DateTime(bad), String(bad));
    }
  });
});
