// Bundles the `berth` CLI (src/cli/berth.ts) into dist/berth.bundle.cjs with its loader
// dist/berth.cjs, which bin/berth.cjs runs (scripts/bundle.mjs): one file instead of ~60 ES
// modules (resolving and linking them cost ~0.1 s per start here).
// Command groups stay lazy inside the bundle: esbuild turns `import('./serve.js')` into a call
// that initialises that group's modules on first use, and the native addons (zstd-napi,
// better-sqlite3) and the scale-out clients (AWS SDK, postgres) stay external, required only when a command needs them.
// The code cache is made here by one process that runs `berth --help` (every command group's
// modules), then pushes a small image from a layout to a throwaway `berth serve` on 127.0.0.1
// and pulls it back: the cache then holds what copy, push and pull compile (a pull started
// ~12 ms sooner than with a cache from `--help` alone). Where no server can run, `--help` alone.
// Run after tsc: `node scripts/bundle-cli.mjs`.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleCli, dist } from './bundle.mjs';

const loader = join(dist, 'berth.cjs');
await bundleCli({
  entry: 'src/cli/berth.js',
  name: 'berth',
  external: ['zstd-napi', 'better-sqlite3', '@aws-sdk/client-s3', '@aws-sdk/s3-request-presigner', 'postgres'],
  // The warm-up's registry must not write the cache (its run compiles other functions).
  cacheWhen: "process.env.BERTH_CODE_CACHE_WRITE !== '0'",
  perCommand: true,
});

/** An OCI layout with one image tagged "t": a config and a 3 MiB layer (several receive slabs). */
function writeLayout(dir) {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (mediaType, bytes) => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(blobs, hex), bytes);
    return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
  };
  const layer = put('application/vnd.oci.image.layer.v1.tar+gzip', randomBytes(3 << 20));
  const config = put('application/vnd.oci.image.config.v1+json', Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
  const manifest = put('application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] })));
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': 't' } }] }));
}

/** Starts `berth serve` on a free loopback port; resolves to its host:port (undefined on failure). */
function startServer(dataDir) {
  const child = spawn(process.execPath, [loader, 'serve', '--addr', '127.0.0.1:0', '--data', dataDir, '--format', 'json'], {
    env: { ...process.env, BERTH_CODE_CACHE_WRITE: '0' },
    stdio: ['ignore', 'pipe', 'ignore'], // (its access log)
  });
  const host = new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => resolve(undefined), 20_000);
    // It prints one JSON document (over several lines) once it listens.
    child.stdout.on('data', (d) => {
      out += d;
      let doc;
      try {
        doc = JSON.parse(out);
      } catch {
        return; // not all of it yet
      }
      clearTimeout(timer);
      try {
        resolve(new URL(doc.url).host);
      } catch {
        resolve(undefined);
      }
    });
    child.on('exit', () => resolve(undefined));
  });
  return { child, host };
}

function warm(commands) {
  return spawnSync(process.execPath, [loader], {
    env: { ...process.env, BERTH_CODE_CACHE_WARMUP: JSON.stringify(commands) },
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 120_000, // a build never hangs on it (a killed run has status null: --help alone)
  }).status;
}

const work = mkdtempSync(join(tmpdir(), 'berth-code-cache-'));
let status;
try {
  writeLayout(join(work, 'src'));
  const server = startServer(join(work, 'registry'));
  const host = await server.host;
  if (host) {
    const ref = `docker://${host}/warmup/image:t`;
    status = warm([['--help'], ['copy', '-q', `oci:${join(work, 'src')}:t`, ref], ['copy', '-q', ref, `oci:${join(work, 'pulled')}:t`]]);
    if (status !== 0) console.error('bundle-cli: the code cache warm-up (push and pull through berth serve) failed: caching `berth --help` only');
  } else {
    console.error('bundle-cli: `berth serve` did not start for the code cache warm-up: caching `berth --help` only');
  }
  server.child.kill('SIGKILL');
  if (status !== 0) {
    rmSync(join(dist, 'berth.cache'), { force: true });
    status = warm([['--help']]);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (status !== 0) {
  console.error(`bundle-cli: \`berth --help\` from the bundle failed (${status})`);
  process.exit(1);
}
