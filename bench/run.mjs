// Runs the benchmarks (compiled into dist/bench by `npm run build`): all of them, or those named.
// Each benchmark compares berth with the reference tool on the same work and prints the ratio.
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(import.meta.dirname, '..', 'dist', 'bench');
if (!existsSync(dir)) {
  console.error('dist/bench is missing: run `npm run build` first');
  process.exit(1);
}
const wanted = process.argv.slice(2);
const all = readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3));
const names = wanted.length ? wanted : all;
let failed = 0;
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`no benchmark named ${name}; have: ${all.join(', ')}`);
    failed++;
    continue;
  }
  console.log(`\n=== bench ${name} ===`);
  const r = spawnSync(process.execPath, [join(dir, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
