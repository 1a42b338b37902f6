/**
 * The registry beyond one machine, in one run on this machine: Debian's docker-registry
 * (distribution 2.8) with its s3-aws driver against `berth serve` on S3 + PostgreSQL, both over
 * the same single-node Ceph RGW; then two berth replicas behind haproxy (round robin).
 *  - GET manifest by tag (wrk -t2 -c32): req/s and p99;
 *  - GET blob (wrk, redirects not followed: the 307 to a presigned URL each answers);
 *  - skopeo copy push and pull of a ~200 MB multi-layer image (pulls follow the redirects to Ceph);
 *  - resident memory of a berth replica under that load.
 *
 *   node dist/bench/scale-out.js        BERTH_BENCH_SECONDS=10 BERTH_BENCH_MB=200 to override
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startBerthRegistry } from '../test/helpers/berth-registry.js';
import { startCeph, type CephRgw } from '../test/helpers/ceph.js';
import { freePort, REGISTRY_BIN } from '../test/helpers/distribution.js';
import { startDaemon, waitFor } from '../test/helpers/daemons.js';
import { startHaproxy } from '../test/helpers/haproxy.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { which } from '../test/helpers/requirements.js';
import { buildBigLayout, MANIFEST_TYPE, pushSmallImage, rssMb, row, skopeoAsync, timeSkopeo, wrk, type Load } from './lib/registry-load.js';
import { spawnSync } from 'node:child_process';

function wrkWarmUp(url: string): void {
  spawnSync('wrk', ['-t2', '-c32', '-d2s', url], { stdio: 'ignore' });
}

interface Target {
  name: string;
  url: string;
  host: string;
  pid?: number;
}

/** docker-registry with storage.s3 on Ceph (its own bucket), without AWS_CA_BUNDLE (2.8.2 panics on it). */
async function startDistributionS3(ceph: CephRgw, dir: string): Promise<Target & { stop(): Promise<void> }> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const s3 = new S3Client({
    region: ceph.region,
    endpoint: ceph.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
  });
  await s3.send(new CreateBucketCommand({ Bucket: 'distribution' }));
  s3.destroy();
  const port = await freePort();
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    `version: 0.1
log:
  level: error
storage:
  s3:
    regionendpoint: ${ceph.endpoint}
    region: ${ceph.region}
    bucket: distribution
    accesskey: ${ceph.accessKeyId}
    secretkey: ${ceph.secretAccessKey}
    secure: false
    v4auth: true
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: bench
`,
  );
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  const d = startDaemon('docker-registry', REGISTRY_BIN, ['serve', config], join(dir, 'registry.log'), { env });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`docker-registry on ${url}`, async () => (await fetch(`${url}/v2/`)).status === 200, 20_000, d);
  return { name: 'distribution s3', url, host: `127.0.0.1:${port}`, pid: d.pid, stop: d.stop };
}

function loadRow(label: string, berth: Load, dist: Load): void {
  row(label, berth.rps, dist.rps, 'req/s', true);
  console.log(`${''.padEnd(34)} p99   ${berth.p99ms.toFixed(2).padStart(9)} ms     p99          ${dist.p99ms.toFixed(2).padStart(9)} ms     errors ${berth.errors}/${dist.errors}`);
}

