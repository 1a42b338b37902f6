/**
 * Names: /etc/hosts and /etc/resolv.conf content for a container.
 *
 * On a user network containers find each other by name and alias through their /etc/hosts,
 * which berth rewrites (in place: the engine bind-mounts the file, and a rename would leave the
 * container reading the old one) whenever a container joins or leaves the network. No process
 * stays behind per container or network, and a lookup costs nothing. What it does not give:
 * tools that ask a DNS server directly (busybox nslookup, dig) do not see these names.
 */
import { openSync, closeSync, ftruncateSync, writeSync, readFileSync } from 'node:fs';
import { BerthError } from '../../base/errors.js';
import { tryParseIPv4 } from './ipv4.js';

/** The lines every /etc/hosts starts with (docker's). */
export const LOCAL = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

/** `--add-host NAME:IP` (also docker's NAME=IP) as a hosts line; `host-gateway` is the network's gateway. */
export function addHostLine(spec: string, gateway?: string): string {
  const m = /^([^:=\s]+)[:=](.+)$/.exec(spec);
  if (!m) throw new BerthError('USAGE', `--add-host ${JSON.stringify(spec)}: expected NAME:IP`);
  let ip = m[2]!;
  if (ip === 'host-gateway') {
    if (!gateway) throw new BerthError('USAGE', `--add-host ${spec}: host-gateway needs a network with a gateway`);
    ip = gateway;
  }
  if (tryParseIPv4(ip) === undefined && !/^[0-9a-fA-F:]+$/.test(ip)) throw new BerthError('USAGE', `--add-host ${spec}: ${JSON.stringify(ip)} is not an IP address`);
  if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(m[1]!)) throw new BerthError('USAGE', `--add-host ${spec}: ${JSON.stringify(m[1])} is not a host name`);
  return `${ip}\t${m[1]}`;
}

export interface HostsPeer {
  ip: string;
  names: string[];
}

/**
 * A container's /etc/hosts: localhost, --add-host lines, its own addresses under its hostname
 * (and name), then the peers it may reach by name.
 */
export function hostsContent(self: HostsPeer[], extra: string[], peers: HostsPeer[]): string {
  const lines = [...LOCAL, ...extra];
  for (const s of self) lines.push(`${s.ip}\t${unique(s.names).join(' ')}`);
  for (const p of peers) lines.push(`${p.ip}\t${unique(p.names).join(' ')}`);
  return lines.join('\n') + '\n';
}

function unique(names: string[]): string[] {
  return [...new Set(names.filter((n) => n.length > 0))];
}

/** Replaces a file's content without replacing the file (it may be bind-mounted). */
export function rewriteInPlace(path: string, content: string): void {
  const fd = openSync(path, 'w', 0o644);
  try {
    const buf = Buffer.from(content);
    writeSync(fd, buf, 0, buf.length, 0);
    ftruncateSync(fd, buf.length);
  } finally {
    closeSync(fd);
  }
}

export interface ResolvOptions {
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** The host's resolv.conf text (read from /etc/resolv.conf when left out). */
  hostResolvConf?: string;
  /**
   * Keep the host's loopback name servers (and add no fallback): the container shares the host's
   * network namespace (`--network host`), where they answer, as docker keeps them then.
   */
  keepLoopback?: boolean;
}

/** docker's fallback when the host has only loopback name servers, which a container cannot reach. */
const FALLBACK_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

/**
 * A container's /etc/resolv.conf: --dns, --dns-search and --dns-option where given, else the
 * host's, with loopback servers left out (they are the host's, not the container's) unless
 * keepLoopback, as docker.
 */
export function resolvConfContent(opts: ResolvOptions = {}): string {
  let text = opts.hostResolvConf;
  if (text === undefined) {
    try {
      text = readFileSync('/etc/resolv.conf', 'utf8');
    } catch {
      text = '';
    }
  }
  const servers: string[] = [];
  let search: string[] = [];
  let options: string[] = [];
  for (const raw of text.split('\n')) {
    const f = raw.replace(/[#;].*$/, '').trim().split(/\s+/);
    if (f[0] === 'nameserver' && f[1]) servers.push(f[1]);
    else if ((f[0] === 'search' || f[0] === 'domain') && f.length > 1) search = f.slice(1);
    else if (f[0] === 'options' && f.length > 1) options = f.slice(1);
  }
  for (const d of opts.dns ?? []) {
    if (tryParseIPv4(d) === undefined && !/^[0-9a-fA-F:]+$/.test(d)) throw new BerthError('USAGE', `--dns ${JSON.stringify(d)} is not an IP address`);
  }
  // Each value becomes words of one line: nothing that could start another or end this one.
  for (const d of opts.dnsSearch ?? []) {
    if (!/^[A-Za-z0-9_.-]{1,253}$/.test(d)) throw new BerthError('USAGE', `--dns-search ${JSON.stringify(d)} is not a domain name`);
  }
  for (const o of opts.dnsOptions ?? []) {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(o)) throw new BerthError('USAGE', `--dns-option ${JSON.stringify(o)} is not a resolver option (e.g. ndots:2, timeout:1, edns0)`);
  }
  let ns = opts.dns?.length ? opts.dns : servers.filter((s) => opts.keepLoopback || (!s.startsWith('127.') && s !== '::1'));
  if (ns.length === 0 && !opts.keepLoopback) ns = FALLBACK_NAMESERVERS;
  if (opts.dnsSearch?.length) search = opts.dnsSearch.filter((s) => s !== '.');
  if (opts.dnsOptions?.length) options = opts.dnsOptions;
  const lines: string[] = [];
  if (search.length) lines.push(`search ${search.join(' ')}`);
  for (const s of ns) lines.push(`nameserver ${s}`);
  if (options.length) lines.push(`options ${options.join(' ')}`);
  return lines.join('\n') + '\n';
}
