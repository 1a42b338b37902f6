/**
 * Published ports: docker's `-p/--publish [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]` forms (ranges
 * included), `-P` from the image's EXPOSE, and the choice of host ports: never one another
 * container published, nor one a process on the host listens on.
 */
import { readFileSync } from 'node:fs';
import { BerthError } from '../../base/errors.js';
import { tryParseIPv4 } from './ipv4.js';
import type { PortRecord } from './store.js';

export type Proto = 'tcp' | 'udp';

/** One -p option, ranges kept: host ports undefined means "any free port". */
export interface PortSpec {
  hostIp: string;
  /** Inclusive host port range, or undefined for ports picked by berth. */
  hostPorts?: [number, number];
  containerPorts: [number, number];
  proto: Proto;
}

/** One host port forwarded to one container port. */
export interface PortMapping {
  hostIp: string;
  /** 0: pick a free port. */
  hostPort: number;
  containerPort: number;
  proto: Proto;
  /** When set, hostPort 0 picks from this inclusive range (`-p 8000-8010:80`). */
  hostRange?: [number, number];
}

function portRange(s: string, what: string, spec: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || lo < 1 || hi > 65535 || lo > hi) {
    throw new BerthError('USAGE', `--publish ${spec}: ${what} ${JSON.stringify(s)} is not a port (1-65535) or a range LOW-HIGH`);
  }
  return [lo, hi];
}

/** Parses one `-p` value as docker does. */
export function parsePublish(spec: string): PortSpec {
  let rest = spec;
  let proto: Proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p !== 'tcp' && p !== 'udp') throw new BerthError('USAGE', `--publish ${spec}: protocol ${JSON.stringify(p)} is not supported (tcp or udp)`);
    proto = p;
    rest = rest.slice(0, slash);
  }
  if (rest.startsWith('[')) throw new BerthError('USAGE', `--publish ${spec}: IPv6 host addresses are not supported (berth's networks are IPv4)`);
  const parts = rest.split(':');
  if (parts.length > 3) throw new BerthError('USAGE', `--publish ${spec}: expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]`);
  const containerPart = parts.pop()!;
  const hostPart = parts.pop();
  const ipPart = parts.pop();
  const hostIp = ipPart === undefined || ipPart === '' ? '0.0.0.0' : ipPart;
  if (tryParseIPv4(hostIp) === undefined) throw new BerthError('USAGE', `--publish ${spec}: ${JSON.stringify(hostIp)} is not an IPv4 address`);
  const containerPorts = portRange(containerPart, 'container port', spec);
  const hostPorts = hostPart === undefined || hostPart === '' ? undefined : portRange(hostPart, 'host port', spec);
  if (hostPorts) {
    const hn = hostPorts[1] - hostPorts[0];
    const cn = containerPorts[1] - containerPorts[0];
    if (cn !== 0 && hn !== cn) throw new BerthError('USAGE', `--publish ${spec}: the host range has ${hn + 1} ports and the container range ${cn + 1}: give ranges of one length`);
  }
  return { hostIp, ...(hostPorts ? { hostPorts } : {}), containerPorts, proto };
}

/** The mappings a PortSpec asks for, one per container port. */
export function expandPublish(s: PortSpec): PortMapping[] {
  const out: PortMapping[] = [];
  const [clo, chi] = s.containerPorts;
  for (let c = clo; c <= chi; c++) {
    if (!s.hostPorts) out.push({ hostIp: s.hostIp, hostPort: 0, containerPort: c, proto: s.proto });
    else if (clo === chi && s.hostPorts[0] !== s.hostPorts[1]) out.push({ hostIp: s.hostIp, hostPort: 0, containerPort: c, proto: s.proto, hostRange: s.hostPorts });
    else out.push({ hostIp: s.hostIp, hostPort: s.hostPorts[0] + (c - clo), containerPort: c, proto: s.proto });
  }
  return out;
}

/** `-p` values to mappings. */
export function parsePublishAll(specs: string[]): PortMapping[] {
  return specs.flatMap((s) => expandPublish(parsePublish(s)));
}

