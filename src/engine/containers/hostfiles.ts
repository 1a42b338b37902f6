/** The per-container /etc/hosts, /etc/hostname and /etc/resolv.conf (bind-mounted, as docker does). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../../runtime/state.js';
import type { SpecFiles } from './spec.js';
import { LOCAL as LOCALHOST, resolvConfContent, type ResolvOptions } from '../network/hosts.js';

function hostFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * resolv.conf: the host's, without loopback name servers for a container with its own network
 * namespace (they would point at the container itself); docker falls back to public servers
 * then, berth leaves none (there is no network to reach them with `--network none` anyway).
 */
export function containerResolvConf(hostText: string, network: string): string {
  if (network === 'host') return hostText;
  return hostText.split('\n').filter((l) => !/^\s*nameserver\s+(127\.|::1\s*$)/.test(l)).join('\n');
}

/**
 * The container's files. With --dns, --dns-search or --dns-option, resolv.conf says what they
 * say (on a bridge network the attach writes it again, with the network's name server).
 */
export function writeHostFiles(dir: string, hostname: string, network: string, dns: ResolvOptions = {}): SpecFiles {
  const files: SpecFiles = { hosts: join(dir, 'hosts'), hostname: join(dir, 'hostname'), resolvConf: join(dir, 'resolv.conf') };
  const hosts = network === 'host' ? hostFile('/etc/hosts') : LOCALHOST.join('\n') + '\n';
  writeAtomic(files.hosts, hosts, 0o644, false);
  writeAtomic(files.hostname, hostname + '\n', 0o644, false);
  const resolv = containerResolvConf(hostFile('/etc/resolv.conf'), network);
  const custom = dns.dns?.length || dns.dnsSearch?.length || dns.dnsOptions?.length;
  writeAtomic(files.resolvConf, custom ? resolvConfContent({ ...dns, hostResolvConf: resolv, keepLoopback: network === 'host' }) : resolv, 0o644, false);
  return files;
}
