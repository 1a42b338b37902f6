import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBerthError } from '../../src/base/errors.js';
import {
  AUDIT_ARCH,
  actionValue,
  SECCOMP_FILTER_FLAG,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRACE,
  SECCOMP_RET_TRAP,
  SECCOMP_RET_USER_NOTIF,
  compileSeccomp,
  syscallTable,
} from '../../src/runtime/seccomp/compile.js';
import { BPF_MAXINSNS, NATIVE_LITTLE_ENDIAN, decodeFilter, type SockFilter } from '../../src/runtime/seccomp/bpf.js';
import type { LinuxSeccomp, LinuxSeccompArch } from '../../src/runtime/spec/types.js';
import { capturePodmanConfig, type PodmanCapture } from './fixtures/podman-capture.js';
import { arch, peer, root, skipOrFail, skipUnless, type Need } from '../helpers/requirements.js';

// ---- a classic BPF interpreter, enough for seccomp filters -----------------------------

interface SeccompData {
  nr: number;
  arch: number;
  args?: bigint[];
}

function seccompDataBuffer(d: SeccompData): Buffer {
  const buf = Buffer.alloc(64);
  const w32 = (v: number, o: number): void => {
    if (NATIVE_LITTLE_ENDIAN) buf.writeUInt32LE(v >>> 0, o);
    else buf.writeUInt32BE(v >>> 0, o);
  };
  w32(d.nr, 0);
  w32(d.arch, 4);
  (d.args ?? []).forEach((a, i) => {
    if (NATIVE_LITTLE_ENDIAN) buf.writeBigUInt64LE(a, 16 + 8 * i);
    else buf.writeBigUInt64BE(a, 16 + 8 * i);
  });
  return buf;
}

const decoded = new WeakMap<Buffer, SockFilter[]>();

/** Runs the filter like the kernel does; returns the SECCOMP_RET_* value and the steps taken. */
function run(filter: Buffer, d: SeccompData): { ret: number; steps: number } {
  let prog = decoded.get(filter);
  if (prog === undefined) {
    prog = decodeFilter(filter);
    decoded.set(filter, prog);
  }
  const data = seccompDataBuffer(d);
  let a = 0;
  let pc = 0;
  let steps = 0;
  for (;;) {
    if (pc >= prog.length) assert.fail(`pc ${pc} ran off the end of the program`);
    const ins: SockFilter = prog[pc]!;
    steps++;
    const cls = ins.code & 0x07;
    if (cls === 0x00) {
      if (ins.code !== 0x20) assert.fail('only ld|w|abs loads');
      if (ins.k % 4 !== 0 || ins.k >= 64) assert.fail(`load offset ${ins.k} outside seccomp_data`);
      a = NATIVE_LITTLE_ENDIAN ? data.readUInt32LE(ins.k) : data.readUInt32BE(ins.k);
      pc++;
    } else if (cls === 0x04) {
      if (ins.code !== 0x54) assert.fail('only alu|and|k');
      a = (a & ins.k) >>> 0;
      pc++;
    } else if (cls === 0x06) {
      if (ins.code !== 0x06) assert.fail('only ret|k');
      return { ret: ins.k >>> 0, steps };
    } else if (cls === 0x05) {
      const op = ins.code & 0xf0;
      if (op === 0x00) {
        pc += 1 + ins.k;
        continue;
      }
      const cond = op === 0x10 ? a === ins.k : op === 0x20 ? a > ins.k : op === 0x30 ? a >= ins.k : assert.fail(`jump op ${op}`);
      pc += 1 + (cond ? ins.jt : ins.jf);
    } else {
      assert.fail(`instruction class ${cls}`);
    }
  }
}

const X86_64 = AUDIT_ARCH.SCMP_ARCH_X86_64;
const X86 = AUDIT_ARCH.SCMP_ARCH_X86;
const AARCH64 = AUDIT_ARCH.SCMP_ARCH_AARCH64;
const nr = (arch: LinuxSeccompArch, name: string): number => {
  const n = syscallTable(arch)?.get(name);
  assert.ok(n !== undefined, `${name} on ${arch}`);
  return n;
};
const errno = (e: number): number => (SECCOMP_RET_ERRNO | e) >>> 0;
const EPERM = 1;

function expectInvalid(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => isBerthError(e, 'RUNTIME_CONFIG_INVALID') && re.test(e.message));
}

