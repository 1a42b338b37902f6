// Differential tests: the same busybox bundle under berth-runtime, runc and crun (Debian's)
// gives the same observable results inside the container. Needs root, runc and crun.
// crun refuses hybrid cgroup hosts; as docs/ARCHITECTURE.md "Tests and peers" says, it runs in a private mount
// namespace where the cgroup2 controller list reads empty (nothing global changes).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import type { Spec } from '../../src/runtime/spec/types.js';
import { FRONT } from '../runtime/runtime-cli.js';

const PROBE = `#!/bin/sh
echo "id: $(id)"
grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status
echo "hostname: $(hostname)"
echo "ulimit: $(ulimit -n) $(ulimit -Hn) $(ulimit -u)"
echo "umask: $(umask)"
echo "cwd: $(pwd)"
env | sort | grep -v '^HOSTNAME=\\|^SHLVL=\\|^PWD=\\|^_='
awk '{ for (i = 7; $i != "-"; i++); print "mount", $5, $(i+1), $6 }' /proc/self/mountinfo | sort
ls -l /dev | awk '{print "dev", $1, $3, $4, $5, $6, $NF}'
touch /proc/sys/x 2>&1 | sed 's/.*: //'
touch /probe-written 2>&1 | sed 's/.*: //'; rm -f /probe-written
mkdir /dev/shm/seccomp-probe 2>&1 | sed 's/.*: //'
echo "pids.max: $(cat /sys/fs/cgroup/pids/pids.max)"
echo "timer_list: $(cat /proc/timer_list | wc -c)"
`;

const tmp = mkdtempSync(join(tmpdir(), 'berth-diff-'));
const empty = join(tmp, 'empty');
writeFileSync(empty, '');

type RuntimeName = 'berth' | 'runc' | 'crun';

function runUnder(rt: RuntimeName, bundle: string, id: string): { status: number; out: string } {
  const root = join(tmp, `root-${rt}`);
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  let r;
  if (rt === 'berth') r = spawnSync(FRONT, ['--root', root, 'run', '--bundle', bundle, id], { encoding: 'utf8', env, timeout: 30_000 });
  else if (rt === 'runc') r = spawnSync('runc', ['--root', root, 'run', '--bundle', bundle, id], { encoding: 'utf8', env, timeout: 30_000 });
  else {
    r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
      `mount --bind ${empty} /sys/fs/cgroup/unified/cgroup.controllers && exec crun --root ${root} run --bundle ${bundle} ${id}`],
    { encoding: 'utf8', env, timeout: 30_000 });
  }
  return { status: r.status ?? -1, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

/**
 * Known, deliberate differences, dropped before comparing:
 * - berth also mounts the cgroup2 hierarchy (hybrid host) at /sys/fs/cgroup/unified; runc and crun do not.
 * - crun masks files with the host's /dev/null (devtmpfs) where runc and berth use the container's,
 *   and adds a /dev/kcore symlink.
 */
function normalise(rt: RuntimeName, out: string): string {
  return out.split('\n')
    .filter((l) => !l.startsWith('mount /sys/fs/cgroup/unified '))
    .filter((l) => !(rt === 'crun' && / devtmpfs ro,relatime$/.test(l)))
    .filter((l) => !/^mount \/proc\/(keys|timer_list|kcore|acpi|scsi|sched_debug|latency_stats|timer_stats|asound) /.test(l))
    .filter((l) => !l.endsWith('/proc/kcore'))
    .join('\n');
}

interface Variant { name: string; edit(s: Spec): void }

const VARIANTS: Variant[] = [
  { name: 'the default configuration (runc spec)', edit: () => undefined },
  {
    name: 'a non-root user with groups, umask, rlimits, capabilities and a read-only root',
    edit: (s) => {
      s.process!.user = { uid: 1000, gid: 1000, additionalGids: [5], umask: 0o077 };
      s.process!.cwd = '/scratch';
      s.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 300, hard: 400 }, { type: 'RLIMIT_NPROC', soft: 50, hard: 60 }];
      s.process!.capabilities = { bounding: ['CAP_CHOWN', 'CAP_NET_RAW'], permitted: ['CAP_CHOWN'], effective: ['CAP_CHOWN'], inheritable: ['CAP_CHOWN'], ambient: ['CAP_CHOWN'] };
      s.root!.readonly = true;
      s.hostname = 'diffhost';
      // Not /tmp: runc gives a tmpfs over an existing directory that directory's mode, whatever mode= says.
      s.mounts!.push({ destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
    },
  },
  {
    name: 'seccomp denying mkdir with errnoRet, pids limit, no no_new_privs',
    edit: (s) => {
      s.process!.noNewPrivileges = false;
      s.linux!.resources!.pids = { limit: 77 };
      s.linux!.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 30 }],
      };
    },
  },
];

describe('berth-runtime vs runc and crun: same bundle, same observations inside (root)', () => {
  let bundle: Bundle;
  before(() => {
    bundle = makeBusyboxBundle(['/probe.sh']);
    writeFileSync(join(bundle.rootfs, 'probe.sh'), PROBE);
    chmodSync(join(bundle.rootfs, 'probe.sh'), 0o755);
  });
  after(() => {
    bundle.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });

  VARIANTS.forEach((v, i) => {
    it(v.name, () => {
      const pristine = JSON.stringify(bundle.spec);
      bundle.spec.process!.args = ['/probe.sh'];
      v.edit(bundle.spec);
      bundle.save();
      bundle.spec = JSON.parse(pristine) as Spec;
      const results = (['berth', 'runc', 'crun'] as const).map((rt) => ({ rt, ...runUnder(rt, bundle.dir, `diff${i}-${rt}`) }));
      for (const r of results) assert.equal(r.status, 0, `${r.rt} failed: ${r.out}`);
      const [berth, runc, crun] = results.map((r) => normalise(r.rt, r.out));
      assert.ok(berth!.includes('id: '), 'the probe ran');
      assert.equal(berth, runc, 'berth-runtime and runc see the same');
      assert.equal(berth, crun, 'berth-runtime and crun see the same');
    });
  });
});
