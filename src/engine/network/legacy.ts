/**
 * Roots made before the file store kept their network records in SQLite
 * (`ROOT/network/network.db`). The first store that opens such a root imports the rows once,
 * under the store's lock, and renames the database to `network.db.migrated` (with its -wal and
 * -shm): the run path never loads SQLite again.
 */
import type Database from 'better-sqlite3';
import { existsSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { lazyRequire } from '../../base/lazy-require.js';
import type { EndpointRecord, NetworkRecord, PortRecord } from './store.js';

const sqlite = lazyRequire<typeof Database>('better-sqlite3');

/** The schema the previous store wrote (user_version 1); tests make legacy roots with it. */
export const LEGACY_SCHEMA = `
CREATE TABLE IF NOT EXISTS networks(name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, bridge TEXT NOT NULL UNIQUE,
  subnet TEXT NOT NULL, gateway TEXT NOT NULL, internal INTEGER NOT NULL, dns INTEGER NOT NULL, created TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS endpoints(container TEXT NOT NULL, network TEXT NOT NULL REFERENCES networks(name),
  name TEXT NOT NULL, aliases TEXT NOT NULL, ip TEXT NOT NULL, iface TEXT NOT NULL, veth TEXT NOT NULL UNIQUE,
  hosts_path TEXT, hosts_extra TEXT NOT NULL, hostname TEXT NOT NULL,
  PRIMARY KEY(container, network), UNIQUE(network, ip));
CREATE TABLE IF NOT EXISTS ports(host_ip TEXT NOT NULL, host_port INTEGER NOT NULL, proto TEXT NOT NULL,
  container TEXT NOT NULL, network TEXT NOT NULL, container_ip TEXT NOT NULL, container_port INTEGER NOT NULL,
  PRIMARY KEY(host_ip, host_port, proto));
`;

export function legacyDbPath(netDir: string): string {
  return join(netDir, 'network.db');
}

interface NetworkRow { name: string; id: string; bridge: string; subnet: string; gateway: string; internal: number; dns: number; created: string; active: number }
interface EndpointRow { container: string; network: string; name: string; aliases: string; ip: string; iface: string; veth: string; hosts_path: string | null; hosts_extra: string; hostname: string }
interface PortRow { host_ip: string; host_port: number; proto: 'tcp' | 'udp'; container: string; network: string; container_ip: string; container_port: number }

export interface LegacyRecords {
  networks: NetworkRecord[];
  endpoints: EndpointRecord[];
  ports: PortRecord[];
}

/** The addon's path, so that better-sqlite3 skips the `bindings` search. */
function nativeBinding(): { nativeBinding?: string } {
  try {
    return { nativeBinding: createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node') };
  } catch {
    return {};
  }
}

/** Reads the previous store's records (undefined when there is no database). */
export function readLegacy(netDir: string): LegacyRecords | undefined {
  const file = legacyDbPath(netDir);
  if (!existsSync(file)) return undefined;
  const db = new (sqlite())(file, nativeBinding());
  try {
    const has = (t: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) !== undefined;
    if (!has('networks')) return { networks: [], endpoints: [], ports: [] };
    return {
      networks: (db.prepare('SELECT * FROM networks').all() as NetworkRow[]).map((r) => ({
        name: r.name, id: r.id, bridge: r.bridge, subnet: r.subnet, gateway: r.gateway, internal: r.internal === 1, dnsEnabled: r.dns === 1, created: r.created, active: r.active === 1,
      })),
      endpoints: (db.prepare('SELECT * FROM endpoints').all() as EndpointRow[]).map((r) => ({
        container: r.container, network: r.network, name: r.name, aliases: JSON.parse(r.aliases) as string[], ip: r.ip, iface: r.iface,
        veth: r.veth, hostsPath: r.hosts_path, hostsExtra: JSON.parse(r.hosts_extra) as string[], hostname: r.hostname,
      })),
      ports: (db.prepare('SELECT * FROM ports').all() as PortRow[]).map((r) => ({
        hostIp: r.host_ip, hostPort: r.host_port, proto: r.proto, container: r.container, network: r.network, containerIp: r.container_ip, containerPort: r.container_port,
      })),
    };
  } finally {
    db.close();
  }
}

/** Moves the database aside once its records are in the file store. */
export function retireLegacy(netDir: string): void {
  const file = legacyDbPath(netDir);
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, `${file}.migrated${suffix}`);
  }
}
