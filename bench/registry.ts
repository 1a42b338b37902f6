/**
 * berth serve vs Debian's docker-registry (CNCF distribution 2.8.2), both on loopback, one run:
 *  - requests/s and p99 latency: GET manifest by tag (wrk -t2 -c32), HEAD blob (ab -i -k -c32,
 *    since wrk 4.1 never completes HEAD requests), GET small blob (wrk);
 *  - skopeo copy push and pull of a ~200 MB multi-layer image (layers: tars of /usr subtrees);
 *  - resident memory of berth serve idle and under load (VmRSS / VmHWM).
 * Prints each figure for both and the ratio berth/distribution.
 *
 *   node dist/bench/registry.js        BERTH_BENCH_SECONDS=10 BERTH_BENCH_MB=200 to override
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startRegistry } from '../test/helpers/distribution.js';

const SECONDS = Number(process.env.BERTH_BENCH_SECONDS ?? 10);
const TARGET_MB = Number(process.env.BERTH_BENCH_MB ?? 200);
const BERTH_BIN = join(fileURLToPath(import.meta.url), '..', '..', '..', 'bin', 'berth.cjs');
const SKOPEO_ENV = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

interface Server {
  name: string;
  url: string;
  host: string;
  pid: number;
  stop(): Promise<void>;
}

async function waitFor(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${url}: server exited with ${child.exitCode}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} did not come up`);
}

/** Debian's docker-registry, started as the client tests start it. */
async function startDistribution(): Promise<Server> {
  const reg = await startRegistry();
  return { name: 'distribution', url: `http://${reg.host}`, host: reg.host, pid: reg.pid, stop: reg.stop };
}

async function startBerth(dir: string): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, [BERTH_BIN, 'serve', '--addr', `127.0.0.1:${port}`, '--data', join(dir, 'data'), '--log-format', 'off'], {
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/v2/`, child);
  const stop = async () => {
    child.kill('SIGKILL');
  };
  return { name: 'berth', url, host: `127.0.0.1:${port}`, pid: child.pid!, stop };
}

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

async function pushBlob(base: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(post.headers.get('location')!, base);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, { method: 'PUT', body: data, headers: { 'Content-Type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`push to ${base}: ${put.status}`);
  return digest;
}

/** A small image: a 1 KiB config-sized layer and a config. Returns the small blob's digest. */
async function pushSmallImage(base: string): Promise<string> {
  const layer = Buffer.alloc(1024, 'x');
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  await pushBlob(base, 'bench/app', layer);
  await pushBlob(base, 'bench/app', config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  const res = await fetch(`${base}/v2/bench/app/manifests/latest`, { method: 'PUT', body: manifest, headers: { 'Content-Type': MANIFEST_TYPE } });
  if (res.status !== 201) throw new Error(`manifest push to ${base}: ${res.status}`);
  return sha256(layer);
}

interface Load {
  rps: number;
  p99ms: number;
  errors: number;
}

function ms(value: string, unit: string): number {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : unit === 'm' ? v * 60000 : v;
}

function wrk(url: string, headers: string[] = []): Load {
  const args = ['-t2', '-c32', `-d${SECONDS}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const r = spawnSync('wrk', args, { encoding: 'utf8' });
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  const p99 = /\s99%\s+([\d.]+)(us|ms|s|m)\b/.exec(r.stdout);
  const errs = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.stdout);
  if (!rps || !p99) throw new Error(`wrk output not understood: ${r.stdout}${r.stderr}`);
  const sockErrs = sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0;
  return { rps: Number(rps[1]), p99ms: ms(p99[1]!, p99[2]!), errors: (errs ? Number(errs[1]) : 0) + sockErrs };
}

function abHead(url: string): Load {
  const n = Math.max(20000, SECONDS * 2000);
  const r = spawnSync('ab', ['-q', '-i', '-k', '-c', '32', '-n', String(n), url], { encoding: 'utf8' });
  const rps = /Requests per second:\s+([\d.]+)/.exec(r.stdout);
  const p99 = /\s99%\s+(\d+)/.exec(r.stdout);
  const failed = /Failed requests:\s+(\d+)/.exec(r.stdout);
  const non2xx = /Non-2xx responses:\s+(\d+)/.exec(r.stdout);
  if (!rps || !p99) throw new Error(`ab output not understood: ${r.stdout}${r.stderr}`);
  return { rps: Number(rps[1]), p99ms: Number(p99[1]), errors: Number(failed?.[1] ?? 0) + Number(non2xx?.[1] ?? 0) };
}

