/**
 * Sparse manifests: with --sparse-manifests the registry accepts a manifest or index whose
 * references are not all present (distribution-spec: a registry MAY reject them), so a mirror can
 * hold one platform of a multi-platform index; the missing parts answer 404 and verify knows them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { runBerth } from '../helpers/run-berth.js';
import { errorCode, OCI_INDEX, OCI_MANIFEST, pushImage, putManifest, sha256 } from './registry-client.js';

const absent = sha256('a platform this mirror does not hold');
const index = (present: { digest: string; manifest: Buffer }) =>
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: present.digest, size: present.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: absent, size: 500, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    }),
  );

describe('sparse manifests', () => {
  let sparse: BerthRegistry;
  let strict: BerthRegistry;
  before(async () => {
    [sparse, strict] = await Promise.all([startBerthRegistry({ args: ['--sparse-manifests', '--log-format', 'off'] }), startBerthRegistry({ args: ['--log-format', 'off'] })]);
  });
  after(() => Promise.all([sparse?.stop(), strict?.stop()]));

  it('refuses an index with a missing child by default, accepts it with --sparse-manifests', async () => {
    const img = await pushImage(strict.url, 'multi/app', 'amd64');
    const refused = await putManifest(strict.url, 'multi/app', 'v1', index(img), OCI_INDEX);
    assert.equal(refused.status, 400);
    assert.equal(await errorCode(refused), 'MANIFEST_BLOB_UNKNOWN');

    const mine = await pushImage(sparse.url, 'multi/app', 'amd64');
    const body = index(mine);
    const accepted = await putManifest(sparse.url, 'multi/app', 'v1', body, OCI_INDEX);
    assert.equal(accepted.status, 201, await accepted.text());
    const got = await fetch(`${sparse.url}/v2/multi/app/manifests/v1`, { headers: { Accept: OCI_INDEX } });
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(body));
    assert.equal((await fetch(`${sparse.url}/v2/multi/app/manifests/${mine.digest}`, { method: 'HEAD' })).status, 200);
    assert.equal((await fetch(`${sparse.url}/v2/multi/app/manifests/${absent}`, { method: 'HEAD' })).status, 404, 'the missing platform answers 404');

    await sparse.stop();
    const verify = await runBerth(['registry', 'verify', '--data', sparse.dataDir, '--format', 'json']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.deepEqual((JSON.parse(verify.stdout) as { problems: unknown[] }).problems, []);
    const gc = await runBerth(['registry', 'gc', '--data', sparse.dataDir, '--grace', '0', '--dry-run', '--format', 'json']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual((JSON.parse(gc.stdout) as { blobs: unknown[] }).blobs, [], 'the blobs of the present platform stay');
  });
});
