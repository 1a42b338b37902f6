/**
 * Conformance suite derived from distribution-spec spec.md: every endpoint (end-1 … end-14),
 * the status codes and headers it names, the error codes and the MUSTs, against `berth serve`
 * started on a free loopback port.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBerthRegistry, type BerthRegistry } from '../helpers/berth-registry.js';
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_MANIFEST,
  errorCode,
  errorCodes,
  pushBlob,
  pushImage,
  pushImageBlobs,
  putManifest,
  sha256,
  sha512,
} from './registry-client.js';

let reg: BerthRegistry;
let base: string;

before(async () => {
  reg = await startBerthRegistry();
  base = reg.url;
});
after(async () => {
  await reg?.stop();
});

describe('end-1 GET /v2/', () => {
  it('answers 200 with the API version header', async () => {
    const res = await fetch(`${base}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    await res.arrayBuffer();
  });
});

describe('pull: blobs (end-2)', () => {
  it('GET returns the bytes with Docker-Content-Digest and Content-Length; HEAD the same headers without a body', async () => {
    const data = Buffer.from('hello blob pull');
    const digest = await pushBlob(base, 'pull/blob', data);
    const get = await fetch(`${base}/v2/pull/blob/blobs/${digest}`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('docker-content-digest'), digest);
    assert.equal(get.headers.get('content-length'), String(data.length));
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
    const head = await fetch(`${base}/v2/pull/blob/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('docker-content-digest'), digest);
    assert.equal(head.headers.get('content-length'), String(data.length));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });

  it('serves large blobs streamed, byte for byte', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const digest = await pushBlob(base, 'pull/big', data);
    const get = await fetch(`${base}/v2/pull/big/blobs/${digest}`);
    assert.equal(get.status, 200);
    const body = Buffer.from(await get.arrayBuffer());
    assert.equal(sha256(body), digest);
  });

  it('supports Range requests (206 with Content-Range) and refuses unsatisfiable ones with 416', async () => {
    const data = Buffer.from('0123456789abcdef');
    const digest = await pushBlob(base, 'pull/range', data);
    const part = await fetch(`${base}/v2/pull/range/blobs/${digest}`, { headers: { Range: 'bytes=2-5' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 2-5/${data.length}`);
    assert.equal(await part.text(), '2345');
    const tail = await fetch(`${base}/v2/pull/range/blobs/${digest}`, { headers: { Range: 'bytes=-3' } });
    assert.equal(tail.status, 206);
    assert.equal(await tail.text(), 'def');
    const open = await fetch(`${base}/v2/pull/range/blobs/${digest}`, { headers: { Range: 'bytes=10-' } });
    assert.equal(await open.text(), 'abcdef');
    const bad = await fetch(`${base}/v2/pull/range/blobs/${digest}`, { headers: { Range: 'bytes=100-200' } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), `bytes */${data.length}`);
    await bad.arrayBuffer();
  });

  it('ranges over a large (streamed) blob', async () => {
    const data = Buffer.alloc(200_000, 7);
    data.write('MARK', 150_000);
    const digest = await pushBlob(base, 'pull/bigrange', data);
    const part = await fetch(`${base}/v2/pull/bigrange/blobs/${digest}`, { headers: { Range: 'bytes=150000-150003' } });
    assert.equal(part.status, 206);
    assert.equal(await part.text(), 'MARK');
  });

  it('404 BLOB_UNKNOWN for an unknown blob, and for a blob of another repository', async () => {
    const digest = await pushBlob(base, 'pull/owner', 'private bytes');
    const missing = await fetch(`${base}/v2/pull/owner/blobs/${sha256('nope')}`);
    assert.equal(missing.status, 404);
    assert.equal(await errorCode(missing), 'BLOB_UNKNOWN');
    const other = await fetch(`${base}/v2/pull/other/blobs/${digest}`);
    assert.equal(other.status, 404);
    assert.equal(await errorCode(other), 'BLOB_UNKNOWN');
    const head = await fetch(`${base}/v2/pull/owner/blobs/${sha256('nope')}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
  });

  it('400 DIGEST_INVALID for a malformed digest', async () => {
    const res = await fetch(`${base}/v2/pull/owner/blobs/sha256:xyz`);
    assert.equal(res.status, 400);
    assert.equal(await errorCode(res), 'DIGEST_INVALID');
  });
});

