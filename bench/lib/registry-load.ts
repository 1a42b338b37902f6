/**
 * What the registry benchmarks share: load generators (wrk, ab) and their parsing, memory of a
 * process, a ~200 MB multi-layer OCI layout, timed skopeo copies, and a result row with the ratio.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SECONDS = Number(process.env.BERTH_BENCH_SECONDS ?? 10);
export const TARGET_MB = Number(process.env.BERTH_BENCH_MB ?? 200);
export const SKOPEO_ENV = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

export function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

export async function pushBlob(base: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(post.headers.get('location')!, base);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, { method: 'PUT', body: data, headers: { 'Content-Type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`push to ${base}: ${put.status}`);
  return digest;
}

/** A small image: a 1 KiB config-sized layer and a config. Returns the small blob's digest. */
export async function pushSmallImage(base: string): Promise<string> {
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

export interface Load {
  rps: number;
  p99ms: number;
  errors: number;
}

export function ms(value: string, unit: string): number {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : unit === 'm' ? v * 60000 : v;
}

export function wrk(url: string, headers: string[] = []): Load {
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

export function abHead(url: string): Load {
  const n = Math.max(20000, SECONDS * 2000);
  const r = spawnSync('ab', ['-q', '-i', '-k', '-c', '32', '-n', String(n), url], { encoding: 'utf8' });
  const rps = /Requests per second:\s+([\d.]+)/.exec(r.stdout);
  const p99 = /\s99%\s+(\d+)/.exec(r.stdout);
  const failed = /Failed requests:\s+(\d+)/.exec(r.stdout);
  const non2xx = /Non-2xx responses:\s+(\d+)/.exec(r.stdout);
  if (!rps || !p99) throw new Error(`ab output not understood: ${r.stdout}${r.stderr}`);
  return { rps: Number(rps[1]), p99ms: Number(p99[1]), errors: Number(failed?.[1] ?? 0) + Number(non2xx?.[1] ?? 0) };
}

export function rssMb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** A ~`mb` MB (default TARGET_MB) multi-layer OCI layout tagged `big`: uncompressed tars of /usr subtrees, written directly. */
export async function buildBigLayout(dir: string, mb = TARGET_MB): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const trees = ['/usr/lib/x86_64-linux-gnu', '/usr/share', '/usr/bin', '/usr/lib/gcc', '/usr/lib/python3', '/usr/include', '/usr/sbin'];
  const layers: { digest: string; size: number }[] = [];
  let total = 0;
  const perLayer = (mb * 1024 * 1024) / 5;
  for (const tree of trees) {
    if (total >= mb * 1024 * 1024 || !existsSync(tree)) continue;
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

export function timeSkopeo(args: string[]): number {
  const start = process.hrtime.bigint();
  const r = spawnSync('skopeo', args, { env: SKOPEO_ENV, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`skopeo ${args.join(' ')}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** skopeo without blocking this process (a relay or a sampler may run in it): resolves with the wall time. */
export function skopeoAsync(args: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const c = spawn('skopeo', args, { env: SKOPEO_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.once('exit', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - start) / 1e9) : reject(new Error(`skopeo ${args.join(' ')}: ${err}`))));
  });
}

export function row(label: string, berth: number, dist: number, unit: string, higherIsBetter: boolean): void {
  const ratio = higherIsBetter ? berth / dist : dist / berth;
  console.log(`${label.padEnd(34)} berth ${berth.toFixed(unit === 'req/s' ? 0 : 2).padStart(9)} ${unit.padEnd(6)} distribution ${dist.toFixed(unit === 'req/s' ? 0 : 2).padStart(9)} ${unit.padEnd(6)} ratio ${ratio.toFixed(2)}x${higherIsBetter ? '' : ' (faster)'}`);
}

