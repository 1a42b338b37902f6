/**
 * The names and numbers of seccomp (linux/seccomp.h, linux/audit.h, config-linux.md
 * "Seccomp"): return actions, filter flags, audit architectures, operators. Kept apart
 * from the compiler so that config validation does not load the syscall tables.
 */
import { BerthError } from '../../base/errors.js';
import type { LinuxSeccompAction, LinuxSeccompArch, LinuxSeccompFlag, LinuxSeccompOperator } from '../spec/types.js';

function invalid(field: string, message: string): BerthError {
  return new BerthError('RUNTIME_CONFIG_INVALID', `${field}: ${message}`);
}

// linux/seccomp.h return values
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
export const SECCOMP_RET_TRACE = 0x7ff00000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

// linux/seccomp.h filter flags
export const SECCOMP_FILTER_FLAG: Record<LinuxSeccompFlag | 'SECCOMP_FILTER_FLAG_NEW_LISTENER' | 'SECCOMP_FILTER_FLAG_TSYNC_ESRCH', number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_NEW_LISTENER: 8,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH: 16,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
};

/** struct seccomp_data offsets. */
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;
export const SECCOMP_DATA_ARGS = 16;

const EPERM = 1;

// linux/audit.h: EM_* | __AUDIT_ARCH_64BIT (0x80000000) | __AUDIT_ARCH_LE (0x40000000)
export const AUDIT_ARCH: Record<LinuxSeccompArch, number> = {
  SCMP_ARCH_X86: 0x40000003,
  SCMP_ARCH_X86_64: 0xc000003e,
  SCMP_ARCH_X32: 0xc000003e, // x32 shares x86_64's audit arch; nr carries X32_SYSCALL_BIT
  SCMP_ARCH_ARM: 0x40000028,
  SCMP_ARCH_AARCH64: 0xc00000b7,
  SCMP_ARCH_LOONGARCH64: 0xc0000102,
  SCMP_ARCH_M68K: 0x00000004,
  SCMP_ARCH_MIPS: 0x00000008,
  SCMP_ARCH_MIPS64: 0x80000008,
  SCMP_ARCH_MIPS64N32: 0xa0000008,
  SCMP_ARCH_MIPSEL: 0x40000008,
  SCMP_ARCH_MIPSEL64: 0xc0000008,
  SCMP_ARCH_MIPSEL64N32: 0xe0000008,
  SCMP_ARCH_PPC: 0x00000014,
  SCMP_ARCH_PPC64: 0x80000015,
  SCMP_ARCH_PPC64LE: 0xc0000015,
  SCMP_ARCH_S390: 0x00000016,
  SCMP_ARCH_S390X: 0x80000016,
  SCMP_ARCH_SH: 0x4000002a,
  SCMP_ARCH_SHEB: 0x0000002a,
  SCMP_ARCH_PARISC: 0x0000000f,
  SCMP_ARCH_PARISC64: 0x8000000f,
  SCMP_ARCH_RISCV64: 0xc00000f3,
};

export const SECCOMP_ACTIONS: readonly LinuxSeccompAction[] = [
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
];

export const SECCOMP_OPERATORS: readonly LinuxSeccompOperator[] = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
];

export const SECCOMP_ARCHES: readonly LinuxSeccompArch[] = Object.keys(AUDIT_ARCH) as LinuxSeccompArch[];

/** The SECCOMP_RET_* value of an action; errnoRet only for ERRNO and TRACE (config-linux.md). */
export function actionValue(action: LinuxSeccompAction, errnoRet: number | undefined, field: string): number {
  if (errnoRet !== undefined && action !== 'SCMP_ACT_ERRNO' && action !== 'SCMP_ACT_TRACE') {
    // config-linux.md: "When the action doesn't support an errno, the runtime MUST print and error and fail."
    throw invalid(field, `an errno return is set but ${action} does not return an errno; remove it or use SCMP_ACT_ERRNO`);
  }
  if (errnoRet !== undefined && (!Number.isInteger(errnoRet) || errnoRet < 0 || errnoRet > SECCOMP_RET_DATA)) {
    throw invalid(field, `errno ${errnoRet} is out of range (0-${SECCOMP_RET_DATA})`);
  }
  const data = (errnoRet ?? EPERM) & SECCOMP_RET_DATA;
  switch (action) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET_KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET_KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET_TRAP;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET_ERRNO | data) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET_TRACE | data) >>> 0;
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET_ALLOW;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET_LOG;
    case 'SCMP_ACT_NOTIFY':
      return SECCOMP_RET_USER_NOTIF;
    default:
      throw invalid(field, `unknown action ${JSON.stringify(action)}; expected one of ${SECCOMP_ACTIONS.join(', ')}`);
  }
}