describe('seccomp syscall tables', () => {
  it('match well-known numbers', () => {
    assert.equal(nr('SCMP_ARCH_X86_64', 'read'), 0);
    assert.equal(nr('SCMP_ARCH_X86_64', 'mkdir'), 83);
    assert.equal(nr('SCMP_ARCH_X86_64', 'clone3'), 435);
    assert.equal(nr('SCMP_ARCH_X86', 'mkdir'), 39);
    assert.equal(nr('SCMP_ARCH_X32', 'read'), 0x40000000);
    assert.equal(nr('SCMP_ARCH_AARCH64', 'openat'), 56);
    assert.equal(nr('SCMP_ARCH_AARCH64', 'mkdirat'), 34);
    assert.equal(syscallTable('SCMP_ARCH_AARCH64')!.get('mkdir'), undefined);
    assert.equal(nr('SCMP_ARCH_AARCH64', 'fchmodat2'), 452);
    assert.equal(nr('SCMP_ARCH_RISCV64', 'riscv_flush_icache'), 259);
  });
});

describe('compileSeccomp: actions', () => {
  const cases: [LinuxSeccomp['defaultAction'], number | undefined, number][] = [
    ['SCMP_ACT_KILL', undefined, SECCOMP_RET_KILL_THREAD],
    ['SCMP_ACT_KILL_THREAD', undefined, SECCOMP_RET_KILL_THREAD],
    ['SCMP_ACT_KILL_PROCESS', undefined, SECCOMP_RET_KILL_PROCESS],
    ['SCMP_ACT_TRAP', undefined, SECCOMP_RET_TRAP],
    ['SCMP_ACT_ERRNO', undefined, errno(EPERM)],
    ['SCMP_ACT_ERRNO', 38, errno(38)],
    ['SCMP_ACT_TRACE', undefined, (SECCOMP_RET_TRACE | EPERM) >>> 0],
    ['SCMP_ACT_TRACE', 7, (SECCOMP_RET_TRACE | 7) >>> 0],
    ['SCMP_ACT_ALLOW', undefined, SECCOMP_RET_ALLOW],
    ['SCMP_ACT_LOG', undefined, SECCOMP_RET_LOG],
  ];
  for (const [action, errnoRet, expected] of cases) {
    it(`${action}${errnoRet === undefined ? '' : ` errnoRet ${errnoRet}`} as rule and as default`, () => {
      const { filter } = compileSeccomp(
        {
          defaultAction: action === 'SCMP_ACT_ALLOW' ? 'SCMP_ACT_LOG' : 'SCMP_ACT_ALLOW',
          syscalls: [{ names: ['getcwd'], action, ...(errnoRet === undefined ? {} : { errnoRet }) }],
        },
        'x64',
      );
      assert.equal(run(filter, { arch: X86_64, nr: nr('SCMP_ARCH_X86_64', 'getcwd') }).ret, expected);
      const other = run(filter, { arch: X86_64, nr: nr('SCMP_ARCH_X86_64', 'read') }).ret;
      assert.equal(other, action === 'SCMP_ACT_ALLOW' ? SECCOMP_RET_LOG : SECCOMP_RET_ALLOW);

      const asDefault = compileSeccomp(
        { defaultAction: action, ...(errnoRet === undefined ? {} : { defaultErrnoRet: errnoRet }) },
        'x64',
      );
      assert.equal(run(asDefault.filter, { arch: X86_64, nr: 12 }).ret, expected);
    });
  }

  it('SCMP_ACT_NOTIFY returns USER_NOTIF, sets NEW_LISTENER and passes listenerPath on', () => {
    const c = compileSeccomp(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        listenerPath: '/run/agent.sock',
        syscalls: [{ names: ['mount'], action: 'SCMP_ACT_NOTIFY' }],
      },
      'x64',
    );
    assert.equal(run(c.filter, { arch: X86_64, nr: nr('SCMP_ARCH_X86_64', 'mount') }).ret, SECCOMP_RET_USER_NOTIF);
    assert.equal(c.flags & SECCOMP_FILTER_FLAG.SECCOMP_FILTER_FLAG_NEW_LISTENER, 8);
    assert.equal(c.listenerPath, '/run/agent.sock');
    const tsync = compileSeccomp(
      { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/a', flags: ['SECCOMP_FILTER_FLAG_TSYNC'], syscalls: [{ names: ['mount'], action: 'SCMP_ACT_NOTIFY' }] },
      'x64',
    );
    assert.equal(tsync.flags, 1 | 8 | 16, 'TSYNC with NEW_LISTENER needs TSYNC_ESRCH');
  });

  it('rejects NOTIFY without listenerPath, NOTIFY as default, errnoRet on an action without errno', () => {
    expectInvalid(
      () => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_NOTIFY' }] }, 'x64'),
      /listenerPath/,
    );
    expectInvalid(() => compileSeccomp({ defaultAction: 'SCMP_ACT_NOTIFY', listenerPath: '/x' }, 'x64'), /default action/);
    expectInvalid(
      () => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_KILL', errnoRet: 1 }] }, 'x64'),
      /syscalls\[0\].*does not return an errno/,
    );
    expectInvalid(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', defaultErrnoRet: 1 }, 'x64'), /defaultAction.*errno/);
    expectInvalid(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [], action: 'SCMP_ACT_KILL' }] }, 'x64'), /at least one/);
    expectInvalid(
      () => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_BOGUS' as 'SECCOMP_FILTER_FLAG_LOG'] }, 'x64'),
      /unknown flag/,
    );
    expectInvalid(
      () => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX' as 'SCMP_ARCH_X86'] }, 'x64'),
      /unknown architecture/,
    );
    expectInvalid(
      () =>
        compileSeccomp(
          { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_KILL', args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }] }] },
          'x64',
        ),
      /index 6/,
    );
  });

  it('turns flags into the seccomp(2) bitmask', () => {
    const c = compileSeccomp(
      { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] },
      'x64',
    );
    assert.equal(c.flags, 1 | 2 | 4 | 32);
  });
});