/** `-P`: every port of the image config's ExposedPorts ("80/tcp", "53/udp", "8080") on a free host port. */
export function publishExposed(exposed: Iterable<string>, hostIp = '0.0.0.0'): PortMapping[] {
  const out: PortMapping[] = [];
  for (const e of exposed) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(e);
    if (!m) throw new BerthError('USAGE', `the image exposes ${JSON.stringify(e)}, which is not PORT[/tcp|/udp]`);
    const proto = (m[3] ?? 'tcp').toLowerCase();
    if (proto === 'sctp') continue;
    const lo = Number(m[1]);
    const hi = Number(m[2] ?? m[1]);
    for (let p = lo; p <= hi; p++) out.push({ hostIp, hostPort: 0, containerPort: p, proto: proto as Proto });
  }
  return out;
}

/** A socket of this host bound to a port: from /proc/net/{tcp,udp} (listening TCP, any bound UDP). */
interface HostSocket {
  ip: string;
  port: number;
  proto: Proto;
}

function hexIPv4(h: string): string {
  const n = parseInt(h, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
}

/** The host's bound ports (TCP listeners and UDP sockets), IPv4 and IPv6 (any IPv6 address counted as a wildcard). */
export function hostSockets(): HostSocket[] {
  const out: HostSocket[] = [];
  for (const [file, proto, v6] of [['tcp', 'tcp', false], ['tcp6', 'tcp', true], ['udp', 'udp', false], ['udp6', 'udp', true]] as const) {
    let text: string;
    try {
      text = readFileSync(`/proc/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      const [addr, port] = f[1]!.split(':') as [string, string];
      const state = f[3]!;
      if (proto === 'tcp' ? state !== '0A' : state !== '07') continue;
      out.push({ ip: v6 ? (/^0+$/.test(addr) ? '0.0.0.0' : v6Mapped(addr)) : hexIPv4(addr), port: parseInt(port, 16), proto });
    }
  }
  return out;
}

/** An IPv6 socket address: a v4-mapped address as that IPv4, anything else as a wildcard (it may take the port). */
function v6Mapped(h: string): string {
  return h.startsWith('0000000000000000FFFF0000') ? hexIPv4(h.slice(24)) : '0.0.0.0';
}

function sameAddress(a: string, b: string): boolean {
  return a === b || a === '0.0.0.0' || b === '0.0.0.0';
}

/** Picks host ports for `wanted`, checking against published ports and host sockets. */
export function bindPorts(
  wanted: PortMapping[],
  taken: Pick<PortRecord, 'hostIp' | 'hostPort' | 'proto' | 'container'>[],
  sockets: HostSocket[] = hostSockets(),
  ephemeral: [number, number] = ephemeralRange(),
): { hostIp: string; hostPort: number; containerPort: number; proto: Proto }[] {
  /** Why the port is busy, or undefined when it is free. */
  const busy = (ip: string, port: number, proto: Proto, mine: { hostIp: string; hostPort: number; proto: Proto }[]): string | undefined => {
    const t = taken.find((t) => t.proto === proto && t.hostPort === port && sameAddress(t.hostIp, ip));
    if (t) return `container ${t.container.slice(0, 12)} publishes it`;
    if (sockets.some((s) => s.proto === proto && s.port === port && sameAddress(s.ip, ip))) return 'a process on this host listens on it';
    if (mine.some((m) => m.proto === proto && m.hostPort === port && sameAddress(m.hostIp, ip))) return 'it is given twice';
    return undefined;
  };
  const out: { hostIp: string; hostPort: number; containerPort: number; proto: Proto }[] = [];
  for (const w of wanted) {
    if (w.hostPort !== 0) {
      const who = busy(w.hostIp, w.hostPort, w.proto, out);
      if (who) {
        throw new BerthError('USAGE', `host port ${w.hostIp}:${w.hostPort}/${w.proto} is already in use (${who}): choose another host port`);
      }
      out.push({ hostIp: w.hostIp, hostPort: w.hostPort, containerPort: w.containerPort, proto: w.proto });
      continue;
    }
    const [lo, hi] = w.hostRange ?? ephemeral;
    let port: number | undefined;
    for (let p = lo; p <= hi; p++) {
      if (!busy(w.hostIp, p, w.proto, out)) {
        port = p;
        break;
      }
    }
    if (port === undefined) throw new BerthError('USAGE', `no free host port for ${w.containerPort}/${w.proto} in ${lo}-${hi}: free one or give another range`);
    out.push({ hostIp: w.hostIp, hostPort: port, containerPort: w.containerPort, proto: w.proto });
  }
  return out;
}

/** The kernel's ephemeral port range, where ports picked by berth come from (as docker). */
export function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi && lo <= hi) return [lo, hi];
  } catch {
    /* the default below */
  }
  return [32768, 60999];
}
