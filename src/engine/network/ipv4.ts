/** IPv4 addresses and subnets as numbers: parsing, formatting, containment, overlap. */
import { BerthError } from '../../base/errors.js';

export interface Subnet {
  /** The network address, as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

const OCTETS = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The address as a number, or undefined when `s` is not a dotted IPv4 address. */
export function tryParseIPv4(s: string): number | undefined {
  const m = OCTETS.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || (m[i]!.length > 1 && m[i]![0] === '0')) return undefined;
    n = n * 256 + o;
  }
  return n;
}

export function parseIPv4(s: string, what = 'address'): number {
  const n = tryParseIPv4(s);
  if (n === undefined) throw new BerthError('USAGE', `${what} ${JSON.stringify(s)} is not an IPv4 address (give four numbers 0-255, e.g. 10.87.0.2)`);
  return n;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses `A.B.C.D/N`; the address must be the network address (10.87.0.0/16, not 10.87.0.1/16). */
export function parseSubnet(s: string): Subnet {
  const slash = s.indexOf('/');
  const prefix = slash < 0 ? NaN : Number(s.slice(slash + 1));
  if (slash < 0 || !/^\d{1,2}$/.test(s.slice(slash + 1)) || prefix > 32) {
    throw new BerthError('USAGE', `subnet ${JSON.stringify(s)} is not in CIDR form (give e.g. 10.86.3.0/24; IPv6 subnets are not supported)`);
  }
  const base = parseIPv4(s.slice(0, slash), 'subnet address');
  if (prefix > 30) throw new BerthError('USAGE', `subnet ${s} is too small: give a prefix of /30 or shorter (room for a gateway and a container)`);
  if ((base & ~maskOf(prefix)) >>> 0 !== 0) {
    throw new BerthError('USAGE', `subnet ${s} has host bits set: did you mean ${formatIPv4((base & maskOf(prefix)) >>> 0)}/${prefix}?`);
  }
  return { base, prefix };
}

export function formatSubnet(s: Subnet): string {
  return `${formatIPv4(s.base)}/${s.prefix}`;
}

export function subnetSize(s: Subnet): number {
  return 2 ** (32 - s.prefix);
}

export function contains(s: Subnet, addr: number): boolean {
  return ((addr & maskOf(s.prefix)) >>> 0) === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const m = maskOf(p);
  return ((a.base & m) >>> 0) === ((b.base & m) >>> 0);
}

/** The broadcast address of a subnet (never handed out). */
export function broadcastOf(s: Subnet): number {
  return (s.base + subnetSize(s) - 1) >>> 0;
}