describe('compileSeccomp: architectures', () => {
  it('kills syscalls of an architecture that is neither native nor listed', () => {
    const { filter } = compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }, 'x64');
    assert.equal(run(filter, { arch: X86_64, nr: 0 }).ret, SECCOMP_RET_ALLOW);
    assert.equal(run(filter, { arch: X86, nr: 0 }).ret, SECCOMP_RET_KILL_PROCESS);
    assert.equal(run(filter, { arch: X86_64, nr: 0x40000000 }).ret, SECCOMP_RET_KILL_PROCESS, 'x32 not listed');
    assert.equal(run(filter, { arch: AARCH64, nr: 0 }).ret, SECCOMP_RET_KILL_PROCESS);
  });

  it('uses each listed architecture\'s own syscall numbers', () => {
    const { filter } = compileSeccomp(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64'],
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
      },
      'x64',
    );
    assert.equal(run(filter, { arch: X86_64, nr: 83 }).ret, errno(13));
    assert.equal(run(filter, { arch: X86_64, nr: 39 }).ret, SECCOMP_RET_ALLOW, 'getpid on x86_64');
    assert.equal(run(filter, { arch: X86, nr: 39 }).ret, errno(13), 'mkdir on i386');
    assert.equal(run(filter, { arch: X86, nr: 83 }).ret, SECCOMP_RET_ALLOW, 'symlink on i386');
    assert.equal(run(filter, { arch: X86_64, nr: nr('SCMP_ARCH_X32', 'mkdir') }).ret, errno(13), 'x32');
    assert.equal(run(filter, { arch: X86_64, nr: nr('SCMP_ARCH_X32', 'read') }).ret, SECCOMP_RET_ALLOW, 'x32');
    // aarch64 cannot run on x86_64: no section for it.
    assert.equal(run(filter, { arch: AARCH64, nr: 34 }).ret, SECCOMP_RET_KILL_PROCESS);

    const arm = compileSeccomp(
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] },
      'arm64',
    );
    assert.equal(run(arm.filter, { arch: AARCH64, nr: 34 }).ret, errno(EPERM));
    assert.equal(run(arm.filter, { arch: AARCH64, nr: 83 }).ret, SECCOMP_RET_ALLOW);
    assert.equal(run(arm.filter, { arch: X86_64, nr: 83 }).ret, SECCOMP_RET_KILL_PROCESS);
    assert.deepEqual(arm.unknownSyscalls, ['mkdir (SCMP_ARCH_AARCH64)']);
  });

  it('refuses an architecture the process can use but berth has no table for', () => {
    assert.throws(
      () => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }, 'loong64'),
      (e: unknown) => isBerthError(e, 'UNSUPPORTED') && /SCMP_ARCH_LOONGARCH64/.test(e.message),
    );
  });

  it('covers arm compat tasks on aarch64 with the arm table', () => {
    const { filter } = compileSeccomp(
      { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'], syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] },
      'arm64',
    );
    const ARM = AUDIT_ARCH.SCMP_ARCH_ARM;
    assert.equal(run(filter, { arch: ARM, nr: 39 }).ret, errno(EPERM), 'arm mkdir');
    assert.equal(run(filter, { arch: ARM, nr: nr('SCMP_ARCH_ARM', 'mkdirat') }).ret, errno(EPERM));
    assert.equal(run(filter, { arch: ARM, nr: 34 }).ret, SECCOMP_RET_ALLOW, 'arm 34 is nice, not mkdirat');
    assert.equal(run(filter, { arch: AARCH64, nr: 34 }).ret, errno(EPERM), 'aarch64 mkdirat');
  });

  it('skips unknown syscall names and reports them', () => {
    const c = compileSeccomp(
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['no_such_syscall', 'mkdir'], action: 'SCMP_ACT_ERRNO' }] },
      'x64',
    );
    assert.deepEqual(c.unknownSyscalls, ['no_such_syscall (SCMP_ARCH_X86_64)']);
    assert.equal(run(c.filter, { arch: X86_64, nr: 83 }).ret, errno(EPERM));
  });
});

