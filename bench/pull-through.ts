/**
 * Pull-through cache, in one run on this machine: `berth serve --proxy URL` against Debian's
 * docker-registry (distribution 2.8) in its proxy mode (`proxy.remoteurl`), both caching the same
 * upstream, a plain docker-registry whose access log counts every fetch that reaches it.
 *  - 20 concurrent skopeo pulls of an image neither cache holds: wall time, and how many times
 *    each blob was fetched from the upstream (target: exactly once);
 *  - skopeo pull of a ~200 MB image (uncompressed tars in the layout; gzip on the registries) through each cache, first (cold) and second (from the cache):
 *    target second ≤ 0.5x first.
 * Both caches keep their data on the filesystem and reach the upstream through a relay that
 * stands for a registry elsewhere: BERTH_BENCH_UPSTREAM_MBIT (default 400) shared by all its
 * connections and 5 ms each way (0: no relay, the upstream on loopback, where a cold pull costs
 * little more than a warm one). CPU time of each cache process is printed beside the wall times
 * (the machine is shared).
 *
 *   node dist/bench/pull-through.js     BERTH_BENCH_MB=200 (big image), BERTH_BENCH_SMALL_MB=20 (concurrent pulls)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBerthRegistry } from '../test/helpers/berth-registry.js';
import { startDaemon, waitFor } from '../test/helpers/daemons.js';
import { freePort, REGISTRY_BIN, startRegistry } from '../test/helpers/distribution.js';
import { which } from '../test/helpers/requirements.js';
import { buildBigLayout, skopeoAsync, timeSkopeo } from './lib/registry-load.js';

const SMALL_MB = Number(process.env.BERTH_BENCH_SMALL_MB ?? 20);
const UPSTREAM_MBIT = Number(process.env.BERTH_BENCH_UPSTREAM_MBIT ?? 400);
const LATENCY_MS = 5;
const CLIENTS = 20;

interface Cache {
  name: string;
  host: string;
  pid: number;
  stop(): Promise<void>;
}

/** docker-registry as a pull-through cache of `upstream` (distribution's proxy mode). */
async function startDistributionProxy(upstream: string, dir: string): Promise<Cache> {
  const port = await freePort();
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, 'http:', `  addr: 127.0.0.1:${port}`, '  secret: bench', 'proxy:', `  remoteurl: ${upstream}`, ''].join('\n'),
  );
  const d = startDaemon('docker-registry proxy', REGISTRY_BIN, ['serve', config], join(dir, 'registry.log'));
  await waitFor('docker-registry proxy', async () => (await fetch(`http://127.0.0.1:${port}/v2/`)).status === 200, 20_000, d);
  return { name: 'distribution', host: `127.0.0.1:${port}`, pid: d.pid, stop: d.stop };
}

/**
 * A TCP relay to `target` standing for a registry elsewhere: what the upstream sends is paced to
 * `mbit` across every connection and delayed LATENCY_MS, as are the requests.
 */
function remoteRelay(target: string, mbit: number): Promise<{ host: string; close(): void }> {
  const [host, port] = target.split(':') as [string, string];
  const bytesPerMs = (mbit * 1e6) / 8 / 1000;
  let nextFree = 0;
  const delayed = (from: net.Socket, to: net.Socket, paced: boolean) => {
    // One queue per direction, written in order by one timer.
    const queue: { at: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const pump = () => {
      timer = undefined;
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.at <= now) to.write(queue.shift()!.chunk);
      if (queue.length > 0) timer = setTimeout(pump, queue[0]!.at - now);
      else if (ended) to.end();
    };
    from.on('data', (chunk: Buffer) => {
      const now = Date.now();
      let at = now + LATENCY_MS;
      if (paced) {
        nextFree = Math.max(nextFree, now) + chunk.length / bytesPerMs;
        at = nextFree + LATENCY_MS;
      }
      queue.push({ at, chunk });
      timer ??= setTimeout(pump, at - now);
    });
    from.on('end', () => {
      ended = true;
      if (!timer && queue.length === 0) to.end();
    });
    from.on('error', () => to.destroy());
    to.on('error', () => from.destroy());
  };
  const server = net.createServer((client) => {
    const up = net.connect(Number(port), host);
    delayed(client, up, false);
    delayed(up, client, true);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => server.close() })),
  );
}

