/**
 * Device access control for cgroup v2: linux.resources.devices compiled into an eBPF
 * program of type BPF_PROG_TYPE_CGROUP_DEVICE (cgroup v2 has no devices.allow/deny files;
 * kernel Documentation/admin-guide/cgroup-v2.rst "Device controller").
 *
 * The rules are first reduced the way cgroup v1's devices controller applies them one
 * after another (an "a" rule resets to allow-all or deny-all and clears the exceptions;
 * other rules add or remove exceptions), so that a config means the same on v1 and v2:
 * - default deny: a request is allowed when an exception covers all of its access bits;
 * - default allow: a request is denied when an exception shares any access bit with it.
 *
 * The executor loads the program (bpf(BPF_PROG_LOAD), license "Apache-2.0") and attaches
 * it to the container's cgroup (BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI).
 */
import { BerthError } from '../../base/errors.js';
import type { LinuxDeviceCgroup } from '../spec/types.js';

// linux/bpf.h
export const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
export const BPF_CGROUP_DEVICE = 6;
export const BPF_F_ALLOW_MULTI = 2;
const BPF_DEVCG_ACC_MKNOD = 1;
const BPF_DEVCG_ACC_READ = 2;
const BPF_DEVCG_ACC_WRITE = 4;
const BPF_DEVCG_DEV_BLOCK = 1;
const BPF_DEVCG_DEV_CHAR = 2;

/** One exception: type 'a' (any), 'b' or 'c'; -1 for a wildcard number; access bits. */
export interface DeviceException {
  type: 'a' | 'b' | 'c';
  major: number;
  minor: number;
  access: number;
}

export interface DeviceRuleSet {
  defaultAllow: boolean;
  exceptions: DeviceException[];
}

function accessBits(access: string | undefined, field: string): number {
  let bits = 0;
  for (const ch of access ?? 'rwm') {
    if (ch === 'r') bits |= BPF_DEVCG_ACC_READ;
    else if (ch === 'w') bits |= BPF_DEVCG_ACC_WRITE;
    else if (ch === 'm') bits |= BPF_DEVCG_ACC_MKNOD;
    else throw new BerthError('RUNTIME_CONFIG_INVALID', `${field}.access: ${JSON.stringify(access)} may contain only r, w and m`);
  }
  return bits;
}

/** Applies the rules in order, as cgroup v1 would; the starting point is allow-all (a new v1 cgroup's). */
export function reduceDeviceRules(rules: LinuxDeviceCgroup[]): DeviceRuleSet {
  const set: DeviceRuleSet = { defaultAllow: true, exceptions: [] };
  for (const [i, r] of rules.entries()) {
    const field = `linux.resources.devices[${i}]`;
    const type = r.type ?? 'a';
    if (type !== 'a' && type !== 'b' && type !== 'c') {
      throw new BerthError('RUNTIME_CONFIG_INVALID', `${field}.type: ${JSON.stringify(type)} is not a, b or c`);
    }
    const major = r.major ?? -1;
    const minor = r.minor ?? -1;
    const access = accessBits(r.access, field);
    if (type === 'a' && major === -1 && minor === -1) {
      // "a" (all devices): a new default, exceptions cleared (devices.allow/deny "a").
      set.defaultAllow = r.allow;
      set.exceptions = [];
      continue;
    }
    const same = (e: DeviceException): boolean => e.type === type && e.major === major && e.minor === minor;
    if (r.allow !== set.defaultAllow) {
      const existing = set.exceptions.find(same);
      if (existing) existing.access |= access;
      else set.exceptions.push({ type, major, minor, access });
    } else {
      // A rule that agrees with the default takes those access bits out of its exception.
      for (const e of set.exceptions.filter(same)) e.access &= ~access;
      set.exceptions = set.exceptions.filter((e) => e.access !== 0);
    }
  }
  return set;
}

