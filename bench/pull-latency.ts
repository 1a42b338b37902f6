/**
 * Pulling from a registry that is not next door: Debian's docker-registry serving HTTPS behind a
 * proxy that delays every chunk 10 ms each way (a 20 ms round trip), an image of 16 layers of
 * 2 MiB; berth vs `skopeo copy` to an OCI layout, interleaved, medians of 7, ratio printed.
 * What it shows is the cost of handshakes per blob (TCP and TLS), which loopback hides.
 * The proxy listens on this machine's first non-loopback IPv4 address: a loopback name would be
 * reached over plain HTTP by rule. berth runs without NODE_EXTRA_CA_CERTS (see push-pull.ts).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { RegistryClient } from '../src/client/registry.js';
import { digestOf } from '../src/base/digest.js';
import { MediaType } from '../src/base/media-types.js';
import { startRegistry } from '../test/helpers/distribution.js';

const DELAY_MS = 10;
const LAYERS = 16;
const LAYER_BYTES = 2 << 20;
const RUNS = 7;
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'berth.cjs');
const OUT = '/dev/shm/berth-bench-latency';

const address = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
if (!address) {
  console.log('skipped: this machine has no non-loopback IPv4 address to put the delaying proxy on');
  process.exit(0);
}

const reg = await startRegistry({ tls: true, baseDir: '/dev/shm' });
const upstreamPort = Number(reg.host.split(':')[1]);
const proxy = net.createServer((client) => {
  const up = net.connect(upstreamPort, '127.0.0.1');
  const relay = (from: net.Socket, to: net.Socket) => {
    from.on('data', (d: Buffer) => setTimeout(() => to.write(d), DELAY_MS));
    from.on('end', () => setTimeout(() => to.end(), DELAY_MS));
    from.on('error', () => to.destroy());
  };
  relay(client, up);
  relay(up, client);
});
await new Promise<void>((r) => proxy.listen(0, address, r));
const host = `${address}:${(proxy.address() as net.AddressInfo).port}`;

try {
  // The image goes in directly (no delay), as the registry's own content.
  const client = new RegistryClient({ insecureAll: true, credentials: async () => undefined });
  const repo = client.repository(`[::ffff:127.0.0.1]:${upstreamPort}`, 'latency/app');
  const layers = [];
  for (let i = 0; i < LAYERS; i++) {
    const bytes = randomBytes(LAYER_BYTES);
    const desc = { mediaType: MediaType.layerTarGzip, digest: digestOf(bytes), size: bytes.length };
    await repo.push(desc, Readable.from([bytes]));
    layers.push(desc);
  }
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {} }));
  const config = { mediaType: MediaType.imageConfig, digest: digestOf(cfg), size: cfg.length };
  await repo.push(config, Readable.from([cfg]));
  const man = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.imageManifest, config, layers }));
  const desc = { mediaType: MediaType.imageManifest, digest: digestOf(man), size: man.length };
  await repo.push(desc, Readable.from([man]));
  await repo.tag(desc, 'v1');
  client.close();

  const berthEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));
  const skopeoEnv = { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent' };
  // Not spawnSync: the delaying proxy runs in this process and must keep relaying.
  const run = (cmd: string[], env: NodeJS.ProcessEnv): Promise<number> => {
    rmSync(OUT, { recursive: true, force: true });
    const start = process.hrtime.bigint();
    return new Promise((resolve, reject) => {
      const child = spawn(cmd[0]!, cmd.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code !== 0) reject(new Error(`${cmd.join(' ')} failed (${code}): ${err.slice(-1000)}`));
        else resolve(Number(process.hrtime.bigint() - start) / 1e6);
      });
    });
  };
  const berth = () => run([process.execPath, BIN, 'copy', '-q', '--tls-verify=false', `docker://${host}/latency/app:v1`, `oci:${OUT}:v1`], berthEnv);
  const skopeo = () => run(['skopeo', 'copy', '-q', '--src-tls-verify=false', `docker://${host}/latency/app:v1`, `oci:${OUT}:v1`], skopeoEnv);
  await berth();
  await skopeo();
  const times = { berth: [] as number[], skopeo: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    times.berth.push(await berth());
    times.skopeo.push(await skopeo());
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const b = median(times.berth);
  const s = median(times.skopeo);
  console.log(`pull of ${LAYERS} layers x ${LAYER_BYTES >> 20} MiB over HTTPS with a ${2 * DELAY_MS} ms round trip, medians of ${RUNS} interleaved runs`);
  console.log(`berth ${b.toFixed(0)} ms  skopeo ${s.toFixed(0)} ms  ratio ${(b / s).toFixed(2)}x  [berth ${times.berth.map((t) => t.toFixed(0)).join(' ')} | skopeo ${times.skopeo.map((t) => t.toFixed(0)).join(' ')}]`);
} finally {
  rmSync(OUT, { recursive: true, force: true });
  proxy.close();
  await reg.stop();
}