describe('compileSeccomp: argument operators on 64-bit values', () => {
  const HI = 0x1_0000_0000n;
  const values = [0n, 1n, 5n, 6n, 0xffffffffn, HI, HI + 5n, 2n * HI, 0xffff_ffff_ffff_ffffn, 0x8000_0000_0000_0000n];
  const ops = {
    SCMP_CMP_EQ: (a: bigint, v: bigint) => a === v,
    SCMP_CMP_NE: (a: bigint, v: bigint) => a !== v,
    SCMP_CMP_LT: (a: bigint, v: bigint) => a < v,
    SCMP_CMP_LE: (a: bigint, v: bigint) => a <= v,
    SCMP_CMP_GT: (a: bigint, v: bigint) => a > v,
    SCMP_CMP_GE: (a: bigint, v: bigint) => a >= v,
  } as const;
  for (const [op, holds] of Object.entries(ops)) {
    it(`${op} compares high and low words`, () => {
      for (const v of values) {
        const { filter } = compileSeccomp(
          {
            defaultAction: 'SCMP_ACT_ALLOW',
            syscalls: [{ names: ['ioctl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 3, value: v, op: op as keyof typeof ops }] }],
          },
          'x64',
        );
        for (const a of values) {
          const args = [0n, 0n, 0n, a, 0n, 0n];
          const got = run(filter, { arch: X86_64, nr: 16, args }).ret;
          assert.equal(got, holds(a, v) ? errno(EPERM) : SECCOMP_RET_ALLOW, `${a} ${op} ${v}`);
        }
      }
    });
  }

  it('SCMP_CMP_MASKED_EQ: (arg & value) == valueTwo on both words', () => {
    const masks: [bigint, bigint][] = [
      [0xffn, 0x12n],
      [HI * 0xfn, HI * 3n],
      [0x7e020000n, 0n], // docker's clone namespace-flags rule
      [0xffff_ffff_ffff_ffffn, HI + 1n],
    ];
    for (const [mask, datum] of masks) {
      const { filter } = compileSeccomp(
        {
          defaultAction: 'SCMP_ACT_ERRNO',
          syscalls: [{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: mask, valueTwo: datum, op: 'SCMP_CMP_MASKED_EQ' }] }],
        },
        'x64',
      );
      for (const a of [...values, 0x12n, HI * 3n + 0x12n, HI + 1n, 0x10000000n, 0x11n]) {
        const got = run(filter, { arch: X86_64, nr: 56, args: [a] }).ret;
        assert.equal(got, (a & mask) === datum ? SECCOMP_RET_ALLOW : errno(EPERM), `${a} & ${mask} == ${datum}`);
      }
    }
  });

  it('compares only the low word on a 32-bit ABI', () => {
    const { filter } = compileSeccomp(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86'],
        syscalls: [{ names: ['ioctl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 5, op: 'SCMP_CMP_EQ' }] }],
      },
      'x64',
    );
    assert.equal(run(filter, { arch: X86, nr: 54, args: [0n, 5n] }).ret, errno(EPERM));
    assert.equal(run(filter, { arch: X86, nr: 54, args: [0n, HI + 5n] }).ret, errno(EPERM));
    assert.equal(run(filter, { arch: X86_64, nr: 16, args: [0n, HI + 5n] }).ret, SECCOMP_RET_ALLOW);
  });

  it('ANDs the conditions of one entry and ORs entries for one syscall, first match wins', () => {
    const { filter } = compileSeccomp(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          {
            names: ['socket'],
            action: 'SCMP_ACT_ERRNO',
            errnoRet: 97,
            args: [
              { index: 0, value: 16, op: 'SCMP_CMP_EQ' },
              { index: 2, value: 9, op: 'SCMP_CMP_EQ' },
            ],
          },
          { names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 22, args: [{ index: 0, value: 40, op: 'SCMP_CMP_GE' }] },
          { names: ['socket'], action: 'SCMP_ACT_LOG' },
          { names: ['socket'], action: 'SCMP_ACT_KILL' },
        ],
      },
      'x64',
    );
    const sock = (a0: bigint, a2: bigint): number => run(filter, { arch: X86_64, nr: 41, args: [a0, 0n, a2] }).ret;
    assert.equal(sock(16n, 9n), errno(97));
    assert.equal(sock(16n, 0n), SECCOMP_RET_LOG, 'only one of two ANDed conditions');
    assert.equal(sock(41n, 9n), errno(22));
    assert.equal(sock(2n, 0n), SECCOMP_RET_LOG);
    assert.equal(run(filter, { arch: X86_64, nr: 0 }).ret, SECCOMP_RET_ALLOW);
  });

  it('falls back to the default action when no conditional rule matches', () => {
    const { filter } = compileSeccomp(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 38,
        syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] }],
      },
      'x64',
    );
    assert.equal(run(filter, { arch: X86_64, nr: 135, args: [0n] }).ret, SECCOMP_RET_ALLOW);
    assert.equal(run(filter, { arch: X86_64, nr: 135, args: [8n] }).ret, errno(38));
  });
});

