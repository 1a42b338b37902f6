/**
 * The network records and the address allocator, in plain files under ROOT/network (no database:
 * loading SQLite cost a bridge `run` 22-30 ms of CPU, more than the rest of its network set-up):
 *
 *   networks/NAME.json      a network's record (written once, durable); NAME.active while its
 *                           bridge and rules may exist in the kernel
 *   endpoints/NAME/IP       one file per address taken on network NAME: the allocation itself
 *                           (made whole by link(2), so a name is never taken twice), holding the
 *                           endpoint's record
 *   ports/PROTO-IP-PORT     one file per published host port, holding its record
 *   lock                    the writer lock (lock.ts)
 *
 * Every change runs in tx(): the lock is held from the first read, so two processes never both
 * see an address free, and what a transaction made is undone when it throws (SQLite's rollback).
 * Readers (`ls`, `inspect`, `port`) read without the lock: records are made and removed whole.
 * A process killed inside a transaction leaves files whose container's marker names a dead
 * attaching berth (markers.ts): the next sweep (cleanupLeftovers) releases them. Endpoint and port
 * files are not fsynced: after a power loss their containers are gone and the sweep drops them;
 * a file left empty by a crash still holds its name (address) until the sweep removes it.
 * A root made by the SQLite store is imported on first open (legacy.ts).
 */
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { processAlive } from '../../image/layout-lock.js';
import { berthRoot } from '../store.js';
import { broadcastOf, contains, formatIPv4, formatSubnet, overlaps, parseIPv4, parseSubnet, subnetSize, type Subnet } from './ipv4.js';
import { readLegacy, retireLegacy } from './legacy.js';
import { withLockSync } from './lock.js';

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


