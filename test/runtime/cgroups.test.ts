import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { once } from 'node:events';
import { isBerthError } from '../../src/base/errors.js';
import { UNIFIED, cgroupManagerFor, cgroupManagerWith, validateCgroupsPath } from '../../src/runtime/cgroups/manager.js';
import { hostCgroupLayout, layoutFrom, parseProcCgroup, versionOf, type CgroupLayout } from '../../src/runtime/cgroups/host.js';
import { compileDeviceFilter, reduceDeviceRules } from '../../src/runtime/cgroups/devices.js';
import { blkioWeightToIoWeight, planResourceWrites, sharesToWeight, type VersionOf } from '../../src/runtime/cgroups/plan.js';
import type { LinuxDeviceCgroup, LinuxResources } from '../../src/runtime/spec/types.js';
import { hostHas, peer, root, skipUnless } from '../helpers/requirements.js';

const allV2: VersionOf = (c) => (['memory', 'cpu', 'cpuset', 'pids', 'blkio', 'hugetlb', 'rdma', 'freezer', ''].includes(c) ? 2 : undefined);
const allV1: VersionOf = (c) => (c === '' ? undefined : 1);

function writesOf(resources: LinuxResources, v: VersionOf): string[] {
  return planResourceWrites(resources, v).map((w) => `${w.file}=${w.value}${w.fallback ? ` | ${w.fallback.file}=${w.fallback.value}` : ''}`);
}

function expectError(fn: () => unknown, code: 'UNSUPPORTED' | 'RUNTIME_CONFIG_INVALID', re: RegExp): void {
  assert.throws(fn, (e: unknown) => isBerthError(e, code) && re.test(e.message));
}

describe('cgroups host layout', () => {
  it('parses a hybrid host (v1 controllers, cgroup2 at unified with hugetlb)', () => {
    const mountinfo = [
      '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
      '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
      '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
      '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
      '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
    ].join('\n');
    const layout = layoutFrom(mountinfo, '4:memory:/a/b\n1:cpu,cpuacct:/\n0::/x\n', () => ['hugetlb']);
    assert.deepEqual(layout.v1, { cpu: '/sys/fs/cgroup/cpu,cpuacct', cpuacct: '/sys/fs/cgroup/cpu,cpuacct', memory: '/sys/fs/cgroup/memory' });
    assert.deepEqual(layout.v2, { mountPoint: '/sys/fs/cgroup/unified', controllers: ['hugetlb'] });
    assert.equal(versionOf(layout, 'memory'), 1);
    assert.equal(versionOf(layout, 'hugetlb'), 2);
    assert.equal(versionOf(layout, 'pids'), undefined);
    assert.equal(layout.own.memory, '/a/b');
    assert.equal(layout.own[''], '/x');
  });

  it('parses a pure v2 host', () => {
    const layout = layoutFrom('30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n', '0::/user.slice\n', () => ['cpu', 'io', 'memory', 'pids']);
    assert.equal(versionOf(layout, 'blkio'), 2);
    assert.equal(versionOf(layout, 'freezer'), 2);
    assert.equal(versionOf(layout, 'devices'), undefined);
    assert.deepEqual(parseProcCgroup('0::/user.slice\n'), { '': '/user.slice' });
  });

  it('resolves absolute, relative and default cgroupsPath', () => {
    const layout: CgroupLayout = { v1: { memory: '/cg/memory' }, v2: { mountPoint: '/cg/unified', controllers: [] }, own: { memory: '/runtime', '': '/svc' } };
    assert.deepEqual(cgroupManagerWith(layout, '/a/b', 'c1').paths, { memory: '/cg/memory/a/b', [UNIFIED]: '/cg/unified/a/b' });
    assert.deepEqual(cgroupManagerWith(layout, 'a/b', 'c1').paths, { memory: '/cg/memory/runtime/a/b', [UNIFIED]: '/cg/unified/svc/a/b' });
    assert.deepEqual(cgroupManagerWith(layout, undefined, 'c1').paths, { memory: '/cg/memory/berth/c1', [UNIFIED]: '/cg/unified/berth/c1' });
    for (const bad of ['/a/../b', '', '/', 'system.slice:berth:c1', 'a\0b']) {
      expectError(() => validateCgroupsPath(bad), 'RUNTIME_CONFIG_INVALID', /cgroupsPath/);
    }
  });
});