describe('compileSeccomp: program size', () => {
  it('emits long jumps past 255 instructions and stays correct', () => {
    // Every x86_64 syscall allowed with argument conditions, default errno: a big program
    // whose early jumps must reach the shared returns at the end.
    const names = [...syscallTable('SCMP_ARCH_X86_64')!.keys()];
    const { filter } = compileSeccomp(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        syscalls: [
          { names, action: 'SCMP_ACT_ALLOW' },
          { names: ['kill'], action: 'SCMP_ACT_KILL' },
        ],
      },
      'x64',
    );
    const prog = decodeFilter(filter);
    assert.ok(prog.length > 600 && prog.length <= BPF_MAXINSNS, `length ${prog.length}`);
    assert.ok(prog.some((i) => i.code === 0x05 && i.k > 255), 'has a long ja');
    for (const [name, n] of syscallTable('SCMP_ARCH_X86_64')!) {
      assert.equal(run(filter, { arch: X86_64, nr: n }).ret, SECCOMP_RET_ALLOW, name);
    }
    for (const [name, n] of syscallTable('SCMP_ARCH_X86')!) {
      const inX86_64 = syscallTable('SCMP_ARCH_X86_64')!.has(name);
      assert.equal(run(filter, { arch: X86, nr: n }).ret, inX86_64 ? SECCOMP_RET_ALLOW : errno(EPERM), `i386 ${name}`);
    }
    assert.equal(run(filter, { arch: X86_64, nr: 1000 }).ret, errno(EPERM));
  });

  it('keeps long conditional blocks correct (jumps over more than 255 instructions)', () => {
    // 60 entries for ioctl, each with six 64-bit conditions: a block of ~1500 instructions
    // that the "not ioctl" branch must jump over.
    const entries = Array.from({ length: 60 }, (_, i) => ({
      names: ['ioctl'],
      action: 'SCMP_ACT_ERRNO' as const,
      errnoRet: i + 1,
      args: Array.from({ length: 6 }, (_, index) => ({ index, value: BigInt(i * 10 + index), op: 'SCMP_CMP_EQ' as const })),
    }));
    const { filter } = compileSeccomp({ defaultAction: 'SCMP_ACT_LOG', syscalls: [...entries, { names: ['read'], action: 'SCMP_ACT_KILL_PROCESS' }] }, 'x64');
    assert.ok(decodeFilter(filter).length > 1000);
    const argsFor = (i: number): bigint[] => Array.from({ length: 6 }, (_, index) => BigInt(i * 10 + index));
    for (const i of [0, 1, 30, 59]) {
      assert.equal(run(filter, { arch: X86_64, nr: 16, args: argsFor(i) }).ret, errno(i + 1), `entry ${i}`);
    }
    const almost = argsFor(59);
    almost[5] = 0n;
    assert.equal(run(filter, { arch: X86_64, nr: 16, args: almost }).ret, SECCOMP_RET_LOG, 'five of six conditions');
    assert.equal(run(filter, { arch: X86_64, nr: 0 }).ret, SECCOMP_RET_KILL_PROCESS, 'read, after the long block');
    assert.equal(run(filter, { arch: X86_64, nr: 1 }).ret, SECCOMP_RET_LOG);
  });

  it('refuses a program over the kernel\'s 4096-instruction limit', () => {
    const syscalls = [...syscallTable('SCMP_ARCH_X86_64')!.keys()].map((name) => ({
      names: [name],
      action: 'SCMP_ACT_ALLOW' as const,
      args: Array.from({ length: 6 }, (_, index) => ({ index, value: 1n << 40n, op: 'SCMP_CMP_LT' as const })),
    }));
    expectInvalid(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls }, 'x64'), /4096/);
  });
});

