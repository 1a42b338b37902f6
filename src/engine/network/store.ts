/**
 * The network records and the address allocator, in one SQLite database per berth root
 * (`ROOT/network/network.db`).
 *
 * Why SQLite: many `berth run`s may allocate at once, each its own process. Every change is one
 * `BEGIN IMMEDIATE` transaction (the writer lock is taken before the first read, so two processes
 * can never both see an address free and both take it), WAL lets readers (`ls`, `inspect`) go on
 * meanwhile, and busy_timeout makes writers queue instead of failing. A crashed process's
 * transaction is rolled back by SQLite itself; its committed rows are found by `reconcile`.
 * `UNIQUE(network, ip)` makes a double allocation impossible even for a buggy caller.
 */
import type Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { lazyRequire } from '../../base/lazy-require.js';
import { berthRoot } from '../store.js';
import { broadcastOf, contains, formatIPv4, formatSubnet, overlaps, parseIPv4, parseSubnet, subnetSize, type Subnet } from './ipv4.js';

/** The native SQLite addon, loaded when a network database is first opened (not by every command). */
const sqlite = lazyRequire<typeof Database>('better-sqlite3');

let addon: string | null | undefined;
/**
 * The addon's file, handed to the constructor: without it better-sqlite3 asks the `bindings`
 * package, which searches a dozen paths first (~10 ms of a bridge run's CPU here).
 */
function nativeBinding(): { nativeBinding?: string } {
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
    } catch {
      addon = null; // another layout: let bindings find it
    }
  }
  return addon ? { nativeBinding: addon } : {};
}

export interface NetworkRecord {
  name: string;
  /** 64 hex characters, as docker's network ids. */
  id: string;
  /** The Linux bridge's name (at most 15 characters). */
  bridge: string;
  subnet: string;
  gateway: string;
  /** No route out: no masquerading, no forwarding to other interfaces, no host address but the gateway. */
  internal: boolean;
  /** Containers on it find each other by name (user networks; not the default network, as docker). */
  dnsEnabled: boolean;
  created: string;
  /** Its bridge and rules may exist in the kernel (set when a container first joins, cleared by teardown). */
  active: boolean;
}

export interface EndpointRecord {
  container: string;
  network: string;
  /** The container's name, which others on the network resolve. */
  name: string;
  aliases: string[];
  ip: string;
  /** Interface name inside the container (eth0, eth1, …). */
  iface: string;
  /** Host end of the veth pair. */
  veth: string;
  /** The /etc/hosts file berth keeps up to date for this container, when the engine gave one. */
  hostsPath: string | null;
  /** Lines of --add-host and the container's own hostname, kept to rewrite the hosts file. */
  hostsExtra: string[];
  hostname: string;
}

export interface PortRecord {
  hostIp: string;
  hostPort: number;
  proto: 'tcp' | 'udp';
  container: string;
  network: string;
  containerIp: string;
  containerPort: number;
}

const SCHEMA = `
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
CREATE INDEX IF NOT EXISTS ports_by_container ON ports(container);
`;

const SCHEMA_VERSION = 1;

/** A value made on first use (statements are prepared only when a command needs them). */
function lazy<T>(make: () => T): () => T {
  let v: T | undefined;
  return () => (v ??= make());
}

/** Where networks come from when nobody configured them. */
export interface NetworkDefaults {
  /** The default network's name (docker's is `bridge`). */
  defaultName: string;
  defaultBridge: string;
  /**
   * The default network's subnet: 10.87.0.0/16, clear of podman's default network (10.88.0.0/16)
   * and of the pools its user networks come from (10.89.0.0/16 up to 10.255.255.255), and of
   * docker's (172.17.0.0/16, user networks in 172.18-31 and 192.168.0.0/16).
   */
  defaultSubnet: string;
  /** User networks without --subnet get the first free /24 of this range (10.86.0.0/16, clear of both as well). */
  userPool: string;
}

export const DEFAULTS: NetworkDefaults = {
  defaultName: 'bridge',
  defaultBridge: 'berth0',
  defaultSubnet: '10.87.0.0/16',
  userPool: '10.86.0.0/16',
};