describe('push: monolithic (end-4a, end-4b, end-6)', () => {
  it('POST answers 202 with a Location holding a unique session id', async () => {
    const a = await fetch(`${base}/v2/push/mono/blobs/uploads/`, { method: 'POST' });
    const b = await fetch(`${base}/v2/push/mono/blobs/uploads/`, { method: 'POST' });
    assert.equal(a.status, 202);
    assert.ok(a.headers.get('location'));
    assert.notEqual(a.headers.get('location'), b.headers.get('location'));
    assert.match(a.headers.get('location')!, /[0-9a-f-]{36}/);
  });

  it('PUT with ?digest closes the session: 201 with a pullable Location', async () => {
    const data = Buffer.from('monolithic');
    const post = await fetch(`${base}/v2/push/mono/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!, base);
    loc.searchParams.set('digest', sha256(data));
    const put = await fetch(loc, { method: 'PUT', body: data, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('docker-content-digest'), sha256(data));
    const pulled = await fetch(new URL(put.headers.get('location')!, base));
    assert.equal(pulled.status, 200);
    assert.equal(await pulled.text(), 'monolithic');
  });

  it('a single POST with ?digest stores the blob: 201 with Location', async () => {
    const data = Buffer.from('single post');
    const res = await fetch(`${base}/v2/push/single/blobs/uploads/?digest=${sha256(data)}`, {
      method: 'POST',
      body: data,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(res.status, 201);
    assert.equal(new URL(res.headers.get('location')!, base).pathname, `/v2/push/single/blobs/${sha256(data)}`);
    assert.equal(await (await fetch(`${base}/v2/push/single/blobs/${sha256(data)}`)).text(), 'single post');
  });

  it('a single POST whose body does not match the digest is refused with 400 DIGEST_INVALID and stores nothing', async () => {
    const digest = sha256('the real content');
    const res = await fetch(`${base}/v2/push/single/blobs/uploads/?digest=${digest}`, { method: 'POST', body: 'other content' });
    assert.equal(res.status, 400);
    assert.equal(await errorCode(res), 'DIGEST_INVALID');
    assert.equal((await fetch(`${base}/v2/push/single/blobs/${digest}`, { method: 'HEAD' })).status, 404);
  });

  it('PUT with a wrong digest: 400 DIGEST_INVALID, the blob is not visible', async () => {
    const post = await fetch(`${base}/v2/push/mono/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!, base);
    const claimed = sha256('claimed');
    loc.searchParams.set('digest', claimed);
    const put = await fetch(loc, { method: 'PUT', body: 'actual' });
    assert.equal(put.status, 400);
    assert.equal(await errorCode(put), 'DIGEST_INVALID');
    assert.equal((await fetch(`${base}/v2/push/mono/blobs/${claimed}`, { method: 'HEAD' })).status, 404);
  });

  it('PUT with a malformed or missing digest: 400 DIGEST_INVALID', async () => {
    const post = await fetch(`${base}/v2/push/mono/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!, base);
    const none = await fetch(loc, { method: 'PUT', body: 'x' });
    assert.equal(none.status, 400);
    assert.equal(await errorCode(none), 'DIGEST_INVALID');
    loc.searchParams.set('digest', 'md5:abc');
    const bad = await fetch(loc, { method: 'PUT', body: 'x' });
    assert.equal(bad.status, 400);
    assert.equal(await errorCode(bad), 'DIGEST_INVALID');
  });

  it('pushing the same blob twice (and concurrently) is fine', async () => {
    const data = Buffer.from('dup '.repeat(1000));
    const results = await Promise.all([1, 2, 3, 4].map(() => pushBlob(base, 'push/dup', data)));
    assert.ok(results.every((d) => d === sha256(data)));
    assert.equal(await (await fetch(`${base}/v2/push/dup/blobs/${sha256(data)}`)).text(), data.toString());
  });
});

describe('push: chunked (end-5, end-6, end-13, end-14)', () => {
  it('PATCH chunks in order: 202 with Location and Range; GET status 204; PUT with the last chunk: 201', async () => {
    const data = Buffer.from('0123456789ABCDEFGHIJ-tail');
    const post = await fetch(`${base}/v2/push/chunked/blobs/uploads/`, { method: 'POST', headers: { 'Content-Length': '0' } });
    assert.equal(post.status, 202);
    let loc = new URL(post.headers.get('location')!, base);
    const p1 = await fetch(loc, { method: 'PATCH', body: data.subarray(0, 10), headers: { 'Content-Range': '0-9', 'Content-Type': 'application/octet-stream' } });
    assert.equal(p1.status, 202);
    assert.equal(p1.headers.get('range'), '0-9');
    loc = new URL(p1.headers.get('location')!, base);
    const status = await fetch(loc);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-9');
    assert.ok(status.headers.get('location'));
    const p2 = await fetch(loc, { method: 'PATCH', body: data.subarray(10, 20), headers: { 'Content-Range': '10-19' } });
    assert.equal(p2.status, 202);
    assert.equal(p2.headers.get('range'), '0-19');
    loc = new URL(p2.headers.get('location')!, base);
    loc.searchParams.set('digest', sha256(data));
    const put = await fetch(loc, { method: 'PUT', body: data.subarray(20), headers: { 'Content-Range': `20-${data.length - 1}` } });
    assert.equal(put.status, 201, await put.text());
    assert.equal(await (await fetch(`${base}/v2/push/chunked/blobs/${sha256(data)}`)).text(), data.toString());
  });

  it('an out-of-order chunk gets 416, and the upload resumes from the status Range', async () => {
    const data = Buffer.from('abcdefghijklmnopqrst');
    const post = await fetch(`${base}/v2/push/chunked/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!, base);
    assert.equal((await fetch(loc, { method: 'PATCH', body: data.subarray(0, 5), headers: { 'Content-Range': '0-4' } })).status, 202);
    const skip = await fetch(loc, { method: 'PATCH', body: data.subarray(10, 15), headers: { 'Content-Range': '10-14' } });
    assert.equal(skip.status, 416);
    await skip.arrayBuffer();
    const again = await fetch(loc, { method: 'PATCH', body: data.subarray(0, 5), headers: { 'Content-Range': '0-4' } });
    assert.equal(again.status, 416, 'a repeated chunk is out of order too');
    await again.arrayBuffer();
    const status = await fetch(loc);
    assert.equal(status.headers.get('range'), '0-4');
    assert.equal((await fetch(loc, { method: 'PATCH', body: data.subarray(5), headers: { 'Content-Range': `5-${data.length - 1}` } })).status, 202);
    loc.searchParams.set('digest', sha256(data));
    const put = await fetch(loc, { method: 'PUT' });
    assert.equal(put.status, 201);
  });

  it('a final chunk out of order on PUT gets 416', async () => {
    const post = await fetch(`${base}/v2/push/chunked/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!, base);
    await fetch(loc, { method: 'PATCH', body: 'abc', headers: { 'Content-Range': '0-2' } });
    loc.searchParams.set('digest', sha256('abcdef'));
    const put = await fetch(loc, { method: 'PUT', body: 'def', headers: { 'Content-Range': '4-6' } });
    assert.equal(put.status, 416);
    await put.arrayBuffer();
  });

  it('PATCH without Content-Range appends (streamed uploads as docker sends them)', async () => {
    const data = Buffer.from('streamed without ranges');
    const post = await fetch(`${base}/v2/push/chunked/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!, base);
    const p = await fetch(loc, { method: 'PATCH', body: data });
    assert.equal(p.status, 202);
    assert.equal(p.headers.get('range'), `0-${data.length - 1}`);
    loc.searchParams.set('digest', sha256(data));
    assert.equal((await fetch(loc, { method: 'PUT' })).status, 201);
  });

  it('DELETE cancels a session: 204, then 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const post = await fetch(`${base}/v2/push/cancel/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!, base);
    await fetch(loc, { method: 'PATCH', body: 'partial', headers: { 'Content-Range': '0-6' } });
    const del = await fetch(loc, { method: 'DELETE' });
    assert.equal(del.status, 204);
    const status = await fetch(loc);
    assert.equal(status.status, 404);
    assert.equal(await errorCode(status), 'BLOB_UPLOAD_UNKNOWN');
    const patch = await fetch(loc, { method: 'PATCH', body: 'x' });
    assert.equal(patch.status, 404);
    assert.equal(await errorCode(patch), 'BLOB_UPLOAD_UNKNOWN');
    const del2 = await fetch(loc, { method: 'DELETE' });
    assert.equal(del2.status, 404);
    await del2.arrayBuffer();
  });

  it('an upload session belongs to its repository', async () => {
    const post = await fetch(`${base}/v2/push/owner/blobs/uploads/`, { method: 'POST' });
    const id = post.headers.get('location')!.split('/').pop();
    const res = await fetch(`${base}/v2/push/intruder/blobs/uploads/${id}`);
    assert.equal(res.status, 404);
    assert.equal(await errorCode(res), 'BLOB_UPLOAD_UNKNOWN');
    const junk = await fetch(`${base}/v2/push/owner/blobs/uploads/not-a-session`);
    assert.equal(junk.status, 404);
    await junk.arrayBuffer();
  });
});

