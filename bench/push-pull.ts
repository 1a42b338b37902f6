/**
 * Push and pull through Debian's docker-registry on loopback: berth vs skopeo on the same
 * images in one run, ratio printed. Images: ~200 MB in five gzip layers (tars of /usr
 * subtrees) and one 1 GiB incompressible layer. Fresh repository names per run so nothing is
 * skipped or mounted; skopeo runs with a memory-only blob-info cache (as root it would
 * otherwise turn pushes into mounts). Peak RSS from GNU time's "Maximum resident set size".
 * Targets: berth <= 0.7x skopeo's time both ways; berth peak RSS < 150 MB on the 1 GiB copy.
 * Floors: curl moving the same layers the cheapest way the registry offers (pushes: POST then
 * one PUT with Content-Length per layer; pulls: one GET per layer, written to files, not
 * hashed), all layers at once; what neither tool can beat on this registry.
 * berth runs without NODE_EXTRA_CA_CERTS (as the runtime benchmark does): where it is set,
 * Node parses that CA file at every start (~85 ms here), which registries on loopback never use.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestStream, digestOf } from '../src/base/digest.js';
import { OciLayout } from '../src/image/layout.js';
import { MediaType } from '../src/base/media-types.js';
import type { Descriptor, ImageManifest } from '../src/base/types.js';
import { startRegistry } from '../test/helpers/distribution.js';
import { Readable } from 'node:stream';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'berth.cjs');
const TREES = ['/usr/share/doc', '/usr/share/man', '/usr/share/locale', '/usr/lib/python3.11', '/usr/share/icons'];
/** tmpfs when there is one: the disk's writeback noise would otherwise dominate both tools' times. */
const WORK_BASE = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const BIG_BYTES = Number(process.env.BERTH_BENCH_BIG_MB ?? 1024) * 1024 * 1024;

function sh(cmd: string): void {
  const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status})`);
}

async function writeRandom(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  let left = bytes;
  await new Promise<void>((resolve, reject) => {
    out.on('error', reject);
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, 4 << 20);
        left -= n;
        if (!out.write(randomBytes(n))) return out.once('drain', pump);
      }
      out.end(resolve);
    };
    pump();
  });
}

async function addFileBlob(layout: OciLayout, file: string, mediaType: string): Promise<Descriptor> {
  const { digest, size } = await digestStream(createReadStream(file));
  const desc = { mediaType, digest, size };
  await layout.push(desc, createReadStream(file));
  return desc;
}

async function addImage(layout: OciLayout, tag: string, layerFiles: string[], diffIds: string[]): Promise<void> {
  const layers: Descriptor[] = [];
  for (const f of layerFiles) layers.push(await addFileBlob(layout, f, MediaType.layerTarGzip));
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds }, config: {} }));
  const config = { mediaType: MediaType.imageConfig, digest: digestOf(configBytes), size: configBytes.length };
  await layout.push(config, Readable.from([configBytes]));
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.imageManifest, config, layers };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const desc = { mediaType: MediaType.imageManifest, digest: digestOf(bytes), size: bytes.length };
  await layout.push(desc, Readable.from([bytes]));
  await layout.tag(desc, tag);
}

interface Measured {
  seconds: number;
  /** User + system CPU seconds: steadier than wall time when other work shares the machine. */
  cpuSeconds: number;
  maxRssMb: number;
  /** The registry's CPU seconds during the run (pushes are bound by it on 2 cores). */
  registryCpuSeconds?: number;
}

/** Runs a command under GNU time -v; returns wall time and peak RSS. */
function measure(cmd: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-v', ...cmd], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (code !== 0) return reject(new Error(`${cmd.join(' ')} failed (${code}): ${err.slice(-2000)}`));
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      const user = /User time \(seconds\): ([\d.]+)/.exec(err);
      const sys = /System time \(seconds\): ([\d.]+)/.exec(err);
      resolve({ seconds, cpuSeconds: user && sys ? Number(user[1]) + Number(sys[1]) : NaN, maxRssMb: m ? Number(m[1]) / 1024 : NaN });
    });
  });
}

/** The registry process's CPU seconds so far (Linux /proc), found by its config path; NaN if not found. */
function registryCpu(dir: string): () => number {
  const pid = readdirSync('/proc').find((p) => {
    if (!/^\d+$/.test(p)) return false;
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir) && readFileSync(`/proc/${p}/comm`, 'utf8').startsWith('docker-registry');
    } catch {
      return false;
    }
  });
  return () => {
    if (!pid) return NaN;
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  };
}

/** Runs a measurement and adds the registry's CPU seconds during it. */
async function withRegistryCpu(cpu: () => number, run: () => Promise<Measured>): Promise<Measured> {
  const before = cpu();
  const m = await run();
  return { ...m, registryCpuSeconds: cpu() - before };
}

const BERTH_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));
const SKOPEO_ENV = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };

/** POST + one PUT per blob, all at once, as a shell script for curl. */
function curlPushScript(host: string, repo: string, blobs: { file: string; digest: string }[]): string {
  return blobs
    .map(
      (b) =>
        `(loc=$(curl -sS -f -X POST -D - -o /dev/null http://${host}/v2/${repo}/blobs/uploads/ | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p') && ` +
        `curl -sS -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T ${b.file} "$loc&digest=${b.digest}") &`,
    )
    .concat(['wait'])
    .join('\n');
}

