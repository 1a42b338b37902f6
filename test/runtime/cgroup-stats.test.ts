// cgroups/stats.ts on cgroup files written by hand: the cgroup v2 reading (this project's CI
// host is hybrid, where the v1 controllers answer), uint64 values printed exactly, and Go's
// omitempty for zero values. The v1 reading is compared with the kernel's in events.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { containerStats, oomCount, statsJson } from '../../src/runtime/cgroups/stats.js';

describe('container stats from cgroup files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-stats-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a cgroup v2 directory into runc\'s Stats', () => {
    const files: Record<string, string> = {
      'cpu.stat': 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n',
      'cpuset.cpus.effective': '0-2,5\n',
      'cpuset.mems.effective': '0\n',
      'memory.current': '4096\n',
      'memory.max': 'max\n',
      'memory.peak': '8192\n',
      'memory.events': 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n',
      'memory.swap.current': '0\n',
      'memory.swap.max': 'max\n',
      'memory.stat': 'file 100\nanon 200\n',
      'pids.current': '2\n',
      'pids.max': 'max\n',
      'io.stat': '8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
      'hugetlb.2MB.current': '0\n',
      'hugetlb.2MB.events': 'max 0\n',
    };
    for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, f), v);
    const s = containerStats({ unified: dir }) as Record<string, any>;
    assert.deepEqual(s.cpu, { usage: { total: 1_500_000n, kernel: 500_000n, user: 1_000_000n }, throttling: { periods: 4n, throttledPeriods: 1n, throttledTime: 20_000n } });
    assert.deepEqual(s.cpuset, { cpus: [0, 1, 2, 5], mems: [0] });
    assert.equal(s.memory.cache, 100n);
    assert.deepEqual(s.memory.usage, { limit: 0xffffffffffffffffn, usage: 4096n, max: 8192n, failcnt: 3n });
    assert.deepEqual(s.memory.raw, { anon: 200n, file: 100n }, 'sorted, as Go prints a map');
    assert.deepEqual(s.pids, { current: 2n }, 'no limit: left out');
    assert.deepEqual(s.blkio, {
      ioServiceBytesRecursive: [{ major: 8n, op: 'Read', value: 4096n }, { major: 8n, op: 'Write' }],
      ioServicedRecursive: [{ major: 8n, op: 'Read', value: 1n }, { major: 8n, op: 'Write' }],
    });
    assert.deepEqual(s.hugetlb, { '2MB': { failcnt: 0n } });
    assert.equal(oomCount({ unified: dir }), 2n);
    const json = statsJson({ type: 'stats', id: 'x', data: s });
    assert.match(json, /"usage":\{"limit":18446744073709551615,"usage":4096,/, 'uint64 printed exactly');
    assert.match(json, /"network_interfaces":null/);
  });

  it('a container without cgroups (--rootless) has empty stats, not an error', () => {
    const s = containerStats({}) as Record<string, any>;
    assert.deepEqual(s.pids, {});
    assert.deepEqual(s.cpu.usage, { kernel: 0n, user: 0n });
  });
});