// ---- the kernel ------------------------------------------------------------------------

const here = dirname(fileURLToPath(import.meta.url));
const fixtureSource = resolve(here, '../../../test/runtime/fixtures/seccomp-load.c');

describe('compileSeccomp: loaded by the kernel', { skip: skipUnless(arch('x64', 'arm64')) }, () => {
  let dir = '';
  let loader = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-seccomp-'));
    loader = join(dir, 'seccomp-load');
    execFileSync('cc', ['-O', '-o', loader, fixtureSource], { stdio: 'inherit' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const mkdirName = process.arch === 'x64' ? 'mkdir' : 'mkdirat';
  const modeIndex = process.arch === 'x64' ? 1 : 2;

  function load(seccomp: LinuxSeccomp, target: string, mode: string): { status: number | null; signal: string | null; stdout: string; stderr: string } {
    const c = compileSeccomp(seccomp);
    const r = spawnSync(loader, [String(c.flags), target, mode], { input: c.filter, encoding: 'buffer' });
    return { status: r.status, signal: r.signal, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  }

  it('a denied syscall fails with the configured errno, others run', () => {
    const seccomp: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: [mkdirName], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args: [{ index: modeIndex, value: 0o700, op: 'SCMP_CMP_EQ' }] }],
    };
    const denied = load(seccomp, join(dir, 'a'), '700');
    assert.equal(denied.stdout, 'mkdir=13\n', denied.stderr);
    assert.equal(existsSync(join(dir, 'a')), false);
    const allowed = load(seccomp, join(dir, 'b'), '755');
    assert.equal(allowed.stdout, 'mkdir=0\n', allowed.stderr);
    assert.equal(existsSync(join(dir, 'b')), true);
  });

  it('default errno with an allow-list, and flags accepted by the kernel', () => {
    const names = [...syscallTable(process.arch === 'x64' ? 'SCMP_ARCH_X86_64' : 'SCMP_ARCH_AARCH64')!.keys()].filter((n) => n !== mkdirName);
    const r = load(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 38,
        flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'],
        architectures: process.arch === 'x64' ? ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] : ['SCMP_ARCH_AARCH64'],
        syscalls: [{ names, action: 'SCMP_ACT_ALLOW' }],
      },
      join(dir, 'c'),
      '700',
    );
    assert.equal(r.stdout, 'mkdir=38\n', r.stderr);
  });

  it('SCMP_ACT_KILL_PROCESS kills the process with SIGSYS', () => {
    const r = load({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [mkdirName], action: 'SCMP_ACT_KILL_PROCESS' }] }, join(dir, 'd'), '700');
    assert.equal(r.signal, 'SIGSYS');
    assert.equal(r.stdout, '');
  });
});

// ---- libseccomp as the oracle ----------------------------------------------------------

const libseccompSource = resolve(here, '../../../test/runtime/fixtures/libseccomp-export.c');
const haveLibseccomp = existsSync('/usr/include/seccomp.h');
const libseccomp: Need = peer('/usr/include/seccomp.h', 'libseccomp-dev');

const OP_NUMBER = { SCMP_CMP_NE: 1, SCMP_CMP_LT: 2, SCMP_CMP_LE: 3, SCMP_CMP_EQ: 4, SCMP_CMP_GE: 5, SCMP_CMP_GT: 6, SCMP_CMP_MASKED_EQ: 7 } as const;
const ARCH_WORD: Partial<Record<LinuxSeccompArch, string>> = {
  SCMP_ARCH_X86_64: 'x86_64', SCMP_ARCH_X86: 'x86', SCMP_ARCH_X32: 'x32', SCMP_ARCH_AARCH64: 'aarch64', SCMP_ARCH_ARM: 'arm',
  SCMP_ARCH_RISCV64: 'riscv64', SCMP_ARCH_PPC64LE: 'ppc64le', SCMP_ARCH_S390X: 's390x', SCMP_ARCH_S390: 's390',
  SCMP_ARCH_MIPSEL: 'mipsel', SCMP_ARCH_MIPSEL64: 'mipsel64', SCMP_ARCH_MIPSEL64N32: 'mipsel64n32',
};

