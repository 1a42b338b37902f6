// Runs the compiled tests (dist/test/**/*.test.js) with node:test. Arguments narrow the run to
// sub-directories or files under dist/test (e.g. `node scripts/run-tests.mjs image layer/apply.test.js`).
// Files are listed explicitly: given a directory, node --test would also run every helper module
// under a `test/` folder as if it were a test file.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', 'dist', 'test');
if (!existsSync(root)) {
  console.error('dist/test is missing: run `npm run build` first');
  process.exit(1);
}

function collect(path) {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => {
      const p = join(path, e.name);
      if (e.isDirectory()) return collect(p);
      return e.name.endsWith('.test.js') ? [p] : [];
    });
}

const targets = process.argv.slice(2).map((a) => join(root, a));
const files = (targets.length ? targets : [root]).flatMap(collect);
if (files.length === 0) {
  console.error(`no test files under ${targets.join(', ') || root}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