async function main(): Promise<void> {
  for (const tool of ['ceph-mon', 'ceph-osd', 'radosgw', 'haproxy', 'wrk', 'skopeo', REGISTRY_BIN, '/usr/lib/postgresql/15/bin/postgres']) {
    if (!which(tool)) {
      console.log(`skipping the scale-out benchmark: ${tool} is missing`);
      return;
    }
  }
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-scale-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const [ceph, pg] = await Promise.all([startCeph(), startPostgres()]);
    stops.push(ceph.stop, pg.stop);
    mkdirSync(join(work, 'dist'));
    const dist = await startDistributionS3(ceph, join(work, 'dist'));
    stops.unshift(dist.stop);
    const db = await pg.createDatabase();
    const storage = `s3://berth?endpoint=${encodeURIComponent(ceph.endpoint)}&region=${ceph.region}`;
    const env = { AWS_ACCESS_KEY_ID: ceph.accessKeyId, AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey };
    const replica = () => startBerthRegistry({ args: ['--storage', storage, '--metadata', db, '--log-format', 'off'], env });
    const [a, b] = await Promise.all([replica(), replica()]);
    stops.unshift(a.stop, b.stop);
    const lb = await startHaproxy([a.host, b.host]);
    stops.unshift(lb.stop);
    const berth: Target = { name: 'berth', url: a.url, host: a.host, pid: a.child.pid };
    const two: Target = { name: 'berth x2', url: lb.url, host: new URL(lb.url).host };
    const idle = rssMb(berth.pid!);

    const small = new Map<Target, string>();
    for (const t of [berth, dist]) small.set(t, await pushSmallImage(t.url));
    small.set(two, small.get(berth)!);
    // A short run first on each (JIT, connection pools), not counted.
    for (const t of [berth, dist, two]) wrkWarmUp(`${t.url}/v2/bench/app/manifests/latest`);
    const manifestLoad = (t: Target) => wrk(`${t.url}/v2/bench/app/manifests/latest`, [`Accept: ${MANIFEST_TYPE}`]);
    const blobLoad = (t: Target) => wrk(`${t.url}/v2/bench/app/blobs/${small.get(t)}`);
    const m = { berth: manifestLoad(berth), dist: manifestLoad(dist), two: manifestLoad(two) };
    const loaded = rssMb(berth.pid!);
    const bl = { berth: blobLoad(berth), dist: blobLoad(dist) };
    console.log('');
    loadRow('GET manifest by tag (wrk)', m.berth, m.dist);
    loadRow('GET blob: 307 to S3 (wrk)', bl.berth, bl.dist);
    loadRow('GET manifest, 2 replicas + haproxy', m.two, m.dist);

    console.log('');
    const layout = await buildBigLayout(join(work, 'big'));
    const push = new Map<Target, number>();
    const pull = new Map<Target, number>();
    for (const round of [0, 1]) {
      for (const t of round === 0 ? [berth, dist] : [dist, berth]) {
        const ref = `${t.host}/bench/big-r${round}:v1`;
        push.set(t, Math.min(push.get(t) ?? Infinity, timeSkopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${ref}`])));
        const out = join(work, `pull-${round}`);
        pull.set(t, Math.min(pull.get(t) ?? Infinity, timeSkopeo(['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:big`])));
        rmSync(out, { recursive: true, force: true });
      }
    }
    const pushTwo = timeSkopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${two.host}/bench/big-lb:v1`]);
    // Two pushes at once into one replica: ten layer uploads share its part buffers.
    const concurrent = await Promise.all([1, 2].map((i) => skopeoAsync(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${berth.host}/bench/big-c${i}:v1`])));
    row(`skopeo push ~${process.env.BERTH_BENCH_MB ?? 200} MB (best of 2)`, push.get(berth)!, push.get(dist)!, 's', false);
    row(`skopeo pull ~${process.env.BERTH_BENCH_MB ?? 200} MB (best of 2)`, pull.get(berth)!, pull.get(dist)!, 's', false);
    row('skopeo push, 2 replicas + haproxy', pushTwo, push.get(dist)!, 's', false);
    console.log(`two concurrent skopeo pushes into one replica: ${concurrent.map((t) => t.toFixed(2)).join(' and ')} s`);
    const after = rssMb(berth.pid!);
    const distMem = rssMb(dist.pid!);
    console.log('');
    console.log(`berth replica memory: idle ${idle.rss.toFixed(1)} MB, under GET load VmRSS ${loaded.rss.toFixed(1)} MB, peak over the run (pushes included) ${after.hwm.toFixed(1)} MB`);
    console.log(`distribution memory: VmRSS ${distMem.rss.toFixed(1)} MB (peak ${distMem.hwm.toFixed(1)} MB)`);
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