/** ROOT/network, where the records live. */
export function networkDir(root?: string): string {
  return join(berthRoot(root === undefined ? {} : { root }), 'network');
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined; // gone, or left empty by a crash (the sweep removes it)
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

export class NetworkStore {
  /** ROOT/network. */
  readonly dir: string;
  defaults: NetworkDefaults;
  /** The host's routes, which the default network's subnet must not overlap when it is first recorded. */
  hostRoutes: () => string[] = () => [];
  /** Undo steps of the running transaction (outermost first), undefined outside one. */
  private journal: (() => void)[] | undefined;
  /**
   * Records read in the running transaction, until it changes one: under the lock nobody else
   * writes, and an attach on a user network reads every endpoint once per container it
   * rewrites the hosts file of (50 containers: thousands of reads without this).
   */
  private memo: Map<string, unknown> | undefined;

  private cached<T>(key: string, read: () => T): T {
    if (this.journal === undefined) return read();
    const m = (this.memo ??= new Map());
    if (!m.has(key)) m.set(key, read());
    return m.get(key) as T;
  }

  constructor(dir: string, defaults: NetworkDefaults = defaultsFromEnv()) {
    this.dir = dir;
    this.defaults = defaults;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (existsSync(join(dir, 'network.db'))) this.tx(() => this.importLegacy());
  }

  static open(root?: string, defaults?: NetworkDefaults): NetworkStore {
    return new NetworkStore(networkDir(root), defaults);
  }

  private static readonly open_ = new Map<string, NetworkStore>();
  /** The store of a root, made once per process. */
  static cached(root: string | undefined, defaults: NetworkDefaults): NetworkStore {
    const path = networkDir(root);
    let s = NetworkStore.open_.get(path);
    if (!s) NetworkStore.open_.set(path, (s = new NetworkStore(path, defaults)));
    s.defaults = defaults;
    return s;
  }

  /** Forgets the stores kept by cached (tests that move a root's files). */
  static closeShared(): void {
    NetworkStore.open_.clear();
  }

  /** Nothing to close (kept for callers of the SQLite store). */
  close(): void {}

  private importLegacy(): void {
    const old = readLegacy(this.dir);
    if (!old) return; // imported by another process meanwhile
    for (const n of old.networks) {
      if (this.network(n.name)) continue;
      const { active, ...rec } = n;
      this.create(this.networkFile(n.name), JSON.stringify(rec), true);
      if (active) this.setActive(n.name, true);
    }
    for (const e of old.endpoints) if (!existsSync(this.endpointFile(e.network, e.ip))) this.create(this.endpointFile(e.network, e.ip), JSON.stringify(e));
    for (const p of old.ports) if (!existsSync(this.portFile(p))) this.create(this.portFile(p), JSON.stringify(p));
    retireLegacy(this.dir);
  }

  /**
   * Runs `fn` holding the writer lock; when it throws, the files it made are removed and those
   * it removed are made again (nested calls undo only their own part, as SQLite's savepoints).
   */
  tx<T>(fn: () => T): T {
    return withLockSync(join(this.dir, 'lock'), () => {
      const outer = this.journal === undefined;
      const journal = (this.journal ??= []);
      const mark = journal.length;
      try {
        return fn();
      } catch (err) {
        for (let i = journal.length - 1; i >= mark; i--) {
          try {
            journal[i]!();
          } catch { /* best effort: the sweep finds what is left */ }
        }
        journal.length = mark;
        throw err;
      } finally {
        if (outer) {
          this.journal = undefined;
          this.memo = undefined;
        }
      }
    });
  }

  private networkFile(name: string): string {
    return join(this.dir, 'networks', `${name}.json`);
  }

  private endpointFile(network: string, ip: string): string {
    return join(this.dir, 'endpoints', network, ip);
  }

  private portFile(p: Pick<PortRecord, 'proto' | 'hostIp' | 'hostPort'>): string {
    return join(this.dir, 'ports', `${p.proto}-${p.hostIp}-${p.hostPort}`);
  }

  /** Makes `path` whole with `data`; EEXIST when it is there (an address or port already taken). */
  private create(path: string, data: string, durable = false): void {
    const dir = join(path, '..');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.tmp-${process.pid}`);
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, data);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.memo = undefined;
    try {
      linkSync(tmp, path);
    } finally {
      rmSync(tmp, { force: true });
    }
    this.journal?.push(() => rmSync(path, { force: true }));
  }

  /** Removes `path` (missing is fine); the transaction's undo makes it again. */
  private remove(path: string): void {
    let data: string;
    try {
      data = readFileSync(path, 'utf8');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw err;
    }
    this.memo = undefined;
    rmSync(path, { force: true });
    this.journal?.push(() => this.create(path, data));
  }

  network(name: string): NetworkRecord | undefined {
    if (!NAME_RE.test(name)) return undefined;
    return this.cached(`n:${name}`, () => {
      const r = readJson<Omit<NetworkRecord, 'active'>>(this.networkFile(name));
      return r ? { ...r, active: existsSync(join(this.dir, 'networks', `${name}.active`)) } : undefined;
    });
  }

  /** A network by name, full id or id prefix (at least 12 characters, as docker prints them). */
  findNetwork(nameOrId: string): NetworkRecord | undefined {
    const byName = this.network(nameOrId);
    if (byName) return byName;
    if (/^[0-9a-f]{12,64}$/.test(nameOrId)) return this.networks().find((n) => n.id.startsWith(nameOrId));
    return undefined;
  }

  /** A network that must exist (the default network is created on first use). */
  requireNetwork(nameOrId: string): NetworkRecord {
    const n = this.findNetwork(nameOrId) ?? (nameOrId === this.defaults.defaultName ? this.ensureDefault() : undefined);
    if (!n) throw new BerthError('NOT_FOUND', `network ${JSON.stringify(nameOrId)} not found: create it with "berth network create ${nameOrId}" (berth network ls lists them)`);
    return n;
  }

  networks(): NetworkRecord[] {
    return list(join(this.dir, 'networks'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => this.network(f.slice(0, -5)))
      .filter((n): n is NetworkRecord => n !== undefined)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
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
    const rec: Omit<NetworkRecord, 'active'> = { name: opts.name, id, bridge, subnet: formatSubnet(subnet), gateway: formatIPv4(gateway), internal: opts.internal === true, dnsEnabled: dns, created };
    this.create(this.networkFile(opts.name), JSON.stringify(rec), true);
    return { ...rec, active: false };
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
    const flag = join(this.dir, 'networks', `${name}.active`);
    if (existsSync(flag) === active) return;
    if (active) this.create(flag, '');
    else this.remove(flag);
  }

  /** Removes the record of a network no container is on (the caller removes its bridge first). */
  deleteNetwork(name: string): void {
    this.setActive(name, false);
    this.remove(this.networkFile(name));
    rmSync(join(this.dir, 'endpoints', name), { recursive: true, force: true });
    this.memo = undefined;
  }

  endpoints(network: string): EndpointRecord[] {
    if (!NAME_RE.test(network)) return [];
    const dir = join(this.dir, 'endpoints', network);
    return this.cached(`e:${network}`, () => list(dir)
      .map((ip) => readJson<EndpointRecord>(join(dir, ip)))
      .filter((e): e is EndpointRecord => e !== undefined)
      .sort((a, b) => parseIPv4(a.ip) - parseIPv4(b.ip)));
  }

  endpointsOfContainer(container: string): EndpointRecord[] {
    return this.allEndpoints().filter((e) => e.container === container).sort((a, b) => (a.iface < b.iface ? -1 : a.iface > b.iface ? 1 : 0));
  }

  allEndpoints(): EndpointRecord[] {
    return this.cached('e', () => list(join(this.dir, 'endpoints')).flatMap((n) => this.endpoints(n)));
  }

  endpoint(container: string, network: string): EndpointRecord | undefined {
    return this.endpoints(network).find((e) => e.container === container);
  }

  /**
   * Takes an address on `net` for a container: `wanted` if given (and free), else the lowest
   * free host address. Call inside tx(); the file is the allocation.
   */
  allocate(net: NetworkRecord, ep: Omit<EndpointRecord, 'network' | 'ip'>, wanted?: string): string {
    const subnet = parseSubnet(net.subnet);
    const gateway = parseIPv4(net.gateway);
    // Every name counts, a record left unreadable by a crash too.
    const used = new Set(list(join(this.dir, 'endpoints', net.name)).map((s) => parseIPv4(s)));
    if (this.endpoint(ep.container, net.name)) throw new BerthError('CONTAINER_STATE', `container ${ep.name} is already on network ${net.name}`);
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
    const rec: EndpointRecord = { container: ep.container, network: net.name, name: ep.name, aliases: ep.aliases, ip: addr, iface: ep.iface, veth: ep.veth, hostsPath: ep.hostsPath, hostsExtra: ep.hostsExtra, hostname: ep.hostname };
    this.create(this.endpointFile(net.name, addr), JSON.stringify(rec));
    return addr;
  }

  /** Rewrites an endpoint's record (its file: the address stays taken). Call inside tx(). */
  replaceEndpoint(e: EndpointRecord): void {
    const path = this.endpointFile(e.network, e.ip);
    this.remove(path);
    this.create(path, JSON.stringify(e));
  }

  /** Frees a container's address (and its published ports) on one network. */
  release(container: string, network: string): void {
    for (const p of this.portsOfContainer(container)) if (p.network === network) this.remove(this.portFile(p));
    for (const e of this.endpoints(network)) if (e.container === container) this.remove(this.endpointFile(network, e.ip));
  }

  ports(): PortRecord[] {
    const dir = join(this.dir, 'ports');
    return this.cached('p', () => list(dir)
      .map((f) => readJson<PortRecord>(join(dir, f)))
      .filter((p): p is PortRecord => p !== undefined)
      .sort((a, b) => a.hostPort - b.hostPort));
  }

  portsOfNetwork(network: string): PortRecord[] {
    return this.ports().filter((p) => p.network === network);
  }

  portsOfContainer(container: string): PortRecord[] {
    return this.ports().filter((p) => p.container === container);
  }

  addPort(p: PortRecord): void {
    try {
      this.create(this.portFile(p), JSON.stringify(p));
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') throw new BerthError('USAGE', `host port ${p.hostIp}:${p.hostPort}/${p.proto} is already published by another container`);
      throw err;
    }
  }

  /**
   * Drops what is left unreadable (files a crash left empty), the ports of endpoints that are
   * gone (a release killed half-way) and temp files of dead processes. In tx().
   */
  dropBroken(): void {
    const eps = join(this.dir, 'endpoints');
    for (const n of list(eps)) for (const ip of list(join(eps, n))) if (!readJson(join(eps, n, ip))) this.remove(join(eps, n, ip));
    const ports = join(this.dir, 'ports');
    for (const f of list(ports)) if (!readJson(join(ports, f))) this.remove(join(ports, f));
    const attached = new Set(this.allEndpoints().map((e) => `${e.container}\0${e.network}`));
    for (const p of this.ports()) if (!attached.has(`${p.container}\0${p.network}`)) this.remove(this.portFile(p));
    // Temp files of processes killed between writing and linking them (`.tmp-PID`, `lock.PID`, `lock.break.PID`).
    const dirs = [this.dir, join(this.dir, 'networks'), ports, ...list(eps).map((n) => join(eps, n))];
    for (const d of dirs) {
      let names: string[];
      try {
        names = readdirSync(d);
      } catch {
        continue;
      }
      for (const n of names) {
        const pid = /^(?:\.tmp-|lock\.(?:break\.)?)(\d+)$/.exec(n)?.[1];
        if (pid !== undefined && !processAlive(Number(pid))) rmSync(join(d, n), { force: true });
      }
    }
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