describe('cgroups resource mapping', () => {
  it('converts cpu shares to cpu.weight and blkio weights to io.weight as runc does', () => {
    assert.equal(sharesToWeight(2), 1);
    assert.equal(sharesToWeight(1024), 39);
    assert.equal(sharesToWeight(262144), 10000);
    assert.equal(blkioWeightToIoWeight(10), 1);
    assert.equal(blkioWeightToIoWeight(500), 4950);
    assert.equal(blkioWeightToIoWeight(1000), 10000);
  });

  it('maps memory, cpu, pids, io and hugetlb to cgroup v2 files', () => {
    const res: LinuxResources = {
      memory: { limit: 64 << 20, reservation: 32 << 20, swap: 96 << 20 },
      cpu: { shares: 1024, quota: 50000, period: 100000, burst: 1000, cpus: '0-1', mems: '0', idle: 0 },
      pids: { limit: 0 },
      blockIO: {
        weight: 500,
        weightDevice: [{ major: 8, minor: 0, weight: 100 }],
        throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }],
        throttleWriteIOPSDevice: [{ major: 8, minor: 16, rate: 100 }],
      },
      hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }],
      unified: { 'memory.high': '50000000', 'cgroup.max.depth': '3' },
    };
    assert.deepEqual(writesOf(res, allV2), [
      `memory.low=${32 << 20}`,
      `memory.max=${64 << 20}`,
      `memory.swap.max=${32 << 20}`,
      'cpu.weight=39',
      'cpu.max=50000 100000',
      'cpu.max.burst=1000',
      'cpu.idle=0',
      'cpuset.cpus=0-1',
      'cpuset.mems=0',
      'pids.max=0',
      'io.bfq.weight=500 | io.weight=4950',
      'io.bfq.weight=8:0 100 | io.weight=8:0 910',
      'io.max=8:0 rbps=1048576',
      'io.max=8:16 wiops=100',
      'hugetlb.2MB.rsvd.max=4194304 | hugetlb.2MB.max=4194304',
      'memory.high=50000000',
      'cgroup.max.depth=3',
    ]);
    assert.deepEqual(writesOf({ memory: { limit: -1, swap: -1 }, cpu: { quota: -1, period: 100000 }, pids: { limit: -1 } }, allV2), [
      'memory.max=max',
      'memory.swap.max=max',
      'cpu.max=max 100000',
      'pids.max=max',
    ]);
  });

  it('maps the same resources to cgroup v1 files', () => {
    const res: LinuxResources = {
      memory: { limit: 64 << 20, swap: 96 << 20, reservation: 1, kernelTCP: 1 << 20, swappiness: 10, disableOOMKiller: true },
      cpu: { shares: 512, quota: 20000, period: 100000, realtimeRuntime: 0, realtimePeriod: 1000000 },
      pids: { limit: 10 },
      blockIO: { weight: 300, leafWeight: 200, throttleReadIOPSDevice: [{ major: 254, minor: 0, rate: 5 }] },
      devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }, { allow: true, type: 'c', major: 136, access: 'rwm' }],
      network: { classID: 0x100001, priorities: [{ name: 'eth0', priority: 5 }] },
    };
    assert.deepEqual(writesOf(res, allV1), [
      `memory.limit_in_bytes=${64 << 20}`,
      `memory.memsw.limit_in_bytes=${96 << 20}`,
      'memory.soft_limit_in_bytes=1',
      `memory.kmem.tcp.limit_in_bytes=${1 << 20}`,
      'memory.swappiness=10',
      'memory.oom_control=1',
      'cpu.shares=512',
      'cpu.cfs_period_us=100000',
      'cpu.cfs_quota_us=20000',
      'cpu.rt_period_us=1000000',
      'cpu.rt_runtime_us=0',
      'pids.max=10',
      'blkio.weight=300 | blkio.bfq.weight=300',
      'blkio.leaf_weight=200',
      'blkio.throttle.read_iops_device=254:0 5',
      'devices.deny=a *:* rwm',
      'devices.allow=c 1:3 rw',
      'devices.allow=c 136:* rwm',
      `net_cls.classid=${0x100001}`,
      'net_prio.ifpriomap=eth0 5',
    ]);
  });

  it('reads 0 as unset for memory limits, cpu shares/quota/period and blkio weights, as runc does', () => {
    const zeros: LinuxResources = { memory: { limit: 0, reservation: 0, swap: 0 }, cpu: { shares: 0, quota: 0, period: 0 }, blockIO: { weight: 0 }, pids: { limit: 0 } };
    assert.deepEqual(writesOf(zeros, allV2), ['pids.max=0']);
    assert.deepEqual(writesOf(zeros, allV1), ['pids.max=0']);
  });

  it('refuses, clearly, what the chosen version cannot express', () => {
    expectError(() => planResourceWrites({ memory: { swappiness: 10 } }, allV2), 'UNSUPPORTED', /swappiness.*v2/);
    expectError(() => planResourceWrites({ memory: { kernel: 1 } }, allV2), 'UNSUPPORTED', /memory\.kernel/);
    expectError(() => planResourceWrites({ memory: { disableOOMKiller: true } }, allV2), 'UNSUPPORTED', /OOM/);
    expectError(() => planResourceWrites({ memory: { swap: 10 } }, allV2), 'RUNTIME_CONFIG_INVALID', /memory limit/);
    expectError(() => planResourceWrites({ memory: { limit: 10, swap: 5 } }, allV2), 'RUNTIME_CONFIG_INVALID', /smaller/);
    expectError(() => planResourceWrites({ cpu: { realtimeRuntime: 1 } }, allV2), 'UNSUPPORTED', /realtime/);
    expectError(() => planResourceWrites({ cpu: { quota: 10, burst: 20 } }, allV2), 'RUNTIME_CONFIG_INVALID', /burst/);
    expectError(() => planResourceWrites({ blockIO: { leafWeight: 10 } }, allV2), 'UNSUPPORTED', /leaf/);
    expectError(() => planResourceWrites({ devices: [{ allow: false }] }, allV2), 'UNSUPPORTED', /eBPF/);
    assert.deepEqual(planResourceWrites({ devices: [{ allow: false }] }, allV2, { devicesByBpf: true }), []);
    expectError(() => planResourceWrites({ network: { classID: 1 } }, allV2), 'UNSUPPORTED', /net_cls/);
    expectError(() => planResourceWrites({ unified: { 'memory.high': '1' } }, allV1), 'UNSUPPORTED', /v1 hierarchy/);
    expectError(() => planResourceWrites({ unified: { '../x': '1' } }, allV2), 'RUNTIME_CONFIG_INVALID', /unified/);
    expectError(() => planResourceWrites({ hugepageLimits: [{ pageSize: '2M', limit: 1 }] }, allV2), 'RUNTIME_CONFIG_INVALID', /pageSize/);
    expectError(() => planResourceWrites({ pids: { limit: 1 } }, () => undefined), 'UNSUPPORTED', /pids cgroup controller is not available/);
    expectError(() => planResourceWrites({ devices: [{ allow: true, type: 'x' }] }, allV1), 'RUNTIME_CONFIG_INVALID', /type/);
  });
});

