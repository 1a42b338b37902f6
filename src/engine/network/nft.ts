/**
 * berth's packet rules, in an nftables table of its own (`table ip berth`): nothing else on the
 * host is touched, so docker's and podman's rules keep working beside it.
 *
 * Each network owns five base chains named after its bridge (pre_, out_, post_, fwd_, in_),
 * rewritten as a whole, in one `nft -f -` transaction, from the records whenever its published
 * ports change or its bridge is made: the kernel applies the new set atomically, and whatever a
 * crash left behind is replaced by the truth at the next rewrite.
 * - published ports: DNAT in prerouting (traffic from outside and from containers) and in output
 *   (traffic from the host itself, including 127.0.0.1: route_localnet on the bridge, and
 *   masquerade of loopback sources so the answer comes back);
 * - outbound: masquerade of the subnet leaving by another interface (not for --internal);
 * - --internal: nothing forwarded between the bridge and other interfaces, and no host address
 *   but the gateway reachable from it.
 */
import { spawnSync } from 'node:child_process';
import { BerthError } from '../../base/errors.js';
import type { NetworkRecord, PortRecord } from './store.js';

export const TABLE = 'berth';

const CHAINS = [
  ['pre', 'type nat hook prerouting priority dstnat; policy accept;'],
  ['out', 'type nat hook output priority -100; policy accept;'],
  ['post', 'type nat hook postrouting priority srcnat; policy accept;'],
  ['fwd', 'type filter hook forward priority filter; policy accept;'],
  ['in', 'type filter hook input priority filter; policy accept;'],
] as const;

function chain(kind: string, bridge: string): string {
  return `${kind}_${bridge}`;
}

/** The nft script that replaces the network's chains with rules for `ports`. */
export function networkRules(net: NetworkRecord, ports: PortRecord[]): string {
  const t = `ip ${TABLE}`;
  const br = JSON.stringify(net.bridge);
  const lines = [`add table ${t}`];
  for (const [kind, spec] of CHAINS) {
    lines.push(`add chain ${t} ${chain(kind, net.bridge)} { ${spec} }`, `flush chain ${t} ${chain(kind, net.bridge)}`);
  }
  const rule = (kind: string, r: string) => lines.push(`add rule ${t} ${chain(kind, net.bridge)} ${r}`);
  for (const p of ports) {
    const dst = p.hostIp === '0.0.0.0' ? 'fib daddr type local' : `ip daddr ${p.hostIp}`;
    const r = `${dst} ${p.proto} dport ${p.hostPort} dnat to ${p.containerIp}:${p.containerPort}`;
    rule('pre', r);
    rule('out', r);
  }
  if (ports.length) {
    rule('post', `oifname ${br} ip saddr 127.0.0.0/8 masquerade`);
    // A container reaching a published port through a host address: the answer must come back through the host.
    rule('post', `oifname ${br} ct status dnat ip saddr ${net.subnet} masquerade`);
  }
  if (net.internal) {
    rule('fwd', `iifname ${br} oifname != ${br} drop`);
    rule('fwd', `oifname ${br} iifname != ${br} drop`);
    rule('in', `iifname ${br} ip daddr != ${net.gateway} drop`);
  } else {
    rule('post', `ip saddr ${net.subnet} oifname != ${br} masquerade`);
  }
  return lines.join('\n') + '\n';
}

/** The nft script that removes the network's chains (present or not). */
export function removeNetworkRules(net: NetworkRecord): string {
  const t = `ip ${TABLE}`;
  const lines = [`add table ${t}`];
  for (const [kind, spec] of CHAINS) lines.push(`add chain ${t} ${chain(kind, net.bridge)} { ${spec} }`, `delete chain ${t} ${chain(kind, net.bridge)}`);
  return lines.join('\n') + '\n';
}

export function nftApply(script: string, what: string): void {
  const r = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new BerthError('NETWORK', missing ? 'the "nft" command is missing: install nftables (apt-get install -y nftables)' : `nft: ${r.error.message}`);
  }
  if (r.status !== 0) throw new BerthError('NETWORK', `${what}: nft failed: ${r.stderr.trim().split('\n')[0] ?? `exit status ${r.status}`}`);
}
