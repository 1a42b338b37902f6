/**
 * Compiles linux.seccomp (config-linux.md "Seccomp") into a classic BPF program for
 * seccomp(SECCOMP_SET_MODE_FILTER), without libseccomp. The native executor loads the
 * bytes as they are, with `flags`.
 *
 * Program shape, per architecture the process can run on (the native one plus those of
 * `architectures` it can also execute, e.g. x86 and x32 on x86_64, as libseccomp does):
 *   load arch; if arch != A goto next arch section
 *   load nr;   (x86_64: nr >= 0x40000000 is x32: goto the x32 section or kill)
 *   per syscall: if nr == N → its rules, first matching rule wins; no match → default
 *   return defaultAction
 * An architecture in no section (not listed and not native) gets SECCOMP_RET_KILL_PROCESS,
 * as libseccomp's "bad arch" action does.
 *
 * Choices where the spec is silent:
 * - syscall names unknown for an architecture are skipped, as runc does (they are listed
 *   in `unknownSyscalls` so that the caller can log them);
 * - several entries naming one syscall are tried in the order of the config, the first
 *   whose argument conditions all hold decides (conditions within an entry are ANDed);
 * - on 32-bit ABIs (x86, x32, arm) only the low 32 bits of an argument are compared, as
 *   libseccomp does; on 64-bit ABIs both halves are.
 * The tests check these decisions against libseccomp's own programs.
 *
 * `arch` is Node's name for the machine the filter will run on (default: this one); the
 * instructions and seccomp_data offsets are in this host's byte order.
 */
import { BerthError } from '../../base/errors.js';
import { BPF_JEQ, BPF_JGE, BPF_JGT, Label, NATIVE_LITTLE_ENDIAN, Program } from './bpf.js';
import { syscallTableSources } from './syscalls.js';
import {
  AUDIT_ARCH,
  SECCOMP_ARCHES,
  SECCOMP_FILTER_FLAG,
  SECCOMP_OPERATORS,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_DATA_ARCH,
  SECCOMP_DATA_ARGS,
  SECCOMP_DATA_NR,
  actionValue,
} from './constants.js';
import type {
  LinuxSeccomp,
  LinuxSeccompArch,
  LinuxSeccompArg,
  LinuxSeccompOperator,
} from '../spec/types.js';

export * from './constants.js';

const X32_SYSCALL_BIT = 0x40000000;

export interface CompiledSeccomp {
  /** struct sock_filter[] in host byte order (8 bytes per instruction). */
  filter: Buffer;
  /** SECCOMP_FILTER_FLAG_* bitmask for seccomp(SECCOMP_SET_MODE_FILTER, flags, …). */
  flags: number;
  /** Where to send the notify fd (SCMP_ACT_NOTIFY), from linux.seccomp.listenerPath. */
  listenerPath?: string;
  /** Syscall names of the config that this filter's architectures do not have (skipped). */
  unknownSyscalls?: string[];
}

