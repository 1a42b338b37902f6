/**
 * The arrows between the folders of src/ point one way (docs/ARCHITECTURE.md):
 *
 *   cli → engine → registry, client → content → image → layer, runtime → base
 *
 * A folder may import from a folder on a lower level only; folders on the same level (registry and
 * client, layer and runtime) do not import each other. Files at the top of src/ (index.ts) may
 * import anything. A folder missing from LEVELS fails the test, so that a new folder is placed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

/** Lower numbers are higher up: an import must go to a strictly greater level. */
export const LEVELS: Record<string, number> = {
  cli: 0,
  engine: 1,
  registry: 2,
  client: 2,
  content: 3,
  image: 4,
  layer: 5,
  runtime: 5,
  base: 6,
};

const SPECIFIER = /(?:\bfrom|\bimport)\s*\(?\s*['"](\.\.?\/[^'"]+)['"]/g;

/** The relative specifiers a source file imports or re-exports (static and dynamic). */
export function relativeImports(source: string): string[] {
  return [...source.matchAll(SPECIFIER)].map((m) => m[1]);
}

/** The folder of src/ a path lies in, or undefined for a file at the top of src/. */
function folderOf(srcRoot: string, path: string): string | undefined {
  const parts = relative(srcRoot, path).split(sep);
  return parts.length > 1 ? parts[0] : undefined;
}

/** One line per arrow that points the wrong way (or touches a folder LEVELS does not know). */
export function wrongArrows(srcRoot: string, files: { path: string; source: string }[]): string[] {
  const wrong: string[] = [];
  for (const { path, source } of files) {
    const from = folderOf(srcRoot, path);
    if (from === undefined) continue;
    for (const spec of relativeImports(source)) {
      const target = resolve(dirname(path), spec);
      const at = `${relative(srcRoot, path)} imports ${spec}`;
      if (!target.startsWith(srcRoot + sep)) {
        wrong.push(`${at}, outside src/`);
        continue;
      }
      const to = folderOf(srcRoot, target);
      if (to === undefined) {
        wrong.push(`${at}, a file at the top of src/ (only index.ts belongs there)`);
        continue;
      }
      if (to === from) continue;
      const lf = LEVELS[from];
      const lt = LEVELS[to];
      if (lf === undefined || lt === undefined) {
        wrong.push(`${at}: give folder ${lf === undefined ? from : to} a level in LEVELS`);
      } else if (lt <= lf) {
        wrong.push(`${at}: ${from} → ${to} points ${lt === lf ? 'sideways' : 'upwards'}`);
      }
    }
  }
  return wrong;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

// dist/test/structure/ → the checkout's src/
const srcRoot = resolve(import.meta.dirname, '..', '..', '..', 'src');

describe('imports between the folders of src/', () => {
  it('finds relative imports, type-only imports, re-exports and dynamic imports', () => {
    const src = [
      "import { a } from '../image/a.js';",
      "import type { B } from './b.js';",
      "export * from '../base/c.js';",
      "const d = await import('../layer/d.js');",
      "import 'node:fs';",
      "import x from 'smol-toml';",
    ].join('\n');
    assert.deepEqual(relativeImports(src), ['../image/a.js', './b.js', '../base/c.js', '../layer/d.js']);
  });

  it('flags an upward, a sideways and an unknown arrow, and lets downward ones pass', () => {
    const root = '/r/src';
    const wrong = wrongArrows(root, [
      { path: '/r/src/layer/x.ts', source: "import { d } from '../image/digest.js';" },
      { path: '/r/src/client/y.ts', source: "import type { R } from '../registry/registry.js';" },
      { path: '/r/src/novel/z.ts', source: "import { e } from '../base/errors.js';" },
      { path: '/r/src/image/ok.ts', source: "import { e } from '../base/errors.js';\nimport { a } from '../layer/apply.js';\nimport { t } from './types.js';" },
      { path: '/r/src/index.ts', source: "export * from './cli/berth.js';" },
    ]);
    assert.equal(wrong.length, 3, wrong.join('\n'));
    assert.match(wrong[0], /layer → image points upwards/);
    assert.match(wrong[1], /client → registry points sideways/);
    assert.match(wrong[2], /give folder novel a level/);
  });

  it('every arrow in src/ points down', () => {
    const files = sourceFiles(srcRoot).map((path) => ({ path, source: readFileSync(path, 'utf8') }));
    assert.ok(files.length > 50, `only ${files.length} source files under ${srcRoot}`);
    assert.deepEqual(wrongArrows(srcRoot, files), []);
  });
});
