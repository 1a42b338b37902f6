/** .dockerignore / .containerignore: docker's pattern rules (moby/patternmatcher) and the context walk. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanPath, parseIgnoreFile, PatternMatcher, readIgnoreFile, walkContext } from '../../../src/engine/build/ignore.js';

const ignored = (patterns: string[], path: string): boolean => new PatternMatcher(patterns).matches(path).ignored;

describe('ignore patterns', () => {
  it('cleans paths as Go path.Clean', () => {
    assert.deepEqual(['a//b/', './a/./b', 'a/../../b', '/../a', '', '/'].map(cleanPath), ['a/b', 'a/b', '../b', '/a', '.', '/']);
  });

  it('reads an ignore file: comments, trimming, ! exceptions, leading / and ./ cleaned', () => {
    assert.deepEqual(parseIgnoreFile('\uFEFF# comment\n  \n /a/b/ \n./c\n! d/../e \n*.md\n#x\n  #not a comment\n'), ['a/b', 'c', '!e', '*.md', '#not a comment']);
  });

  it('matches single patterns as docker does', () => {
    const cases: [string, string, boolean][] = [
      ['**', 'file', true], ['**', 'dir/file', true], ['**/', 'file', true], ['**/**', 'dir/file', true],
      ['dir/**', 'dir/file', true], ['dir/**', 'dir/dir2/file', true], ['abc/**', 'abc', false],
      ['**/dir', 'dir', true], ['**/dir', 'dir/file', true], ['**/dir2/*', 'dir/dir2/file', true],
      ['**file', 'dir/dir/file', true], ['**/file*.txt', 'dir/dir/file.txt', true], ['**/**/*.txt2', 'dir/dir/file.txt', false],
      ['**/*.txt', 'file.txt', true], ['a**/*.txt', 'a/dir/dir/file.txt', true], ['a/*.txt', 'a/dir/file.txt', false],
      ['a/*.txt', 'a/file.txt', true], ['a[b-d]e', 'ace', true], ['a[b-d]e', 'aae', false], ['a[^b-d]e', 'aze', true],
      ['.*', '.foo', true], ['.*', 'foo', false], ['abc.def', 'abcdef', false], ['abc?def', 'abcZdef', true],
      ['**/foo/bar', 'dir/dir2/foo/bar', true], ['**/.foo', 'bar.foo', false], ['a(b)c/def', 'a(b)c/def', true],
      ['a.|)$(}+{bc', 'a.|)$(}+{bc', true], ['dist/*.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', true],
      ['a\\*b', 'a*b', true], ['a\\*b', 'ab', false], ['a?b', 'a☺b', true], ['a???b', 'a☺b', false], ['a?b', 'a/b', false],
      ['a*b', 'a/b', false], ['a*/b', 'abc/b', true], ['a*/b', 'a/c/b', false], ['[\\]a]', ']', true], ['[x\\-]', '-', true],
      ['*', 'fileutils.go', true], ['*.go', 'fileutils.go', true],
      // A pattern that matches a directory ignores what is under it.
      ['docs', 'docs/README.md', true], ['docs/', 'docs/sub/x', true], ['docs/*', 'docs/a/b', true],
    ];
    for (const [pattern, path, want] of cases) assert.equal(ignored([pattern], path), want, `${pattern} vs ${path}`);
  });

  it('applies exceptions in order: the last match wins', () => {
    assert.equal(ignored(['!fileutils.go', '*.go'], 'fileutils.go'), true);
    assert.equal(ignored(['*.go', '!fileutils.go'], 'fileutils.go'), false);
    assert.equal(ignored(['docs', '!docs/README.md'], 'docs/README.md'), false);
    assert.equal(ignored(['docs', '!docs/README.md'], 'docs/other'), true);
    assert.equal(ignored(['**', '!util/docker/web'], 'util/docker/web/foo'), false);
    assert.equal(ignored(['**', '!util/docker/web', 'util/docker/web/foo'], 'util/docker/web/foo'), true);
    assert.equal(ignored(['**', '!dist/*.whl'], 'dist/x.whl'), false);
  });

  it('refuses malformed patterns as Go filepath.Match does', () => {
    for (const bad of ['[', '[^', '[^bc', 'a[', '[]a]', '[-]', '[x-]', '[-x]', '[a-b-c]', '\\', '!']) {
      assert.throws(() => new PatternMatcher([bad]), /pattern/, bad);
    }
    assert.doesNotThrow(() => new PatternMatcher(['[\\-x]', '[a-ζ]*', '  ', '']));
  });
});

describe('the build context', () => {
  it('walks what the ignore file lets through, descending into ignored directories only for exceptions', async (t) => {
    const ctx = await mkdtemp(join(tmpdir(), 'berth-ctx-'));
    t.after(() => rm(ctx, { recursive: true, force: true }));
    for (const d of ['src/lib', 'docs/api', 'node_modules/x', '.git']) await mkdir(join(ctx, d), { recursive: true });
    for (const f of ['Dockerfile', '.dockerignore', 'src/a.ts', 'src/a.test.ts', 'src/lib/b.ts', 'docs/README.md', 'docs/api/x.md', 'node_modules/x/i.js', '.git/HEAD', 'notes.md']) {
      await writeFile(join(ctx, f), f);
    }
    await writeFile(join(ctx, '.dockerignore'), '.git\nnode_modules\n**/*.test.ts\ndocs\n!docs/README.md\n*.md\n.dockerignore\n');
    const { file, patterns } = readIgnoreFile(ctx);
    assert.equal(file, join(ctx, '.dockerignore'));
    const rels = [...walkContext(ctx, new PatternMatcher(patterns))].map((e) => e.rel);
    assert.deepEqual(rels, ['Dockerfile', 'docs', 'docs/README.md', 'src', 'src/a.ts', 'src/lib', 'src/lib/b.ts']);
    assert.deepEqual([...walkContext(ctx, new PatternMatcher(patterns), 'src/lib')].map((e) => e.rel), ['src/lib/b.ts']);

    // .containerignore wins over .dockerignore; <Dockerfile>.dockerignore beside the Dockerfile over both.
    await writeFile(join(ctx, '.containerignore'), 'src\n');
    assert.deepEqual(readIgnoreFile(ctx).patterns, ['src']);
    await writeFile(join(ctx, 'Dockerfile.dockerignore'), 'docs\n');
    assert.deepEqual(readIgnoreFile(ctx, join(ctx, 'Dockerfile')).patterns, ['docs']);
  });
});