/** Node's process.arch → the seccomp architectures a process on that machine can use (native first). */
const RUNNABLE_ARCHES: Record<string, LinuxSeccompArch[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  ia32: ['SCMP_ARCH_X86'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  arm: ['SCMP_ARCH_ARM'],
  riscv64: ['SCMP_ARCH_RISCV64'],
  ppc64: [NATIVE_LITTLE_ENDIAN ? 'SCMP_ARCH_PPC64LE' : 'SCMP_ARCH_PPC64'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
  loong64: ['SCMP_ARCH_LOONGARCH64'],
  mips64el: ['SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_MIPSEL'],
};

let tableSources: Partial<Record<LinuxSeccompArch, string>> | undefined;

const THIRTY_TWO_BIT: ReadonlySet<LinuxSeccompArch> = new Set<LinuxSeccompArch>([
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
]);

const parsedTables = new Map<LinuxSeccompArch, Map<string, number>>();

/** The syscall table of one architecture, or undefined when berth has none for it. */
export function syscallTable(arch: LinuxSeccompArch): Map<string, number> | undefined {
  let table = parsedTables.get(arch);
  if (table === undefined) {
    tableSources ??= syscallTableSources() as Partial<Record<LinuxSeccompArch, string>>;
    const src = tableSources[arch];
    if (src === undefined) return undefined;
    const tokens = src.trim().split(/\s+/);
    table = new Map();
    for (let i = 0; i + 1 < tokens.length; i += 2) table.set(tokens[i]!, Number(tokens[i + 1]));
    parsedTables.set(arch, table);
  }
  return table;
}

/** The seccomp architectures a process on a machine of Node's `arch` can use. */
export function runnableArches(arch: string = process.arch): LinuxSeccompArch[] {
  const list = RUNNABLE_ARCHES[arch];
  if (list === undefined) {
    throw new BerthError('UNSUPPORTED', `seccomp: berth cannot build filters for the ${arch} architecture`);
  }
  return list;
}

function invalid(field: string, message: string): BerthError {
  return new BerthError('RUNTIME_CONFIG_INVALID', `${field}: ${message}`);
}

interface Rule {
  conditions: Condition[];
  ret: number;
}

interface Condition {
  index: number;
  op: LinuxSeccompOperator;
  value: bigint;
  valueTwo: bigint;
}

const U64_MAX = (1n << 64n) - 1n;

function toU64(v: number | bigint | undefined, field: string): bigint {
  if (v === undefined) return 0n;
  if (typeof v === 'number' && (!Number.isInteger(v) || !Number.isFinite(v))) {
    throw invalid(field, `${v} is not an integer`);
  }
  const b = BigInt(v);
  if (b < 0n || b > U64_MAX) throw invalid(field, `${v} is not a uint64`);
  return b;
}

function condition(arg: LinuxSeccompArg, field: string): Condition {
  if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index > 5) {
    throw invalid(`${field}.index`, `syscall argument index ${arg.index} is out of range (0-5)`);
  }
  if (!SECCOMP_OPERATORS.includes(arg.op)) {
    throw invalid(`${field}.op`, `unknown operator ${JSON.stringify(arg.op)}; expected one of ${SECCOMP_OPERATORS.join(', ')}`);
  }
  // SCMP_CMP_MASKED_EQ compares (arg & value) with valueTwo, 0 when unset (as libseccomp).
  return {
    index: arg.index,
    op: arg.op,
    value: toU64(arg.value, `${field}.value`),
    valueTwo: toU64(arg.valueTwo, `${field}.valueTwo`),
  };
}

/** Compiles the config's seccomp section for a machine of Node's `arch` (default: this one). */
export function compileSeccomp(seccomp: LinuxSeccomp, arch: string = process.arch): CompiledSeccomp {
  const field = 'linux.seccomp';
  if (typeof seccomp !== 'object' || seccomp === null) throw invalid(field, 'must be an object');
  if (seccomp.defaultAction === 'SCMP_ACT_NOTIFY') {
    throw invalid(`${field}.defaultAction`, 'SCMP_ACT_NOTIFY cannot be the default action (every syscall, including the ones the agent needs, would wait for it)');
  }
  const defaultRet = actionValue(seccomp.defaultAction, seccomp.defaultErrnoRet, `${field}.defaultAction`);

  let flags = 0;
  for (const [i, f] of (seccomp.flags ?? []).entries()) {
    const bit = SECCOMP_FILTER_FLAG[f];
    if (bit === undefined || f === ('SECCOMP_FILTER_FLAG_NEW_LISTENER' as string) || f === ('SECCOMP_FILTER_FLAG_TSYNC_ESRCH' as string)) {
      throw invalid(`${field}.flags[${i}]`, `unknown flag ${JSON.stringify(f)}; expected one of SECCOMP_FILTER_FLAG_TSYNC, _LOG, _SPEC_ALLOW, _WAIT_KILLABLE_RECV`);
    }
    flags |= bit;
  }

  const native = runnableArches(arch);
  const listed = seccomp.architectures ?? [];
  for (const [i, a] of listed.entries()) {
    if (AUDIT_ARCH[a] === undefined) {
      throw invalid(`${field}.architectures[${i}]`, `unknown architecture ${JSON.stringify(a)}; expected one of ${SECCOMP_ARCHES.join(', ')}`);
    }
  }
  // libseccomp always includes the native architecture; listed ones this machine cannot
  // execute never reach the filter, so they need no section.
  const arches = native.filter((a, i) => i === 0 || listed.includes(a));

  // Validate every rule once, whatever the architecture.
  let usesNotify = false;
  const entries = (seccomp.syscalls ?? []).map((s, i) => {
    const f = `${field}.syscalls[${i}]`;
    if (!Array.isArray(s.names) || s.names.length === 0) {
      throw invalid(`${f}.names`, 'must contain at least one syscall name');
    }
    if (s.action === 'SCMP_ACT_NOTIFY') usesNotify = true;
    const rule: Rule = {
      ret: actionValue(s.action, s.errnoRet, `${f}.action`),
      conditions: (s.args ?? []).map((a, j) => condition(a, `${f}.args[${j}]`)),
    };
    return { names: s.names, rule };
  });
  if (usesNotify) {
    if (seccomp.listenerPath === undefined || seccomp.listenerPath === '') {
      throw invalid(`${field}.listenerPath`, 'SCMP_ACT_NOTIFY is used but no listenerPath names the socket of the seccomp agent');
    }
    flags |= SECCOMP_FILTER_FLAG.SECCOMP_FILTER_FLAG_NEW_LISTENER;
    // seccomp(2): TSYNC with NEW_LISTENER is EINVAL unless TSYNC_ESRCH says how to fail.
    if (flags & SECCOMP_FILTER_FLAG.SECCOMP_FILTER_FLAG_TSYNC) flags |= SECCOMP_FILTER_FLAG.SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
  }
  if (seccomp.listenerMetadata !== undefined && seccomp.listenerPath === undefined) {
    throw invalid(`${field}.listenerMetadata`, 'MUST NOT be set without listenerPath (config-linux.md)');
  }

  const unknown = new Set<string>();
  const prog = new Program();
  const kill = prog.label('badarch');
  const sections = arches.map((a) => ({ arch: a, label: prog.label(a) }));
  const x32 = sections.find((s) => s.arch === 'SCMP_ARCH_X32');

  // Dispatch on the architecture (x32 is dispatched from the x86_64 section on nr).
  prog.loadAbs(SECCOMP_DATA_ARCH);
  const dispatched = sections.filter((s) => s.arch !== 'SCMP_ARCH_X32');
  for (const s of dispatched) {
    const next = prog.label(`not-${s.arch}`);
    prog.jmp(BPF_JEQ, AUDIT_ARCH[s.arch], s.label, next);
    prog.bind(next);
  }
  if (!dispatched.some((s) => s.arch === 'SCMP_ARCH_X86_64') && x32 !== undefined) {
    prog.jmp(BPF_JEQ, AUDIT_ARCH.SCMP_ARCH_X86_64, x32.label, kill);
  } else {
    prog.jump(kill);
  }

  for (const s of sections) {
    const table = syscallTable(s.arch);
    if (table === undefined) {
      throw new BerthError(
        'UNSUPPORTED',
        `${field}: berth has no syscall table for ${s.arch}, which processes on this ${arch} machine can use; remove it from architectures or run on a machine berth has tables for (x86_64, aarch64, arm, riscv64, ppc64le, s390x, mips64el)`,
      );
    }
    prog.bind(s.label);
    prog.loadAbs(SECCOMP_DATA_NR);
    if (s.arch === 'SCMP_ARCH_X86_64') {
      const native64 = prog.label('x86_64-nr');
      prog.jmp(BPF_JGE, X32_SYSCALL_BIT, x32?.label ?? kill, native64);
      prog.bind(native64);
    } else if (s.arch === 'SCMP_ARCH_X32') {
      // Reached from x86_64's section (nr has the x32 bit) or straight from the arch check.
      const isX32 = prog.label('x32-nr');
      prog.jmp(BPF_JGE, X32_SYSCALL_BIT, isX32, kill);
      prog.bind(isX32);
    }
    emitSection(prog, s.arch, table, entries, defaultRet, unknown);
  }
  prog.bind(kill);
  prog.ret(SECCOMP_RET_KILL_PROCESS);

  const result: CompiledSeccomp = { filter: prog.assemble(), flags };
  if (usesNotify && seccomp.listenerPath !== undefined) result.listenerPath = seccomp.listenerPath;
  if (unknown.size > 0) result.unknownSyscalls = [...unknown].sort();
  return result;
}

/** One architecture: compare nr against each syscall that has rules, then the default. */
function emitSection(
  prog: Program,
  arch: LinuxSeccompArch,
  table: Map<string, number>,
  entries: { names: string[]; rule: Rule }[],
  defaultRet: number,
  unknown: Set<string>,
): void {
  // Rules per syscall number, in config order.
  const bySyscall = new Map<number, Rule[]>();
  for (const e of entries) {
    for (const name of e.names) {
      const nr = table.get(name);
      if (nr === undefined) {
        unknown.add(`${name} (${arch})`);
        continue;
      }
      const rules = bySyscall.get(nr) ?? [];
      rules.push(e.rule);
      bySyscall.set(nr, rules);
    }
  }
  // Unconditional single-rule syscalls share one `ret` per action, emitted in "islands"
  // (jumped over) at most ~200 instructions after their users, so that jumps stay short.
  const sharedRet = new Map<number, Label>();
  let islandStart = prog.size;
  const flushIsland = (): void => {
    if (sharedRet.size === 0) return;
    const after = prog.label(`${arch}-island-end`);
    prog.jump(after);
    for (const [ret, l] of sharedRet) {
      prog.bind(l);
      prog.ret(ret);
    }
    sharedRet.clear();
    prog.bind(after);
  };
  const retLabel = (ret: number): Label => {
    let l = sharedRet.get(ret);
    if (l === undefined) {
      l = prog.label(`${arch}-ret-${ret.toString(16)}`);
      sharedRet.set(ret, l);
    }
    return l;
  };
  const bits32 = THIRTY_TWO_BIT.has(arch);

  for (const [nr, rules] of bySyscall) {
    if (prog.size - islandStart > 200) {
      flushIsland();
      islandStart = prog.size;
    }
    const next = prog.label(`${arch}-after-${nr}`);
    const first = rules[0]!;
    if (first.conditions.length === 0) {
      // The first rule always matches: later ones for this syscall can never apply.
      prog.jmp(BPF_JEQ, nr, retLabel(first.ret), next);
      prog.bind(next);
      continue;
    }
    const body = prog.label(`${arch}-nr-${nr}`);
    prog.jmp(BPF_JEQ, nr, body, next);
    prog.bind(body);
    for (const rule of rules) {
      const nextRule = prog.label(`${arch}-nr-${nr}-next`);
      for (const c of rule.conditions) {
        const pass = prog.label('pass');
        emitCondition(prog, c, bits32, pass, nextRule);
        prog.bind(pass);
      }
      prog.ret(rule.ret);
      prog.bind(nextRule);
      if (rule.conditions.length === 0) break; // unconditional: nothing after it is reachable
    }
    // No rule matched: the default action. (nr is no longer in A: jump, don't fall through.)
    prog.jump(retLabel(defaultRet));
    prog.bind(next);
  }
  // No syscall matched: the default action; the last island needs no jump over it.
  prog.ret(defaultRet);
  for (const [ret, l] of sharedRet) {
    prog.bind(l);
    prog.ret(ret);
  }
}

/** Byte offsets of the low and high 32-bit words of args[index] in struct seccomp_data. */
function argWords(index: number): { lo: number; hi: number } {
  const base = SECCOMP_DATA_ARGS + 8 * index;
  return NATIVE_LITTLE_ENDIAN ? { lo: base, hi: base + 4 } : { lo: base + 4, hi: base };
}

/** Emits `if (args[i] op value) goto pass else goto fail` on the 64-bit (or 32-bit) value. */
function emitCondition(prog: Program, c: Condition, bits32: boolean, pass: Label, fail: Label): void {
  const { lo, hi } = argWords(c.index);
  const vlo = Number(c.value & 0xffffffffn);
  const vhi = Number(c.value >> 32n);
  const twoLo = Number(c.valueTwo & 0xffffffffn);
  const twoHi = Number(c.valueTwo >> 32n);
  const loWord = prog.label('lo');

  // High word first: it decides unless equal. Skipped on 32-bit ABIs.
  const high = (onGreater: Label, onLess: Label): void => {
    if (bits32) return;
    const notGreater = prog.label('hi-le');
    prog.loadAbs(hi);
    prog.jmp(BPF_JGT, vhi, onGreater, notGreater);
    prog.bind(notGreater);
    prog.jmp(BPF_JEQ, vhi, loWord, onLess);
  };

  switch (c.op) {
    case 'SCMP_CMP_EQ':
    case 'SCMP_CMP_NE': {
      const [t, f] = c.op === 'SCMP_CMP_EQ' ? [pass, fail] : [fail, pass];
      if (!bits32) {
        prog.loadAbs(hi);
        prog.jmp(BPF_JEQ, vhi, loWord, f);
      }
      prog.bind(loWord);
      prog.loadAbs(lo);
      prog.jmp(BPF_JEQ, vlo, t, f);
      return;
    }
    case 'SCMP_CMP_GT':
      high(pass, fail);
      prog.bind(loWord);
      prog.loadAbs(lo);
      prog.jmp(BPF_JGT, vlo, pass, fail);
      return;
    case 'SCMP_CMP_GE':
      high(pass, fail);
      prog.bind(loWord);
      prog.loadAbs(lo);
      prog.jmp(BPF_JGE, vlo, pass, fail);
      return;
    case 'SCMP_CMP_LT': // !(A >= V)
      high(fail, pass);
      prog.bind(loWord);
      prog.loadAbs(lo);
      prog.jmp(BPF_JGE, vlo, fail, pass);
      return;
    case 'SCMP_CMP_LE': // !(A > V)
      high(fail, pass);
      prog.bind(loWord);
      prog.loadAbs(lo);
      prog.jmp(BPF_JGT, vlo, fail, pass);
      return;
    case 'SCMP_CMP_MASKED_EQ':
      // (A & value) == valueTwo, per word.
      if (!bits32) {
        prog.loadAbs(hi);
        prog.and(vhi);
        prog.jmp(BPF_JEQ, twoHi, loWord, fail);
      }
      prog.bind(loWord);
      prog.loadAbs(lo);
      prog.and(vlo);
      prog.jmp(BPF_JEQ, twoLo, pass, fail);
      return;
  }
}
