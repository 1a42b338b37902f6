// Bundles the `berth` CLI (src/cli/berth.ts) into dist/berth.bundle.cjs with its loader
// dist/berth.cjs, which bin/berth.cjs runs (scripts/bundle.mjs): one file instead of ~60 ES
// modules (resolving and linking them cost ~0.1 s per start here).
// Command groups stay lazy inside the bundle: esbuild turns `import('./serve.js')` into a call
// that initialises that group's modules on first use, and the native addons (zstd-napi,
// better-sqlite3) stay external, required only when a command needs them.
// The cache is made here, by running `berth --help` (which loads every command group).
// Run after tsc: `node scripts/bundle-cli.mjs`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { bundleCli, dist } from './bundle.mjs';

await bundleCli({ entry: 'src/cli/berth.js', name: 'berth', external: ['zstd-napi', 'better-sqlite3'] });
const warm = spawnSync(process.execPath, [join(dist, 'berth.cjs'), '--help'], { stdio: ['ignore', 'ignore', 'inherit'] });
if (warm.status !== 0) {
  console.error(`bundle-cli: \`berth --help\` from the bundle failed (${warm.status ?? warm.signal})`);
  process.exit(1);
}
