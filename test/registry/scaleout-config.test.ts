/** The settings that choose S3 and PostgreSQL: flags, BERTH_* variables, JSON keys, and their checks. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildConfig, defaultConfig, overridesFromEnv, overridesFromFile } from '../../src/registry/config.js';
import { parseS3Url } from '../../src/registry/storage/s3-blob-store.js';

describe('scale-out settings', () => {
  it('defaults to the data directory and SQLite, redirecting blob GETs when on S3', () => {
    const c = buildConfig(defaultConfig({}));
    assert.equal(c.storage, undefined);
    assert.equal(c.metadata, undefined);
    assert.equal(c.redirect, true);
  });

  it('takes storage and metadata from the file, the environment and flags, later wins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cfg-'));
    try {
      const file = join(dir, 'c.json');
      writeFileSync(file, JSON.stringify({ storage: 's3://from-file', metadata: 'postgres://u@h/db', redirect: false }));
      const fromFile = overridesFromFile(file);
      const env = overridesFromEnv({ BERTH_STORAGE: 's3://from-env?region=eu-west-1', BERTH_REDIRECT: 'true' });
      const c = buildConfig(defaultConfig({}), fromFile, env);
      assert.equal(c.storage, 's3://from-env?region=eu-west-1');
      assert.equal(c.metadata, 'postgres://u@h/db');
      assert.equal(c.redirect, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses storage and metadata URLs it cannot use, without echoing credentials', () => {
    assert.throws(() => buildConfig(defaultConfig({}), { storage: '/srv/blobs' }), /storage must be s3:\/\/BUCKET/);
    assert.throws(
      () => buildConfig(defaultConfig({}), { metadata: 'mysql://root:secret@h/db' }),
      (err: Error) => /metadata must be postgres:\/\//.test(err.message) && !err.message.includes('secret'),
    );
  });

  it('parses s3:// URLs: bucket, prefix, endpoint, region, bucket creation', () => {
    assert.deepEqual(parseS3Url('s3://bucket/some/prefix?endpoint=http%3A%2F%2F127.0.0.1%3A7480&region=eu-west-1&create=false'), {
      bucket: 'bucket',
      endpoint: 'http://127.0.0.1:7480',
      region: 'eu-west-1',
      prefix: 'some/prefix/',
      createBucket: false,
    });
    assert.equal(parseS3Url('s3://b?region=r').prefix, '');
    assert.throws(() => parseS3Url('s3://b?endpont=x'), /unknown parameter "endpont"/);
    assert.throws(() => parseS3Url('http://b'), /expected s3:\/\//);
  });
});