/** User + system CPU seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The upstream's access log: requests logged since a mark. */
class AccessLog {
  constructor(private readonly file: string) {}
  private lines(): string[] {
    return readFileSync(this.file, 'utf8').split('\n').filter((l) => l.includes('" '));
  }
  mark(): number {
    return this.lines().length;
  }
  /** GETs of each blob of `blobs` in `repo` since `mark`. */
  blobFetches(mark: number, repo: string, blobs: string[]): number[] {
    const since = this.lines().slice(mark);
    return blobs.map((d) => since.filter((l) => l.includes(`"GET /v2/${repo}/blobs/${d} HTTP/`)).length);
  }
}

/** The blobs of an image as the upstream holds it (skopeo compressed the layers on the way) and their total size. */
async function blobsOf(base: string, repo: string): Promise<{ digests: string[]; mb: number }> {
  const res = await fetch(`${base}/v2/${repo}/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const m = (await res.json()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  const all = [m.config, ...m.layers];
  return { digests: all.map((b) => b.digest), mb: all.reduce((n, b) => n + b.size, 0) / 1024 / 1024 };
}

/** `CLIENTS` skopeo pulls at once; resolves with the wall time once all have finished. */
async function concurrentPulls(ref: string, outDir: string): Promise<number> {
  mkdirSync(outDir, { recursive: true });
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => skopeoAsync(['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(outDir, `c${i}`)}:v1`])));
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  rmSync(outDir, { recursive: true, force: true });
  return s;
}

