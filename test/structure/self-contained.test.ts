/**
 * The project stands on its own: no source, test, benchmark, script or document names the
 * sibling directory of a particular checkout (the design notes and peer notes beside it on the
 * machines it was written on) or an absolute path of such a machine. What a reader needs is in
 * docs/ARCHITECTURE.md, which the README points at.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const REPO = join(import.meta.dirname, '..', '..', '..');
// Built from parts, so that this file does not name them itself.
const FORBIDDEN = [['..', 'shared', ''].join('/'), ['', 'work', ''].join('/'), ['design', 'md'].join('.'), ['peers', 'md'].join('.')];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'build' || e.name === 'node_modules' ? [] : files(p);
    return /\.(ts|mjs|cjs|c|md|sh)$/.test(e.name) || e.name === 'Makefile' || e.name === 'berth-runtime' ? [p] : [];
  });
}

describe('the project on its own', () => {
  it('names nothing outside the checkout', () => {
    const roots = ['src', 'test', 'bench', 'scripts', 'docs', 'native', 'bin'].map((d) => join(REPO, d));
    const all = [...roots.flatMap(files), join(REPO, 'README.md'), join(REPO, 'quickstart.sh')];
    assert.ok(all.length > 100, `only ${all.length} files`);
    const found = all.flatMap((f) => {
      const text = readFileSync(f, 'utf8');
      return FORBIDDEN.filter((s) => text.includes(s)).map((s) => `${relative(REPO, f)}: ${s}`);
    });
    assert.deepEqual(found, []);
  });

  it('describes its layout in docs/ARCHITECTURE.md, linked from the README', () => {
    assert.ok(existsSync(join(REPO, 'docs', 'ARCHITECTURE.md')));
    const architecture = readFileSync(join(REPO, 'docs', 'ARCHITECTURE.md'), 'utf8');
    for (const folder of readdirSync(join(REPO, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory())) {
      assert.match(architecture, new RegExp(`^  ${folder.name}/`, 'm'), `src/${folder.name}/ is not described`);
    }
    assert.match(readFileSync(join(REPO, 'README.md'), 'utf8'), /\]\(docs\/ARCHITECTURE\.md\)/);
  });
});
