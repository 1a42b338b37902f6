/**
 * Differential: the same busybox image and command under `berth run` and `podman run` (Debian's
 * podman 4.3 with runc, configured as the peers notes say, plus docker's default capability set,
 * which is berth's default) must print the same: id, pwd, env, the capability, no_new_privs and
 * seccomp lines of /proc/self/status, the mounts (targets and options), exit codes, stdout and
 * stderr apart, a -v file read and written, --read-only, -u 65534, --entrypoint, -w.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { podmanEnv, removePodmanWork } from '../helpers/podman.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { OPTION_CASES, sameExitCodesAndStreams, sameVolumeAndOptions, type Both } from './differential.js';

const DOCKER_CAPS = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT', 'MKNOD', 'NET_RAW', 'AUDIT_WRITE'];

/** Mounts only one engine makes: podman's /run/.containerenv and its /sys/dev/block mask; docker's
 * /etc/resolv.conf (podman leaves it out with no network); the cgroup2 mount of a hybrid host. */
const ENGINE_SPECIFIC = new Set(['/run/.containerenv', '/sys/dev/block', '/etc/resolv.conf', '/sys/fs/cgroup/unified']);
/** podman mounts /dev noexec (docker does not), and masks with its /dev/null, which carries that. */
const DEV_DERIVED = new Set(['/dev', '/proc/keys', '/proc/timer_list', '/proc/kcore', '/proc/latency_stats', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi']);

describe('berth run vs podman run', { skip: skipUnless(root('containers need root'), peer('podman', 'podman'), peer(BUSYBOX, 'busybox-static')) }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-vs-podman-'));
  const env: NodeJS.ProcessEnv = {};
  let e: EngineRoot;
  const podman = (args: string[]) => {
    const r = spawnSync('podman', args, { env, encoding: 'utf8', timeout: 120_000 });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const both = async (args: string[], cmd: string[]) => {
    const p = podman(['run', '--rm', ...args, 'localhost/bb:test', ...cmd]);
    const b = await e.berth(['run', '--rm', ...args, 'busybox', ...cmd]);
    return { p, b };
  };
  const pair: Both = async (args, cmd) => {
    const { p, b } = await both(args, cmd);
    return { peer: p, berth: b };
  };

  before(async () => {
    Object.assign(env, podmanEnv(dir, {}, { containers: [`default_capabilities = [${DOCKER_CAPS.map((c) => `"${c}"`).join(', ')}]`] }));
    await buildBusyboxRootfs(join(dir, 'rootfs'));
    const tar = execFileSync('tar', ['-C', join(dir, 'rootfs'), '-c', '.'], { maxBuffer: 64 << 20 });
    const r = spawnSync('podman', ['import', '-', 'localhost/bb:test'], { env, input: tar, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    e = await engineRoot();
  });

  after(async () => {
    try {
      await e?.close();
    } finally {
      removePodmanWork(dir, env.CONTAINERS_CONF ? env : undefined);
    }
  });

  it('id, pwd, env and the security lines of /proc/self/status', async () => {
    const { p, b } = await both([], ['sh', '-c', 'id; pwd; env | sort; grep -E "^(CapEff|CapBnd|CapPrm|NoNewPrivs|Seccomp):" /proc/self/status']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(b.code, 0, b.stderr);
    // podman adds container=podman and TERM=xterm (without -t; docker does not); HOSTNAME is the
    // id. berth gives the default root user its primary group as a supplementary one, as docker
    // does (engine-docker.test.ts); podman 4.3 leaves the list empty: ` groups=0(root)` aside.
    const norm = (s: string) => s.split('\n').filter((l) => !l.startsWith('container=') && !l.startsWith('TERM=')).map((l) => l.replace(/^HOSTNAME=[0-9a-f]{12}$/, 'HOSTNAME=<id>').replace(/^(uid=0\(root\) gid=0\(root\)) groups=0\(root\)$/, '$1')).join('\n');
    assert.equal(norm(b.stdout), norm(p.stdout));
  });

  it('the mounts: the same targets with the same options', async () => {
    const cmd = ['sh', '-c', 'cut -d" " -f5,6 /proc/self/mountinfo'];
    const { p, b } = await both([], cmd);
    const parse = (s: string) => new Map(s.trim().split('\n').map((l) => l.split(' ') as [string, string]).filter(([t]) => !ENGINE_SPECIFIC.has(t)));
    const pm = parse(p.stdout);
    const bm = parse(b.stdout);
    assert.deepEqual([...bm.keys()].sort(), [...pm.keys()].sort());
    for (const [target, opts] of bm) if (!DEV_DERIVED.has(target)) assert.equal(opts, pm.get(target), target);
  });

  it('exit codes 0, 1, 7, 126, 127 and stdout/stderr apart', () => sameExitCodesAndStreams(pair, 'podman'));

  // (-w of a directory the image lacks: docker makes it, podman 4.3 fails with 126; berth does as
  // docker: engine-docker.test.ts.)
  it('-v (a file read and written), --read-only, -u 65534, --entrypoint, -w', () => sameVolumeAndOptions(pair, 'podman', OPTION_CASES));
});
