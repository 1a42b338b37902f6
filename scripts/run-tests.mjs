// Runs every compiled test under dist/test with node:test. Arguments narrow the run to
// sub-directories or files (e.g. `node scripts/run-tests.mjs image layer/apply.test.js`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', 'dist', 'test');
const targets = process.argv.slice(2).map((a) => join(root, a));
if (!existsSync(root)) {
  console.error('dist/test is missing: run `npm run build` first');
  process.exit(1);
}
const args = ['--test', '--test-concurrency=2', ...(targets.length ? targets : [root])];
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
