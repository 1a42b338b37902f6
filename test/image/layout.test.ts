import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { OciLayout, REF_NAME_ANNOTATION, validateRefName } from '../../src/image/layout.js';
import { digestOf } from '../../src/base/digest.js';
import { readAll } from '../../src/base/read.js';
import { MediaType } from '../../src/base/media-types.js';
import { isBerthError } from '../../src/base/errors.js';
import { hostPlatform } from '../../src/image/platform.js';
import { parseLayoutPlace } from '../../src/image/place.js';
import type { Descriptor } from '../../src/base/types.js';

function blobDesc(bytes: Buffer, mediaType = 'application/octet-stream'): Descriptor {
  return { mediaType, digest: digestOf(bytes), size: bytes.length };
}

async function pushManifest(layout: OciLayout, extra: Record<string, unknown> = {}): Promise<Descriptor> {
  const config = Buffer.from('{}');
  const cdesc = blobDesc(config, MediaType.empty);
  await layout.push(cdesc, Readable.from([config]));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.imageManifest, config: cdesc, layers: [cdesc], ...extra }));
  const mdesc = blobDesc(manifest, MediaType.imageManifest);
  await layout.push(mdesc, Readable.from([manifest]));
  return mdesc;
}

describe('OciLayout', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-layout-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('readDocument returns a small blob whole and refuses one whose bytes or size are wrong', async () => {
    const layout = await OciLayout.open(join(tmp, 'read-document'), { create: true });
    const doc = Buffer.from('{"hello":"world"}');
    const desc = blobDesc(doc);
    await layout.push(desc, Readable.from([doc]));
    assert.deepEqual(await layout.readDocument(desc), doc);
    const path = join(tmp, 'read-document', 'blobs', 'sha256', desc.digest.slice('sha256:'.length));
    await writeFile(path, '{"hello":"World"}');
    await assert.rejects(layout.readDocument(desc), (e: unknown) => isBerthError(e) && e.code === 'DIGEST_MISMATCH' && e.message.includes(desc.digest));
    await writeFile(path, '{"hello":"world!"}');
    await assert.rejects(layout.readDocument(desc), (e: unknown) => isBerthError(e) && e.code === 'SIZE_MISMATCH');
    await rm(path);
    await assert.rejects(layout.readDocument(desc), (e: unknown) => isBerthError(e) && e.code === 'NOT_FOUND');
  });

  test('create writes oci-layout, index.json and blobs/; open validates them', async () => {
    const dir = join(tmp, 'new');
    const layout = await OciLayout.open(dir, { create: true });
    assert.equal(layout.name, `oci:${dir}`);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    assert.deepEqual((await layout.index()).manifests, []);
    assert.deepEqual(await readdir(join(dir, 'blobs')), []);
    await OciLayout.open(dir); // reopens without create

    await assert.rejects(OciLayout.open(join(tmp, 'absent')), (e) => isBerthError(e, 'LAYOUT_INVALID') && /does not exist/.test(e.message));
    const bad = join(tmp, 'bad');
    await mkdir(join(bad, 'blobs'), { recursive: true });
    await writeFile(join(bad, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    await writeFile(join(bad, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
    await assert.rejects(OciLayout.open(bad), (e) => isBerthError(e, 'LAYOUT_INVALID') && /2\.0\.0/.test(e.message));
    await writeFile(join(bad, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(bad, 'index.json'), '{"schemaVersion":2}');
    await assert.rejects(OciLayout.open(bad), (e) => isBerthError(e, 'LAYOUT_INVALID') && /manifests/.test(e.message));
  });

  test('push then fetch round-trips and verifies; offset reads return the tail', async () => {
    const layout = await OciLayout.open(join(tmp, 'rt'), { create: true });
    const bytes = Buffer.from('hello, layout\n'.repeat(1000));
    const desc = blobDesc(bytes);
    let progress = 0;
    await layout.push(desc, Readable.from([bytes.subarray(0, 5000), bytes.subarray(5000)]), { onBytes: (n) => (progress = n) });
    assert.equal(progress, bytes.length);
    assert.ok(await layout.exists(desc));
    assert.deepEqual(await readAll(await layout.fetch(desc), 1 << 20), bytes);
    assert.deepEqual(await readAll(await layout.fetch(desc, { offset: 7000 }), 1 << 20), bytes.subarray(7000));
    assert.deepEqual(await readFile(layout.blobPath(desc.digest)), bytes);
    // A corrupted blob fails while streaming instead of ending.
    await writeFile(layout.blobPath(desc.digest), Buffer.alloc(bytes.length, 1));
    await assert.rejects(readAll(await layout.fetch(desc), 1 << 20), (e) => isBerthError(e, 'DIGEST_MISMATCH'));
    const missing = blobDesc(Buffer.from('nope'));
    await assert.rejects(layout.fetch(missing), (e) => isBerthError(e, 'NOT_FOUND'));
  });

  test('a push whose content does not match is refused and leaves nothing behind', async () => {
    const layout = await OciLayout.open(join(tmp, 'mismatch'), { create: true });
    const desc = blobDesc(Buffer.from('expected'));
    await assert.rejects(layout.push(desc, Readable.from([Buffer.from('other!!!')])), (e) => isBerthError(e, 'DIGEST_MISMATCH'));
    await assert.rejects(layout.push(desc, Readable.from([Buffer.from('expected-and-more')])), (e) => isBerthError(e, 'SIZE_MISMATCH'));
    assert.equal(await layout.exists(desc), false);
    assert.deepEqual(await readdir(join(layout.dir, 'blobs')), []);
  });

  test('a crash mid-push (source destroyed half-way) leaves no visible blob and no temp file', async () => {
    const layout = await OciLayout.open(join(tmp, 'crash'), { create: true });
    const bytes = Buffer.alloc(1 << 20, 7);
    const desc = blobDesc(bytes);
    const source = new Readable({ read() {} });
    source.push(bytes.subarray(0, 300_000));
    const pushing = layout.push(desc, source);
    setTimeout(() => source.destroy(new Error('connection reset')), 20);
    await assert.rejects(pushing, /connection reset/);
    assert.equal(await layout.exists(desc), false);
    const leftovers = await readdir(join(layout.dir, 'blobs'), { recursive: true });
    assert.deepEqual(leftovers, []);
  });

  test('a source that fails before the push reads it rejects the push (no uncaught error)', async () => {
    const layout = await OciLayout.open(join(tmp, 'early'), { create: true });
    const bytes = Buffer.alloc(4096, 9);
    for (const when of ['at once', 'next tick'] as const) {
      const source = new Readable({ read() {} });
      const pushing = layout.push(blobDesc(bytes), source);
      if (when === 'at once') source.destroy(new Error('gone early'));
      else process.nextTick(() => source.destroy(new Error('gone early')));
      await assert.rejects(pushing, /gone early/);
    }
    assert.deepEqual(await readdir(join(layout.dir, 'blobs'), { recursive: true }), []);
  });

  test('an aborted push (AbortSignal) leaves no blob and no temp file', async () => {
    const layout = await OciLayout.open(join(tmp, 'abort'), { create: true });
    const bytes = Buffer.alloc(1 << 20, 3);
    const source = new Readable({ read() {} });
    source.push(bytes.subarray(0, 1000));
    const ac = new AbortController();
    const pushing = layout.push(blobDesc(bytes), source, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(pushing, (e: Error) => e.name === 'AbortError');
    assert.deepEqual(await readdir(join(layout.dir, 'blobs'), { recursive: true }), []);
  });

  test('8 concurrent pushes of one blob leave one intact blob', async () => {
    const layout = await OciLayout.open(join(tmp, 'conc'), { create: true });
    const bytes = Buffer.alloc(3 << 20);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    const desc = blobDesc(bytes);
    const chunks = (): Buffer[] => Array.from({ length: 48 }, (_, i) => bytes.subarray(i * 65536, (i + 1) * 65536));
    await Promise.all(Array.from({ length: 8 }, () => layout.push(desc, Readable.from(chunks()))));
    assert.deepEqual(await readFile(layout.blobPath(desc.digest)), bytes);
    assert.deepEqual(await readdir(join(layout.dir, 'blobs')), ['sha256']);
    assert.deepEqual(await readdir(join(layout.dir, 'blobs', 'sha256')), [desc.digest.slice(7)]);
  });

  test('ingest stores content under the digest of what was written', async () => {
    const layout = await OciLayout.open(join(tmp, 'ingest'), { create: true });
    const desc = await layout.ingest('text/plain', async (out) => {
      out.write('abc');
      out.write('def');
    });
    assert.deepEqual(desc, { mediaType: 'text/plain', digest: digestOf('abcdef'), size: 6 });
    assert.equal(await readFile(layout.blobPath(desc.digest), 'utf8'), 'abcdef');
    // A producer that fails (at once or half-way) leaves no blob and no temp file.
    await assert.rejects(layout.ingest('x/y', async () => { throw new Error('boom'); }), /boom/);
    await assert.rejects(layout.ingest('x/y', async (out) => { out.write('partial'); await new Promise((r) => setTimeout(r, 5)); throw new Error('late'); }), /late/);
    assert.deepEqual((await readdir(join(layout.dir, 'blobs'), { recursive: true })).sort(), ['sha256', `sha256/${desc.digest.slice(7)}`]);
  });

  test('tag, resolve, tags, untag, addManifest, delete', async () => {
    const layout = await OciLayout.open(join(tmp, 'tags'), { create: true });
    const m = await pushManifest(layout);
    await layout.addManifest(m);
    await layout.addManifest(m);
    assert.equal((await layout.index()).manifests.length, 1);
    await layout.tag(m, 'v1');
    await layout.tag(m, 'v1.0-rc.1');
    // The untagged entry was superseded by the tagged ones.
    assert.deepEqual((await layout.index()).manifests.map((d) => d.annotations?.[REF_NAME_ANNOTATION]), ['v1', 'v1.0-rc.1']);
    assert.deepEqual(await layout.tags(), ['v1', 'v1.0-rc.1']);
    assert.deepEqual(await layout.resolve('v1'), m);
    assert.deepEqual(await layout.resolve(m.digest), m);
    assert.deepEqual(await layout.resolve(`@${m.digest}`), m);
    const m2 = await pushManifest(layout, { annotations: { x: 'y' } });
    // A digest only in blobs/ resolves by reading the blob.
    assert.deepEqual(await layout.resolve(m2.digest), m2);
    await layout.tag(m2, 'v1'); // moves the tag
    assert.equal((await layout.resolve('v1')).digest, m2.digest);
    await assert.rejects(layout.resolve('nope'), (e) => isBerthError(e, 'NOT_FOUND') && /v1/.test(e.message));
    await assert.rejects(layout.tag(m, 'bad tag!'), (e) => isBerthError(e, 'TAG_INVALID'));
    await assert.rejects(layout.tag(blobDesc(Buffer.from('x'), MediaType.imageManifest), 'v9'), (e) => isBerthError(e, 'NOT_FOUND'));
    await layout.untag('v1.0-rc.1');
    await assert.rejects(layout.untag('v1.0-rc.1'), (e) => isBerthError(e, 'NOT_FOUND'));
    await layout.delete(m2);
    assert.deepEqual(await layout.tags(), []);
    assert.ok(await layout.exists(m2), 'delete keeps the blob until gc');
    assert.throws(() => validateRefName('a//b'));
    assert.equal(validateRefName('example.com/app:v1.0--x'), 'example.com/app:v1.0--x');
  });

  test('a name shared by per-platform entries (as other tools write) resolves to the host platform', async () => {
    const layout = await OciLayout.open(join(tmp, 'shared-name'), { create: true });
    const a = await pushManifest(layout, { annotations: { p: 'other' } });
    const b = await pushManifest(layout, { annotations: { p: 'host' } });
    const index = await layout.index();
    const arch = hostPlatform().architecture;
    index.manifests = [
      { ...a, platform: { os: 'linux', architecture: arch === 's390x' ? 'ppc64le' : 's390x' }, annotations: { [REF_NAME_ANNOTATION]: 'multi' } },
      { ...b, platform: hostPlatform(), annotations: { [REF_NAME_ANNOTATION]: 'multi' } },
    ];
    await writeFile(join(layout.dir, 'index.json'), JSON.stringify(index));
    assert.equal((await layout.resolve('multi')).digest, b.digest);
    assert.deepEqual(await layout.tags(), ['multi']);
  });

  test('concurrent tag() calls keep every tag, in-process and across processes', async () => {
    const layout = await OciLayout.open(join(tmp, 'ctag'), { create: true });
    const m = await pushManifest(layout);
    await Promise.all(Array.from({ length: 20 }, (_, i) => layout.tag(m, `t${i}`)));
    // Two other processes tag at the same time as this one.
    const script = `
      const { OciLayout } = await import(${JSON.stringify(new URL('../../src/image/layout.js', import.meta.url).href)});
      const l = await OciLayout.open(process.argv[1]);
      const d = JSON.parse(process.argv[2]);
      await Promise.all(Array.from({ length: 10 }, (_, i) => l.tag(d, process.argv[3] + i)));`;
    const run = (prefix: string) =>
      new Promise<void>((res, rej) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, layout.dir, JSON.stringify(m), prefix], { stdio: 'inherit' });
        child.on('exit', (code) => (code === 0 ? res() : rej(new Error(`child exited ${code}`))));
      });
    await Promise.all([run('p'), run('q'), ...Array.from({ length: 10 }, (_, i) => layout.tag(m, `r${i}`))]);
    const tags = await layout.tags();
    assert.equal(tags.length, 50, `got ${tags.length} tags`);
  });

  test('referrers lists index.json manifests whose subject matches, filtered by artifactType', async () => {
    const layout = await OciLayout.open(join(tmp, 'refs'), { create: true });
    const subject = await pushManifest(layout);
    await layout.tag(subject, 'app');
    const sig = await pushManifest(layout, { artifactType: 'application/example.sig', subject, annotations: { a: 'b' } });
    const sbom = await pushManifest(layout, { artifactType: 'application/example.sbom', subject });
    const unrelated = await pushManifest(layout, { artifactType: 'application/example.sig' });
    for (const d of [sig, sbom, unrelated]) await layout.addManifest(d);
    const all = await layout.referrers(subject);
    assert.deepEqual(all.map((d) => d.digest).sort(), [sig.digest, sbom.digest].sort());
    const sigs = await layout.referrers(subject, 'application/example.sig');
    assert.deepEqual(sigs, [{ ...sig, artifactType: 'application/example.sig', annotations: { a: 'b' } }]);
  });
});

describe('parseLayoutPlace (oci:DIR[:REF])', () => {
  test('splits at the first colon after oci:, accepts @digest, enforces the ref policy', () => {
    const d = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(parseLayoutPlace('oci:./images'), { dir: './images' });
    assert.deepEqual(parseLayoutPlace('oci:/x/y:v1.0'), { dir: '/x/y', ref: 'v1.0' });
    assert.deepEqual(parseLayoutPlace('oci:/x:example.com/app:v1'), { dir: '/x', ref: 'example.com/app:v1' });
    assert.deepEqual(parseLayoutPlace(`oci:/x:${d}`), { dir: '/x', ref: d });
    assert.deepEqual(parseLayoutPlace(`oci:/x@${d}`), { dir: '/x', ref: d });
    assert.deepEqual(parseLayoutPlace('oci:/x:'), { dir: '/x' });
    assert.throws(() => parseLayoutPlace('/x:v1'), (e) => isBerthError(e, 'USAGE'));
    assert.throws(() => parseLayoutPlace('oci::v1'), (e) => isBerthError(e, 'USAGE'));
    assert.throws(() => parseLayoutPlace('oci:/x', { ref: 'required' }), (e) => isBerthError(e, 'USAGE') && /needs a reference/.test(e.message));
    assert.throws(() => parseLayoutPlace('oci:/x:v1', { ref: 'forbidden' }), (e) => isBerthError(e, 'USAGE'));
  });
});
