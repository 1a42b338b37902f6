/**
 * Archives without a peer: docker-archive written by berth and read back (manifest.json,
 * repositories, digests kept), progress output, and hostile archives refused before unpacking.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { extractArchive } from '../../src/content/archive-tar.js';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';
import { ProgressPrinter, formatBytes } from '../../src/content/progress.js';
import { RegistryClient } from '../../src/client/registry.js';
import { openDestination, openSource, parsePlace } from '../../src/client/places.js';
import { fetchJson } from '../../src/base/read.js';
import type { ImageManifest } from '../../src/base/types.js';
import { isBerthError } from '../../src/base/errors.js';
import { addImage } from '../client/fixtures.js';

describe('archives', () => {
  let tmp: string;
  const client = new RegistryClient({ credentials: async () => undefined });
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-archives-'));
  });
  after(async () => {
    client.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('writes a docker-archive with manifest.json and repositories, and reads it back with the same blobs', async () => {
    const mem = new MemoryStore();
    const img = addImage(mem, { files: [{ a: 'one' }, { b: 'two' }] });
    await mem.tag(img.manifest, 'x');
    const file = join(tmp, 'save.tar');
    const dst = await openDestination(parsePlace(`docker-archive:${file}:example/app:1`), { client });
    await copy(mem, 'x', dst.target, dst.ref);
    await dst.close(true);
    const list = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
    assert.ok(list.includes('./manifest.json') && list.includes('./repositories'), list.join(' '));
    const unpacked = join(tmp, 'unpacked');
    await mkdir(unpacked);
    execFileSync('tar', ['-xf', file, '-C', unpacked]);
    const manifest = JSON.parse(await readFile(join(unpacked, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest[0].RepoTags, ['example/app:1']);
    assert.equal(manifest[0].Config, `${img.config.digest.slice(7)}.json`);
    const repositories = JSON.parse(await readFile(join(unpacked, 'repositories'), 'utf8'));
    assert.ok(repositories['example/app']['1']);

    const src = await openSource(parsePlace(`docker-archive:${file}:example/app:1`), { client });
    try {
      const back = new MemoryStore();
      const r = await copy(src.target, src.ref!, back, 'y');
      const m = await fetchJson<ImageManifest>(back, r.descriptor);
      assert.equal(m.config.digest, img.config.digest);
      assert.deepEqual(m.layers.map((l) => l.digest), img.layers.map((l) => l.digest), 'gzip layers are kept as they are');
    } finally {
      await src.close(true);
    }
  });

  it('refuses archives with .. names or links that leave the archive', async () => {
    const evil = join(tmp, 'evil');
    await mkdir(join(evil, 'd'), { recursive: true });
    await writeFile(join(evil, 'd', 'f'), 'x');
    await symlink('../../../etc/passwd', join(evil, 'd', 'escape'));
    const linkTar = join(tmp, 'link.tar');
    execFileSync('tar', ['-cf', linkTar, '-C', evil, '.']);
    const out = join(tmp, 'out1');
    await mkdir(out);
    await assert.rejects(extractArchive(linkTar, out), (err: unknown) => isBerthError(err, 'UNSAFE_PATH'));
    const dotdotTar = join(tmp, 'dotdot.tar');
    execFileSync('tar', ['-cf', dotdotTar, '-C', evil, '--transform', 's,^\\./d/f,../escaped,', './d/f']);
    await assert.rejects(extractArchive(dotdotTar, out), (err: unknown) => isBerthError(err, 'UNSAFE_PATH'));
  });

  it('prints plain progress lines when not on a terminal', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const p = new ProgressPrinter(out, false);
    const desc = { mediaType: 'x', digest: `sha256:${'a'.repeat(64)}`, size: 2_000_000 };
    p.handle({ type: 'start', desc });
    p.handle({ type: 'bytes', desc, bytes: 1_000_000, total: 2_000_000 });
    p.handle({ type: 'done', desc });
    p.handle({ type: 'skipped', desc: { ...desc, digest: `sha256:${'b'.repeat(64)}` }, reason: 'exists' });
    assert.match(text, /Copying sha256:aaaaaaaaaaaa \(2\.0 MB\)/);
    assert.match(text, /Copied sha256:aaaaaaaaaaaa 2\.0 MB/);
    assert.match(text, /Exists sha256:bbbbbbbbbbbb/);
    assert.match(p.finish(), /^1 blobs copied \(2\.0 MB/);
    assert.equal(formatBytes(1536), '1.5 KB');
  });
});
