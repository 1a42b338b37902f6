/**
 * The bundled CLI (scripts/bundle-cli.mjs, run by `npm run build`): bin/berth.cjs runs it, it
 * answers as tsc's module graph does, and a registry/layout copy loads neither the registry
 * server nor the addons nor node:https / node:child_process.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Script } from 'node:vm';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..', '..', '..');
const BIN = join(repo, 'bin', 'berth.cjs');
const BUNDLE = join(repo, 'dist', 'berth.bundle.cjs');

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: repo, maxBuffer: 16 << 20, env }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('bundled berth CLI', () => {
  let tmp: string;

  before(async () => {
    assert.ok(existsSync(BUNDLE), `${BUNDLE} is missing: run \`npm run build\` (it runs scripts/bundle-cli.mjs)`);
    tmp = await mkdtemp(join(tmpdir(), 'berth-bundle-test-'));
  });

  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('lists the same commands as the module graph it was built from', async () => {
    const bundled = await run([BIN, '--help']);
    const graph = await run([join(repo, 'dist', 'src', 'cli', 'berth.js'), '--help']);
    assert.equal(bundled.code, 0, bundled.stderr);
    assert.equal(bundled.stdout, graph.stdout);
    for (const cmd of ['copy', 'inspect', 'create', 'unpack', 'serve', 'registry']) assert.match(bundled.stdout, new RegExp(`^  ${cmd} `, 'm'));
  });

  it('is ASCII only, as its loader reads it (latin1: a one-byte string without UTF-8 decoding)', () => {
    for (const name of ['berth.bundle.cjs', 'berth-runtime.bundle.cjs']) {
      const bytes = readFileSync(join(repo, 'dist', name));
      const at = bytes.findIndex((b) => b > 0x7f);
      assert.equal(at, -1, `${name} has a non-ASCII byte at ${at}: ${bytes.subarray(Math.max(0, at - 40), at + 10).toString('utf8')}`);
    }
    for (const loader of ['berth.cjs', 'berth-runtime.cjs']) assert.match(readFileSync(join(repo, 'dist', loader), 'utf8'), /readFileSync\(file, 'latin1'\)/);
  });

  it('reports usage errors with exit status 2 and failures with 1', async () => {
    const unknown = await run([BIN, 'no-such-command']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "no-such-command"/);
    const missing = await run([BIN, 'copy', '-q', `oci:${join(tmp, 'missing')}:x`, `oci:${join(tmp, 'out')}:x`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);
  });

  it('runs a copy without loading the registry server, the addons, node:http(s) or node:child_process', async () => {
    const probe = join(tmp, 'probe.cjs');
    await writeFile(
      probe,
      `process.on('exit', () => {
        const builtins = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13));
        const files = Object.keys(require.cache);
        require('node:fs').writeSync(2, '\\nPROBE ' + JSON.stringify({ builtins, files }) + '\\n');
      });`,
    );
    const r = await run(['-r', probe, BIN, 'copy', '-q', `oci:${join(tmp, 'missing')}:x`, `oci:${join(tmp, 'out')}:x`]);
    const line = r.stderr.split('\n').find((l) => l.startsWith('PROBE '));
    assert.ok(line, r.stderr);
    const { builtins, files } = JSON.parse(line.slice('PROBE '.length)) as { builtins: string[]; files: string[] };
    assert.ok(files.some((f) => f.endsWith('berth.bundle.cjs')) || files.some((f) => f.endsWith('berth.cjs')), `the bundle was not run: ${files.join(', ')}`);
    assert.ok(builtins.includes('net'), 'the client group (raw-get.ts, node:net) should have loaded');
    for (const lazy of ['http', 'https', 'tls', 'child_process']) assert.ok(!builtins.includes(lazy), `${lazy} was loaded`);
    for (const addon of ['better-sqlite3', 'zstd-napi', 'bcryptjs']) assert.ok(!files.some((f) => f.includes(`/node_modules/${addon}/`)), `${addon} was loaded`);
  });

  it('writes its V8 code cache only after a run that succeeded, and the build\'s cache covers a push and a pull', async () => {
    // A copy of the loader and bundle without a cache, under dist/ so that the command groups
    // --help loads find node_modules as the real bundle does.
    const dir = await mkdtemp(join(repo, 'dist', '.cache-test-'));
    try {
      for (const f of ['berth.cjs', 'berth.bundle.cjs']) await copyFile(join(repo, 'dist', f), join(dir, f));
      const loader = join(dir, 'berth.cjs');
      const cache = join(dir, 'berth.cache');
      assert.equal((await run([loader, 'no-such-command'])).code, 2);
      assert.ok(!existsSync(cache), 'a failed run wrote a code cache');
      assert.equal((await run([loader, '--help'], { ...process.env, BERTH_CODE_CACHE_WRITE: '0' })).code, 0);
      assert.ok(!existsSync(cache), 'BERTH_CODE_CACHE_WRITE=0 wrote a code cache');
      const help = await run([loader, '--help']);
      assert.equal(help.code, 0, help.stderr);
      assert.ok(existsSync(cache), 'a successful run wrote no code cache');
      assert.ok(!existsSync(join(dir, 'berth-cache', 'no-such-command.cache')), 'a failed command wrote a cache of its own');
      // A command's first successful run writes a cache of its own (what it compiled), which its
      // later runs take instead of the build's, and keep.
      const env = { ...process.env, BERTH_ROOT: join(tmp, 'root') };
      assert.equal((await run([loader, 'images'], env)).code, 0);
      const own = join(dir, 'berth-cache', 'images.cache');
      assert.ok(existsSync(own), 'the first `images` wrote no cache of its own');
      const source = '(function (exports, require, module, __filename, __dirname) { ' + readFileSync(join(dir, 'berth.bundle.cjs'), 'utf8') + '\n});';
      assert.equal(new Script(source, { filename: join(dir, 'berth.bundle.cjs'), cachedData: readFileSync(own) }).cachedDataRejected, false);
      const written = statSync(own).mtimeMs;
      assert.equal((await run([loader, 'images'], env)).code, 0);
      assert.equal(statSync(own).mtimeMs, written, 'a later run wrote its cache again');
      // The build's cache fits the bundle and holds more than --help compiles: the build's
      // warm-up also pushed to and pulled from berth serve (~1.6x the size here).
      const built = join(repo, 'dist', 'berth.cache');
      const bundled = '(function (exports, require, module, __filename, __dirname) { ' + readFileSync(BUNDLE, 'utf8') + '\n});';
      assert.equal(new Script(bundled, { filename: BUNDLE, cachedData: readFileSync(built) }).cachedDataRejected, false);
      const [builtSize, helpSize] = [statSync(built).size, statSync(cache).size];
      assert.ok(builtSize > 1.3 * helpSize, `dist/berth.cache (${builtSize} bytes) is hardly larger than a --help cache (${helpSize}): did the build's warm-up fall back?`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
