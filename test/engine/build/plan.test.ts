/** The build plan (stage graph, target, waves, cache keys) and COPY source resolution. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDockerfile } from '../../../src/engine/build/instructions.js';
import { planBuild, stepKey } from '../../../src/engine/build/plan.js';
import { contentHash, destinationPath, DigestMemo, hasWildcards, resolveCopy, type CopyRoot } from '../../../src/engine/build/sources.js';
import { lstatSync } from 'node:fs';
import { PatternMatcher } from '../../../src/engine/build/ignore.js';
import { isBerthError } from '../../../src/base/errors.js';

const linux = { os: 'linux', architecture: 'amd64' };

describe('build plan', () => {
  const df = parseDockerfile([
    'ARG GO=golang:1',
    'FROM $GO AS deps',
    'FROM deps AS build',
    'ARG SRC=deps',
    'COPY --from=$SRC /go /go',
    'FROM scratch AS docs',
    'COPY --from=alpine:3 /etc/os-release /',
    'FROM busybox AS test',
    'RUN --mount=type=bind,from=build,target=/b true',
    'FROM scratch',
    'COPY --from=build /app /app',
    'COPY --from=2 /x /x',
  ].join('\n'));

  it('finds the dependencies of each stage', () => {
    const plan = planBuild(df, { target: linux, build: linux });
    assert.deepEqual(plan.stages.map((s) => s.base), [
      { kind: 'image', ref: 'golang:1' },
      { kind: 'stage', index: 0 },
      { kind: 'scratch' },
      { kind: 'image', ref: 'busybox' },
      { kind: 'scratch' },
    ]);
    assert.deepEqual(plan.stages.map((s) => s.deps), [[], [0], [], [1], [1, 2]]);
    assert.deepEqual(plan.stages[2]!.images, ['alpine:3']);
  });

  it('builds only what the target needs, in parallel waves', () => {
    const all = planBuild(df, { target: linux, build: linux });
    assert.equal(all.target, 4);
    assert.deepEqual(all.needed, [0, 1, 2, 4]);
    assert.deepEqual(all.waves, [[0, 2], [1], [4]]);
    const test = planBuild(df, { target: linux, build: linux, targetStage: 'TEST' });
    assert.equal(test.target, 3);
    assert.deepEqual(test.needed, [0, 1, 3]);
    assert.deepEqual(test.waves, [[0], [1], [3]]);
    const docs = planBuild(df, { target: linux, build: linux, targetStage: 'docs' });
    assert.deepEqual(docs.needed, [2]);
    assert.throws(() => planBuild(df, { target: linux, build: linux, targetStage: 'nope' }), /target stage "nope" could not be found in Dockerfile: it has deps, build, docs, test/);
  });

  it('refuses a --from index that is not an earlier stage', () => {
    const bad = parseDockerfile('FROM scratch\nCOPY --from=1 /x /x\nFROM scratch');
    assert.throws(() => planBuild(bad, { target: linux, build: linux }), /not an earlier stage/);
  });

  it('cache keys change with each part and not with arg order', () => {
    const base = { parent: 'sha256:p', instruction: 'COPY a /a', args: ['A=1', 'B=2'], content: 'sha256:c', platform: 'linux/amd64' };
    const k = stepKey(base);
    assert.match(k, /^sha256:[0-9a-f]{64}$/);
    assert.equal(stepKey({ ...base, args: ['B=2', 'A=1'] }), k);
    for (const change of [{ parent: 'x' }, { instruction: 'COPY a /b' }, { args: ['A=2', 'B=2'] }, { content: 'sha256:d' }, { platform: 'linux/arm64' }]) {
      assert.notEqual(stepKey({ ...base, ...change }), k);
    }
  });
});

describe('COPY sources', () => {
  async function context(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
    const ctx = await mkdtemp(join(tmpdir(), 'berth-src-'));
    t.after(() => rm(ctx, { recursive: true, force: true }));
    for (const d of ['dir/sub', 'other', 'skip']) await mkdir(join(ctx, d), { recursive: true });
    for (const f of ['a.txt', 'b.txt', 'c.md', 'dir/x', 'dir/sub/y', 'other/z', 'skip/s']) await writeFile(join(ctx, f), `content of ${f}\n`);
    await chmod(join(ctx, 'dir/x'), 0o755);
    await symlink('a.txt', join(ctx, 'link'));
    await symlink('../a.txt', join(ctx, 'dir/inner-link'));
    return ctx;
  }
  const opts = (dirs: string[] = []) => ({ workdir: '/work', what: 'COPY', isDirInImage: (p: string) => dirs.includes(p) });

  it('knows wildcards and destinations', () => {
    assert.ok(hasWildcards('*.txt') && hasWildcards('a?') && hasWildcards('[ab]') && !hasWildcards('a\\*b') && !hasWildcards('plain'));
    assert.deepEqual(destinationPath('rel/', '/work'), { path: '/work/rel', isDir: true });
    assert.deepEqual(destinationPath('/abs', '/work'), { path: '/abs', isDir: false });
    assert.deepEqual(destinationPath('.', '/work'), { path: '/work', isDir: true });
  });

  it('copies a file to a file path, into a directory with a slash, or into an existing directory', async (t) => {
    const ctx = await context(t);
    const root: CopyRoot = { dir: ctx, label: 'the build context' };
    assert.deepEqual(resolveCopy(root, ['a.txt'], '/dst', opts()).map((e) => e.dest), ['/dst']);
    assert.deepEqual(resolveCopy(root, ['a.txt'], '/dst/', opts()).map((e) => e.dest), ['/dst/a.txt']);
    assert.deepEqual(resolveCopy(root, ['a.txt'], '/usr/bin', opts(['/usr/bin'])).map((e) => e.dest), ['/usr/bin/a.txt']);
    assert.deepEqual(resolveCopy(root, ['/../a.txt'], 'rel', opts()).map((e) => e.dest), ['/work/rel']);
  });

  it('copies the contents of a directory, symlinks inside kept, a top-level symlink followed', async (t) => {
    const ctx = await context(t);
    const root: CopyRoot = { dir: ctx, label: 'the build context' };
    const entries = resolveCopy(root, ['dir'], '/app', opts());
    assert.deepEqual(entries.map((e) => [e.dest, e.kind]), [
      ['/app', 'dir'], ['/app/inner-link', 'symlink'], ['/app/sub', 'dir'], ['/app/sub/y', 'file'], ['/app/x', 'file'],
    ]);
    assert.equal(entries[1]!.linkname, '../a.txt');
    const link = resolveCopy(root, ['link'], '/l/', opts());
    assert.deepEqual(link.map((e) => [e.dest, e.kind, e.abs]), [['/l/link', 'file', join(ctx, 'a.txt')]]);
  });

  it('expands wildcards per component; several sources need a directory destination', async (t) => {
    const ctx = await context(t);
    const root: CopyRoot = { dir: ctx, label: 'the build context' };
    assert.deepEqual(resolveCopy(root, ['*.txt', 'c.m?'], '/d/', opts()).map((e) => e.dest), ['/d/a.txt', '/d/b.txt', '/d/c.md']);
    assert.deepEqual(resolveCopy(root, ['*/s*'], '/d/', opts()).map((e) => e.dest), ['/d', '/d/y', '/d/s']);
    assert.throws(() => resolveCopy(root, ['a.txt', 'b.txt'], '/d', opts()), /needs a directory destination ending in \//);
    assert.throws(() => resolveCopy(root, ['nothing*'], '/d/', opts()), (err: unknown) => isBerthError(err, 'NOT_FOUND') && /no file matches it/.test((err as Error).message));
    assert.throws(() => resolveCopy(root, ['missing'], '/d/', opts()), /COPY missing: not found in the build context/);
  });

  it('does not see what .dockerignore excludes, and applies --exclude', async (t) => {
    const ctx = await context(t);
    const root: CopyRoot = { dir: ctx, label: 'the build context', matcher: new PatternMatcher(['skip', '*.md', 'dir/sub']) };
    assert.deepEqual(resolveCopy(root, ['.'], '/r/', opts()).map((e) => e.dest).filter((d) => !d.startsWith('/r/dir/')), [
      '/r', '/r/a.txt', '/r/b.txt', '/r/dir', '/r/link', '/r/other', '/r/other/z',
    ]);
    assert.throws(() => resolveCopy(root, ['c.md'], '/d/', opts()), /excluded by the ignore file/);
    assert.deepEqual(resolveCopy(root, ['*'], '/d/', opts()).map((e) => e.dest).includes('/d/s'), false);
    const ex = resolveCopy({ dir: ctx, label: 'ctx' }, ['dir'], '/d', { ...opts(), exclude: new PatternMatcher(['sub']) });
    assert.deepEqual(ex.map((e) => e.dest), ['/d', '/d/inner-link', '/d/x']);
  });

  it('keeps source paths with --parents, after a /./ pivot', async (t) => {
    const ctx = await context(t);
    const root: CopyRoot = { dir: ctx, label: 'ctx' };
    const p = { ...opts(), parents: true };
    assert.deepEqual(resolveCopy(root, ['dir/x', 'other/z'], '/p', p).map((e) => e.dest), ['/p/dir/x', '/p/other/z']);
    assert.deepEqual(resolveCopy(root, ['./dir/./sub'], '/p/', p).map((e) => e.dest), ['/p/sub', '/p/sub/y']);
    assert.deepEqual(resolveCopy(root, ['*/z'], '/p/', p).map((e) => e.dest), ['/p/other/z']);
  });

  it('remembers file digests between builds while dev, inode, size, mtime and ctime stay', async (t) => {
    const ctx = await context(t);
    const memoFile = join(ctx, 'memo.json');
    const memo = await DigestMemo.load(memoFile);
    const file = join(ctx, 'a.txt');
    const before = lstatSync(file);
    const d1 = await memo.digest(file, before);
    await memo.save();
    await writeFile(file, 'new content\n');
    const again = await DigestMemo.load(memoFile);
    assert.equal(await again.digest(file, before), d1, 'the same stat: the remembered digest, the file is not read');
    assert.notEqual(await again.digest(file, lstatSync(file)), d1, 'a new stat: read again');
  });

  it('hashes names, modes and contents, not mtimes', async (t) => {
    const ctx = await context(t);
    const root: CopyRoot = { dir: ctx, label: 'ctx' };
    const h1 = await contentHash(resolveCopy(root, ['dir'], '/app', opts()));
    await writeFile(join(ctx, 'dir/x'), 'content of dir/x\n');
    assert.equal(await contentHash(resolveCopy(root, ['dir'], '/app', opts())), h1, 'rewriting the same bytes changes nothing');
    await chmod(join(ctx, 'dir/x'), 0o644);
    const h2 = await contentHash(resolveCopy(root, ['dir'], '/app', opts()));
    assert.notEqual(h2, h1);
    await writeFile(join(ctx, 'dir/sub/y'), 'changed\n');
    assert.notEqual(await contentHash(resolveCopy(root, ['dir'], '/app', opts())), h2);
    assert.notEqual(await contentHash(resolveCopy(root, ['dir'], '/other', opts())), h2);
    assert.notEqual(await contentHash([], [{ name: 'EOF', data: 'a' }]), await contentHash([], [{ name: 'EOF', data: 'b' }]));
  });
});
