// linux.namespaces entries with a path (config-linux.md "Namespaces"): a path that is not a
// namespace of the type given MUST be an error, and a mount namespace the container did not
// get new is never set up or pivoted (it may be the runtime's own: the host's). Every
// berth-runtime here runs in a throwaway mount namespace (`unshare -m --propagation private`),
// and after each create the shell there checks that its namespace still has /usr/bin.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { NS_PROC_NAME } from '../../src/runtime/linux-constants.js';
import type { Spec } from '../../src/runtime/spec/types.js';
import { defaultSpec } from '../../src/runtime/spec/default.js';
import { validateRuntimeConfig } from '../../src/runtime/spec/validate.js';
import { isBerthError } from '../../src/base/errors.js';
import { FRONT, Runtime } from './runtime-cli.js';

const TYPES = Object.keys(NS_PROC_NAME);

let rt: Runtime;
let bundle: Bundle;
let pristine: string;
let seq = 0;

interface Case { name: string; edit: (s: Spec) => void }
interface Outcome { status: number; stderr: string; stdout: string; intact: boolean }

/** The config with the namespace `type` joined at `path` instead of made new. */
function joinAt(s: Spec, type: string, path: string): void {
  s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== type);
  s.linux!.namespaces.push({ type: type as 'mount', path });
}

/** No mounts of any kind: what a container without a new mount namespace can have. */
function withoutMounts(s: Spec): void {
  delete s.mounts;
  delete s.linux!.maskedPaths;
  delete s.linux!.readonlyPaths;
}

/**
 * Runs every case with `berth-runtime run` in one throwaway mount namespace, one bundle
 * directory each (sharing the rootfs); after each, the shell there reports whether /usr/bin is
 * still there. `extra` runs in that shell before the cases (e.g. to start a holder process).
 */
function runCases(cases: Case[], extra = ''): Outcome[] {
  const lines = [extra];
  const dirs = cases.map(() => join(bundle.dir, `case${++seq}`));
  cases.forEach((c, i) => {
    const s = JSON.parse(pristine) as Spec;
    s.root = { path: bundle.rootfs, readonly: false };
    c.edit(s);
    const dir = dirs[i]!;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(s));
    lines.push(`"$RT" --root "$ROOT" run --bundle ${dir} ns${seq}-${i} </dev/null >${dir}/out 2>${dir}/err; echo $? >${dir}/rc`);
    lines.push(`if [ -d /usr/bin ] && /usr/bin/test -x /bin/sh; then echo yes >${dir}/intact; else echo no >${dir}/intact; fi`);
  });
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', '/bin/sh', '-c', lines.join('\n')], {
    encoding: 'utf8', env: { ...process.env, RT: FRONT, ROOT: rt.root }, timeout: 240_000,
  });
  assert.equal(r.status, 0, `the throwaway namespace's shell: ${r.stderr}`);
  return cases.map((_, i) => {
    const read = (f: string) => spawnSync('cat', [join(dirs[i]!, f)], { encoding: 'utf8' }).stdout;
    return { status: Number(read('rc').trim()), stderr: read('err'), stdout: read('out'), intact: read('intact').trim() === 'yes' };
  });
}