describe('cgroups on a fake cgroup2 filesystem', () => {
  let root = '';
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'berth-fake-cgroup2-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('removes what create made when a later hierarchy fails', async () => {
    // Two v1 "hierarchies": cpu works, memory's mount point is a file, so mkdir under it
    // fails after the cpu directories were made.
    mkdirSync(join(root, 'cpu-h'));
    writeFileSync(join(root, 'not-a-hierarchy'), '');
    const layout: CgroupLayout = { v1: { cpu: join(root, 'cpu-h'), memory: join(root, 'not-a-hierarchy') }, own: {} };
    const m = cgroupManagerWith(layout, '/rollback/deep/c', 'c');
    assert.deepEqual(Object.keys(m.paths), ['cpu', 'memory']);
    await assert.rejects(m.create(), (e: unknown) => isBerthError(e, 'RUNTIME_ERROR') && /cannot create cgroup .*not-a-hierarchy/.test(e.message));
    assert.equal(existsSync(join(root, 'cpu-h/rollback')), false, 'nothing left behind');
    assert.equal(existsSync(join(root, 'cpu-h')), true, 'the hierarchy itself stays');
  });

  it('refuses to create over a cgroup that has processes or is frozen', async () => {
    const layout: CgroupLayout = { v1: {}, v2: { mountPoint: root, controllers: [] }, own: { '': '/' } };
    const dir = join(root, 'busy');
    mkdirSync(dir);
    writeFileSync(join(dir, 'cgroup.procs'), '4242\n');
    await assert.rejects(cgroupManagerWith(layout, '/busy', 'x').create(), (e: unknown) => isBerthError(e, 'RUNTIME_ERROR') && /already has processes \(4242\)/.test(e.message));
    writeFileSync(join(dir, 'cgroup.procs'), '');
    writeFileSync(join(dir, 'cgroup.freeze'), '1\n');
    await assert.rejects(cgroupManagerWith(layout, '/busy', 'x').create(), (e: unknown) => isBerthError(e, 'RUNTIME_ERROR') && /frozen/.test(e.message));
    writeFileSync(join(dir, 'cgroup.freeze'), '0\n');
    await cgroupManagerWith(layout, '/busy', 'x').create();
  });

  it('creates the cgroup, enables the needed controllers up the tree and writes the v2 files', async () => {
    const layout: CgroupLayout = { v1: {}, v2: { mountPoint: root, controllers: ['cpu', 'memory', 'pids', 'io'] }, own: { '': '/' } };
    const m = cgroupManagerWith(layout, '/machine/c1', 'c1');
    assert.deepEqual(m.paths, { [UNIFIED]: join(root, 'machine/c1') });
    await m.create();
    const dir = join(root, 'machine/c1');
    assert.ok(existsSync(dir));
    await m.apply({ memory: { limit: 1 << 30 }, cpu: { shares: 2048, quota: 25000, period: 50000 }, pids: { limit: 42 }, blockIO: { weight: 1000 } });
    const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
    assert.equal(read('memory.max'), String(1 << 30));
    assert.equal(read('cpu.weight'), '79');
    assert.equal(read('cpu.max'), '25000 50000');
    assert.equal(read('pids.max'), '42');
    assert.equal(read('io.weight'), '10000', 'no io.bfq.weight: falls back to io.weight');
    for (const d of [root, join(root, 'machine')]) {
      assert.deepEqual(readFileSync(join(d, 'cgroup.subtree_control'), 'utf8').split(' ').sort(), ['+cpu', '+io', '+memory', '+pids']);
    }
    writeFileSync(join(dir, 'io.bfq.weight'), '');
    await m.apply({ blockIO: { weight: 200 } });
    assert.equal(read('io.bfq.weight'), '200');
    await m.freeze();
    assert.equal(read('cgroup.freeze'), '1');
    await m.thaw();
    assert.equal(read('cgroup.freeze'), '0');
    // memory.checkBeforeUpdate: a limit below the current usage is refused before writing.
    writeFileSync(join(dir, 'memory.current'), '1000\n');
    await assert.rejects(
      m.apply({ memory: { limit: 500, checkBeforeUpdate: true } }),
      (e: unknown) => isBerthError(e, 'RUNTIME_ERROR') && /below the container's current usage 1000/.test(e.message),
    );
    assert.equal(read('memory.max'), String(1 << 30), 'unchanged');
    await m.apply({ memory: { limit: 2000, checkBeforeUpdate: true } });
    assert.equal(read('memory.max'), '2000');
    await assert.rejects(m.apply({ memory: { swappiness: 1 } }), (e: unknown) => isBerthError(e, 'UNSUPPORTED'));
    await assert.rejects(m.apply({ hugepageLimits: [{ pageSize: '2MB', limit: 1 }] }), (e: unknown) => isBerthError(e, 'UNSUPPORTED') && /hugetlb/.test(e.message));
    // Devices on pure v2: the eBPF program for the executor, and no files written.
    const devices: LinuxResources = { devices: [{ allow: false }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }] };
    assert.ok(m.deviceFilter(devices)!.length > 0);
    assert.equal(m.deviceFilter({}), undefined);
    await assert.rejects(m.apply(devices), (e: unknown) => isBerthError(e, 'UNSUPPORTED') && /eBPF/.test(e.message));
    await m.apply(devices, { devicesByBpf: true });
  });
});

