/**
 * Several `berth serve` replicas over one S3 bucket (Ceph RGW) and one PostgreSQL database,
 * behind Debian's haproxy (round robin): any request may go to any replica and the registry
 * behaves as one. Ceph starts once for the whole file (15-25 s).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import { cephNeeds, startCeph, type CephRgw } from '../helpers/ceph.js';
import { haproxyNeeds, startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { postgresNeeds, startPostgres, type PgServer } from '../helpers/postgres.js';
import { skipUnless } from '../helpers/requirements.js';
import { runBerth } from '../helpers/run-berth.js';
import { OCI_INDEX, OCI_MANIFEST, pushBlob, pushImage, pushImageBlobs, putManifest, sha256 } from './registry-client.js';

describe('replicas over S3 and PostgreSQL behind haproxy', { skip: skipUnless(...cephNeeds, ...postgresNeeds, ...haproxyNeeds) }, () => {
  let ceph: CephRgw;
  let pg: PgServer;
  let db: string;
  let storage: string;
  let env: NodeJS.ProcessEnv;
  let a: BerthRegistry;
  let b: BerthRegistry;
  let lb: Haproxy;
  const extra: BerthRegistry[] = [];

  const replica = () => startBerthRegistry({ args: ['--storage', storage, '--metadata', db, '--log-format', 'off'], env });
  /** `berth registry …` against the shared stores. */
  const registryCli = (...args: string[]) => runBerth(['registry', ...args, '--storage', storage, '--metadata', db, '--format', 'json'], { ...process.env, ...env });

  before(async () => {
    [ceph, pg] = await Promise.all([startCeph(), startPostgres()]);
    db = await pg.createDatabase();
    storage = `s3://replicas/reg?endpoint=${encodeURIComponent(ceph.endpoint)}&region=${ceph.region}`;
    env = { AWS_ACCESS_KEY_ID: ceph.accessKeyId, AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey };
    // Started together: the schema migration runs once, under the advisory lock.
    [a, b] = await Promise.all([replica(), replica()]);
    lb = await startHaproxy([a.host, b.host]);
  });
  after(async () => {
    await lb?.stop();
    await Promise.all([a?.stop(), b?.stop(), ...extra.map((r) => r.stop())]);
    await Promise.all([ceph?.stop(), pg?.stop()]);
  });

  it('serves a push through A from B at once: tags, manifests, referrers, blobs (redirected to S3)', async () => {
    const img = await pushImage(a.url, 'app/one', 'v1');
    const sig = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/x.sig',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 }],
        subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length },
      }),
    );
    await pushBlob(a.url, 'app/one', '{}');
    assert.equal((await putManifest(a.url, 'app/one', sha256(sig), sig)).status, 201);

    const byTag = await fetch(`${b.url}/v2/app/one/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(byTag.status, 200);
    assert.equal(byTag.headers.get('docker-content-digest'), img.digest);
    assert.ok(Buffer.from(await byTag.arrayBuffer()).equals(img.manifest));
    assert.deepEqual(await (await fetch(`${b.url}/v2/app/one/tags/list`)).json(), { name: 'app/one', tags: ['v1'] });
    const refs = (await (await fetch(`${b.url}/v2/app/one/referrers/${img.digest}`)).json()) as { manifests: { digest: string }[] };
    assert.deepEqual(refs.manifests.map((m) => m.digest), [sha256(sig)]);

    const redirect = await fetch(`${b.url}/v2/app/one/blobs/${sha256(img.layer)}`, { redirect: 'manual' });
    assert.equal(redirect.status, 307);
    assert.match(redirect.headers.get('location')!, new RegExp(`^${ceph.endpoint}/replicas/reg/blobs/sha256/`));
    const layer = await fetch(`${b.url}/v2/app/one/blobs/${sha256(img.layer)}`);
    assert.ok(Buffer.from(await layer.arrayBuffer()).equals(img.layer), 'the presigned URL serves the blob');
    const range = await fetch(`${b.url}/v2/app/one/blobs/${sha256(img.layer)}`, { headers: { Range: 'bytes=6-11' } });
    assert.equal(range.status, 206);
    assert.equal(await range.text(), img.layer.subarray(6, 12).toString());
    const head = await fetch(`${b.url}/v2/app/one/blobs/${sha256(img.config)}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(img.config.length));
  });

  it('finishes on B an upload started on A, in chunks of any size, and with one PATCH then a PUT elsewhere', async () => {
    const data = randomBytes(12 * 1024 * 1024 + 7);
    const post = await fetch(`${a.url}/v2/app/chunks/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    assert.equal(post.headers.get('oci-chunk-min-length'), String(5 * 1024 * 1024));
    const path = post.headers.get('location')!;
    // 1 MiB (buffered), 6 MiB (a part), 3 MiB, the rest: alternating replicas.
    const cuts = [0, 1 << 20, 7 << 20, 10 << 20, data.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const via = i % 2 === 0 ? b : a;
      const res = await fetch(`${via.url}${path}`, {
        method: 'PATCH',
        body: data.subarray(cuts[i], cuts[i + 1]),
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${cuts[i]}-${cuts[i + 1]! - 1}` },
      });
      assert.equal(res.status, 202, await res.text());
      assert.equal(res.headers.get('range'), `0-${cuts[i + 1]! - 1}`);
    }
    const status = await fetch(`${a.url}${path}`);
    assert.equal(status.headers.get('range'), `0-${data.length - 1}`);
    const digest = sha256(data);
    const put = await fetch(`${b.url}${path}?digest=${digest}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const back = Buffer.from(await (await fetch(`${a.url}/v2/app/chunks/blobs/${digest}`)).arrayBuffer());
    assert.ok(back.equals(data));

    // What skopeo and containerd do: POST, one PATCH with everything, PUT — here on three replicas in turn.
    const small = randomBytes(300_000);
    const p2 = await fetch(`${a.url}/v2/app/chunks/blobs/uploads/`, { method: 'POST' });
    const loc = p2.headers.get('location')!;
    assert.equal((await fetch(`${b.url}${loc}`, { method: 'PATCH', body: small, headers: { 'Content-Type': 'application/octet-stream' } })).status, 202);
    assert.equal((await fetch(`${a.url}${loc}?digest=${sha256(small)}`, { method: 'PUT' })).status, 201);
    const wrong = await fetch(`${a.url}/v2/app/chunks/blobs/uploads/`, { method: 'POST' });
    const wloc = wrong.headers.get('location')!;
    await fetch(`${b.url}${wloc}`, { method: 'PATCH', body: small, headers: { 'Content-Type': 'application/octet-stream' } });
    const bad = await fetch(`${a.url}${wloc}?digest=${sha256('something else')}`, { method: 'PUT' });
    assert.equal(bad.status, 400, 'a wrong digest is refused whichever replica closes the upload');
  });

  it('keeps both manifests when the same tag is pushed through both replicas at once, and the blob pushed twice once', async () => {
    for (let round = 0; round < 5; round++) {
      const [ia, ib] = await Promise.all([pushImageBlobs(a.url, 'app/race', `a${round}`), pushImageBlobs(b.url, 'app/race', `b${round}`)]);
      const [ra, rb] = await Promise.all([putManifest(a.url, 'app/race', 'latest', ia.manifest), putManifest(b.url, 'app/race', 'latest', ib.manifest)]);
      assert.equal(ra.status, 201);
      assert.equal(rb.status, 201);
      const fromA = (await fetch(`${a.url}/v2/app/race/manifests/latest`, { method: 'HEAD' })).headers.get('docker-content-digest');
      const fromB = (await fetch(`${b.url}/v2/app/race/manifests/latest`, { method: 'HEAD' })).headers.get('docker-content-digest');
      assert.equal(fromA, fromB, 'both replicas agree on the winner');
      assert.ok([ia.digest, ib.digest].includes(fromA!));
      for (const img of [ia, ib]) {
        assert.equal((await fetch(`${b.url}/v2/app/race/manifests/${img.digest}`, { method: 'HEAD' })).status, 200);
        assert.equal((await fetch(`${a.url}/v2/app/race/blobs/${sha256(img.layer)}`, { method: 'HEAD' })).status, 200);
      }
    }
    const blob = randomBytes(6 * 1024 * 1024);
    const digest = sha256(blob);
    const both = await Promise.all(
      [a, b].map((r) => fetch(`${r.url}/v2/app/same/blobs/uploads/?digest=${digest}`, { method: 'POST', body: blob, headers: { 'Content-Type': 'application/octet-stream' } })),
    );
    assert.deepEqual(both.map((r) => r.status), [201, 201]);
    const back = Buffer.from(await (await fetch(`${b.url}/v2/app/same/blobs/${digest}`)).arrayBuffer());
    assert.ok(back.equals(blob));
  });

  it('serves a tag moved on A as moved by B on the very next request', async () => {
    const imgs = [await pushImageBlobs(a.url, 'app/move', 'x'), await pushImageBlobs(a.url, 'app/move', 'y')];
    for (let i = 0; i < 10; i++) {
      const img = imgs[i % 2]!;
      assert.equal((await putManifest(a.url, 'app/move', 'current', img.manifest)).status, 201);
      const seen = await fetch(`${b.url}/v2/app/move/manifests/current`, { method: 'HEAD' });
      assert.equal(seen.headers.get('docker-content-digest'), img.digest, `round ${i}`);
    }
    // A deletion on B is seen by A at once too (A cached the manifest by digest a moment ago).
    const gone = imgs[1]!.digest;
    assert.equal((await fetch(`${a.url}/v2/app/move/manifests/${gone}`, { method: 'HEAD' })).status, 200);
    assert.equal((await fetch(`${b.url}/v2/app/move/manifests/${gone}`, { method: 'DELETE' })).status, 202);
    let status = 200;
    for (let i = 0; i < 20 && status === 200; i++) {
      status = (await fetch(`${a.url}/v2/app/move/manifests/${gone}`, { method: 'HEAD' })).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 404, 'the deletion reached A through NOTIFY');
  });

  it('pushes and pulls through haproxy, every request on the next replica', async () => {
    const pushed = await Promise.all([0, 1, 2, 3].map((i) => pushImage(lb.url, `lb/img${i}`, 'v1', `lb${i}`)));
    for (const [i, img] of pushed.entries()) {
      for (let k = 0; k < 2; k++) {
        const m = await fetch(`${lb.url}/v2/lb/img${i}/manifests/v1`);
        assert.equal(m.headers.get('docker-content-digest'), img.digest);
        await m.arrayBuffer();
      }
      assert.ok(Buffer.from(await (await fetch(`${lb.url}/v2/lb/img${i}/blobs/${sha256(img.layer)}`)).arrayBuffer()).equals(img.layer));
    }
    const health = (await (await fetch(`${lb.url}/healthz`)).json()) as Record<string, string>;
    assert.deepEqual(health, { status: 'ok', storage: 'ok', metadata: 'ok' });
  });

  it('lets a client whose replica was killed mid-push finish through another; verify is clean; gc keeps what is in use', async () => {
    const c = await replica();
    extra.push(c);
    const data = randomBytes(9 * 1024 * 1024);
    const post = await fetch(`${c.url}/v2/app/crash/blobs/uploads/`, { method: 'POST' });
    const path = post.headers.get('location')!;
    assert.equal((await fetch(`${c.url}${path}`, { method: 'PATCH', body: data.subarray(0, 6 << 20), headers: { 'Content-Range': `0-${(6 << 20) - 1}`, 'Content-Type': 'application/octet-stream' } })).status, 202);
    // The next chunk is cut off by the kill.
    const cut = fetch(`${c.url}${path}`, {
      method: 'PATCH',
      body: new ReadableStream({
        start(ctl) {
          ctl.enqueue(data.subarray(6 << 20, 7 << 20));
        },
      }),
      duplex: 'half',
      headers: { 'Content-Type': 'application/octet-stream' },
    } as RequestInit).catch((err: Error) => err);
    await new Promise((r) => setTimeout(r, 300));
    await c.kill9();
    await cut; // (fails or not: what matters is what the registry kept)
    // The client asks where the upload stands (through the load balancer) and resumes from there.
    const status = await fetch(`${lb.url}${path}`);
    assert.equal(status.status, 204);
    const have = Number(status.headers.get('range')!.split('-')[1]) + 1;
    assert.equal(have, 6 << 20, 'the acknowledged chunk is kept, the cut one is not');
    const rest = await fetch(`${lb.url}${path}`, { method: 'PATCH', body: data.subarray(have), headers: { 'Content-Range': `${have}-${data.length - 1}`, 'Content-Type': 'application/octet-stream' } });
    assert.equal(rest.status, 202, await rest.text());
    const put = await fetch(`${lb.url}${path}?digest=${sha256(data)}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const img = await pushImageBlobs(lb.url, 'app/crash', 'after-crash');
    assert.equal((await putManifest(lb.url, 'app/crash', 'v1', img.manifest)).status, 201);

    // Collect beside the running replicas: everything here is referenced or recent.
    const gc = await registryCli('gc');
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual((JSON.parse(gc.stdout) as { blobs: unknown[] }).blobs, []);
    const verify = await registryCli('verify');
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.deepEqual((JSON.parse(verify.stdout) as { problems: unknown[] }).problems, []);
    assert.equal((await fetch(`${lb.url}/v2/app/crash/blobs/${sha256(data)}`, { method: 'HEAD' })).status, 200);
  });

  it('migrates a filesystem + SQLite registry into S3 + PostgreSQL, verified, resumable, served by a replica', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'berth-migrate-'));
    try {
      const src = await startBerthRegistry({ dataDir, args: ['--log-format', 'off'] });
      const big = randomBytes(7 * 1024 * 1024);
      const one = await pushImage(src.url, 'm/app', 'v1', 'm1');
      const two = await pushImage(src.url, 'm/app', 'v2', 'm2', { annotations: { big: await pushBlob(src.url, 'm/app', big) } });
      await pushBlob(src.url, 'm/other', big);
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [one, two].map((i) => ({ mediaType: OCI_MANIFEST, digest: i.digest, size: i.manifest.length, platform: { os: 'linux', architecture: 'amd64' } })),
        }),
      );
      assert.equal((await putManifest(src.url, 'm/app', 'multi', index, OCI_INDEX)).status, 201);
      await src.stop();

      const db2 = await pg.createDatabase();
      const target = `s3://migrated?endpoint=${encodeURIComponent(ceph.endpoint)}&region=${ceph.region}`;
      const migrate = () => runBerth(['registry', 'migrate', '--data', dataDir, '--to-storage', target, '--to-metadata', db2, '--format', 'json'], { ...process.env, ...env });
      const first = await migrate();
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const r1 = JSON.parse(first.stdout) as { blobsCopied: number; blobsPresent: number; manifests: number; tags: number; problems: unknown[] };
      assert.deepEqual({ copied: r1.blobsCopied, manifests: r1.manifests, tags: r1.tags, problems: r1.problems }, { copied: 5, manifests: 3, tags: 3, problems: [] });
      const again = JSON.parse((await migrate()).stdout) as { blobsCopied: number; blobsPresent: number };
      assert.deepEqual([again.blobsCopied, again.blobsPresent], [0, 5], 'a second run copies nothing again');

      const served = await startBerthRegistry({ args: ['--storage', target, '--metadata', db2, '--log-format', 'off'], env });
      extra.push(served);
      const idx = await fetch(`${served.url}/v2/m/app/manifests/multi`, { headers: { Accept: OCI_INDEX } });
      assert.ok(Buffer.from(await idx.arrayBuffer()).equals(index));
      assert.deepEqual(((await (await fetch(`${served.url}/v2/m/app/tags/list`)).json()) as { tags: string[] }).tags, ['multi', 'v1', 'v2']);
      assert.ok(Buffer.from(await (await fetch(`${served.url}/v2/m/other/blobs/${sha256(big)}`)).arrayBuffer()).equals(big));
      assert.ok(Buffer.from(await (await fetch(`${served.url}/v2/m/app/blobs/${sha256(two.layer)}`)).arrayBuffer()).equals(two.layer));
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