describe('push: digest algorithms (end-4c)', () => {
  it('sha512 uploads with digest-algorithm=sha512 are stored and served by their sha512 digest', async () => {
    const data = Buffer.from('sha512 content');
    const post = await fetch(`${base}/v2/push/sha512/blobs/uploads/?digest-algorithm=sha512`, { method: 'POST' });
    assert.equal(post.status, 202);
    const loc = new URL(post.headers.get('location')!, base);
    await fetch(loc, { method: 'PATCH', body: data, headers: { 'Content-Range': `0-${data.length - 1}` } });
    loc.searchParams.set('digest', sha512(data));
    const put = await fetch(loc, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const get = await fetch(`${base}/v2/push/sha512/blobs/${sha512(data)}`);
    assert.equal(get.headers.get('docker-content-digest'), sha512(data));
    assert.equal(await get.text(), 'sha512 content');
  });

  it('a sha512 digest on a default session still verifies (the upload is rehashed)', async () => {
    const data = Buffer.from('rehash me');
    const post = await fetch(`${base}/v2/push/sha512/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!, base);
    loc.searchParams.set('digest', sha512(data));
    assert.equal((await fetch(loc, { method: 'PUT', body: data })).status, 201);
  });

  it('an unsupported algorithm gets 400', async () => {
    const res = await fetch(`${base}/v2/push/sha512/blobs/uploads/?digest-algorithm=md5`, { method: 'POST' });
    assert.equal(res.status, 400);
    assert.equal(await errorCode(res), 'DIGEST_INVALID');
  });
});

describe('push: cross-repository mount (end-11)', () => {
  it('mount with from: 201 with Location and Docker-Content-Digest', async () => {
    const digest = await pushBlob(base, 'mount/src', 'mount me');
    const res = await fetch(`${base}/v2/mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.equal(new URL(res.headers.get('location')!, base).pathname, `/v2/mount/dst/blobs/${digest}`);
    assert.equal(await (await fetch(`${base}/v2/mount/dst/blobs/${digest}`)).text(), 'mount me');
  });

  it('mount without from finds the blob by itself', async () => {
    const digest = await pushBlob(base, 'mount/src2', 'auto mount');
    const res = await fetch(`${base}/v2/mount/auto/blobs/uploads/?mount=${digest}`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal(await (await fetch(`${base}/v2/mount/auto/blobs/${digest}`)).text(), 'auto mount');
  });

  it('an unknown blob cannot be mounted: 202 and an upload session instead', async () => {
    const res = await fetch(`${base}/v2/mount/dst/blobs/uploads/?mount=${sha256('absent')}&from=mount/src`, { method: 'POST' });
    assert.equal(res.status, 202);
    assert.match(res.headers.get('location')!, /\/v2\/mount\/dst\/blobs\/uploads\//);
  });

  it('a blob that is not in `from` is not mounted', async () => {
    const digest = await pushBlob(base, 'mount/elsewhere', 'only elsewhere');
    const res = await fetch(`${base}/v2/mount/dst2/blobs/uploads/?mount=${digest}&from=mount/src`, { method: 'POST' });
    assert.equal(res.status, 202);
  });
});

describe('manifests (end-3, end-7a, end-7b)', () => {
  it('PUT by tag: 201 with Location and Docker-Content-Digest; GET by tag and digest return the exact bytes and Content-Type', async () => {
    const img = await pushImageBlobs(base, 'man/basic', 'basic');
    const put = await putManifest(base, 'man/basic', 'v1', img.manifest);
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('docker-content-digest'), img.digest);
    assert.equal(new URL(put.headers.get('location')!, base).pathname, `/v2/man/basic/manifests/${img.digest}`);
    for (const ref of ['v1', img.digest]) {
      const get = await fetch(`${base}/v2/man/basic/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(get.status, 200);
      assert.equal(get.headers.get('content-type'), OCI_MANIFEST);
      assert.equal(get.headers.get('docker-content-digest'), img.digest);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), img.manifest);
      const head = await fetch(`${base}/v2/man/basic/manifests/${ref}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(img.manifest.length));
      assert.equal(head.headers.get('docker-content-digest'), img.digest);
    }
  });

  it('keeps the exact byte representation (whitespace and key order)', async () => {
    const img = await pushImageBlobs(base, 'man/bytes', 'bytes');
    const pretty = Buffer.from(JSON.stringify(JSON.parse(img.manifest.toString()), null, 3) + '\n\n');
    assert.equal((await putManifest(base, 'man/bytes', 'pretty', pretty)).status, 201);
    const got = Buffer.from(await (await fetch(`${base}/v2/man/bytes/manifests/pretty`)).arrayBuffer());
    assert.deepEqual(got, pretty);
  });

  it('PUT by digest: 201; a digest that does not match the body: 400 DIGEST_INVALID', async () => {
    const img = await pushImageBlobs(base, 'man/bydigest', 'bydigest');
    assert.equal((await putManifest(base, 'man/bydigest', img.digest, img.manifest)).status, 201);
    const wrong = await putManifest(base, 'man/bydigest', sha256('other'), img.manifest);
    assert.equal(wrong.status, 400);
    assert.equal(await errorCode(wrong), 'DIGEST_INVALID');
  });

  it('a manifest pushed by its sha512 digest is served by that digest', async () => {
    const img = await pushImageBlobs(base, 'man/sha512', 'sha512');
    const d512 = sha512(img.manifest);
    const put = await fetch(`${base}/v2/man/sha512/manifests/${d512}?tag=v512`, { method: 'PUT', body: img.manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('docker-content-digest'), d512);
    const get = await fetch(`${base}/v2/man/sha512/manifests/v512`);
    assert.equal(get.headers.get('docker-content-digest'), d512);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), img.manifest);
  });

  it('several tags in one PUT (end-7b): OCI-Tag headers, every tag resolves', async () => {
    const img = await pushImageBlobs(base, 'man/tags', 'tags');
    const res = await fetch(`${base}/v2/man/tags/manifests/${img.digest}?tag=1.2.3&tag=1.2&tag=1&tag=latest`, {
      method: 'PUT',
      body: img.manifest,
      headers: { 'Content-Type': OCI_MANIFEST },
    });
    assert.equal(res.status, 201);
    const ociTag = res.headers.get('oci-tag')!.split(',').map((s) => s.trim());
    assert.deepEqual(ociTag.sort(), ['1', '1.2', '1.2.3', 'latest']);
    for (const t of ['1.2.3', '1.2', '1', 'latest']) {
      const get = await fetch(`${base}/v2/man/tags/manifests/${t}`, { method: 'HEAD' });
      assert.equal(get.headers.get('docker-content-digest'), img.digest);
    }
    const bad = await fetch(`${base}/v2/man/tags/manifests/${img.digest}?tag=-bad`, { method: 'PUT', body: img.manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(bad.status, 400);
    await bad.arrayBuffer();
  });

  it('a manifest referencing an unknown blob: 400 MANIFEST_BLOB_UNKNOWN for each missing blob, nothing stored', async () => {
    const config = Buffer.from('{}');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: sha256(config), size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('missing layer'), size: 13 }],
      }),
    );
    const res = await putManifest(base, 'man/missing', 'v1', manifest);
    assert.equal(res.status, 400);
    const codes = await errorCodes(res);
    assert.deepEqual(codes, ['MANIFEST_BLOB_UNKNOWN', 'MANIFEST_BLOB_UNKNOWN']);
    assert.equal((await fetch(`${base}/v2/man/missing/manifests/v1`)).status, 404);
  });

  it('malformed manifests: 400 MANIFEST_INVALID', async () => {
    for (const body of ['not json', '[]', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }), JSON.stringify({ schemaVersion: 1 })]) {
      const res = await putManifest(base, 'man/invalid', 'v1', Buffer.from(body));
      assert.equal(res.status, 400, body);
      assert.equal(await errorCode(res), 'MANIFEST_INVALID');
    }
    const img = await pushImageBlobs(base, 'man/invalid', 'mismatch');
    const mismatch = await putManifest(base, 'man/invalid', 'v1', img.manifest, OCI_INDEX);
    assert.equal(mismatch.status, 400, 'Content-Type must agree with mediaType');
    assert.equal(await errorCode(mismatch), 'MANIFEST_INVALID');
  });

  it('a manifest over the size limit: 413', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 10, 0x20);
    const res = await putManifest(base, 'man/big', 'v1', big);
    assert.equal(res.status, 413);
    await res.arrayBuffer();
  });

  it('404 MANIFEST_UNKNOWN for unknown tags and digests, and in unknown repositories', async () => {
    for (const url of [`${base}/v2/man/basic/manifests/nope`, `${base}/v2/man/basic/manifests/${sha256('x')}`, `${base}/v2/never/pushed/manifests/latest`]) {
      const res = await fetch(url);
      assert.equal(res.status, 404);
      assert.ok(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN'].includes(await errorCode(res)));
    }
  });

  it('an image index needs its manifests present (MANIFEST_BLOB_UNKNOWN), then round-trips', async () => {
    const child = await pushImage(base, 'man/index', 'child');
    const absent = sha256('absent manifest');
    const index = (digests: string[]) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: digests.map((d) => ({ mediaType: OCI_MANIFEST, digest: d, size: 100, platform: { architecture: 'amd64', os: 'linux' } })),
        }),
      );
    const bad = await putManifest(base, 'man/index', 'multi', index([child.digest, absent]), OCI_INDEX);
    assert.equal(bad.status, 400);
    assert.deepEqual(await errorCodes(bad), ['MANIFEST_BLOB_UNKNOWN']);
    const good = index([child.digest]);
    assert.equal((await putManifest(base, 'man/index', 'multi', good, OCI_INDEX)).status, 201);
    const get = await fetch(`${base}/v2/man/index/manifests/multi`);
    assert.equal(get.headers.get('content-type'), OCI_INDEX);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), good);
  });

  it('Docker schema 2 manifests and manifest lists keep their media types', async () => {
    const img = await pushImageBlobs(base, 'man/docker', 'docker');
    const m = JSON.parse(img.manifest.toString());
    m.mediaType = DOCKER_MANIFEST;
    m.config.mediaType = 'application/vnd.docker.container.image.v1+json';
    m.layers[0].mediaType = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
    const body = Buffer.from(JSON.stringify(m));
    assert.equal((await putManifest(base, 'man/docker', 'v2', body, DOCKER_MANIFEST)).status, 201);
    const list = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [{ mediaType: DOCKER_MANIFEST, digest: sha256(body), size: body.length, platform: { architecture: 'amd64', os: 'linux' } }] }),
    );
    assert.equal((await putManifest(base, 'man/docker', 'list', list, DOCKER_LIST)).status, 201);
    assert.equal((await fetch(`${base}/v2/man/docker/manifests/v2`, { method: 'HEAD' })).headers.get('content-type'), DOCKER_MANIFEST);
    assert.equal((await fetch(`${base}/v2/man/docker/manifests/list`, { method: 'HEAD' })).headers.get('content-type'), DOCKER_LIST);
  });

  it('concurrent pushes of the same manifest (and of different manifests to one tag) are safe', async () => {
    const img = await pushImageBlobs(base, 'man/race', 'race');
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map(() => putManifest(base, 'man/race', 'same', img.manifest)));
    assert.ok(results.every((r) => r.status === 201));
    const others = await Promise.all(['a', 'b', 'c'].map((s) => pushImageBlobs(base, 'man/race', s)));
    const puts = await Promise.all(others.map((o) => putManifest(base, 'man/race', 'contended', o.manifest)));
    assert.ok(puts.every((r) => r.status === 201));
    const winner = (await fetch(`${base}/v2/man/race/manifests/contended`, { method: 'HEAD' })).headers.get('docker-content-digest');
    assert.ok(others.some((o) => o.digest === winner), 'the tag points at one of the pushed manifests');
    for (const o of others) assert.equal((await fetch(`${base}/v2/man/race/manifests/${o.digest}`, { method: 'HEAD' })).status, 200);
  });

  it('re-tagging moves the tag', async () => {
    const a = await pushImage(base, 'man/retag', 'latest', 'a');
    const b = await pushImage(base, 'man/retag', 'latest', 'b');
    assert.notEqual(a.digest, b.digest);
    const head = await fetch(`${base}/v2/man/retag/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.headers.get('docker-content-digest'), b.digest);
  });
});

describe('referrers (end-12a, end-12b) and OCI-Subject', () => {
  it('a manifest with a subject is accepted before its subject exists, answers OCI-Subject, and is listed', async () => {
    const subject = await pushImageBlobs(base, 'ref/app', 'subject');
    const empty = Buffer.from('{}');
    await pushBlob(base, 'ref/app', empty);
    const sbom = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sbom.v1',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 }],
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length },
        annotations: { 'org.example.sbom.format': 'json' },
      }),
    );
    const put = await putManifest(base, 'ref/app', sha256(sbom), sbom);
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('oci-subject'), subject.digest);
    // a referrer without artifactType: the config media type is reported
    const sigConfig = Buffer.from('{"sig":true}');
    await pushBlob(base, 'ref/app', sigConfig);
    const sig = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.example.signature.config.v1+json', digest: sha256(sigConfig), size: sigConfig.length },
        layers: [],
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length },
      }),
    );
    assert.equal((await putManifest(base, 'ref/app', sha256(sig), sig)).status, 201);
    // an index referrer without artifactType: artifactType omitted
    const idx = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length }, annotations: { a: 'b' } }),
    );
    assert.equal((await putManifest(base, 'ref/app', sha256(idx), idx, OCI_INDEX)).status, 201);
    assert.equal((await putManifest(base, 'ref/app', 'v1', subject.manifest)).status, 201);

    const res = await fetch(`${base}/v2/ref/app/referrers/${subject.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), OCI_INDEX);
    const body = (await res.json()) as { schemaVersion: number; mediaType: string; manifests: Record<string, unknown>[] };
    assert.equal(body.schemaVersion, 2);
    assert.equal(body.mediaType, OCI_INDEX);
    assert.equal(body.manifests.length, 3);
    const byDigest = new Map(body.manifests.map((m) => [m.digest, m]));
    assert.deepEqual(byDigest.get(sha256(sbom)), {
      mediaType: OCI_MANIFEST,
      digest: sha256(sbom),
      size: sbom.length,
      artifactType: 'application/vnd.example.sbom.v1',
      annotations: { 'org.example.sbom.format': 'json' },
    });
    assert.equal(byDigest.get(sha256(sig))!.artifactType, 'application/vnd.example.signature.config.v1+json');
    assert.equal(byDigest.get(sha256(idx))!.artifactType, undefined);
    assert.deepEqual(byDigest.get(sha256(idx))!.annotations, { a: 'b' });

    const filtered = await fetch(`${base}/v2/ref/app/referrers/${subject.digest}?artifactType=application/vnd.example.sbom.v1`);
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
    const fbody = (await filtered.json()) as { manifests: { digest: string }[] };
    assert.deepEqual(fbody.manifests.map((m) => m.digest), [sha256(sbom)]);
  });

  it('an unknown subject gets 200 and an empty index; a malformed digest 400', async () => {
    const res = await fetch(`${base}/v2/ref/app/referrers/${sha256('nothing refers to me')}`);
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { manifests: unknown[] }).manifests, []);
    const bad = await fetch(`${base}/v2/ref/app/referrers/sha256:zz`);
    assert.equal(bad.status, 400);
    assert.equal(await errorCode(bad), 'DIGEST_INVALID');
  });
});