// ---- this host, as root ----------------------------------------------------------------

const hostLayout = existsSync('/proc/self/mountinfo') ? hostCgroupLayout() : undefined;

/**
 * Whether this host's v1 blkio controller has a weight file (CFQ's blkio.weight or BFQ's
 * blkio.bfq.weight): kernels without either I/O scheduler have neither, and runc fails a weight
 * there too. Tests set a weight only where the host offers one, and say what they left out.
 */
function hostHasBlkioWeight(layout: typeof hostLayout): boolean {
  const mount = layout?.v1.blkio;
  const has = mount !== undefined && ['blkio.weight', 'blkio.bfq.weight'].some((f) => existsSync(join(mount, f)));
  if (!has) console.log('# cgroups: this kernel has no blkio weight file (neither CFQ nor BFQ): blkio weights are left out here');
  return has;
}

describe('cgroups on this host (root)', { skip: skipUnless(root('creates cgroups'), hostHas(hostLayout !== undefined, 'no /proc')) }, () => {
  const top = `/berth-test-${process.pid}-${Date.now().toString(36)}`;
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    const layout = hostLayout!;
    const mounts = [...Object.values(layout.v1), ...(layout.v2 ? [layout.v2.mountPoint] : [])];
    // Leaves first (left behind only by a failed test), then the test's parent cgroup.
    for (const mp of new Set(mounts)) {
      for (const dir of ['c1', 'c2', 'c3', ''].map((leaf) => join(mp, top, leaf))) {
        try {
          rmdirSync(dir);
        } catch {
          // already gone, or never created in this hierarchy
        }
      }
    }
  });

  it('creates, limits, places a process, freezes, kills and destroys, leaving nothing', async () => {
    const layout = hostLayout!;
    const m = cgroupManagerFor(`${top}/c1`, 'c1');
    await m.create();
    for (const dir of Object.values(m.paths)) assert.ok(existsSync(dir), dir);

    const resources: LinuxResources = {
      memory: { limit: 64 << 20, reservation: 32 << 20 },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0' },
      pids: { limit: 20 },
    };
    const v1 = (c: string): boolean => versionOf(layout, c) === 1;
    if (v1('devices')) resources.devices = [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }];
    const disk = firstBlockDevice();
    if (v1('blkio') && disk !== undefined) resources.blockIO = { ...(hostHasBlkioWeight(layout) ? { weight: 300 } : {}), throttleReadBpsDevice: [{ ...disk, rate: 1048576 }] };
    await m.apply(resources);
    if (v1('devices')) assert.equal(m.deviceFilter(resources), undefined, 'v1 devices: no eBPF program needed');

    const dirOf = (c: string): string => (versionOf(layout, c) === 1 ? m.paths[c]! : m.paths[UNIFIED]!);
    const read = (c: string, f: string): string => readFileSync(join(dirOf(c), f), 'utf8').trim();
    if (v1('memory')) {
      assert.equal(read('memory', 'memory.limit_in_bytes'), String(64 << 20));
      assert.equal(read('memory', 'memory.soft_limit_in_bytes'), String(32 << 20));
    } else {
      assert.equal(read('memory', 'memory.max'), String(64 << 20));
    }
    assert.equal(read('pids', 'pids.max'), '20');
    if (v1('cpu')) {
      assert.equal(read('cpu', 'cpu.shares'), '512');
      assert.equal(read('cpu', 'cpu.cfs_quota_us'), '50000');
    } else {
      assert.equal(read('cpu', 'cpu.max'), '50000 100000');
    }
    assert.equal(read('cpuset', 'cpuset.cpus'), '0');
    if (v1('devices')) assert.equal(read('devices', 'devices.list'), 'c 1:3 rwm');
    if (resources.blockIO) {
      assert.equal(read('blkio', 'blkio.throttle.read_bps_device'), `${disk!.major}:${disk!.minor} 1048576`);
      if (resources.blockIO.weight !== undefined) {
        const weightFile = existsSync(join(dirOf('blkio'), 'blkio.weight')) ? 'blkio.weight' : 'blkio.bfq.weight';
        assert.match(read('blkio', weightFile), /^(default )?300$/m, `${weightFile} (bfq when CFQ's file is absent)`);
      }
    }

    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(child);
    await once(child, 'spawn');
    const pid = child.pid!;
    await m.addProcess(pid);
    assert.deepEqual(await m.pids(), [pid]);
    const procCgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    assert.match(procCgroup, new RegExp(`:memory:${top}/c1$`, 'm'));
    if (layout.v2) assert.match(procCgroup, new RegExp(`^0::${top}/c1$`, 'm'));

    // Another container cannot be created over this occupied cgroup.
    await assert.rejects(cgroupManagerFor(`${top}/c1`, 'other').create(), (e: unknown) => isBerthError(e, 'RUNTIME_ERROR') && e.message.includes(String(pid)));

    await m.freeze();
    if (v1('freezer')) assert.equal(read('freezer', 'freezer.state'), 'FROZEN');
    else assert.match(readFileSync(join(m.paths[UNIFIED]!, 'cgroup.events'), 'utf8'), /^frozen 1$/m);
    await m.thaw();
    if (v1('freezer')) assert.equal(read('freezer', 'freezer.state'), 'THAWED');

    // destroy refuses while a process is inside, and says which.
    await assert.rejects(m.destroy(), (e: unknown) => isBerthError(e, 'RUNTIME_ERROR') && e.message.includes(String(pid)));

    const exited = once(child, 'exit');
    await m.killAll('SIGKILL');
    const [, signal] = await exited;
    assert.equal(signal, 'SIGKILL');
    await m.destroy();
    for (const dir of Object.values(m.paths)) assert.equal(existsSync(dir), false, `${dir} removed`);
    await m.destroy(); // idempotent
  });

  it('applies a v2 hugetlb limit in the cgroup2 hierarchy of a hybrid host', { skip: skipUnless(hostHas(versionOf(hostLayout ?? { v1: {}, own: {} }, 'hugetlb') === 2, 'hugetlb is not on cgroup2 on this host')) }, async () => {
    const m = cgroupManagerFor(`${top}/c2`, 'c2');
    await m.create();
    try {
      await m.apply({ hugepageLimits: [{ pageSize: '2MB', limit: 2 << 20 }] });
      const dir = m.paths[UNIFIED]!;
      const file = existsSync(join(dir, 'hugetlb.2MB.rsvd.max')) ? 'hugetlb.2MB.rsvd.max' : 'hugetlb.2MB.max';
      assert.equal(readFileSync(join(dir, file), 'utf8').trim(), String(2 << 20));
    } finally {
      await m.destroy();
    }
  });

  it('refuses unified settings for a controller on a v1 hierarchy, and a limit the kernel refuses', async () => {
    const m = cgroupManagerFor(`${top}/c3`, 'c3');
    await m.create();
    try {
      if (versionOf(hostLayout!, 'memory') === 1) {
        await assert.rejects(m.apply({ unified: { 'memory.max': '1' } }), (e: unknown) => isBerthError(e, 'UNSUPPORTED') && /v1/.test(e.message));
      }
      await assert.rejects(m.apply({ cpu: { cpus: '4096' } }), (e: unknown) => isBerthError(e, 'RUNTIME_ERROR') && /cpuset\.cpus/.test(e.message));
    } finally {
      await m.destroy();
    }
  });
});

