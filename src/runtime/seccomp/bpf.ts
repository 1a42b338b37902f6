/**
 * A tiny classic-BPF assembler for seccomp filters: instructions refer to labels, and
 * `assemble` lays them out, turning any conditional jump whose target is further than a
 * jump offset can reach (8 bits, 255 instructions) into a jump to an inserted
 * unconditional `ja` (32-bit offset). Output is `struct sock_filter[]` in host byte order.
 */
import { BerthError } from '../../base/errors.js';

// linux/bpf_common.h
export const BPF_LD = 0x00;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_AND = 0x50;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_K = 0x00;

/** linux/filter.h BPF_MAXINSNS: the kernel refuses longer programs. */
export const BPF_MAXINSNS = 4096;

export type JumpOp = typeof BPF_JEQ | typeof BPF_JGT | typeof BPF_JGE;

/** A position in the program; bound to the instruction that follows `bind`. */
export class Label {
  node: Node | undefined;
  constructor(readonly name: string) {}
}

type Node =
  | { kind: 'ld'; offset: number }
  | { kind: 'and'; k: number }
  | { kind: 'ret'; k: number }
  | { kind: 'ja'; target: Label }
  | { kind: 'jmp'; op: JumpOp; k: number; jt: Label; jf: Label };

export class Program {
  private readonly nodes: Node[] = [];
  private readonly pending: Label[] = [];
  private assembled = false;

  /** Instructions emitted so far. */
  get size(): number {
    return this.nodes.length;
  }

  label(name: string): Label {
    return new Label(name);
  }

  /** Binds the label to the next instruction emitted. */
  bind(label: Label): void {
    if (label.node !== undefined || this.pending.includes(label)) {
      throw new BerthError('INTERNAL', `seccomp: label ${label.name} bound twice`);
    }
    this.pending.push(label);
  }

  /** A label bound to the next instruction (for "fall through"). */
  here(name: string): Label {
    const l = this.label(name);
    this.bind(l);
    return l;
  }

  loadAbs(offset: number): void {
    this.push({ kind: 'ld', offset });
  }

  and(k: number): void {
    this.push({ kind: 'and', k: k >>> 0 });
  }

  ret(k: number): void {
    this.push({ kind: 'ret', k: k >>> 0 });
  }

  jump(target: Label): void {
    this.push({ kind: 'ja', target });
  }

  /** if (A op k) goto jt else goto jf. */
  jmp(op: JumpOp, k: number, jt: Label, jf: Label): void {
    this.push({ kind: 'jmp', op, k: k >>> 0, jt, jf });
  }

  private push(node: Node): void {
    for (const l of this.pending.splice(0)) l.node = node;
    this.nodes.push(node);
  }

  /** Lays the program out, inserting long jumps where needed, and encodes it. */
  assemble(): Buffer {
    // Relaxation rewires jump labels in place: a Program is assembled once.
    if (this.assembled) throw new BerthError('INTERNAL', 'seccomp: program assembled twice');
    this.assembled = true;
    if (this.pending.length > 0) {
      throw new BerthError('INTERNAL', `seccomp: label ${this.pending[0]!.name} bound past the end of the program`);
    }
    let nodes = [...this.nodes];
    // Relaxation: each pass gives every out-of-range conditional target a `ja` placed right
    // after its jump. Insertion only moves instructions apart, so this converges (a few
    // passes); each pass is linear.
    for (;;) {
      const index = indexOf(nodes);
      const relaxed: Node[] = [];
      let changed = false;
      for (const [i, n] of nodes.entries()) {
        relaxed.push(n);
        if (n.kind !== 'jmp') continue;
        const far = (l: Label): boolean => target(index, l) - i - 1 > 255;
        for (const side of ['jt', 'jf'] as const) {
          if (!far(n[side])) continue;
          const tramp: Node = { kind: 'ja', target: n[side] };
          n[side] = labelAt(tramp, `${n[side].name}~far`);
          relaxed.push(tramp);
          changed = true;
        }
      }
      nodes = relaxed;
      if (!changed) break;
    }
    if (nodes.length > BPF_MAXINSNS) {
      throw new BerthError(
        'RUNTIME_CONFIG_INVALID',
        `linux.seccomp: the compiled filter has ${nodes.length} instructions, more than the kernel's limit of ${BPF_MAXINSNS}; merge syscall rules or reduce the architectures`,
      );
    }
    const index = indexOf(nodes);
    const out = Buffer.alloc(nodes.length * 8);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const le = NATIVE_LITTLE_ENDIAN;
    nodes.forEach((n, i) => {
      let code: number;
      let jt = 0;
      let jf = 0;
      let k: number;
      switch (n.kind) {
        case 'ld':
          code = BPF_LD | BPF_W | BPF_ABS;
          k = n.offset;
          break;
        case 'and':
          code = BPF_ALU | BPF_AND | BPF_K;
          k = n.k;
          break;
        case 'ret':
          code = BPF_RET | BPF_K;
          k = n.k;
          break;
        case 'ja':
          code = BPF_JMP | BPF_JA;
          k = target(index, n.target) - i - 1;
          if (k < 0) throw new BerthError('INTERNAL', `seccomp: backward jump to ${n.target.name}`);
          break;
        case 'jmp':
          code = BPF_JMP | n.op | BPF_K;
          k = n.k;
          jt = target(index, n.jt) - i - 1;
          jf = target(index, n.jf) - i - 1;
          if (jt < 0 || jf < 0 || jt > 255 || jf > 255) {
            throw new BerthError('INTERNAL', `seccomp: jump offset out of range at ${i}`);
          }
          break;
      }
      // struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; } in host byte order
      const o = i * 8;
      view.setUint16(o, code, le);
      view.setUint8(o + 2, jt);
      view.setUint8(o + 3, jf);
      view.setUint32(o + 4, k >>> 0, le);
    });
    return out;
  }
}

export const NATIVE_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function labelAt(node: Node, name: string): Label {
  const l = new Label(name);
  l.node = node;
  return l;
}

function indexOf(nodes: Node[]): Map<Node, number> {
  return new Map(nodes.map((n, i) => [n, i]));
}

function target(index: Map<Node, number>, l: Label): number {
  const t = l.node === undefined ? undefined : index.get(l.node);
  if (t === undefined) throw new BerthError('INTERNAL', `seccomp: label ${l.name} never bound`);
  return t;
}

/** Decodes a filter back into instructions (for tests and `--debug` dumps). */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export function decodeFilter(buf: Buffer): SockFilter[] {
  const out: SockFilter[] = [];
  for (let o = 0; o + 8 <= buf.length; o += 8) {
    const le = NATIVE_LITTLE_ENDIAN;
    out.push({
      code: le ? buf.readUInt16LE(o) : buf.readUInt16BE(o),
      jt: buf.readUInt8(o + 2),
      jf: buf.readUInt8(o + 3),
      k: le ? buf.readUInt32LE(o + 4) : buf.readUInt32BE(o + 4),
    });
  }
  return out;
}