async function main(): Promise<void> {
  for (const tool of ['skopeo', REGISTRY_BIN]) {
    if (!which(tool)) {
      console.log(`skipping the pull-through benchmark: ${tool} is missing`);
      return;
    }
  }
  // This machine sets it; it costs Node ~50 ms per start and users rarely set it.
  delete process.env.NODE_EXTRA_CA_CERTS;
  console.log('berth runs without NODE_EXTRA_CA_CERTS (this machine sets it; it costs Node ~50 ms per start)');
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-proxy-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const upstream = await startRegistry({ accessLog: true });
    stops.push(upstream.stop);
    const log = new AccessLog(upstream.log);
    let remote = upstream.host;
    if (UPSTREAM_MBIT > 0) {
      const relay = await remoteRelay(upstream.host, UPSTREAM_MBIT);
      stops.unshift(async () => relay.close());
      remote = relay.host;
      console.log(`the caches reach the upstream through a relay: ${UPSTREAM_MBIT} Mbit/s shared, ${LATENCY_MS} ms each way (BERTH_BENCH_UPSTREAM_MBIT=0: straight on loopback)`);
    } else console.log('the caches reach the upstream on loopback');
    const small = await buildBigLayout(join(work, 'small'), SMALL_MB);
    const big = await buildBigLayout(join(work, 'big'));
    const caches: { cache: Cache; repoPrefix: string }[] = [];
    mkdirSync(join(work, 'dist'));
    const dist = await startDistributionProxy(`http://${remote}`, join(work, 'dist'));
    stops.unshift(dist.stop);
    const b = await startBerthRegistry({ args: ['--proxy', `http://${remote}`, '--log-format', 'off'] });
    stops.unshift(b.stop);
    const berth: Cache = { name: 'berth', host: b.host, pid: b.child.pid!, stop: b.stop };
    // Each cache pulls its own copy of the images (the same bytes, its own repositories), so
    // that neither profits from what the other fetched.
    for (const cache of [berth, dist]) caches.push({ cache, repoPrefix: `bench/${cache.name}` });
    for (const { repoPrefix } of caches) {
      for (const [layout, name] of [[small, 'small'], [big, 'big']] as const) {
        timeSkopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${upstream.host}/${repoPrefix}/${name}:v1`]);
      }
    }
    // One pull straight from the upstream: its files are in the page cache for both caches alike.
    for (const [how, host] of new Map([['on loopback', upstream.host], ['through the relay', remote]])) {
      const direct = await skopeoAsync(['copy', '-q', '--src-tls-verify=false', `docker://${host}/${caches[0]!.repoPrefix}/big:v1`, `oci:${join(work, 'direct')}:v1`]);
      rmSync(join(work, 'direct'), { recursive: true, force: true });
      console.log(`skopeo pull of the big image straight from the upstream ${how}: ${direct.toFixed(2)} s`);
    }

    const smallBlobs = await blobsOf(`http://${upstream.host}`, `${caches[0]!.repoPrefix}/small`);
    const bigBlobs = await blobsOf(`http://${upstream.host}`, `${caches[0]!.repoPrefix}/big`);
    console.log(`as pushed to the upstream (gzip): small image ${smallBlobs.mb.toFixed(1)} MB in ${smallBlobs.digests.length} blobs, big image ${bigBlobs.mb.toFixed(1)} MB`);
    console.log('');
    const results = new Map<Cache, { conc: number; concCpu: number; fetches: number[]; first: number; second: number; firstCpu: number; secondCpu: number }>();
    for (const { cache, repoPrefix } of caches) {
      const mark = log.mark();
      const cpu = cpuSeconds(cache.pid);
      const conc = await concurrentPulls(`${cache.host}/${repoPrefix}/small:v1`, join(work, 'conc'));
      const concCpu = cpuSeconds(cache.pid) - cpu;
      const fetches = log.blobFetches(mark, `${repoPrefix}/small`, smallBlobs.digests);
      const pull = async (n: number) => {
        const out = join(work, `pull-${n}`);
        const before = cpuSeconds(cache.pid);
        const s = await skopeoAsync(['copy', '-q', '--src-tls-verify=false', `docker://${cache.host}/${repoPrefix}/big:v1`, `oci:${out}:v1`]);
        rmSync(out, { recursive: true, force: true });
        return { s, cpu: cpuSeconds(cache.pid) - before };
      };
      const first = await pull(1);
      const second = await pull(2);
      results.set(cache, { conc, concCpu, fetches, first: first.s, second: second.s, firstCpu: first.cpu, secondCpu: second.cpu });
    }
    const r = (c: Cache) => results.get(c)!;
    const fmt = (s: number, cpu: number) => `${s.toFixed(2).padStart(6)} s (cache CPU ${cpu.toFixed(2)} s)`;
    for (const c of [berth, dist]) {
      const x = r(c);
      console.log(`${c.name.padEnd(13)} ${CLIENTS} concurrent pulls of the uncached small image: ${fmt(x.conc, x.concCpu)}; upstream GETs per blob: ${x.fetches.join(', ')}${x.fetches.every((n) => n === 1) ? ' (each exactly once)' : ''}`);
    }
    for (const c of [berth, dist]) {
      const x = r(c);
      console.log(`${c.name.padEnd(13)} pull of the big image through the cache: first ${fmt(x.first, x.firstCpu)}, second ${fmt(x.second, x.secondCpu)}: second/first ${(x.second / x.first).toFixed(2)}x`);
    }
    console.log('');
    console.log(`berth / distribution: ${CLIENTS} concurrent cold pulls ${(r(berth).conc / r(dist).conc).toFixed(2)}x, first pull ${(r(berth).first / r(dist).first).toFixed(2)}x, second pull ${(r(berth).second / r(dist).second).toFixed(2)}x (time; < 1 is faster)`);
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