/** A whole disk of this machine (throttles refuse character devices and partitions). */
function firstBlockDevice(): { major: number; minor: number } | undefined {
  for (const name of readdirSync('/sys/block')) {
    if (name.startsWith('loop') || name.startsWith('ram')) continue;
    const [major, minor] = readFileSync(`/sys/block/${name}/dev`, 'utf8').trim().split(':').map(Number);
    if (major !== undefined && minor !== undefined) return { major, minor };
  }
  return undefined;
}

describe('cgroups as on a pure cgroup v2 host, on this host\'s real cgroup2 hierarchy (root)', {
  skip: skipUnless(root('creates cgroups'), hostHas(hostLayout?.v2 !== undefined, 'no cgroup2 hierarchy on this host')),
}, () => {
  const top = `/berth-test-v2-${process.pid}-${Date.now().toString(36)}`;
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of [join(hostLayout!.v2!.mountPoint, top, 'c'), join(hostLayout!.v2!.mountPoint, top)]) {
      try {
        rmdirSync(d);
      } catch {
        // already removed by the test
      }
    }
  });

  it('freezes with cgroup.freeze, signals through the freezer, kills with cgroup.kill, destroys', async () => {
    // Only the cgroup2 hierarchy: every core v2 file (freeze, kill, events, procs) is real.
    const layout: CgroupLayout = { v1: {}, v2: hostLayout!.v2!, own: { '': '/' } };
    const m = cgroupManagerWith(layout, `${top}/c`, 'c');
    await m.create();
    const dir = m.paths[UNIFIED]!;
    const spawnSleep = async (): Promise<ChildProcess> => {
      const child = spawn('sleep', ['60'], { stdio: 'ignore' });
      children.push(child);
      await once(child, 'spawn');
      await m.addProcess(child.pid!);
      return child;
    };
    const a = await spawnSleep();
    const b = await spawnSleep();
    assert.deepEqual((await m.pids()).sort(), [a.pid!, b.pid!].sort());

    await m.freeze();
    assert.match(readFileSync(join(dir, 'cgroup.events'), 'utf8'), /^frozen 1$/m);
    await m.thaw();
    assert.match(readFileSync(join(dir, 'cgroup.events'), 'utf8'), /^frozen 0$/m);

    const exits = [once(a, 'exit'), once(b, 'exit')];
    await m.killAll('SIGTERM'); // freeze, signal each, thaw
    for (const [, signal] of await Promise.all(exits)) assert.equal(signal, 'SIGTERM');

    const c = await spawnSleep();
    const exitC = once(c, 'exit');
    await m.killAll('SIGKILL'); // cgroup.kill
    assert.equal((await exitC)[1], 'SIGKILL');
    await m.destroy();
    assert.equal(existsSync(dir), false);
  });
});