/** The same config, described for the libseccomp helper. */
function describeForLibseccomp(sc: LinuxSeccomp): string {
  const lines = [`default ${actionValue(sc.defaultAction, sc.defaultErrnoRet, 'd').toString(16)}`];
  for (const a of sc.architectures ?? []) lines.push(`arch ${ARCH_WORD[a]}`);
  for (const rule of sc.syscalls ?? []) {
    const act = actionValue(rule.action, rule.errnoRet, 'r').toString(16);
    const args = rule.args ?? [];
    const conds = args.map((a) => `${a.index} ${OP_NUMBER[a.op]} ${BigInt(a.value)} ${BigInt(a.valueTwo ?? 0)}`).join(' ');
    for (const name of rule.names) lines.push(`rule ${act} ${name} ${args.length} ${conds}`.trim());
  }
  return `${lines.join('\n')}\n`;
}

describe('compileSeccomp: same decisions as libseccomp', { skip: skipUnless(libseccomp, arch('x64')) }, () => {
  let dir = '';
  let exporter = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-libseccomp-'));
    exporter = join(dir, 'libseccomp-export');
    execFileSync('cc', ['-O', '-o', exporter, libseccompSource, '-lseccomp'], { stdio: 'inherit' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('syscall tables agree with libseccomp\'s wherever libseccomp knows the name', () => {
    const lines: string[] = [];
    for (const arch of Object.keys(ARCH_WORD) as LinuxSeccompArch[]) {
      for (const name of syscallTable(arch)!.keys()) lines.push(`${ARCH_WORD[arch]} ${name}`);
    }
    const out = execFileSync(exporter, ['resolve'], { input: `${lines.join('\n')}\n`, encoding: 'utf8' });
    const byWord = Object.fromEntries(Object.entries(ARCH_WORD).map(([k, v]) => [v, k])) as Record<string, LinuxSeccompArch>;
    let checked = 0;
    const mismatches: string[] = [];
    for (const line of out.trim().split('\n')) {
      const [word, name, nr] = line.split(' ') as [string, string, string];
      if (nr === '-') continue; // newer than libseccomp 2.5's tables
      checked++;
      const ours = syscallTable(byWord[word]!)!.get(name);
      if (String(ours) !== nr) mismatches.push(`${word} ${name}: berth ${ours}, libseccomp ${nr}`);
    }
    assert.deepEqual(mismatches, []);
    assert.ok(checked > 4000, `checked ${checked} names`);
  });

  const HI = 1n << 32n;
  const x86Arches: LinuxSeccompArch[] = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
  const profiles: [string, LinuxSeccomp][] = [
    [
      'deny-list with every action and operator',
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: x86Arches,
        syscalls: [
          { names: ['mkdir', 'rmdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
          { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 0x5401, op: 'SCMP_CMP_EQ' }] },
          { names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 97, args: [{ index: 0, value: 16, op: 'SCMP_CMP_EQ' }, { index: 2, value: 9, op: 'SCMP_CMP_EQ' }] },
          { names: ['kill'], action: 'SCMP_ACT_KILL_PROCESS', args: [{ index: 1, value: 64, op: 'SCMP_CMP_GT' }] },
          { names: ['personality'], action: 'SCMP_ACT_TRAP', args: [{ index: 0, value: 0, op: 'SCMP_CMP_NE' }] },
          { names: ['mmap'], action: 'SCMP_ACT_LOG', args: [{ index: 2, value: 4, valueTwo: 4, op: 'SCMP_CMP_MASKED_EQ' }] },
          { names: ['prctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 22, args: [{ index: 0, value: 10, op: 'SCMP_CMP_LT' }] },
          { names: ['setsockopt'], action: 'SCMP_ACT_TRACE', errnoRet: 5, args: [{ index: 1, value: 1, op: 'SCMP_CMP_LE' }] },
          { names: ['mount'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 3, value: 2n * HI + 7n, op: 'SCMP_CMP_GE' }] },
          { names: ['umount2'], action: 'SCMP_ACT_KILL_THREAD', args: [{ index: 1, value: HI + 1n, op: 'SCMP_CMP_NE' }] },
        ],
      },
    ],
    [
      'allow-list with ORed conditional entries (docker-like)',
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 1,
        architectures: x86Arches,
        syscalls: [
          { names: ['read', 'write', 'openat', 'close', 'fstat', 'mmap', 'brk', 'exit_group', 'futex', 'getpid', 'mkdir'], action: 'SCMP_ACT_ALLOW' },
          { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
          { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
          { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_EQ' }] },
          { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
          { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
        ],
      },
    ],
    [
      'native architecture only, default kill',
      { defaultAction: 'SCMP_ACT_KILL_PROCESS', syscalls: [{ names: ['read', 'write', 'exit_group'], action: 'SCMP_ACT_ALLOW' }] },
    ],
  ];

  const argValues = [0n, 1n, 4n, 5n, 8n, 9n, 10n, 16n, 64n, 65n, 0x5401n, 0x7e020000n, 0xffffffffn, HI, HI + 1n, 2n * HI + 6n, 2n * HI + 7n, 3n * HI, 0xffff_ffff_ffff_ffffn];

  for (const [name, profile] of profiles) {
    it(name, () => {
      const ours = compileSeccomp(profile, 'x64').filter;
      const theirs = execFileSync(exporter, { input: describeForLibseccomp(profile) });
      assert.ok(theirs.length > 0 && theirs.length % 8 === 0, 'libseccomp exported a program');
      const names = new Set([...(profile.syscalls ?? []).flatMap((s) => s.names), 'getuid', 'uname']);
      let compared = 0;
      for (const [arch, auditArch] of [['SCMP_ARCH_X86_64', X86_64], ['SCMP_ARCH_X86', X86], ['SCMP_ARCH_X32', X86_64], ['SCMP_ARCH_AARCH64', AARCH64]] as const) {
        const table = syscallTable(arch)!;
        for (const sys of names) {
          const nr = table.get(sys);
          if (nr === undefined) continue;
          for (let k = 0; k < argValues.length; k++) {
            // Rotate the values through the six arguments so every index sees every value.
            const args = Array.from({ length: 6 }, (_, i) => argValues[(k + i * 3) % argValues.length]!);
            const d: SeccompData = { arch: auditArch, nr, args };
            assert.equal(
              run(ours, d).ret.toString(16),
              run(theirs, d).ret.toString(16),
              `${arch} ${sys}(${args.join(', ')})`,
            );
            compared++;
          }
        }
      }
      assert.ok(compared > 100, `compared ${compared} calls`);
    });
  }
});

// ---- podman's default profile ----------------------------------------------------------

describe('compileSeccomp: podman\'s default profile', { skip: skipUnless(libseccomp, arch('x64'), root('containers'), peer('podman', 'podman')) }, () => {
  let capture: PodmanCapture | undefined;
  let unavailable = 'podman unavailable';
  let dir = '';
  before(() => {
    const c = capturePodmanConfig();
    if ('skip' in c) unavailable = c.skip;
    else capture = c;
    dir = mkdtempSync(join(tmpdir(), 'berth-podman-seccomp-'));
    execFileSync('cc', ['-O', '-o', join(dir, 'libseccomp-export'), libseccompSource, '-lseccomp'], { stdio: 'inherit' });
    execFileSync('cc', ['-O', '-o', join(dir, 'seccomp-load'), fixtureSource], { stdio: 'inherit' });
  });
  after(() => {
    capture?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('decides every syscall of x86_64, x86 and x32 as libseccomp does', (t) => {
    if (capture === undefined) return skipOrFail(t, unavailable);
    const profile = capture.config.linux.seccomp as LinuxSeccomp;
    assert.ok((profile.syscalls ?? []).length > 5, 'podman wrote a seccomp profile');
    const ours = compileSeccomp(profile, 'x64').filter;
    const theirs = execFileSync(join(dir, 'libseccomp-export'), { input: describeForLibseccomp(profile) });
    const vectors = [[0n, 0n, 0n, 0n, 0n, 0n], [40n, 1n, 0n, 0n, 0n, 0n], [0x10000000n, 0n, 0n, 0n, 0n, 0n], [0xffffffffn, 8n, 2n, 0n, 0n, 0n], [1n << 40n, 0x7e020000n, 0n, 0n, 0n, 0n]];
    let compared = 0;
    for (const [arch, auditArch] of [['SCMP_ARCH_X86_64', X86_64], ['SCMP_ARCH_X86', X86], ['SCMP_ARCH_X32', X86_64]] as const) {
      for (const [name, n] of syscallTable(arch)!) {
        for (const args of vectors) {
          const d: SeccompData = { arch: auditArch, nr: n, args };
          assert.equal(run(ours, d).ret.toString(16), run(theirs, d).ret.toString(16), `${arch} ${name}(${args.join(', ')})`);
          compared++;
        }
      }
    }
    assert.ok(compared > 5000, `compared ${compared}`);
  });

  it('is accepted by the kernel and allows what it should', (t) => {
    if (capture === undefined) return skipOrFail(t, unavailable);
    const c = compileSeccomp(capture.config.linux.seccomp as LinuxSeccomp);
    const r = spawnSync(join(dir, 'seccomp-load'), [String(c.flags), join(dir, 'made-by-mkdir'), '755'], { input: c.filter });
    assert.equal(r.stdout.toString(), 'mkdir=0\n', r.stderr.toString());
  });
});