/** One GET per blob into files, all at once (curl --parallel). */
function curlPullArgs(host: string, repo: string, digests: string[], dir: string): string[] {
  const args = ['curl', '-sS', '-f', '--parallel', '--parallel-max', String(digests.length)];
  digests.forEach((d, i) => args.push('-o', join(dir, `blob${i}`), `http://${host}/v2/${repo}/blobs/${d}`));
  return args;
}

async function main(): Promise<void> {
  for (const t of ['/usr/bin/docker-registry', '/usr/bin/skopeo', '/usr/bin/time']) {
    if (!existsSync(t)) {
      console.log(`skipping push-pull benchmark: ${t} is missing`);
      return;
    }
  }
  const tmp = await mkdtemp(join(WORK_BASE, 'berth-bench-push-pull-'));
  const reg = await startRegistry({ baseDir: WORK_BASE });
  try {
    console.log('preparing images (gzip -1 layers)…');
    const layout = await OciLayout.open(join(tmp, 'src'), { create: true });
    const multiFiles: string[] = [];
    const multiDiff: string[] = [];
    for (const [i, tree] of TREES.filter((t) => existsSync(t)).entries()) {
      const tar = join(tmp, `layer${i}.tar`);
      sh(`tar -cf ${tar} -C ${tree} . 2>/dev/null; gzip -1 -k ${tar}`);
      multiDiff.push((await digestStream(createReadStream(tar))).digest);
      multiFiles.push(`${tar}.gz`);
    }
    await addImage(layout, 'multi', multiFiles, multiDiff);
    const bigRaw = join(tmp, 'big.bin');
    await writeRandom(bigRaw, BIG_BYTES);
    sh(`gzip -1 -k ${bigRaw}`);
    await addImage(layout, 'big', [`${bigRaw}.gz`], [(await digestStream(createReadStream(bigRaw))).digest]);
    let multiBytes = 0;
    for (const f of multiFiles) multiBytes += (await stat(f)).size;
    const bigBytes = (await stat(`${bigRaw}.gz`)).size;
    console.log(`work dir and registry storage under ${WORK_BASE}; load average now ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(`multi: ${multiFiles.length} layers, ${(multiBytes / 1e6).toFixed(0)} MB compressed; big: 1 layer, ${(bigBytes / 1e6).toFixed(0)} MB`);
    sh(`rm -f ${join(tmp, '*.tar')} ${join(tmp, '*.gz')} ${bigRaw}`);

    const srcLayout = join(tmp, 'src');
    const layersOf = async (image: string) => {
      const desc = await layout.resolve(image);
      const manifest = (await layout.readJson(desc)) as ImageManifest;
      return [manifest.config, ...manifest.layers].map((d) => ({ digest: d.digest, file: join(srcLayout, 'blobs', 'sha256', d.digest.slice('sha256:'.length)) }));
    };
    const run = Date.now().toString(36);
    const regCpu = registryCpu(reg.dir);
    const reps = Number(process.env.BERTH_BENCH_REPS ?? 3);
    const rows: string[] = [];
    let peak = 0;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (const image of ['multi', 'big']) {
      const times = { berthPush: [] as Measured[], skopeoPush: [] as Measured[], berthPull: [] as Measured[], skopeoPull: [] as Measured[], curlPush: [] as Measured[], curlPull: [] as Measured[] };
      const blobs = await layersOf(image);
      // Interleaved repetitions: the machine's load varies, so each pair runs under similar conditions.
      for (let rep = 0; rep < reps; rep++) {
        const tag = `${run}-${image}-${rep}`;
        times.berthPush.push(await withRegistryCpu(regCpu, () => measure([process.execPath, BIN, 'copy', '-q', `oci:${join(tmp, 'src')}:${image}`, `docker://${reg.host}/bench/berth-${tag}:t`], BERTH_ENV)));
        times.skopeoPush.push(await withRegistryCpu(regCpu, () => measure(['skopeo', 'copy', '-q', '--dest-tls-verify=false', `oci:${join(tmp, 'src')}:${image}`, `docker://${reg.host}/bench/skopeo-${tag}:t`], SKOPEO_ENV)));
        times.berthPull.push(await withRegistryCpu(regCpu, () => measure([process.execPath, BIN, 'copy', '-q', `docker://${reg.host}/bench/berth-${tag}:t`, `oci:${join(tmp, `berth-pull-${tag}`)}:t`], BERTH_ENV)));
        times.skopeoPull.push(await withRegistryCpu(regCpu, () => measure(['skopeo', 'copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/bench/skopeo-${tag}:t`, `oci:${join(tmp, `skopeo-pull-${tag}`)}:t`], SKOPEO_ENV)));
        times.curlPush.push(await withRegistryCpu(regCpu, () => measure(['sh', '-c', curlPushScript(reg.host, `bench/curl-${tag}`, blobs)])));
        const curlDir = join(tmp, `curl-pull-${tag}`);
        await mkdir(curlDir);
        times.curlPull.push(await withRegistryCpu(regCpu, () => measure(curlPullArgs(reg.host, `bench/berth-${tag}`, blobs.map((b) => b.digest), curlDir))));
        await rm(curlDir, { recursive: true, force: true });
        await rm(join(tmp, `berth-pull-${tag}`), { recursive: true, force: true });
        await rm(join(tmp, `skopeo-pull-${tag}`), { recursive: true, force: true });
      }
      if (image === 'big') peak = Math.max(...times.berthPush.map((m) => m.maxRssMb), ...times.berthPull.map((m) => m.maxRssMb));
      for (const [what, b, s, c] of [['push', times.berthPush, times.skopeoPush, times.curlPush], ['pull', times.berthPull, times.skopeoPull, times.curlPull]] as const) {
        const bt = median(b.map((m) => m.seconds));
        const st = median(s.map((m) => m.seconds));
        const rss = Math.max(...b.map((m) => m.maxRssMb));
        const bc = median(b.map((m) => m.cpuSeconds));
        const sc = median(s.map((m) => m.cpuSeconds));
        const br = median(b.map((m) => m.registryCpuSeconds ?? NaN));
        const sr = median(s.map((m) => m.registryCpuSeconds ?? NaN));
        const ct = median(c.map((m) => m.seconds));
        const cr = median(c.map((m) => m.registryCpuSeconds ?? NaN));
        rows.push(
          `${`${what} ${image}`.padEnd(11)} berth ${bt.toFixed(2).padStart(6)} s (max ${rss.toFixed(0)} MB RSS)  skopeo ${st.toFixed(2).padStart(6)} s  ratio ${(bt / st).toFixed(2)}x${bt / st <= 0.7 ? '' : '  (target <= 0.7x)'}  [berth ${b.map((m) => m.seconds.toFixed(1)).join(' ')} | skopeo ${s.map((m) => m.seconds.toFixed(1)).join(' ')}]  CPU berth ${bc.toFixed(2)} s, skopeo ${sc.toFixed(2)} s; registry CPU meanwhile ${br.toFixed(2)} s, ${sr.toFixed(2)} s; curl floor ${ct.toFixed(2)} s (${(ct / st).toFixed(2)}x skopeo; registry CPU ${cr.toFixed(2)} s)`,
        );
      }
    }
    console.log(`medians of ${reps} interleaved runs; load average now ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    for (const r of rows) console.log(r);
    console.log(`berth peak RSS during the 1 GiB copies: ${peak.toFixed(0)} MB (target < 150 MB)`);
  } finally {
    await reg.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