/** The defaults, overridden by BERTH_NETWORK_SUBNET, BERTH_NETWORK_BRIDGE and BERTH_NETWORK_POOL. */
export function defaultsFromEnv(env: NodeJS.ProcessEnv = process.env): NetworkDefaults {
  return {
    defaultName: DEFAULTS.defaultName,
    defaultBridge: env.BERTH_NETWORK_BRIDGE || DEFAULTS.defaultBridge,
    defaultSubnet: env.BERTH_NETWORK_SUBNET || DEFAULTS.defaultSubnet,
    userPool: env.BERTH_NETWORK_POOL || DEFAULTS.userPool,
  };
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
/** Bridge names become parts of nft chain names: letters, digits and underscores only. */
const BRIDGE_RE = /^[a-z][a-z0-9_]{0,14}$/;

export interface CreateNetworkOptions {
  name: string;
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  bridge?: string;
  /** Subnets (CIDR) in use on the host that a new network must not overlap (its routes). */
  hostRoutes?: string[];
  /** Bridge names present on the host (a new bridge must not take one). */
  hostLinks?: Set<string>;
}

interface NetworkRow { name: string; id: string; bridge: string; subnet: string; gateway: string; internal: number; dns: number; created: string; active: number }
interface EndpointRow { container: string; network: string; name: string; aliases: string; ip: string; iface: string; veth: string; hosts_path: string | null; hosts_extra: string; hostname: string }
interface PortRow { host_ip: string; host_port: number; proto: 'tcp' | 'udp'; container: string; network: string; container_ip: string; container_port: number }

function networkOf(r: NetworkRow): NetworkRecord {
  return { name: r.name, id: r.id, bridge: r.bridge, subnet: r.subnet, gateway: r.gateway, internal: r.internal === 1, dnsEnabled: r.dns === 1, created: r.created, active: r.active === 1 };
}
function endpointOf(r: EndpointRow): EndpointRecord {
  return {
    container: r.container, network: r.network, name: r.name, aliases: JSON.parse(r.aliases) as string[], ip: r.ip, iface: r.iface,
    veth: r.veth, hostsPath: r.hosts_path, hostsExtra: JSON.parse(r.hosts_extra) as string[], hostname: r.hostname,
  };
}
function portOf(r: PortRow): PortRecord {
  return { hostIp: r.host_ip, hostPort: r.host_port, proto: r.proto, container: r.container, network: r.network, containerIp: r.container_ip, containerPort: r.container_port };
}

export function networkDbPath(root?: string): string {
  return join(berthRoot(root === undefined ? {} : { root }), 'network', 'network.db');
}

export class NetworkStore {
  readonly db: Database.Database;
  /** The directory of the database: ROOT/network. */
  readonly dir: string;
  defaults: NetworkDefaults;
  /** The host's routes, which the default network's subnet must not overlap when it is first recorded. */
  hostRoutes: () => string[] = () => [];
  private readonly q;

  constructor(file: string, defaults: NetworkDefaults = defaultsFromEnv()) {
    this.dir = join(file, '..');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.db = new (sqlite())(file, nativeBinding());
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    // 50 concurrent `run`s queue for the writer lock; each holds it for one attach (~10 ms).
    this.db.pragma('busy_timeout = 60000');
    // The schema once per database, not once per open: user_version says it is there.
    if (this.db.pragma('user_version', { simple: true }) !== SCHEMA_VERSION) {
      this.tx(() => {
        this.db.exec(SCHEMA);
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      });
    }
    this.defaults = defaults;
    const db = this.db;
    this.q = {
      network: lazy(() => db.prepare<[string], NetworkRow>('SELECT * FROM networks WHERE name = ?')),
      networkById: lazy(() => db.prepare<[string], NetworkRow>('SELECT * FROM networks WHERE id LIKE ? || \'%\'')),
      networks: lazy(() => db.prepare<[], NetworkRow>('SELECT * FROM networks ORDER BY name')),
      insertNetwork: lazy(() => db.prepare('INSERT INTO networks(name, id, bridge, subnet, gateway, internal, dns, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')),
      deleteNetwork: lazy(() => db.prepare('DELETE FROM networks WHERE name = ?')),
      setActive: lazy(() => db.prepare('UPDATE networks SET active = ? WHERE name = ?')),
      endpointsOf: lazy(() => db.prepare<[string], EndpointRow>('SELECT * FROM endpoints WHERE network = ? ORDER BY ip')),
      endpointsOfContainer: lazy(() => db.prepare<[string], EndpointRow>('SELECT * FROM endpoints WHERE container = ? ORDER BY iface')),
      allEndpoints: lazy(() => db.prepare<[], EndpointRow>('SELECT * FROM endpoints')),
      endpoint: lazy(() => db.prepare<[string, string], EndpointRow>('SELECT * FROM endpoints WHERE container = ? AND network = ?')),
      ipsOf: lazy(() => db.prepare<[string], string>('SELECT ip FROM endpoints WHERE network = ?').pluck()),
      insertEndpoint: lazy(() => db.prepare(
        'INSERT INTO endpoints(container, network, name, aliases, ip, iface, veth, hosts_path, hosts_extra, hostname) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )),
      deleteEndpoint: lazy(() => db.prepare('DELETE FROM endpoints WHERE container = ? AND network = ?')),
      ports: lazy(() => db.prepare<[], PortRow>('SELECT * FROM ports ORDER BY host_port')),
      portsOfNetwork: lazy(() => db.prepare<[string], PortRow>('SELECT * FROM ports WHERE network = ? ORDER BY host_port')),
      portsOfContainer: lazy(() => db.prepare<[string], PortRow>('SELECT * FROM ports WHERE container = ? ORDER BY host_port')),
      insertPort: lazy(() => db.prepare('INSERT INTO ports(host_ip, host_port, proto, container, network, container_ip, container_port) VALUES (?, ?, ?, ?, ?, ?, ?)')),
      deletePortsOf: lazy(() => db.prepare('DELETE FROM ports WHERE container = ? AND network = ?')),
    };
  }

  static open(root?: string, defaults?: NetworkDefaults): NetworkStore {
    return new NetworkStore(networkDbPath(root), defaults);
  }

  private static readonly open_ = new Map<string, NetworkStore>();
  /**
   * The store of a root, opened once per process and kept open: opening (and closing, which
   * checkpoints the WAL with an fsync) cost ~5 ms per call, more than the rest of a detach.
   */
  static cached(root: string | undefined, defaults: NetworkDefaults): NetworkStore {
    const path = networkDbPath(root);
    let s = NetworkStore.open_.get(path);
    if (!s) NetworkStore.open_.set(path, (s = new NetworkStore(path, defaults)));
    s.defaults = defaults;
    return s;
  }

  /** Closes the stores kept open by cached (for long-lived processes that are done with networks). */
  static closeShared(): void {
    for (const s of NetworkStore.open_.values()) s.close();
    NetworkStore.open_.clear();
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction: the writer lock is held from the start. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  network(name: string): NetworkRecord | undefined {
    const r = this.q.network().get(name);
    return r ? networkOf(r) : undefined;
  }

  /** A network by name, full id or id prefix (at least 12 characters, as docker prints them). */
  findNetwork(nameOrId: string): NetworkRecord | undefined {
    const byName = this.network(nameOrId);
    if (byName) return byName;
    if (/^[0-9a-f]{12,64}$/.test(nameOrId)) {
      const r = this.q.networkById().get(nameOrId);
      if (r) return networkOf(r);
    }
    return undefined;
  }

  /** A network that must exist (the default network is created on first use). */
  requireNetwork(nameOrId: string): NetworkRecord {
    const n = this.findNetwork(nameOrId) ?? (nameOrId === this.defaults.defaultName ? this.ensureDefault() : undefined);
    if (!n) throw new BerthError('NOT_FOUND', `network ${JSON.stringify(nameOrId)} not found: create it with "berth network create ${nameOrId}" (berth network ls lists them)`);
    return n;
  }

  networks(): NetworkRecord[] {
    return this.q.networks().all().map(networkOf);
  }

  /** The default network's record, created with the configured subnet and bridge if missing. */
  ensureDefault(): NetworkRecord {
    return this.network(this.defaults.defaultName) ?? this.tx(() =>
      this.network(this.defaults.defaultName) ??
      this.insertNetwork({ name: this.defaults.defaultName, subnet: this.defaults.defaultSubnet, bridge: this.defaults.defaultBridge, hostRoutes: this.hostRoutes() }, false));
  }

  /** Records a new network (the bridge itself is made when the first container joins). */
  createNetwork(opts: CreateNetworkOptions): NetworkRecord {
    if (!NAME_RE.test(opts.name)) {
      throw new BerthError('USAGE', `network name ${JSON.stringify(opts.name)} is invalid: use letters, digits, "_", "." and "-" (at most 64, starting with a letter or digit)`);
    }
    return this.tx(() => {
      if (opts.name === this.defaults.defaultName || this.network(opts.name)) {
        throw new BerthError('CONTAINER_EXISTS', `network ${JSON.stringify(opts.name)} already exists: pick another name or remove it with "berth network rm ${opts.name}"`);
      }
      return this.insertNetwork(opts, true);
    });
  }

  private insertNetwork(opts: CreateNetworkOptions, dns: boolean): NetworkRecord {
    const existing = this.networks();
    const taken = existing.map((n) => ({ name: `network ${n.name}`, subnet: parseSubnet(n.subnet) }));
    for (const r of opts.hostRoutes ?? []) {
      if (existing.some((n) => n.subnet === r)) continue; // our own bridge's route
      taken.push({ name: `a route of this host (${r})`, subnet: parseSubnet(r) });
    }
    let subnet: Subnet;
    if (opts.subnet !== undefined) {
      subnet = parseSubnet(opts.subnet);
      const clash = taken.find((t) => overlaps(t.subnet, subnet));
      if (clash) throw new BerthError('USAGE', `subnet ${opts.subnet} overlaps ${clash.name} (${formatSubnet(clash.subnet)}): choose a subnet that overlaps no other network`);
    } else {
      subnet = this.freeSubnet(taken.map((t) => t.subnet));
    }
    let gateway: number;
    if (opts.gateway !== undefined) {
      gateway = parseIPv4(opts.gateway, 'gateway');
      if (!contains(subnet, gateway) || gateway === subnet.base || gateway === broadcastOf(subnet)) {
        throw new BerthError('USAGE', `gateway ${opts.gateway} is not a host address of subnet ${formatSubnet(subnet)}`);
      }
    } else {
      gateway = subnet.base + 1;
    }
    const bridge = opts.bridge ?? this.freeBridgeName(existing, opts.hostLinks ?? new Set());
    if (!BRIDGE_RE.test(bridge)) throw new BerthError('USAGE', `bridge name ${JSON.stringify(bridge)} is invalid: lower-case letters, digits and "_", at most 15, starting with a letter`);
    if (existing.some((n) => n.bridge === bridge)) throw new BerthError('USAGE', `bridge ${bridge} already belongs to another network`);
    if (opts.hostLinks?.has(bridge)) throw new BerthError('USAGE', `an interface named ${bridge} already exists on this host: choose another bridge name`);
    const id = randomHex(64);
    const created = new Date().toISOString();
    this.q.insertNetwork().run(opts.name, id, bridge, formatSubnet(subnet), formatIPv4(gateway), opts.internal ? 1 : 0, dns ? 1 : 0, created);
    return this.network(opts.name)!;
  }

  private freeSubnet(taken: Subnet[]): Subnet {
    const pool = parseSubnet(this.defaults.userPool);
    const prefix = Math.max(pool.prefix, 24);
    for (let base = pool.base; contains(pool, base); base += 2 ** (32 - prefix)) {
      const candidate = { base, prefix };
      if (!taken.some((t) => overlaps(t, candidate))) return candidate;
    }
    throw new BerthError('USAGE', `no free /${prefix} left in the network pool ${this.defaults.userPool}: give --subnet, or remove unused networks (berth network prune)`);
  }

  private freeBridgeName(existing: NetworkRecord[], hostLinks: Set<string>): string {
    const stem = this.defaults.defaultBridge.replace(/\d+$/, '');
    for (let i = 1; ; i++) {
      const name = `${stem}${i}`;
      if (!existing.some((n) => n.bridge === name) && !hostLinks.has(name)) return name;
    }
  }

  /** Records whether the network's bridge and rules may exist in the kernel. */
  setActive(name: string, active: boolean): void {
    this.q.setActive().run(active ? 1 : 0, name);
  }

  /** Removes the record of a network no container is on (the caller removes its bridge first). */
  deleteNetwork(name: string): void {
    this.q.deleteNetwork().run(name);
  }

  endpoints(network: string): EndpointRecord[] {
    return this.q.endpointsOf().all(network).map(endpointOf);
  }

  endpointsOfContainer(container: string): EndpointRecord[] {
    return this.q.endpointsOfContainer().all(container).map(endpointOf);
  }

  allEndpoints(): EndpointRecord[] {
    return this.q.allEndpoints().all().map(endpointOf);
  }

  endpoint(container: string, network: string): EndpointRecord | undefined {
    const r = this.q.endpoint().get(container, network);
    return r ? endpointOf(r) : undefined;
  }

  /**
   * Takes an address on `net` for a container: `wanted` if given (and free), else the lowest
   * free host address. Call inside tx(); the row is the allocation.
   */
  allocate(net: NetworkRecord, ep: Omit<EndpointRecord, 'network' | 'ip'>, wanted?: string): string {
    const subnet = parseSubnet(net.subnet);
    const gateway = parseIPv4(net.gateway);
    const used = new Set(this.q.ipsOf().all(net.name).map((s) => parseIPv4(s)));
    let ip: number | undefined;
    if (wanted !== undefined) {
      ip = parseIPv4(wanted, '--ip');
      if (!contains(subnet, ip) || ip === subnet.base || ip === broadcastOf(subnet) || ip === gateway) {
        throw new BerthError('USAGE', `--ip ${wanted} is not a free host address of network ${net.name} (${net.subnet}, gateway ${net.gateway})`);
      }
      if (used.has(ip)) throw new BerthError('USAGE', `--ip ${wanted} is already taken on network ${net.name}: choose another address or leave --ip out`);
    } else {
      for (let a = subnet.base + 1; a < broadcastOf(subnet); a++) {
        if (a !== gateway && !used.has(a)) {
          ip = a;
          break;
        }
      }
      if (ip === undefined) throw new BerthError('USAGE', `network ${net.name} (${net.subnet}) has no free address left: remove containers or use a larger subnet`);
    }
    const addr = formatIPv4(ip);
    this.q.insertEndpoint().run(ep.container, net.name, ep.name, JSON.stringify(ep.aliases), addr, ep.iface, ep.veth, ep.hostsPath, JSON.stringify(ep.hostsExtra), ep.hostname);
    return addr;
  }

  /** Frees a container's address (and its published ports) on one network. */
  release(container: string, network: string): void {
    this.q.deletePortsOf().run(container, network);
    this.q.deleteEndpoint().run(container, network);
  }

  ports(): PortRecord[] {
    return this.q.ports().all().map(portOf);
  }

  portsOfNetwork(network: string): PortRecord[] {
    return this.q.portsOfNetwork().all(network).map(portOf);
  }

  portsOfContainer(container: string): PortRecord[] {
    return this.q.portsOfContainer().all(container).map(portOf);
  }

  addPort(p: PortRecord): void {
    this.q.insertPort().run(p.hostIp, p.hostPort, p.proto, p.container, p.network, p.containerIp, p.containerPort);
  }

  /**
   * Drops the endpoints (and ports) of containers that are not in `liveIds`: what a crashed
   * `run` or a container removed without `detach` left. Returns what was dropped.
   */
  reconcile(liveIds: Iterable<string>): EndpointRecord[] {
    const live = new Set(liveIds);
    return this.tx(() => {
      const dead = this.allEndpoints().filter((e) => !live.has(e.container));
      for (const e of dead) this.release(e.container, e.network);
      return dead;
    });
  }
}

/** How many host addresses a subnet offers containers (without network, gateway, broadcast). */
export function capacity(subnet: string): number {
  return subnetSize(parseSubnet(subnet)) - 3;
}

function randomHex(n: number): string {
  const bytes = new Uint8Array(n / 2);
  crypto.getRandomValues(bytes);
  return Buffer.from(bytes).toString('hex');
}
