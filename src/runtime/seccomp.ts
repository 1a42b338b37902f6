import { BerthError } from '../errors.js';
import type { LinuxSeccomp } from './spec-types.js';

export interface CompiledSeccomp {
  /** struct sock_filter[] in host byte order (8 bytes per instruction). */
  filter: Buffer;
  /** SECCOMP_FILTER_FLAG_* bitmask for seccomp(SECCOMP_SET_MODE_FILTER, flags, …). */
  flags: number;
  /** Where to send the notify fd (SCMP_ACT_NOTIFY), from linux.seccomp.listenerPath. */
  listenerPath?: string;
}

export function compileSeccomp(seccomp: LinuxSeccomp, arch: string = process.arch): CompiledSeccomp {
  void seccomp;
  throw new BerthError('UNSUPPORTED', `seccomp compiler not finished yet (arch ${arch})`);
}
