/**
 * The client commands end to end through bin/berth.cjs against docker-registry with htpasswd
 * auth: login (password on stdin) and logout write the auth file; copy, pull and push through
 * the local store; inspect, digest, tags, catalog, attach, referrers and delete.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copy } from '../../src/content/copy.js';
import { MemoryStore } from '../../src/content/memory.js';
import { OciLayout } from '../../src/image/layout.js';
import { REGISTRY_BIN, startRegistry, type RegistryServer } from '../helpers/distribution.js';
import { runBerth } from '../helpers/run-berth.js';
import { addImage } from './fixtures.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const berth = runBerth;

const skip = skipUnless(peer(REGISTRY_BIN, 'docker-registry'));

describe('berth client commands', { skip }, () => {
  let reg: RegistryServer;
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  let digest: string;

  before(async () => {
    reg = await startRegistry({ auth: 'htpasswd' });
    tmp = await mkdtemp(join(tmpdir(), 'berth-cli-client-'));
    env = { ...process.env, HOME: tmp, DOCKER_CONFIG: join(tmp, 'docker'), REGISTRY_AUTH_FILE: join(tmp, 'auth.json'), XDG_RUNTIME_DIR: join(tmp, 'run'), BERTH_ROOT: join(tmp, 'root') };
    const mem = new MemoryStore();
    const img = addImage(mem, { files: [{ 'etc/motd': 'cli' }], platform: { architecture: 'amd64', os: 'linux' }, label: 'cli-test' });
    digest = img.manifest.digest;
    await mem.tag(img.manifest, 'v1');
    await copy(mem, 'v1', await OciLayout.open(join(tmp, 'layout'), { create: true }), 'v1');
  });
  after(async () => {
    await reg?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('fails clearly without login, then logs in with --password-stdin', async () => {
    const denied = await berth(['copy', '-q', `oci:${join(tmp, 'layout')}:v1`, `docker://${reg.host}/cli/app:v1`], env);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /berth login/);
    const bad = await berth(['login', '-u', reg.username, '--password-stdin', reg.host], env, 'wrong\n');
    assert.equal(bad.code, 1);
    const ok = await berth(['login', '-u', reg.username, '--password-stdin', reg.host], env, `${reg.password}\n`);
    assert.equal(ok.code, 0, ok.stderr);
    const file = JSON.parse(await readFile(join(tmp, 'auth.json'), 'utf8'));
    assert.equal(file.auths[reg.host].auth, Buffer.from(`${reg.username}:${reg.password}`).toString('base64'));
  });

  it('copies, inspects, digests, lists tags and the catalog', async () => {
    const c = await berth(['copy', '--format', 'json', `oci:${join(tmp, 'layout')}:v1`, `docker://${reg.host}/cli/app:v1`], env);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(JSON.parse(c.stdout).digest, digest);
    const d = await berth(['digest', `${reg.host}/cli/app:v1`], env);
    assert.equal(d.stdout.trim(), digest);
    const i = await berth(['inspect', '--format', 'json', `docker://${reg.host}/cli/app:v1`], env);
    assert.equal(i.code, 0, i.stderr);
    const info = JSON.parse(i.stdout);
    assert.equal(info.digest, digest);
    assert.equal(info.labels['test.label'], 'cli-test');
    const raw = await berth(['inspect', '--raw', `docker://${reg.host}/cli/app:v1`], env);
    assert.equal(JSON.parse(raw.stdout).schemaVersion, 2);
    const t = await berth(['tags', `${reg.host}/cli/app`], env);
    assert.deepEqual(t.stdout.trim().split('\n'), ['v1']);
    const cat = await berth(['catalog', '--format', 'json', reg.host], env);
    assert.deepEqual(JSON.parse(cat.stdout), ['cli/app']);
  });

  it('takes credentials from --creds, --src-creds and --dest-creds instead of the auth files', async () => {
    // No auth file anywhere: only the flags can authenticate.
    const bare = { ...env, HOME: join(tmp, 'bare'), DOCKER_CONFIG: join(tmp, 'bare', 'docker'), REGISTRY_AUTH_FILE: join(tmp, 'bare', 'auth.json'), XDG_RUNTIME_DIR: join(tmp, 'bare', 'run') };
    const creds = `${reg.username}:${reg.password}`;
    const denied = await berth(['copy', '-q', `oci:${join(tmp, 'layout')}:v1`, `docker://${reg.host}/creds/app:v1`], bare);
    assert.equal(denied.code, 1);
    const pushed = await berth(['copy', '-q', '--dest-creds', creds, `oci:${join(tmp, 'layout')}:v1`, `docker://${reg.host}/creds/app:v1`], bare);
    assert.equal(pushed.code, 0, pushed.stderr);
    const tags = await berth(['tags', '--creds', creds, `${reg.host}/creds/app`], bare);
    assert.equal(tags.stdout.trim(), 'v1', tags.stderr);
    // Registry to registry (one registry, each side with its own flag).
    const both = await berth(['copy', '-q', '--src-creds', creds, '--dest-creds', creds, `docker://${reg.host}/creds/app:v1`, `docker://${reg.host}/creds/copied:v2`], bare);
    assert.equal(both.code, 0, both.stderr);
    const d = await berth(['digest', '--creds', creds, `${reg.host}/creds/copied:v2`], bare);
    assert.equal(d.stdout.trim(), digest, d.stderr);
    const wrong = await berth(['tags', '--creds', `${reg.username}:nope`, `${reg.host}/creds/app`], bare);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /were refused|credentials/i);
    const noPass = await berth(['tags', '--creds', reg.username, `${reg.host}/creds/app`], bare);
    assert.equal(noPass.code, 2);
    assert.match(noPass.stderr, new RegExp(`--creds ${reg.username}: no password; give ${reg.username}:PASSWORD`));
  });

  it('copies every tag of a repository with --all-tags, to a registry and to a layout', async () => {
    const second = await berth(['copy', '-q', `oci:${join(tmp, 'layout')}:v1`, `docker://${reg.host}/cli/app:v2`], env);
    assert.equal(second.code, 0, second.stderr);
    const mirrored = await berth(['copy', '-q', '--all-tags', '--format', 'json', `docker://${reg.host}/cli/app`, `docker://${reg.host}/cli/mirror`], env);
    assert.equal(mirrored.code, 0, mirrored.stderr);
    assert.deepEqual(JSON.parse(mirrored.stdout), [{ tag: 'v1', digest }, { tag: 'v2', digest }]);
    const tags = await berth(['tags', `${reg.host}/cli/mirror`], env);
    assert.deepEqual(tags.stdout.trim().split('\n'), ['v1', 'v2']);
    const dir = join(tmp, 'all-tags');
    const toLayout = await berth(['copy', '-q', '--all-tags', `docker://${reg.host}/cli/app`, `oci:${dir}`], env);
    assert.equal(toLayout.code, 0, toLayout.stderr);
    assert.deepEqual((await (await OciLayout.open(dir)).tags()).sort(), ['v1', 'v2']);
    const tagged = await berth(['copy', '--all-tags', `docker://${reg.host}/cli/app:v1`, `oci:${dir}`], env);
    assert.equal(tagged.code, 2);
    assert.match(tagged.stderr, /--all-tags copies a registry repository: give the source as docker:\/\/HOST\/REPO, without a tag/);
    const dstTagged = await berth(['copy', '--all-tags', `docker://${reg.host}/cli/app`, `oci:${dir}:x`], env);
    assert.equal(dstTagged.code, 2);
  });

  it('tags an image again in the registry without copying it', async () => {
    const t = await berth(['tag', `docker://${reg.host}/cli/app:v1`, 'promoted'], env);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.stdout.trim(), digest);
    const d = await berth(['digest', `${reg.host}/cli/app:promoted`], env);
    assert.equal(d.stdout.trim(), digest);
    const bad = await berth(['tag', '--remote', `${reg.host}/cli/app:v1`, '-nope'], env);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /tag/i);
    const missing = await berth(['tag', '--remote', `${reg.host}/cli/app:absent`, 'x'], env);
    assert.equal(missing.code, 1);
  });

  it('pulls into the local store and pushes from it', async () => {
    const pull = await berth(['pull', '-q', `${reg.host}/cli/app:v1`], env);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(pull.stdout.trim(), digest);
    const store = await OciLayout.open(join(tmp, 'root', 'images'));
    assert.equal((await store.resolve(`${reg.host}/cli/app:v1`)).digest, digest);
    // push needs the image under the target name in the store: tag it there.
    await store.tag(await store.resolve(`${reg.host}/cli/app:v1`), `${reg.host}/cli/pushed:v2`);
    const push = await berth(['push', '-q', `${reg.host}/cli/pushed:v2`], env);
    assert.equal(push.code, 0, push.stderr);
    assert.equal((await berth(['digest', `${reg.host}/cli/pushed:v2`], env)).stdout.trim(), digest);
  });

  it('attaches an artifact, lists it as a referrer, and deletes it', async () => {
    const file = join(tmp, 'sbom.json');
    await writeFile(file, '{"sbom":true}');
    const a = await berth(['attach', '--artifact-type', 'application/vnd.example.sbom', `${reg.host}/cli/app:v1`, `${file}:application/json`], env);
    assert.equal(a.code, 0, a.stderr);
    const artifact = a.stdout.trim();
    const r = await berth(['referrers', '--format', 'json', '--artifact-type', 'application/vnd.example.sbom', `${reg.host}/cli/app:v1`], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).map((x: { digest: string }) => x.digest), [artifact]);
    const del = await berth(['delete', `${reg.host}/cli/app@${artifact}`], env);
    assert.equal(del.code, 0, del.stderr);
    const after = await berth(['referrers', '--format', 'json', `${reg.host}/cli/app:v1`], env);
    assert.deepEqual(JSON.parse(after.stdout), []);
  });

  it('logs out', async () => {
    const out = await berth(['logout', reg.host], env);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(await readFile(join(tmp, 'auth.json'), 'utf8')).auths, {});
    const again = await berth(['logout', reg.host], env);
    assert.equal(again.code, 1);
  });
});
