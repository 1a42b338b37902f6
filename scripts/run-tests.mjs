// Runs the compiled tests (dist/test/**/*.test.js) with node:test. Arguments narrow the run to
// sub-directories or files under dist/test (e.g. `node scripts/run-tests.mjs image layer/apply.test.js`).
// Files are listed explicitly: given a directory, node --test would also run every helper module
// under a `test/` folder as if it were a test file.
import { spawn } from 'node:child_process';
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
// The TAP stream passes through as it comes; its closing counts are repeated as one plain line
// ('N passed, N failed, N skipped') that any CI reader understands, whatever the reporter.
const child = spawn(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: ['inherit', 'pipe', 'inherit'] });
const totals = {};
let topLevelFailures = 0; // a suite that fails outside its tests is a 'not ok' the counts leave out
let pending = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  pending += chunk.toString('utf8');
  const lines = pending.split('\n');
  pending = lines.pop() ?? '';
  for (const line of lines) {
    const m = /^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/.exec(line);
    if (m) totals[m[1]] = Number(m[2]);
    else if (/^not ok \d+ /.test(line)) topLevelFailures++;
  }
});
child.on('close', (code, signal) => {
  if (totals.tests === undefined) {
    console.log(`tests: the runner ended (${signal ?? `exit ${code}`}) without its closing counts`);
    process.exit(code || 1);
  }
  const failed = Math.max(totals.fail + (totals.cancelled ?? 0), topLevelFailures);
  console.log(`\ntests: ${totals.pass} passed, ${failed} failed, ${totals.skipped + (totals.todo ?? 0)} skipped`);
  process.exit(code ?? 1);
});