// ---- cgroup v2 device filter (eBPF) ----------------------------------------------------

interface DevRequest {
  type: 'b' | 'c';
  major: number;
  minor: number;
  access: number; // 1 mknod, 2 read, 4 write
}

/** Runs a BPF_PROG_TYPE_CGROUP_DEVICE program on one request (the subset berth emits). */
function runDeviceProgram(program: Buffer, req: DevRequest): number {
  const regs = new Array<number>(11).fill(0);
  const ctx = [((req.access << 16) | (req.type === 'c' ? 2 : 1)) >>> 0, req.major, req.minor];
  for (let pc = 0; ; ) {
    assert.ok(pc * 8 < program.length, 'ran off the end');
    const code = program.readUInt8(pc * 8);
    const regByte = program.readUInt8(pc * 8 + 1);
    const dst = regByte & 0xf;
    const src = regByte >> 4;
    const off = program.readInt16LE(pc * 8 + 2);
    const imm = program.readInt32LE(pc * 8 + 4);
    pc++;
    switch (code) {
      case 0x61:
        assert.equal(src, 1, 'loads only from the context');
        regs[dst] = ctx[off / 4]!;
        break;
      case 0x57:
        regs[dst] = Number(BigInt(regs[dst]!) & BigInt.asUintN(64, BigInt(imm)));
        break;
      case 0x77:
        regs[dst] = regs[dst]! >>> imm;
        break;
      case 0xb7:
        regs[dst] = imm;
        break;
      case 0xbf:
        regs[dst] = regs[src]!;
        break;
      case 0x55:
        if (regs[dst] !== imm) pc += off;
        break;
      case 0x15:
        if (regs[dst] === imm) pc += off;
        break;
      case 0x95:
        return regs[0]!;
      default:
        assert.fail(`opcode 0x${code.toString(16)}`);
    }
  }
}

