/** FNV-1a, 64 bits, in hex: names that native code (native/berth.c) computes the same way. */
export function fnv1a64(data: Buffer | string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of typeof data === 'string' ? Buffer.from(data) : data) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, '0');
}
