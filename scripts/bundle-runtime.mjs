// Bundles the berth-runtime CLI (src/cli/berth-runtime.ts, compiled by tsc into dist/) into one
// ES module, dist/berth-runtime.mjs, so each Node start-up loads one file instead of a module
// graph. Run after tsc: `node scripts/bundle-runtime.mjs`.
import { build } from 'esbuild';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
await build({
  entryPoints: [join(root, 'dist/src/cli/berth-runtime.js')],
  outfile: join(root, 'dist/berth-runtime.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