describe('cgroup v2 device filter', () => {
  it('reduces rules the way cgroup v1 applies them', () => {
    assert.deepEqual(reduceDeviceRules([]), { defaultAllow: true, exceptions: [] });
    assert.deepEqual(
      reduceDeviceRules([
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 5, access: 'r' },
        { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
        { allow: true, type: 'c', major: 136, access: 'rw' },
      ]),
      {
        defaultAllow: false,
        exceptions: [
          { type: 'c', major: 1, minor: 3, access: 3 },
          { type: 'c', major: 1, minor: 5, access: 2 },
          { type: 'c', major: 136, minor: -1, access: 6 },
        ],
      },
    );
    assert.deepEqual(reduceDeviceRules([{ allow: false }, { allow: true, type: 'c', major: 1, minor: 3 }, { allow: true }]), { defaultAllow: true, exceptions: [] });
  });

  it('decides every request like the v1 semantics it mirrors', () => {
    const ruleSets: LinuxDeviceCgroup[][] = [
      [],
      [{ allow: false }],
      [{ allow: false }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 5, access: 'r' }, { allow: true, type: 'b', major: 8, access: 'rw' }],
      [{ allow: true, type: 'c', major: 1, minor: 3, access: 'w' }, { allow: false, type: 'c', major: 1, minor: 3, access: 'w' }, { allow: false, type: 'a', major: 10, minor: 200, access: 'm' }],
      [{ allow: false }, { allow: true, type: 'a', major: -1, minor: 9, access: 'rwm' }],
    ];
    for (const rules of ruleSets) {
      const { program, rules: set } = compileDeviceFilter(rules);
      for (const type of ['b', 'c'] as const) {
        for (const [major, minor] of [[1, 3], [1, 5], [8, 0], [8, 9], [10, 200], [136, 9]] as const) {
          for (let access = 1; access <= 7; access++) {
            const matching = set.exceptions.filter(
              (e) => (e.type === 'a' || e.type === type) && (e.major === -1 || e.major === major) && (e.minor === -1 || e.minor === minor),
            );
            const expected = set.defaultAllow
              ? matching.every((e) => (e.access & access) === 0)
              : matching.some((e) => (access & ~e.access) === 0);
            const got = runDeviceProgram(program, { type, major, minor, access });
            assert.equal(got, expected ? 1 : 0, `${JSON.stringify(rules)}: ${type} ${major}:${minor} access ${access}`);
          }
        }
      }
    }
  });
});

const hereDir = dirname(fileURLToPath(import.meta.url));
const deviceHelperSource = resolve(hereDir, '../../../test/runtime/fixtures/devices-bpf.c');
const v2Mount = hostLayout?.v2?.mountPoint;

describe('cgroup v2 device filter, loaded by the kernel (root)', { skip: skipUnless(root('loads BPF programs'), hostHas(v2Mount !== undefined, 'no cgroup2 hierarchy on this host')) }, () => {
  let tmp = '';
  let helper = '';
  const cgroups: string[] = [];
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'berth-devbpf-'));
    helper = join(tmp, 'devices-bpf');
    execFileSync('cc', ['-O', '-o', helper, deviceHelperSource], { stdio: 'inherit' });
  });
  after(async () => {
    for (const dir of cgroups) {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  function probe(rules: LinuxDeviceCgroup[]): string {
    const dir = join(v2Mount!, `berth-test-dev-${process.pid}-${cgroups.length}`);
    mkdirSync(dir);
    cgroups.push(dir);
    const r = spawnSync(helper, [dir, tmp], { input: compileDeviceFilter(rules).program, encoding: 'buffer' });
    assert.equal(r.status, 0, r.stderr.toString());
    return r.stdout.toString().trim();
  }

  it('an allow-list lets only the listed accesses through', () => {
    const out = probe([
      { allow: false },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 5, access: 'r' },
    ]);
    assert.equal(out, 'null-r=0 null-w=0 zero-r=0 zero-w=1 mknod-null=0');
  });

  it('a deny-list blocks only the listed accesses', () => {
    const out = probe([{ allow: true }, { allow: false, type: 'c', major: 1, minor: 3, access: 'wm' }]);
    assert.equal(out, 'null-r=0 null-w=1 zero-r=0 zero-w=0 mknod-null=1');
  });
});

