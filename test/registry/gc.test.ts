/**
 * Garbage collection: unreferenced blobs and (optionally) untagged manifests go, with a grace
 * period for recent pushes; referrers of kept manifests stay; orphan files left by a crash go;
 * dry runs change nothing; collecting while pushes run loses nothing that is referenced.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildConfig, defaultConfig } from '../../src/registry/config.js';
import { collectGarbage, type GcReport } from '../../src/registry/gc.js';
import { openRegistry, type Registry } from '../../src/registry/registry.js';
import { RegistryServer } from '../../src/registry/server.js';
import { verifyRegistry } from '../../src/registry/verify.js';
import { BERTH_BIN, startBerthRegistry } from '../helpers/berth-registry.js';
import { OCI_MANIFEST, pushBlob, pushImage, pushImageBlobs, putManifest, sha256 } from './registry-client.js';

describe('garbage collection', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-gc-'));
  let registry: Registry;
  let server: RegistryServer;
  let base: string;

  before(async () => {
    const config = buildConfig(defaultConfig(), { addr: '127.0.0.1:0', data: dataDir, logFormat: 'off' });
    registry = await openRegistry(config);
    server = new RegistryServer(registry);
    const addr = await server.listen();
    base = `http://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const gc = (opts: { dryRun?: boolean; deleteUntagged?: boolean; graceMs?: number }): Promise<GcReport> =>
    collectGarbage(registry.meta, registry.blobs, registry.digestLocks, {
      dryRun: opts.dryRun ?? false,
      deleteUntagged: opts.deleteUntagged ?? false,
      graceMs: opts.graceMs ?? 0,
      now: Date.now() + 1000,
    });

  const status = async (repo: string, kind: 'blobs' | 'manifests', ref: string) => (await fetch(`${base}/v2/${repo}/${kind}/${ref}`, { method: 'HEAD' })).status;

  it('removes unreferenced blobs and untagged manifests, keeps everything reachable', async () => {
    const kept = await pushImage(base, 'gc/app', 'v1', 'kept');
    const deleted = await pushImage(base, 'gc/app', 'old', 'deleted');
    const untagged = await pushImage(base, 'gc/app', 'moving', 'untagged');
    const current = await pushImage(base, 'gc/app', 'moving', 'current');
    const lone = await pushBlob(base, 'gc/app', 'a blob no manifest uses');
    // a referrer (untagged by nature) of a kept manifest
    const sbom = await pushImageBlobs(base, 'gc/app', 'sbom', { subject: { mediaType: OCI_MANIFEST, digest: kept.digest, size: kept.manifest.length } });
    assert.equal((await putManifest(base, 'gc/app', sbom.digest, sbom.manifest)).status, 201);
    assert.equal((await fetch(`${base}/v2/gc/app/manifests/${deleted.digest}`, { method: 'DELETE' })).status, 202);

    const within = await gc({ graceMs: 3600_000, deleteUntagged: true });
    assert.equal(within.blobs.length + within.manifests.length, 0, 'nothing younger than the grace period goes');

    const dry = await gc({ dryRun: true, deleteUntagged: true });
    assert.deepEqual(dry.manifests, [{ repo: 'gc/app', digest: untagged.digest }]);
    const dryBlobs = dry.blobs.map((b) => b.digest).sort();
    assert.deepEqual(dryBlobs, [sha256(deleted.config), sha256(deleted.layer), lone, sha256(untagged.config), sha256(untagged.layer)].sort());
    assert.equal(await status('gc/app', 'blobs', lone), 200, 'a dry run changes nothing');

    const report = await gc({ deleteUntagged: true });
    assert.deepEqual(report.manifests, [{ repo: 'gc/app', digest: untagged.digest }]);
    assert.deepEqual(
      report.blobs.map((b) => b.digest).sort(),
      [sha256(deleted.config), sha256(deleted.layer), lone, sha256(untagged.config), sha256(untagged.layer)].sort(),
    );
    assert.ok(report.bytesFreed > 0);
    for (const d of report.blobs) assert.equal(await registry.blobs.stat(d.digest), undefined, `${d.digest} file must be gone`);
    assert.equal(await status('gc/app', 'manifests', untagged.digest), 404);
    for (const img of [kept, current, sbom]) {
      assert.equal(await status('gc/app', 'manifests', img.digest), 200);
      assert.equal(await status('gc/app', 'blobs', sha256(img.config)), 200);
      assert.equal(await status('gc/app', 'blobs', sha256(img.layer)), 200);
    }
    assert.deepEqual((await verifyRegistry(registry.meta, registry.blobs)).problems, []);
  });

  it('without deleteUntagged, untagged manifests and their blobs stay', async () => {
    const a = await pushImage(base, 'gc/keep', 'tag', 'a');
    await pushImage(base, 'gc/keep', 'tag', 'b');
    const report = await gc({});
    assert.equal(report.manifests.length, 0);
    assert.equal(await status('gc/keep', 'manifests', a.digest), 200);
    assert.equal(await status('gc/keep', 'blobs', sha256(a.layer)), 200);
  });

  it('removes old orphan files (a crash between rename and commit) but not recent ones', async () => {
    const old = sha256('orphan');
    const young = sha256('young orphan');
    for (const [d, age] of [[old, 7200], [young, 0]] as const) {
      const hex = d.slice(7);
      const path = join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, d === old ? 'orphan' : 'young orphan');
      const t = (Date.now() - age * 1000) / 1000;
      utimesSync(path, t, t);
    }
    const report = await collectGarbage(registry.meta, registry.blobs, registry.digestLocks, { dryRun: false, deleteUntagged: false, graceMs: 3600_000 });
    assert.deepEqual(report.orphans, [old]);
    assert.equal(await registry.blobs.stat(old), undefined);
    assert.ok(await registry.blobs.stat(young));
  });

  it('collecting while images are pushed loses nothing referenced', async () => {
    const pushed: { repo: string; tag: string; digest: string; layer: Buffer }[] = [];
    let stop = false;
    const pushers = [0, 1, 2].map(async (w) => {
      for (let i = 0; !stop; i++) {
        const img = await pushImage(base, `gc/live${w}`, `t${i}`, `live-${w}-${i}`);
        pushed.push({ repo: `gc/live${w}`, tag: `t${i}`, digest: img.digest, layer: img.layer });
      }
    });
    const collectors = (async () => {
      for (let i = 0; i < 15; i++) {
        await collectGarbage(registry.meta, registry.blobs, registry.digestLocks, { dryRun: false, deleteUntagged: true, graceMs: 60_000 });
      }
    })();
    await collectors;
    stop = true;
    await Promise.all(pushers);
    assert.ok(pushed.length > 0);
    for (const p of pushed) {
      const res = await fetch(`${base}/v2/${p.repo}/manifests/${p.tag}`, { method: 'HEAD' });
      assert.equal(res.headers.get('docker-content-digest'), p.digest);
      const blob = await fetch(`${base}/v2/${p.repo}/blobs/${sha256(p.layer)}`);
      assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), sha256(p.layer));
    }
    assert.deepEqual((await verifyRegistry(registry.meta, registry.blobs)).problems, []);
  });

  it('berth registry gc refuses to delete while berth serve runs on the same data (dry runs are fine)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-gc-live-'));
    const live = await startBerthRegistry({ dataDir: dir, args: ['--log-format', 'off'] });
    try {
      const gcCli = (...args: string[]) => spawnSync(process.execPath, [BERTH_BIN, 'registry', 'gc', '--data', dir, ...args], { encoding: 'utf8' });
      const refused = gcCli();
      assert.equal(refused.status, 2);
      assert.match(refused.stderr, new RegExp(`berth serve \\(pid ${live.child.pid}\\) is using .*--gc-interval`));
      assert.equal(gcCli('--dry-run').status, 0);
      await live.stop();
      assert.equal(gcCli().status, 0, 'allowed once the server stopped');
    } finally {
      await live.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('berth registry gc --dry-run prints what would go; berth registry verify finds corruption', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-gc-cli-'));
    try {
      const config = buildConfig(defaultConfig(), { addr: '127.0.0.1:0', data: dir, logFormat: 'off' });
      const reg2 = await openRegistry(config);
      const srv = new RegistryServer(reg2);
      const port = (await srv.listen()).port;
      const lone = await pushBlob(`http://127.0.0.1:${port}`, 'cli/app', 'lonely');
      const img = await pushImage(`http://127.0.0.1:${port}`, 'cli/app', 'v1');
      await srv.close();
      const dry = spawnSync(process.execPath, [BERTH_BIN, 'registry', 'gc', '--dry-run', '--grace', '0', '--data', dir], { encoding: 'utf8' });
      assert.equal(dry.status, 0, dry.stderr);
      assert.match(dry.stdout, new RegExp(`would remove blob ${lone}`));
      const hex = lone.slice(7);
      assert.ok(existsSync(join(dir, 'blobs', 'sha256', hex.slice(0, 2), hex)));
      // corrupt the layer of the tagged image: verify must say so and fail
      const layerHex = sha256(img.layer).slice(7);
      writeFileSync(join(dir, 'blobs', 'sha256', layerHex.slice(0, 2), layerHex), Buffer.alloc(img.layer.length, 1));
      const verify = spawnSync(process.execPath, [BERTH_BIN, 'registry', 'verify', '--data', dir], { encoding: 'utf8' });
      assert.equal(verify.status, 1);
      assert.match(verify.stdout, new RegExp(`blob-corrupt: blob ${sha256(img.layer)}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