// eBPF instruction encoding (linux/bpf.h, linux/bpf_common.h)
const BPF_LDX_MEM_W = 0x61; // dst = *(u32 *)(src + off)
const BPF_ALU64_AND_K = 0x57;
const BPF_ALU64_RSH_K = 0x77;
const BPF_ALU64_MOV_K = 0xb7;
const BPF_ALU64_MOV_X = 0xbf;
const BPF_JMP_JNE_K = 0x55;
const BPF_JMP_JEQ_K = 0x15;
const BPF_EXIT = 0x95;

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const insn = (code: number, dst: number, src: number, off: number, imm: number): Insn => ({ code, dst, src, off, imm });

/** Compiles the device rules into a BPF_PROG_TYPE_CGROUP_DEVICE program (struct bpf_insn[], host byte order). */
export function compileDeviceFilter(rules: LinuxDeviceCgroup[]): { program: Buffer; rules: DeviceRuleSet } {
  const set = reduceDeviceRules(rules);
  // struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }
  const prog: Insn[] = [
    insn(BPF_LDX_MEM_W, 2, 1, 0, 0),
    insn(BPF_ALU64_AND_K, 2, 0, 0, 0xffff), // r2 = device type
    insn(BPF_LDX_MEM_W, 3, 1, 0, 0),
    insn(BPF_ALU64_RSH_K, 3, 0, 0, 16), // r3 = requested access
    insn(BPF_LDX_MEM_W, 4, 1, 4, 0), // r4 = major
    insn(BPF_LDX_MEM_W, 5, 1, 8, 0), // r5 = minor
  ];
  const outcome = set.defaultAllow ? 0 : 1; // an exception decides against the default
  for (const e of set.exceptions) {
    const block: Insn[] = [];
    // Each `skip` is patched to jump past the rest of this block.
    const skips: number[] = [];
    if (e.type !== 'a') {
      skips.push(block.length);
      block.push(insn(BPF_JMP_JNE_K, 2, 0, 0, e.type === 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
    }
    if (e.major !== -1) {
      skips.push(block.length);
      block.push(insn(BPF_JMP_JNE_K, 4, 0, 0, e.major));
    }
    if (e.minor !== -1) {
      skips.push(block.length);
      block.push(insn(BPF_JMP_JNE_K, 5, 0, 0, e.minor));
    }
    block.push(insn(BPF_ALU64_MOV_X, 1, 3, 0, 0)); // r1 = access
    if (set.defaultAllow) {
      // deny-list: the exception applies when it shares an access bit with the request
      block.push(insn(BPF_ALU64_AND_K, 1, 0, 0, e.access));
      skips.push(block.length);
      block.push(insn(BPF_JMP_JEQ_K, 1, 0, 0, 0));
    } else {
      // allow-list: the exception applies when it covers every requested bit
      block.push(insn(BPF_ALU64_AND_K, 1, 0, 0, ~e.access & 7));
      skips.push(block.length);
      block.push(insn(BPF_JMP_JNE_K, 1, 0, 0, 0));
    }
    block.push(insn(BPF_ALU64_MOV_K, 0, 0, 0, outcome));
    block.push(insn(BPF_EXIT, 0, 0, 0, 0));
    for (const at of skips) block[at]!.off = block.length - at - 1;
    prog.push(...block);
  }
  prog.push(insn(BPF_ALU64_MOV_K, 0, 0, 0, set.defaultAllow ? 1 : 0), insn(BPF_EXIT, 0, 0, 0, 0));

  const out = Buffer.alloc(prog.length * 8);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  prog.forEach((p, i) => {
    // struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; } (bitfields in host order)
    view.setUint8(i * 8, p.code);
    view.setUint8(i * 8 + 1, le ? (p.src << 4) | p.dst : (p.dst << 4) | p.src);
    view.setInt16(i * 8 + 2, p.off, le);
    view.setInt32(i * 8 + 4, p.imm | 0, le);
  });
  return { program: out, rules: set };
}