// ---- runc as the oracle for the v1 file mapping ---------------------------------------

describe('cgroups: the same files as runc writes (root)', {
  skip: skipUnless(root('creates cgroups'), peer('runc', 'runc'), peer('/bin/busybox', 'busybox-static')),
}, () => {
  const id = `berth-test-runc-${process.pid}`;
  let tmp = '';
  let runcCreated = false;
  const runcPath = `/${id}-runc`;
  const berthPath = `/${id}-berth`;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'berth-runc-cgroups-'));
  });
  after(async () => {
    if (runcCreated) spawnSync('runc', ['--root', join(tmp, 'state'), 'delete', '--force', id], { stdio: 'ignore' });
    await cgroupManagerFor(berthPath, id).destroy().catch(() => {});
    await cgroupManagerFor(runcPath, id).destroy().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  });

  it('memory, cpu, cpuset, pids and blkio values land in the same files with the same contents', async () => {
    const layout = hostLayout!;
    const bundle = join(tmp, 'bundle');
    mkdirSync(join(bundle, 'rootfs/bin'), { recursive: true });
    execFileSync('cp', ['/bin/busybox', join(bundle, 'rootfs/bin/busybox')]);
    execFileSync('ln', ['-s', 'busybox', join(bundle, 'rootfs/bin/sh')]);
    execFileSync('runc', ['spec'], { cwd: bundle });
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    const disk = firstBlockDevice();
    const resources: LinuxResources = {
      memory: { limit: 96 << 20, reservation: 48 << 20, swappiness: 20 },
      cpu: { shares: 700, quota: 30000, period: 60000, cpus: '0', mems: '0' },
      pids: { limit: 77 },
      ...(disk !== undefined && versionOf(layout, 'blkio') === 1 ? { blockIO: { ...(hostHasBlkioWeight(layout) ? { weight: 250 } : {}), throttleWriteIOPSDevice: [{ ...disk, rate: 123 }] } } : {}),
    };
    if (existsSync(join(layout.v1.memory ?? '/nonexistent', 'memory.memsw.limit_in_bytes'))) resources.memory!.swap = 128 << 20;
    config.process.terminal = false;
    config.process.args = ['sh'];
    config.linux.cgroupsPath = runcPath;
    config.linux.resources = { ...config.linux.resources, ...resources };
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
    // The container keeps create's stdio open until it exits: a file, not a pipe to wait on (30 s).
    const errFile = join(tmp, 'runc-create.err');
    const errFd = openSync(errFile, 'w');
    const created = spawnSync('runc', ['--root', join(tmp, 'state'), 'create', '--bundle', bundle, id], { stdio: ['ignore', 'ignore', errFd], timeout: 30000 });
    closeSync(errFd);
    assert.equal(created.status, 0, `runc create: ${readFileSync(errFile, 'utf8')}`);
    runcCreated = true;

    const m = cgroupManagerFor(berthPath, id);
    await m.create();
    await m.apply(resources);

    const files: [string, string][] = [
      ['memory', 'memory.limit_in_bytes'],
      ['memory', 'memory.soft_limit_in_bytes'],
      ['memory', 'memory.memsw.limit_in_bytes'],
      ['memory', 'memory.swappiness'],
      ['cpu', 'cpu.shares'],
      ['cpu', 'cpu.cfs_quota_us'],
      ['cpu', 'cpu.cfs_period_us'],
      ['cpuset', 'cpuset.cpus'],
      ['cpuset', 'cpuset.mems'],
      ['pids', 'pids.max'],
      ['blkio', 'blkio.throttle.write_iops_device'],
      ['blkio', 'blkio.weight'],
      ['blkio', 'blkio.bfq.weight'],
    ];
    let compared = 0;
    for (const [controller, file] of files) {
      const mount = layout.v1[controller];
      if (mount === undefined) continue;
      const theirs = join(mount, runcPath, file);
      const ours = join(mount, berthPath, file);
      if (!existsSync(theirs)) continue;
      assert.equal(readFileSync(ours, 'utf8'), readFileSync(theirs, 'utf8'), `${controller}/${file}`);
      compared++;
    }
    assert.ok(compared >= 8, `compared ${compared} files`);
  });
});