describe('content discovery: tags (end-8a, end-8b) and catalog', () => {
  const tags = ['B', 'a', 'b', '1.0', 'latest', 'v2', 'v10', '_x'];
  before(async () => {
    const img = await pushImageBlobs(base, 'tags/repo', 'tags');
    for (const t of tags) assert.equal((await putManifest(base, 'tags/repo', t, img.manifest)).status, 201);
  });

  it('lists every tag in ASCII order', async () => {
    const res = await fetch(`${base}/v2/tags/repo/tags/list`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { name: 'tags/repo', tags: [...tags].sort() });
  });

  it('paginates with n and last, with a Link rel="next" while more remain', async () => {
    const sorted = [...tags].sort();
    const seen: string[] = [];
    let url: string | undefined = `${base}/v2/tags/repo/tags/list?n=3`;
    let pages = 0;
    while (url) {
      const res: Response = await fetch(url);
      const body = (await res.json()) as { tags: string[] };
      pages++;
      const link = res.headers.get('link');
      if (link) {
        assert.equal(body.tags.length, 3, 'a page with a Link must hold n tags');
        const m = /^<([^>]+)>;\s*rel="next"$/.exec(link);
        assert.ok(m, `Link header ${link}`);
        url = new URL(m[1]!, base).href;
      } else url = undefined;
      seen.push(...body.tags);
    }
    assert.deepEqual(seen, sorted);
    assert.equal(pages, 3);
    const after = await fetch(`${base}/v2/tags/repo/tags/list?n=2&last=a`);
    assert.deepEqual(((await after.json()) as { tags: string[] }).tags, sorted.slice(sorted.indexOf('a') + 1, sorted.indexOf('a') + 3));
    const lastOnly = await fetch(`${base}/v2/tags/repo/tags/list?last=v10`);
    assert.deepEqual(((await lastOnly.json()) as { tags: string[] }).tags, ['v2']);
  });

  it('n=0 returns an empty list without a Link header', async () => {
    const res = await fetch(`${base}/v2/tags/repo/tags/list?n=0`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('link'), null);
    assert.deepEqual(((await res.json()) as { tags: string[] }).tags, []);
  });

  it('an unknown repository: 404 NAME_UNKNOWN', async () => {
    const res = await fetch(`${base}/v2/no/such/repo/tags/list`);
    assert.equal(res.status, 404);
    assert.equal(await errorCode(res), 'NAME_UNKNOWN');
  });

  it('_catalog lists repositories with pagination', async () => {
    const all = (await (await fetch(`${base}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.ok(all.repositories.includes('tags/repo'));
    assert.deepEqual(all.repositories, [...all.repositories].sort());
    const page = await fetch(`${base}/v2/_catalog?n=1`);
    assert.equal(((await page.json()) as { repositories: string[] }).repositories.length, 1);
    assert.match(page.headers.get('link')!, /rel="next"/);
  });
});

describe('content management (end-9, end-10)', () => {
  it('deleting a tag: 202, then the tag is 404 and the manifest remains by digest', async () => {
    const img = await pushImage(base, 'del/tag', 'gone');
    const del = await fetch(`${base}/v2/del/tag/manifests/gone`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    assert.equal((await fetch(`${base}/v2/del/tag/manifests/gone`)).status, 404);
    assert.equal((await fetch(`${base}/v2/del/tag/manifests/${img.digest}`)).status, 200);
  });

  it('deleting a manifest by digest: 202, then the digest and its tags are 404', async () => {
    const img = await pushImage(base, 'del/manifest', 'v1');
    await putManifest(base, 'del/manifest', 'v2', img.manifest);
    const del = await fetch(`${base}/v2/del/manifest/manifests/${img.digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    for (const ref of [img.digest, 'v1', 'v2']) assert.equal((await fetch(`${base}/v2/del/manifest/manifests/${ref}`)).status, 404);
    const again = await fetch(`${base}/v2/del/manifest/manifests/${img.digest}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.equal(await errorCode(again), 'MANIFEST_UNKNOWN');
  });

  it('deleting a blob: 202, then 404; deleting an unknown blob: 404 BLOB_UNKNOWN', async () => {
    const digest = await pushBlob(base, 'del/blob', 'delete me');
    const del = await fetch(`${base}/v2/del/blob/blobs/${digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    assert.equal((await fetch(`${base}/v2/del/blob/blobs/${digest}`)).status, 404);
    const again = await fetch(`${base}/v2/del/blob/blobs/${digest}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.equal(await errorCode(again), 'BLOB_UNKNOWN');
  });

  it('a deleted referrer leaves the referrers list', async () => {
    const subject = await pushImage(base, 'del/ref', 'v1');
    const art = await pushImageBlobs(base, 'del/ref', 'artifact', { subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length } });
    await putManifest(base, 'del/ref', art.digest, art.manifest);
    const list = async () => ((await (await fetch(`${base}/v2/del/ref/referrers/${subject.digest}`)).json()) as { manifests: unknown[] }).manifests.length;
    assert.equal(await list(), 1);
    await fetch(`${base}/v2/del/ref/manifests/${art.digest}`, { method: 'DELETE' });
    assert.equal(await list(), 0);
  });
});

describe('validation and errors', () => {
  it('invalid repository names: 400 NAME_INVALID before anything is stored', async () => {
    for (const name of ['UPPER/case', 'a//b', 'trailing-/x', 'x'.repeat(256)]) {
      const res = await fetch(`${base}/v2/${name}/tags/list`);
      assert.equal(res.status, 400, name);
      assert.equal(await errorCode(res), 'NAME_INVALID');
    }
    const post = await fetch(`${base}/v2/Bad/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 400);
    assert.equal(await errorCode(post), 'NAME_INVALID');
  });

  it('invalid tags: 400', async () => {
    for (const ref of ['-dash', '.dot', 'x'.repeat(129)]) {
      const res = await fetch(`${base}/v2/man/basic/manifests/${ref}`);
      assert.equal(res.status, 400, ref);
      assert.equal(await errorCode(res), 'TAG_INVALID');
    }
  });

  it('unknown endpoints and methods get JSON errors', async () => {
    const res = await fetch(`${base}/v2/man/basic/unknown/x`);
    assert.equal(res.status, 404);
    assert.equal(await errorCode(res), 'UNSUPPORTED');
    const m = await fetch(`${base}/v2/man/basic/tags/list`, { method: 'POST' });
    assert.equal(m.status, 405);
    assert.equal(await errorCode(m), 'UNSUPPORTED');
  });
});

describe('operations endpoints', () => {
  it('/metrics in Prometheus text format and a health endpoint', async () => {
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /^# TYPE berth_http_requests_total counter$/m);
    assert.match(text, /^berth_http_requests_total\{route="manifest",method="GET",status="200"\} \d+$/m);
    assert.match(text, /^berth_http_request_duration_seconds_bucket\{route="blob",le="\+Inf"\} \d+$/m);
    assert.match(text, /^berth_blobs_stored [1-9]\d*$/m);
    assert.match(text, /^berth_blob_bytes_stored [1-9]\d*$/m);
    assert.match(text, /^berth_http_sent_bytes_total [1-9]\d*$/m);
    assert.match(text, /^berth_uploads_in_flight 0$/m);
  });
});

describe('a registry with deletion disabled, a chunk minimum and a short upload lifetime', () => {
  let r: BerthRegistry;
  before(async () => {
    r = await startBerthRegistry({
      args: ['--no-delete', '--chunk-min-length', '1024', '--upload-purge-after', '1', '--warning', 'this registry is a test', '--warning', 'second notice'],
    });
  });
  after(async () => {
    await r?.stop();
  });

  it('deletes get 405 UNSUPPORTED and nothing is deleted', async () => {
    const img = await pushImage(r.url, 'nodel/app', 'v1');
    for (const url of [`${r.url}/v2/nodel/app/manifests/v1`, `${r.url}/v2/nodel/app/manifests/${img.digest}`, `${r.url}/v2/nodel/app/blobs/${sha256(img.layer)}`]) {
      const res = await fetch(url, { method: 'DELETE' });
      assert.equal(res.status, 405);
      assert.equal(await errorCode(res), 'UNSUPPORTED');
    }
    assert.equal((await fetch(`${r.url}/v2/nodel/app/manifests/v1`)).status, 200);
  });

  it('sends Warning headers with warn-code 299 and warn-agent "-" (spec.md "Warnings")', async () => {
    const res = await fetch(`${r.url}/v2/`);
    assert.equal(res.headers.get('warning'), '299 - "this registry is a test", 299 - "second notice"');
    await res.arrayBuffer();
  });

  it('POST advertises OCI-Chunk-Min-Length', async () => {
    const res = await fetch(`${r.url}/v2/nodel/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(res.headers.get('oci-chunk-min-length'), '1024');
  });

  it('stale upload sessions are purged', async () => {
    const res = await fetch(`${r.url}/v2/nodel/app/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(res.headers.get('location')!, r.url);
    await fetch(loc, { method: 'PATCH', body: 'x' });
    let status = 204;
    for (let i = 0; i < 40 && status === 204; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const s = await fetch(loc);
      status = s.status;
      await s.arrayBuffer();
    }
    assert.equal(status, 404);
  });
});
