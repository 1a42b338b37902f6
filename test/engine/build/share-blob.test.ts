/** shareBlob: a blob of one of the build's layouts put into another by hard link (no copy), once. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { digestOf } from '../../../src/base/digest.js';
import { MediaType } from '../../../src/base/media-types.js';
import { readAll } from '../../../src/base/read.js';
import { OciLayout } from '../../../src/image/layout.js';
import { shareBlob } from '../../../src/engine/build/cache.js';

describe('shareBlob', () => {
  it('links the blob into the other layout on one file system, and does nothing when it is there', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-share-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const a = await OciLayout.open(join(dir, 'a'), { create: true });
    const b = await OciLayout.open(join(dir, 'b'), { create: true });
    const data = Buffer.from('a layer, say\n');
    const desc = { mediaType: MediaType.layerTar, digest: digestOf(data), size: data.length };
    await a.push(desc, Readable.from([data]));
    await shareBlob(a, b, desc);
    assert.ok(await b.exists(desc));
    assert.deepEqual(await readAll(await b.fetch(desc)), data);
    const [sa, sb] = await Promise.all([stat(a.blobPath(desc.digest)), stat(b.blobPath(desc.digest))]);
    assert.equal(sb.ino, sa.ino, 'a hard link, not a copy');
    await shareBlob(a, b, desc);
    assert.equal((await stat(b.blobPath(desc.digest))).nlink, 2);
  });
});
