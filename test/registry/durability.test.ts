/**
 * Storage that does not lose data: concurrent pushes against a `berth serve` child that is
 * killed with SIGKILL in the middle; after a restart, every push that got its 201 is readable
 * and verified, nothing half-written is visible, and `berth registry verify` finds no problem.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BERTH_BIN, startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, sha256 } from './registry-client.js';

interface Completed {
  blobs: Map<string, string>; // digest → repo
  /** Pushes started (acknowledged or not): each must be absent or whole after the restart. */
  attempted: Map<string, string>;
  manifests: { repo: string; tag: string; digest: string }[];
}

async function chunkedPush(base: string, repo: string, data: Buffer): Promise<void> {
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (post.status !== 202) throw new Error(`POST ${post.status}`);
  let loc = new URL(post.headers.get('location')!, base);
  const chunk = 64 * 1024;
  for (let off = 0; off < data.length; off += chunk) {
    const part = data.subarray(off, Math.min(off + chunk, data.length));
    const res = await fetch(loc, { method: 'PATCH', body: part, headers: { 'Content-Range': `${off}-${off + part.length - 1}` } });
    if (res.status !== 202) throw new Error(`PATCH ${res.status}`);
    loc = new URL(res.headers.get('location')!, base);
  }
  loc.searchParams.set('digest', sha256(data));
  const put = await fetch(loc, { method: 'PUT' });
  if (put.status !== 201) throw new Error(`PUT ${put.status}`);
}

async function worker(base: string, id: number, done: Completed, stop: { now: boolean }): Promise<void> {
  let n = 0;
  while (!stop.now) {
    const repo = `crash/w${id}`;
    try {
      const layer = randomBytes(100_000 + Math.floor(Math.random() * 300_000));
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', worker: id, n }));
      done.attempted.set(sha256(layer), repo);
      await chunkedPush(base, repo, layer);
      done.blobs.set(sha256(layer), repo);
      done.attempted.set(sha256(config), repo);
      await chunkedPush(base, repo, config);
      done.blobs.set(sha256(config), repo);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
          layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length }],
        }),
      );
      const tag = `t${n}`;
      const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'Content-Type': OCI_MANIFEST } });
      if (res.status === 201) done.manifests.push({ repo, tag, digest: sha256(manifest) });
      n++;
    } catch {
      // the server died under us: stop
      return;
    }
  }
}

describe('durability across kill -9', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-crash-'));
  let reg: BerthRegistry | undefined;
  after(async () => {
    await reg?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps every acknowledged push and shows nothing half-written', async () => {
    const done: Completed = { blobs: new Map(), attempted: new Map(), manifests: [] };
    // BERTH_SLOW_TESTS=1: more kills (a soak); the default still kills twice.
    const rounds = process.env.BERTH_SLOW_TESTS === '1' ? 8 : 2;
    for (let round = 0; round < rounds; round++) {
      reg = await startBerthRegistry({ dataDir, args: ['--log-format', 'off'] });
      const stop = { now: false };
      const workers = [0, 1, 2, 3, 4, 5].map((i) => worker(reg!.url, i + round * 10, done, stop));
      // Let a few pushes complete (the machine may be busy), then kill at a random moment.
      const target = done.manifests.length + 3;
      for (let waited = 0; done.manifests.length < target && waited < 20_000; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 300));
      await reg.kill9();
      stop.now = true;
      await Promise.all(workers);
    }
    assert.ok(done.manifests.length >= 6, `only ${done.manifests.length} pushes completed before the kill`);

    reg = await startBerthRegistry({ dataDir, args: ['--log-format', 'off'] });
    for (const [digest, repo] of done.blobs) {
      const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
      assert.equal(res.status, 200, `blob ${digest} acknowledged with 201 is missing after the restart`);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), digest);
    }
    let halfWay = 0;
    for (const [digest, repo] of done.attempted) {
      if (done.blobs.has(digest)) continue;
      halfWay++;
      const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
      if (res.status === 200) assert.equal(sha256(Buffer.from(await res.arrayBuffer())), digest, 'a half-written blob is visible');
      else assert.equal(res.status, 404);
    }
    assert.ok(halfWay > 0, 'the kill should interrupt at least one upload');
    for (const m of done.manifests) {
      const res = await fetch(`${reg.url}/v2/${m.repo}/manifests/${m.tag}`);
      assert.equal(res.status, 200, `manifest ${m.repo}:${m.tag} acknowledged with 201 is missing`);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), m.digest);
    }
    await reg.stop();
    reg = undefined;
    // Every blob and manifest the metadata shows is whole, and every reference resolves.
    const verify = spawnSync(process.execPath, [BERTH_BIN, 'registry', 'verify', '--data', dataDir, '--format', 'json'], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    const report = JSON.parse(verify.stdout) as { checked: number; problems: unknown[] };
    assert.deepEqual(report.problems, []);
    assert.ok(report.checked >= done.blobs.size);
  });
});
