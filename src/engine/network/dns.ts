/**
 * The name server of a user network: native/berth-dns, one process per network in use (none per
 * container), listening on the gateway's UDP port 53 as podman's aardvark-dns does. It answers
 * the names and aliases of the network's containers from ROOT/network/dns/NETWORK.hosts, which
 * is rewritten (atomically) on every join and leave, and relays other names to the host's name
 * servers (an --internal network's responder relays nothing). Started by the first container
 * that joins, stopped when the last one leaves or the network is removed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { nativeBinary } from '../../base/package.js';
import { sleepSync } from '../../base/sleep-sync.js';
import { writeAtomic } from '../../runtime/state.js';
import { tryParseIPv4 } from './ipv4.js';
import type { EndpointRecord, NetworkRecord } from './store.js';

export function dnsDir(netDir: string): string {
  return join(netDir, 'dns');
}

function files(netDir: string, net: NetworkRecord) {
  const dir = dnsDir(netDir);
  return { dir, names: join(dir, `${net.name}.hosts`), pid: join(dir, `${net.name}.pid`) };
}

/** Writes the names the network's responder answers: `IP name alias… shortid` per container. */
export function writeNames(netDir: string, net: NetworkRecord, eps: EndpointRecord[]): void {
  const f = files(netDir, net);
  mkdirSync(f.dir, { recursive: true, mode: 0o700 });
  writeAtomic(f.names, eps.map((e) => `${e.ip} ${[...new Set([e.name, ...e.aliases, e.container.slice(0, 12)])].join(' ')}\n`).join(''), 0o644, false);
}

/** The responder's pid when it runs (checked against /proc, so a reused pid is not taken for it). */
export function responderPid(netDir: string, net: NetworkRecord): number | undefined {
  try {
    const pid = Number(readFileSync(files(netDir, net).pid, 'utf8').trim());
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmd[0]?.endsWith('berth-dns') && cmd.includes(net.gateway) && cmd.includes(files(netDir, net).names) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The servers a responder relays other names to: the host's IPv4 name servers (loopback ones too:
 * the responder runs in the host's namespace), unless given.
 */
export function hostUpstreams(resolvConf?: string): string[] {
  let text = resolvConf;
  if (text === undefined) {
    try {
      text = readFileSync('/etc/resolv.conf', 'utf8');
    } catch {
      return [];
    }
  }
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === 'nameserver' && f[1] !== undefined && tryParseIPv4(f[1]) !== undefined)
    .map((f) => f[1]!);
}

/** Starts the network's responder unless it runs. Throws when it cannot listen (port 53 of the gateway taken). */
export function ensureResponder(netDir: string, net: NetworkRecord, upstreams: string[]): number {
  const running = responderPid(netDir, net);
  if (running !== undefined) return running;
  const f = files(netDir, net);
  const r = spawnSync(nativeBinary('berth-dns'), ['--pidfile', f.pid, net.gateway, f.names, ...(net.internal ? [] : upstreams)], { encoding: 'utf8' });
  if (r.status !== 0) throw new BerthError('NETWORK', `the name server of network ${net.name} did not start: ${(r.stderr || r.error?.message || '').trim()}`);
  // The daemon writes its pid file right after detaching.
  for (let i = 0; i < 200; i++) {
    const pid = responderPid(netDir, net);
    if (pid !== undefined) return pid;
    sleepSync(1);
  }
  throw new BerthError('NETWORK', `the name server of network ${net.name} started but wrote no pid file (${f.pid})`);
}

/** Stops the network's responder and removes its files. */
export function stopResponder(netDir: string, net: NetworkRecord): void {
  const pid = responderPid(netDir, net);
  if (pid !== undefined) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone meanwhile */
    }
  }
  const f = files(netDir, net);
  rmSync(f.pid, { force: true });
  rmSync(f.names, { force: true });
}
