/**
 * What a registry answers is checked before it is used: a tags list, a catalog page, a
 * referrers index or a token that is not the JSON expected is a REGISTRY_ERROR naming the
 * registry and the URL (not a SyntaxError or TypeError), and a tag is checked with the same rule
 * and message as in references (image/reference.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryClient } from '../../src/client/registry.js';
import { digestOf } from '../../src/base/digest.js';
import { MediaType } from '../../src/base/media-types.js';
import { isBerthError } from '../../src/base/errors.js';
import { readAll } from '../../src/base/read.js';
import { Readable } from 'node:stream';

/** Path → [Content-Type, body] the fake registry answers with 200. */
const answers = new Map<string, [string, string]>();
const subject = { mediaType: MediaType.imageManifest, digest: digestOf('subject'), size: 7 };

describe('registry answers that are not the JSON expected', () => {
  let server: http.Server;
  let host: string;
  let client: RegistryClient;

  before(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/token') {
        res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>sign in</html>');
        return;
      }
      if (path.startsWith('/v2/auth/')) {
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${host}/token",service="t"` }).end();
        return;
      }
      const answer = answers.get(path);
      if (answer) res.writeHead(200, { 'Content-Type': answer[0] }).end(answer[1]);
      else res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = new RegistryClient({ credentials: async () => undefined, retries: 0 });
  });
  after(async () => {
    client.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** A REGISTRY_ERROR whose one line names the host and the URL that answered. */
  const clear = (path: string, got: RegExp) => (err: unknown) => {
    assert.ok(isBerthError(err, 'REGISTRY_ERROR'), `not a REGISTRY_ERROR: ${(err as Error)?.stack}`);
    assert.ok(err.message.includes(`http://${host}${path}`), err.message);
    assert.match(err.message, got);
    assert.match(err.message, new RegExp(`check that ${host.replace(/\./g, '\\.')} is a registry`));
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  };

  it('tags list: HTML, and JSON of the wrong shape', async () => {
    answers.set('/v2/html/tags/list', ['text/html', '<html><body>Welcome to nginx</body></html>']);
    await assert.rejects(client.repository(host, 'html').tags(), clear('/v2/html/tags/list', /listing tags of .*html.*bytes of text\/html that are not JSON/));
    answers.set('/v2/shape/tags/list', ['application/json', '{"name":"shape","tags":[1,2]}']);
    await assert.rejects(client.repository(host, 'shape').tags(), clear('/v2/shape/tags/list', /"tags" is not a list of strings/));
    answers.set('/v2/arr/tags/list', ['application/json', '["a"]']);
    await assert.rejects(client.repository(host, 'arr').tags(), clear('/v2/arr/tags/list', /JSON that is not an object/));
    // A good answer still works, and `null` means no tags.
    answers.set('/v2/good/tags/list', ['application/json', '{"name":"good","tags":["a","b"]}']);
    assert.deepEqual(await client.repository(host, 'good').tags(), ['a', 'b']);
    answers.set('/v2/none/tags/list', ['application/json', '{"name":"none","tags":null}']);
    assert.deepEqual(await client.repository(host, 'none').tags(), []);
  });

  it('referrers: not JSON, and manifests that are not descriptors', async () => {
    const path = `/v2/ref/referrers/${subject.digest}`;
    answers.set(path, ['text/plain', 'oops']);
    await assert.rejects(client.repository(host, 'ref').referrers(subject), clear(path, /listing referrers of .*not JSON/));
    answers.set(path, [MediaType.imageIndex, JSON.stringify({ schemaVersion: 2, manifests: [{ digest: 'x' }] })]);
    await assert.rejects(client.repository(host, 'ref').referrers(subject), clear(path, /manifests\[0\] is not a descriptor/));
  });

  it('catalog: truncated JSON', async () => {
    answers.set('/v2/_catalog', ['application/json', '{"repositories":["a",']);
    await assert.rejects(client.catalog(host), clear('/v2/_catalog', /listing repositories of .*not JSON/));
  });

  it('token server: an HTML page instead of a token', async () => {
    await assert.rejects(client.repository(host, 'auth/x').tags(), clear('/token', /getting a token for .*text\/html that are not JSON/));
  });
});

describe('tags the client sends', () => {
  const client = new RegistryClient({ credentials: async () => undefined, retries: 0 });
  after(() => client.close());
  // 127.0.0.1:9 is never contacted: the tag is refused first.
  const repo = client.repository('127.0.0.1:9', 'x');
  const longTag = 'a'.repeat(129);

  it('are checked with the reference rule and its reasons, before any request', async () => {
    const why = (re: RegExp) => (err: unknown) => isBerthError(err, 'TAG_INVALID') && re.test(err.message);
    await assert.rejects(repo.resolve(longTag), why(/it has 129 characters, at most 128/));
    await assert.rejects(repo.resolve('-x'), why(/must start with a letter, digit or "_"/));
    await assert.rejects(repo.tag(subject, 'a/b'), why(/must start with a letter, digit or "_" and contain only/));
    await assert.rejects(repo.deleteTag('x y'), why(/contain only letters, digits/));
  });
});

describe('readAll', () => {
  it('names what it refused to read', async () => {
    await assert.rejects(readAll(Readable.from([Buffer.alloc(20)]), 10, 'the answer from http://h/x'), (err) => isBerthError(err, 'TOO_LARGE') && /^the answer from http:\/\/h\/x is larger than 10 bytes/.test(err.message));
  });
});
