/**
 * Credentials where docker and podman keep them: config.json `auths` (auth, identitytoken),
 * `credHelpers` and `credsStore` (a docker-credential-* helper script on PATH), REGISTRY_AUTH_FILE
 * and XDG_RUNTIME_DIR/containers/auth.json precedence, and storing/removing as login/logout do.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCredentials, removeCredentials, storeCredentials, authKey } from '../../src/client/credentials.js';

describe('credentials', () => {
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  const helperStore = () => join(tmp, 'helper-store.json');

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-creds-'));
    await mkdir(join(tmp, 'bin'));
    await mkdir(join(tmp, 'docker'));
    // A credential helper as docker runs them: action as argv[1], JSON on stdin/stdout.
    const script = `#!/bin/sh
store="${join(tmp, 'helper-store.json')}"
[ -f "$store" ] || echo '{}' > "$store"
input=$(cat)
case "$1" in
  get) node -e 'const s=require(process.argv[1]);const k=process.argv[2];if(!s[k]){console.log("credentials not found in native keychain");process.exit(1)}console.log(JSON.stringify({ServerURL:k,Username:s[k].Username,Secret:s[k].Secret}))' "$store" "$input" ;;
  store) node -e 'const fs=require("fs");const s=JSON.parse(fs.readFileSync(process.argv[1]));const c=JSON.parse(process.argv[2]);s[c.ServerURL]=c;fs.writeFileSync(process.argv[1],JSON.stringify(s))' "$store" "$input" ;;
  erase) node -e 'const fs=require("fs");const s=JSON.parse(fs.readFileSync(process.argv[1]));delete s[process.argv[2]];fs.writeFileSync(process.argv[1],JSON.stringify(s))' "$store" "$input" ;;
esac
`;
    await writeFile(join(tmp, 'bin', 'docker-credential-berthtest'), script);
    await chmod(join(tmp, 'bin', 'docker-credential-berthtest'), 0o755);
    env = { PATH: `${join(tmp, 'bin')}:${process.env.PATH}`, HOME: tmp, DOCKER_CONFIG: join(tmp, 'docker') };
  });
  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('reads base64 auth and identitytoken from docker config.json, Docker Hub under its legacy key', async () => {
    await writeFile(
      join(tmp, 'docker', 'config.json'),
      JSON.stringify({
        auths: {
          'reg.example:5000': { auth: Buffer.from('alice:pa:ss').toString('base64') },
          'https://index.docker.io/v1/': { auth: Buffer.from('bob:hub').toString('base64') },
          'https://tok.example': { identitytoken: 'refresh-me' },
        },
      }),
    );
    assert.deepEqual(await findCredentials('reg.example:5000', env), { username: 'alice', password: 'pa:ss' });
    assert.deepEqual(await findCredentials('docker.io', env), { username: 'bob', password: 'hub' });
    assert.deepEqual(await findCredentials('tok.example', env), { identityToken: 'refresh-me' });
    assert.equal(await findCredentials('other.example', env), undefined);
  });

  it('prefers REGISTRY_AUTH_FILE, then XDG_RUNTIME_DIR/containers/auth.json, then docker', async () => {
    const runDir = join(tmp, 'run');
    await mkdir(join(runDir, 'containers'), { recursive: true });
    await writeFile(join(runDir, 'containers', 'auth.json'), JSON.stringify({ auths: { 'reg.example:5000': { auth: Buffer.from('podman:p').toString('base64') } } }));
    const withRun = { ...env, XDG_RUNTIME_DIR: runDir };
    assert.equal((await findCredentials('reg.example:5000', withRun))?.username, 'podman');
    const authFile = join(tmp, 'explicit.json');
    await writeFile(authFile, JSON.stringify({ auths: { 'reg.example:5000': { auth: Buffer.from('explicit:e').toString('base64') } } }));
    assert.equal((await findCredentials('reg.example:5000', { ...withRun, REGISTRY_AUTH_FILE: authFile }))?.username, 'explicit');
  });

  it('stores through credsStore and reads back through the helper; logout erases it', async () => {
    await writeFile(join(tmp, 'docker', 'config.json'), JSON.stringify({ credsStore: 'berthtest' }));
    const path = await storeCredentials('helper.example', { username: 'carol', password: 'c-secret' }, join(tmp, 'docker', 'config.json'), env);
    const written = JSON.parse(await readFile(path, 'utf8'));
    assert.deepEqual(written.auths, { 'helper.example': {} }, 'the secret is not in the file');
    assert.deepEqual(await findCredentials('helper.example', env), { username: 'carol', password: 'c-secret' });
    const changed = await removeCredentials('helper.example', env);
    assert.deepEqual(changed, [path]);
    assert.equal(await findCredentials('helper.example', env), undefined);
    assert.deepEqual(JSON.parse(await readFile(helperStore(), 'utf8')), {});
  });

  it('uses credHelpers for one registry, with <token> meaning an identity token', async () => {
    await writeFile(helperStore(), JSON.stringify({ 'per.example': { Username: '<token>', Secret: 'idtok' } }));
    await writeFile(join(tmp, 'docker', 'config.json'), JSON.stringify({ credHelpers: { 'per.example': 'berthtest' } }));
    assert.deepEqual(await findCredentials('per.example', env), { identityToken: 'idtok' });
  });

  it('writes auths entries with mode 0600 and removes them', async () => {
    const file = join(tmp, 'login.json');
    await storeCredentials('docker.io', { username: 'dave', password: 'd' }, file);
    const parsed = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(parsed.auths[authKey('docker.io')].auth, Buffer.from('dave:d').toString('base64'));
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await removeCredentials('docker.io', { ...env, REGISTRY_AUTH_FILE: file }), [file]);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')).auths, {});
  });
});
