/**
 * The links: a bridge per network (made once, with iproute2's `ip` in batch mode) and a veth pair
 * per container, made and deleted by native/berth-net through rtnetlink in one exec. Measured
 * here, every exec from Node costs ~8-10 ms (fork of a large process, then exec) even at real-time
 * priority: the `ip` way (`ip -batch` on the host, then `ip -n NS -batch` inside) paid it twice
 * per attach, 43 ms in all; berth-net pays it once (see bench/network.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fnv1a64 } from '../../base/fnv.js';
import { nativeBinary } from '../../base/package.js';
import { BerthError } from '../../base/errors.js';
import { formatIPv4, formatSubnet, type Subnet } from './ipv4.js';

/** Runs `ip [global...] -batch -` with `lines` on stdin; throws with ip's own message. */
export function ipBatch(lines: string[], global: string[] = [], what = 'configuring the network'): void {
  if (lines.length === 0) return;
  const r = spawnSync('ip', [...global, '-batch', '-'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new BerthError('NETWORK', missing ? 'the "ip" command is missing: install iproute2 (apt-get install -y iproute2)' : `ip: ${r.error.message}`);
  }
  if (r.status !== 0) {
    const msg = (r.stderr || r.stdout).trim().split('\n').filter((l) => l && !l.startsWith('Command failed')).join('; ');
    throw new BerthError('NETWORK', `${what}: ip failed: ${msg || `exit status ${r.status}`}`);
  }
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** Every interface name of the host's network namespace. */
export function hostLinks(): Set<string> {
  return new Set(readdirSync('/sys/class/net'));
}

/** The veth pairs plugged into a bridge (its ports), by host-side name. */
export function bridgePorts(bridge: string): string[] {
  try {
    return readdirSync(`/sys/class/net/${bridge}/brif`);
  } catch {
    return [];
  }
}

/**
 * The IPv4 routes of the host's main table, as CIDR subnets (the default route left out), but
 * those of `ownBridges`: a bridge of berth's left from an earlier root (a removed
 * /var/lib/berth, the quickstart's temp root) is taken over, as docker takes over docker0.
 */
export function hostRoutes(ownBridges: string[] = []): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || ownBridges.includes(f[0]!)) continue;
    const dest = leHex(f[1]!);
    const mask = leHex(f[7]!);
    if (mask === 0) continue;
    const prefix = 32 - Math.log2((~mask >>> 0) + 1);
    if (!Number.isInteger(prefix)) continue;
    out.push(formatSubnet({ base: dest, prefix }));
  }
  return out;
}

/** /proc/net/route prints addresses as little-endian hex. */
function leHex(h: string): number {
  const n = parseInt(h, 16);
  return (((n & 255) << 24) | (((n >>> 8) & 255) << 16) | (((n >>> 16) & 255) << 8) | ((n >>> 24) & 255)) >>> 0;
}

/** The host end of a container's veth on a network: `vb` and 12 hex digits of a hash of both. */
export function vethName(container: string, network: string): string {
  // (FNV-1a: native/berth.c names the veth of a replayed run the same way.)
  return 'vb' + fnv1a64(`${container}\0${network}`).slice(0, 12);
}

export interface BridgeSpec {
  bridge: string;
  subnet: Subnet;
  gateway: number;
  internal: boolean;
}

/** The commands that make a bridge with its gateway address, and the sysctls it needs. */
function bridgeLines(b: BridgeSpec): string[] {
  return [
    `link add ${b.bridge} type bridge`,
    `addr replace ${formatIPv4(b.gateway)}/${b.subnet.prefix} dev ${b.bridge}`,
    `link set ${b.bridge} up`,
  ];
}

function sysctl(path: string, value: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === value) return;
  } catch {
    /* written below, or reported */
  }
  try {
    writeFileSync(path, value);
  } catch (err) {
    throw new BerthError('NETWORK', `cannot set ${path.replace('/proc/sys/', '').replaceAll('/', '.')} to ${value}: ${(err as Error).message} (needs root)`);
  }
}

function bridgeSysctls(b: BridgeSpec): void {
  // Published ports answer on 127.0.0.1: the DNAT'd packets keep their loopback source out of the bridge.
  sysctl(`/proc/sys/net/ipv4/conf/${b.bridge}/route_localnet`, '1');
  if (!b.internal) sysctl('/proc/sys/net/ipv4/ip_forward', '1');
}

export interface VethSpec {
  veth: string;
  netnsPath: string;
  /** Interface name inside the namespace. */
  iface: string;
  ip: number;
  defaultRoute: boolean;
}

/** Makes the bridge with its gateway address, and the sysctls it needs. */
export function makeBridge(b: BridgeSpec): void {
  ipBatch(bridgeLines(b), [], `creating bridge ${b.bridge}`);
  bridgeSysctls(b);
}

/** Runs native/berth-net; throws with its one-line message. */
function berthNet(args: string[], what: string): void {
  const r = spawnSync(nativeBinary('berth-net'), args, { encoding: 'utf8' });
  if (r.status !== 0) throw new BerthError('NETWORK', `${what}: ${(r.stderr || r.error?.message || `exit status ${r.status}`).trim().replace(/^berth-net: /, '')}`);
}

/**
 * Plugs a namespace into a bridge: a veth pair, host end on the bridge, the other end made in
 * the namespace as `iface` with its address, lo up and (for the first network) a default route
 * via the gateway. Creates the bridge first when `createBridge`. berth-net undoes the veth on failure.
 */
export function plugVeth(b: BridgeSpec, v: VethSpec, createBridge: boolean): void {
  if (!v.netnsPath.startsWith('/')) throw new BerthError('USAGE', `network namespace ${JSON.stringify(v.netnsPath)} must be an absolute path (e.g. /proc/PID/ns/net)`);
  if (createBridge) makeBridge(b);
  berthNet(
    ['attach', b.bridge, v.veth, v.netnsPath, v.iface, `${formatIPv4(v.ip)}/${b.subnet.prefix}`, ...(v.defaultRoute ? [formatIPv4(b.gateway)] : [])],
    `attaching ${v.netnsPath} to bridge ${b.bridge}`,
  );
}

/** Deletes links that exist (a veth's peer goes with it); missing ones are fine. One exec. */
export function deleteLinks(names: string[]): void {
  const present = names.filter(linkExists);
  if (present.length) berthNet(['detach', ...present], `deleting ${present.join(', ')}`);
}