function rssMb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** A ~TARGET_MB multi-layer OCI layout: uncompressed tars of /usr subtrees, written directly. */
async function buildBigLayout(dir: string): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const trees = ['/usr/lib/x86_64-linux-gnu', '/usr/share', '/usr/bin', '/usr/lib/gcc', '/usr/lib/python3', '/usr/include', '/usr/sbin'];
  const layers: { digest: string; size: number }[] = [];
  let total = 0;
  const perLayer = (TARGET_MB * 1024 * 1024) / 5;
  for (const tree of trees) {
    if (total >= TARGET_MB * 1024 * 1024 || !existsSync(tree)) continue;
    const tmp = join(dir, 'layer.tar');
    // head -c bounds each layer; a truncated tar is still a fine blob for a transfer benchmark
    spawnSync('sh', ['-c', `tar -cf - -C ${tree} . 2>/dev/null | head -c ${Math.floor(perLayer)} > ${tmp}`]);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(tmp)) hash.update(chunk as Buffer);
    const digest = `sha256:${hash.digest('hex')}`;
    renameSync(tmp, join(blobs, digest.slice(7)));
    const size = statSync(join(blobs, digest.slice(7))).size;
    layers.push({ digest, size });
    total += size;
  }
  const put = (data: Buffer) => {
    const d = sha256(data);
    writeFileSync(join(blobs, d.slice(7)), data);
    return { digest: d, size: data.length };
  };
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } })));
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
      }),
    ),
  );
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MANIFEST_TYPE, ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'big' } }] }),
  );
  console.log(`big image: ${layers.length} layers, ${(total / 1024 / 1024).toFixed(0)} MB`);
  return dir;
}

function timeSkopeo(args: string[]): number {
  const start = process.hrtime.bigint();
  const r = spawnSync('skopeo', args, { env: SKOPEO_ENV, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`skopeo ${args.join(' ')}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function row(label: string, berth: number, dist: number, unit: string, higherIsBetter: boolean): void {
  const ratio = higherIsBetter ? berth / dist : dist / berth;
  console.log(`${label.padEnd(34)} berth ${berth.toFixed(unit === 'req/s' ? 0 : 2).padStart(9)} ${unit.padEnd(6)} distribution ${dist.toFixed(unit === 'req/s' ? 0 : 2).padStart(9)} ${unit.padEnd(6)} ratio ${ratio.toFixed(2)}x${higherIsBetter ? '' : ' (faster)'}`);
}

async function main(): Promise<void> {
  for (const tool of ['/usr/bin/docker-registry', '/usr/bin/wrk', '/usr/bin/ab', '/usr/bin/skopeo']) {
    if (!existsSync(tool)) {
      console.log(`skipping the registry benchmark: ${tool} is missing`);
      return;
    }
  }
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-registry-'));
  const servers: Server[] = [];
  try {
    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    mkdirSync(join(work, 'berth'));
    const dist = await startDistribution();
    servers.push(dist);
    const berth = await startBerth(join(work, 'berth'));
    servers.push(berth);
    const idle = rssMb(berth.pid);
    const smallBlob = new Map<Server, string>();
    for (const s of [berth, dist]) smallBlob.set(s, await pushSmallImage(s.url));

    const results = new Map<string, Map<Server, Load>>();
    const measureAll = (label: string, f: (s: Server) => Load) => {
      const m = new Map<Server, Load>();
      for (const s of [berth, dist]) m.set(s, f(s));
      results.set(label, m);
    };
    measureAll('GET manifest by tag (wrk)', (s) => wrk(`${s.url}/v2/bench/app/manifests/latest`, [`Accept: ${MANIFEST_TYPE}`]));
    measureAll('HEAD blob (ab -i -k)', (s) => abHead(`${s.url}/v2/bench/app/blobs/${smallBlob.get(s)}`));
    measureAll('GET small blob 1 KiB (wrk)', (s) => wrk(`${s.url}/v2/bench/app/blobs/${smallBlob.get(s)}`));
    const loaded = rssMb(berth.pid);
    const distMem = rssMb(dist.pid);

    console.log('');
    for (const [label, m] of results) {
      const b = m.get(berth)!;
      const d = m.get(dist)!;
      row(label, b.rps, d.rps, 'req/s', true);
      console.log(`${''.padEnd(34)} p99   ${b.p99ms.toFixed(2).padStart(9)} ms     p99          ${d.p99ms.toFixed(2).padStart(9)} ms     errors ${b.errors}/${d.errors}`);
    }

    console.log('');
    const layout = await buildBigLayout(join(work, 'big'));
    const push = new Map<Server, number>();
    const pull = new Map<Server, number>();
    for (const round of [0, 1]) {
      for (const s of round === 0 ? [berth, dist] : [dist, berth]) {
        // a new repository each round, so that every blob is uploaded again
        const ref = `${s.host}/bench/big-r${round}:v1`;
        const t = timeSkopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${ref}`]);
        push.set(s, Math.min(push.get(s) ?? Infinity, t));
        const out = join(work, `pull-${s.name}`);
        const tp = timeSkopeo(['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:big`]);
        pull.set(s, Math.min(pull.get(s) ?? Infinity, tp));
        rmSync(out, { recursive: true, force: true });
      }
    }
    row('skopeo copy push ~200 MB (best of 2)', push.get(berth)!, push.get(dist)!, 's', false);
    row('skopeo copy pull ~200 MB (best of 2)', pull.get(berth)!, pull.get(dist)!, 's', false);
    const after = rssMb(berth.pid);
    console.log('');
    console.log(`berth serve memory: idle ${idle.rss.toFixed(1)} MB, after request load VmRSS ${loaded.rss.toFixed(1)} MB (peak ${loaded.hwm.toFixed(1)} MB), after pushes/pulls peak ${after.hwm.toFixed(1)} MB`);
    console.log(`distribution memory after request load: VmRSS ${distMem.rss.toFixed(1)} MB (peak ${distMem.hwm.toFixed(1)} MB)`);
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    for (const s of servers) await s.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