describe('namespace paths: the type the config names, and no pivot_root of a mount namespace not made new (root)', {
  skip: skipUnless(root('joins namespaces, mounts'), peer('unshare', 'util-linux'), peer('/bin/busybox', 'busybox-static')),
}, () => {
  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle(['/bin/sh', '-c', 'echo ran; ls /']);
    pristine = JSON.stringify(bundle.spec);
  });
  after(() => {
    rt?.cleanup();
    bundle?.cleanup();
  });

  it('refuses every path to a namespace of another type, and leaves the runtime\'s mount namespace as it was', () => {
    const cases: Case[] = [];
    for (const type of TYPES) {
      for (const other of TYPES) {
        if (other === type) continue;
        cases.push({ name: `${type} → /proc/self/ns/${NS_PROC_NAME[other]}`, edit: (s) => joinAt(s, type, `/proc/self/ns/${NS_PROC_NAME[other]}`) });
      }
    }
    const proc = cases.length;
    // Bind mounts of namespace files are no /proc symlinks: only berth-init's NS_GET_NSTYPE sees their type.
    const bound = join(bundle.dir, 'bound-ns');
    const binds = `mkdir -p ${bound} && for n in net uts mnt; do touch ${bound}/$n; done && mount --bind /proc/self/ns/net ${bound}/net && mount --bind /proc/self/ns/uts ${bound}/uts`;
    cases.push({ name: 'ipc → a bind mount of a network namespace', edit: (s) => joinAt(s, 'ipc', `${bound}/net`) });
    cases.push({ name: 'mount → a bind mount of a uts namespace', edit: (s) => joinAt(s, 'mount', `${bound}/uts`) });
    cases.push({ name: 'network → a plain file', edit: (s) => joinAt(s, 'network', '/etc/hostname') });
    const out = runCases(cases, binds);
    cases.forEach((c, i) => {
      const o = out[i]!;
      assert.notEqual(o.status, 0, `${c.name}: created`);
      assert.ok(o.intact, `${c.name}: the runtime's mount namespace lost /usr/bin`);
      if (c.name.includes('plain file')) assert.match(o.stderr, /the network path \/etc\/hostname is not a namespace file/, c.name);
      else if (i >= proc) {
        const [, type, other] = /^(\w+) → a bind mount of an? (\w+)/.exec(c.name)!;
        assert.match(o.stderr, new RegExp(`the ${type} path \\S+ is a ${other} namespace, not a ${type} namespace`), c.name);
      } else {
        // Refused while the config is validated (the /proc link names the type) or by berth-init.
        const [type, other] = [c.name.split(' ')[0]!, TYPES.find((t) => c.name.endsWith(`/${NS_PROC_NAME[t]}`))!];
        assert.match(o.stderr, new RegExp(`/proc/self/ns/${NS_PROC_NAME[other]} is a ${other} namespace, not a ${type} namespace`), c.name);
      }
    });
  });

  it('a path to the runtime\'s own mount namespace: mounts are refused; without them the container is only chroot\'ed', () => {
    const cases: Case[] = [
      { name: 'with the default mounts', edit: (s) => joinAt(s, 'mount', '/proc/self/ns/mnt') },
      { name: 'with masked paths only', edit: (s) => { joinAt(s, 'mount', '/proc/self/ns/mnt'); delete s.mounts; delete s.linux!.readonlyPaths; } },
      { name: 'without mounts', edit: (s) => { joinAt(s, 'mount', '/proc/self/ns/mnt'); withoutMounts(s); } },
      { name: 'without a mount namespace', edit: (s) => { s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'mount'); withoutMounts(s); } },
    ];
    const [withMounts, masked, plain, none] = runCases(cases);
    assert.notEqual(withMounts!.status, 0);
    assert.match(withMounts!.stderr, /mounts need a new mount namespace, but the mount namespace is joined by path \(\/proc\/self\/ns\/mnt\)/);
    assert.match(masked!.stderr, /linux\.maskedPaths need a new mount namespace/);
    for (const [o, name] of [[plain!, 'joined'], [none!, 'none']] as const) {
      assert.equal(o.status, 0, `${name}: ${o.stderr}`);
      // The container sees the rootfs as / (busybox's tree: no /usr/bin/env, a /bin/busybox).
      assert.match(o.stdout, /^ran\n/);
      assert.ok(o.stdout.split('\n').includes('bin'), o.stdout);
    }
    for (const [i, o] of [withMounts, masked, plain, none].entries()) assert.ok(o!.intact, `${cases[i]!.name}: the runtime's mount namespace lost /usr/bin`);
  });

  it('a path to another process\'s mount namespace: joined without changing it', async () => {
    const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sleep', '60'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const pid = holder.pid!;
      const child = spawnSync('cat', [`/proc/${pid}/task/${pid}/children`], { encoding: 'utf8' }).stdout.trim().split(' ')[0] || String(pid);
      const ns = `/proc/${child}/ns/mnt`;
      const before = spawnSync('nsenter', ['-t', child, '-m', 'cat', '/proc/self/mountinfo'], { encoding: 'utf8' }).stdout;
      assert.ok(before.length > 0, 'the holder\'s mountinfo');
      const [withMounts, plain] = runCases([
        { name: 'with mounts', edit: (s) => joinAt(s, 'mount', ns) },
        { name: 'without mounts', edit: (s) => { joinAt(s, 'mount', ns); withoutMounts(s); } },
      ]);
      assert.match(withMounts!.stderr, /joined by path/);
      assert.equal(plain!.status, 0, plain!.stderr);
      assert.match(plain!.stdout, /^ran\n/);
      const after = spawnSync('nsenter', ['-t', child, '-m', 'sh', '-c', 'test -d /usr/bin && cat /proc/self/mountinfo'], { encoding: 'utf8' });
      assert.equal(after.status, 0, 'the holder\'s namespace still has /usr/bin');
      // Other processes on the host may mount and unmount meanwhile (tests run side by side): what
      // the container could have done is a new root (pivot_root) or mounts into the bundle's rootfs.
      const entries = (t: string) => t.split('\n').filter(Boolean).map((l) => l.split(' ').slice(3, 5).join(' '));
      const atRoot = (t: string) => entries(t).filter((e) => e.endsWith(' /'));
      assert.deepEqual(atRoot(after.stdout), atRoot(before), 'the holder\'s root is the same mount');
      const intoBundle = entries(after.stdout).filter((e) => e.split(' ')[1]!.startsWith(bundle.dir));
      assert.deepEqual(intoBundle, [], 'nothing was mounted into the bundle in the holder\'s namespace');
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('namespace paths in config validation (checkHost)', () => {
  it('a /proc/PID/ns path of another type is refused before anything starts', () => {
    const spec = defaultSpec();
    joinAt(spec, 'ipc', '/proc/self/ns/mnt');
    assert.throws(() => validateRuntimeConfig(spec, { checkHost: true, onWarning: () => {} }),
      (e: unknown) => isBerthError(e, 'RUNTIME_CONFIG_INVALID') && /\/proc\/self\/ns\/mnt is a mount namespace, not a ipc namespace/.test(e.message));
    const ok = defaultSpec();
    joinAt(ok, 'network', '/proc/self/ns/net');
    validateRuntimeConfig(ok, { checkHost: true, onWarning: () => {} });
  });
});
