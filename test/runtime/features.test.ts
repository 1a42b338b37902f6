// config.json features of berth-runtime, each checked from inside the container (and from
// outside where it shows there). Needs root: namespaces, mounts, cgroups.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import type { Spec } from '../../src/runtime/spec/types.js';
import { Runtime, type Result } from './runtime-cli.js';

let rt: Runtime;
let bundle: Bundle;
let seq = 0;
let pristine: string;

/** Runs `sh -c script` in a container whose config is the default one changed by edit. */
function probe(script: string, edit: (s: Spec) => void = () => undefined): Result {
  bundle.spec = JSON.parse(pristine) as Spec;
  bundle.spec.process!.args = ['/bin/sh', '-c', script];
  edit(bundle.spec);
  bundle.save();
  return rt.run(['run', '--bundle', bundle.dir, `feat${++seq}`]);
}

function ok(script: string, edit?: (s: Spec) => void): string {
  const r = probe(script, edit);
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const statusField = (out: string, name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(out)?.[1];

describe('berth-runtime config.json features, checked inside the container (root)', () => {
  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle();
    pristine = JSON.stringify(bundle.spec);
  });
  after(() => {
    rt.cleanup();
    bundle.cleanup();
  });

  it('capabilities: all five sets', () => {
    const out = ok('cat /proc/self/status', (s) => {
      s.process!.capabilities = {
        bounding: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_RAW', 'CAP_SETUID'],
        permitted: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_RAW'],
        effective: ['CAP_CHOWN', 'CAP_KILL'],
        inheritable: ['CAP_KILL', 'CAP_NET_RAW'],
        ambient: ['CAP_KILL'],
      };
    });
    // CHOWN=0, KILL=5, SETUID=7, NET_RAW=13
    assert.equal(statusField(out, 'CapBnd'), (0x1n | 0x20n | 0x80n | 0x2000n).toString(16).padStart(16, '0'));
    assert.equal(statusField(out, 'CapPrm'), (0x1n | 0x20n | 0x2000n).toString(16).padStart(16, '0'));
    // uid 0 with no file capabilities: execve makes effective equal to permitted (capabilities(7))
    assert.equal(statusField(out, 'CapEff'), statusField(out, 'CapPrm'));
    assert.equal(statusField(out, 'CapInh'), (0x20n | 0x2000n).toString(16).padStart(16, '0'));
    assert.equal(statusField(out, 'CapAmb'), (0x20n).toString(16).padStart(16, '0'));
  });

  it('user: uid, gid, additionalGids, umask; noNewPrivileges', () => {
    const out = ok('id -u; id -g; id -G; umask; grep NoNewPrivs /proc/self/status', (s) => {
      s.process!.user = { uid: 1000, gid: 1000, additionalGids: [5, 65534], umask: 0o027 };
      s.process!.noNewPrivileges = true;
    });
    assert.deepEqual(out.trim().split('\n'), ['1000', '1000', '1000 5 65534', '0027', 'NoNewPrivs:\t1']);
    const off = ok('grep NoNewPrivs /proc/self/status', (s) => { s.process!.noNewPrivileges = false; });
    assert.equal(off.trim(), 'NoNewPrivs:\t0');
  });

  it('hostname, domainname, cwd and env', () => {
    const out = ok('hostname; cat /proc/sys/kernel/domainname; pwd; echo $FOO', (s) => {
      s.hostname = 'box1';
      s.domainname = 'example.org';
      s.process!.cwd = '/tmp';
      s.process!.env = ['PATH=/bin:/usr/bin', 'FOO=bar baz'];
      s.linux!.namespaces!.push();
    });
    assert.deepEqual(out.trim().split('\n'), ['box1', 'example.org', '/tmp', 'bar baz']);
  });

  it('rlimits and oomScoreAdj', () => {
    const out = ok('ulimit -Sn; ulimit -Hn; ulimit -Sc; cat /proc/self/oom_score_adj', (s) => {
      s.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 321, hard: 654 }, { type: 'RLIMIT_CORE', soft: 0, hard: 0 }];
      s.process!.oomScoreAdj = 123;
    });
    assert.deepEqual(out.trim().split('\n'), ['321', '654', '0', '123']);
  });

  it('root.readonly, maskedPaths and readonlyPaths', () => {
    const out = ok(
      'touch /x 2>/dev/null && echo rootrw || echo rootro; wc -c < /proc/timer_list; ls /sys/firmware | wc -l; ' +
      '(echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sysrw || echo sysro; grep " /proc/sys " /proc/self/mountinfo | cut -d" " -f6',
      (s) => { s.root!.readonly = true; },
    );
    const [root, kcore, firmware, sys, opts] = out.trim().split('\n');
    assert.equal(root, 'rootro');
    assert.equal(kcore!.trim(), '0', '/proc/timer_list is masked by /dev/null');
    assert.equal(firmware!.trim(), '0', '/sys/firmware is masked by an empty tmpfs');
    assert.equal(sys, 'sysro');
    assert.match(opts!, /^ro,/);
  });

  it('mounts: tmpfs with data and flag options, read-only bind, propagation', () => {
    const host = join(bundle.dir, 'shared');
    mkdirSync(host, { recursive: true });
    writeFileSync(join(host, 'hello.txt'), 'from the host\n');
    const out = ok(
      'stat -c %a /scratch; grep " /scratch " /proc/self/mountinfo; cat /data/hello.txt; ' +
      '(echo x > /data/new) 2>/dev/null && echo bindrw || echo bindro; grep " /data " /proc/self/mountinfo',
      (s) => {
        s.mounts!.push(
          { destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'noexec', 'nodev', 'mode=700', 'size=1m'] },
          { destination: '/data', type: 'bind', source: host, options: ['rbind', 'ro', 'rprivate'] },
        );
      },
    );
    const lines = out.trim().split('\n');
    assert.equal(lines[0], '700');
    assert.match(lines[1]!, / \/scratch rw,nosuid,nodev,noexec/);
    assert.match(lines[1]!, /size=1024k/);
    assert.equal(lines[2], 'from the host');
    assert.equal(lines[3], 'bindro');
    assert.match(lines[4]!, / \/data ro,/);
    assert.doesNotMatch(lines[4]!, /shared:|master:/, 'rprivate: no propagation');
  });

  it('recursive mount options (rro) via mount_setattr', () => {
    const host = join(bundle.dir, 'rro');
    mkdirSync(host, { recursive: true });
    const out = ok('grep " /rro " /proc/self/mountinfo | cut -d" " -f6', (s) => {
      s.mounts!.push({ destination: '/rro', type: 'bind', source: host, options: ['rbind', 'rro'] });
    });
    assert.match(out, /^ro/);
  });

  it('devices: linux.devices and the default devices', () => {
    const out = ok('for d in mynull null zero full random urandom tty; do ls -l /dev/$d | cut -c1-10; done; echo hi > /dev/mynull && echo wrote', (s) => {
      s.linux!.devices = [{ path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: 0o600, uid: 0, gid: 0 }];
      s.linux!.resources!.devices!.push({ allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' });
    });
    const lines = out.trim().split('\n');
    assert.equal(lines[0], 'crw-------');
    assert.deepEqual(lines.slice(1, 7), Array(6).fill('crw-rw-rw-'));
    assert.equal(lines[7], 'wrote');
  });

  it('sysctl in the container network namespace', () => {
    const out = ok('cat /proc/sys/net/ipv4/ip_forward', (s) => { s.linux!.sysctl = { 'net.ipv4.ip_forward': '1' }; });
    assert.equal(out.trim(), '1');
  });

  it('seccomp: a denied syscall fails with errnoRet', () => {
    const r = probe('mkdir /tmp/denied; echo rc=$?; ls /tmp', (s) => {
      s.linux!.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
      };
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /Permission denied/, 'EACCES (13) from the filter');
    assert.equal(r.stdout, 'rc=1\n');
  });

  it('cgroup limits: pids and memory, visible inside and outside', async () => {
    const id = 'cglim';
    bundle.spec = JSON.parse(pristine) as Spec;
    bundle.spec.process!.args = ['/bin/sh', '-c', 'cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; sleep 20'];
    bundle.spec.linux!.resources!.pids = { limit: 42 };
    bundle.spec.linux!.resources!.memory = { limit: 64 * 1024 * 1024 };
    bundle.spec.linux!.cgroupsPath = '/berth-test/cglim';
    bundle.save();
    const out = join(bundle.dir, 'cglim.out');
    const c = rt.create(id, bundle.dir, out);
    assert.equal(c.status, 0, c.stderr);
    try {
      const { readFileSync } = await import('node:fs');
      assert.equal(readFileSync('/sys/fs/cgroup/pids/berth-test/cglim/pids.max', 'utf8').trim(), '42');
      assert.equal(readFileSync('/sys/fs/cgroup/memory/berth-test/cglim/memory.limit_in_bytes', 'utf8').trim(), String(64 * 1024 * 1024));
      assert.equal(rt.run(['start', id]).status, 0);
      let text = '';
      for (let i = 0; i < 200 && text.split('\n').length < 3; i++) {
        await new Promise((r) => setTimeout(r, 10));
        text = readFileSync(out, 'utf8');
      }
      assert.deepEqual(text.trim().split('\n'), ['42', String(64 * 1024 * 1024)]);
    } finally {
      assert.equal(rt.run(['delete', '--force', id]).status, 0);
      const { readdirSync, rmdirSync } = await import('node:fs');
      for (const ctrl of readdirSync('/sys/fs/cgroup')) {
        try { rmdirSync(join('/sys/fs/cgroup', ctrl, 'berth-test')); } catch { /* not there, or not a hierarchy */ }
      }
    }
  });

  it('namespaces: cgroup namespace roots /proc/self/cgroup at the container', () => {
    const out = ok('cat /proc/self/cgroup', (s) => { s.linux!.namespaces!.push({ type: 'cgroup' }); });
    for (const line of out.trim().split('\n')) assert.match(line, /:\/$/, line);
  });

  it('namespaces: user namespace with uid/gid mappings', async () => {
    const { chmodSync } = await import('node:fs');
    chmodSync(bundle.dir, 0o755); // the mapped root must reach the rootfs
    const out = ok('id -u; cat /proc/self/uid_map /proc/self/gid_map; stat -c %u /bin/busybox', (s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    });
    const lines = out.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    assert.deepEqual(lines, ['0', '0 100000 65536', '0 100000 65536', '65534']);
  });

  it('namespaces: joining an existing namespace by path', async () => {
    const holder = spawn('unshare', ['--uts', 'sh', '-c', 'hostname joined-uts; sleep 20'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const pid = holder.pid!;
      const { readFileSync } = await import('node:fs');
      const child = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() || String(pid);
      const out = ok('hostname', (s) => {
        s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'uts');
        s.linux!.namespaces.push({ type: 'uts', path: `/proc/${child.split(' ')[0]}/ns/uts` });
        delete s.hostname;
      });
      assert.equal(out.trim(), 'joined-uts');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('personality LINUX32 and time namespace offsets', () => {
    const out = ok('uname -m; cut -d. -f1 /proc/uptime', (s) => {
      s.linux!.personality = { domain: 'LINUX32' };
      s.linux!.namespaces!.push({ type: 'time' });
      s.linux!.timeOffsets = { boottime: { secs: 1_000_000, nanosecs: 0 } };
    });
    const [machine, uptime] = out.trim().split('\n');
    assert.equal(machine, 'i686');
    assert.ok(Number(uptime) >= 1_000_000, `uptime ${uptime} includes the boottime offset`);
  });

  it('ioPriority and rootfsPropagation', () => {
    const out = ok("ionice -p $$; awk '$5 == \"/\"' /proc/self/mountinfo", (s) => {
      s.process!.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 6 };
      s.linux!.rootfsPropagation = 'private';
    });
    const [io, root] = out.trim().split('\n');
    assert.match(io!, /best-effort: prio 6/);
    assert.doesNotMatch(root!, /shared:|master:/);
  });

  it('startContainer hooks run inside the container after start, with the state on stdin', () => {
    const out = ok('cat /tmp/hook-state; echo; cat /tmp/hook-env', (s) => {
      s.hooks = { startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'cat > /tmp/hook-state; echo $HV > /tmp/hook-env'], env: ['HV=inside'] }] };
    });
    const [state, env] = out.trim().split('\n');
    const doc = JSON.parse(state!);
    assert.equal(doc.status, 'created');
    assert.ok(doc.pid > 0);
    assert.equal(env, 'inside');
  });

  it('createContainer hooks run in the container\'s namespaces before pivot_root, startContainer hooks after start, before the process', () => {
    const out = mkdtempSync(join(tmpdir(), 'berth-hooks-'));
    try {
      // createContainer: the host's paths still resolve (its /bin/sh, our temp dir), the mounts are the container's.
      const cc = `readlink /proc/self/ns/mnt /proc/self/ns/uts > ${out}/cc-ns; cat /proc/self/mountinfo > ${out}/cc-mountinfo; cat > ${out}/cc-state`;
      const got = ok('readlink /proc/self/ns/mnt; readlink /proc/self/ns/uts; cat /tmp/sc-ns; ls /tmp', (s) => {
        s.hooks = {
          createContainer: [{ path: '/bin/sh', args: ['sh', '-c', cc] }],
          startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'readlink /proc/self/ns/mnt > /tmp/sc-ns; readlink /proc/self/ns/uts >> /tmp/sc-ns; ls / > /tmp/sc-root'] }],
        };
      });
      const [mnt, uts, scMnt, scUts, ...ls] = got.trim().split('\n');
      const [ccMnt, ccUts] = readFileSync(join(out, 'cc-ns'), 'utf8').trim().split('\n');
      assert.notEqual(mnt, readlinkSync('/proc/self/ns/mnt'), 'the container has its own mount namespace');
      assert.deepEqual([ccMnt, ccUts], [mnt, uts], 'createContainer ran in the container\'s mount and uts namespaces');
      assert.deepEqual([scMnt, scUts], [mnt, uts], 'startContainer ran in the container\'s namespaces');
      assert.ok(ls.includes('sc-ns') && ls.includes('sc-root'), 'startContainer ran with the container\'s root, before the process');
      // Before pivot_root: the container's mounts sit under the rootfs path.
      const points = readFileSync(join(out, 'cc-mountinfo'), 'utf8').split('\n').map((l) => l.split(' ')[4]);
      assert.ok(points.includes(join(bundle.rootfs, 'proc')), 'the container\'s /proc is mounted in the hook\'s namespace');
      assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(join(bundle.rootfs, 'proc')), 'and not in ours');
      assert.equal(JSON.parse(readFileSync(join(out, 'cc-state'), 'utf8')).status, 'created');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('a failing createContainer hook fails create, naming the hook', () => {
    const r = probe('true', (s) => { s.hooks = { createContainer: [{ path: '/bin/false' }] }; });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /createContainer hook \/bin\/false failed/);
  });
});
