/**
 * Container networking: bridge networks, published ports, names that resolve. The engine calls:
 *
 * ```ts
 * import { attachContainer, detachContainer, cleanupLeftovers, parsePublishAll } from './network/index.js';
 * // after the container's network namespace exists (its init process is PID), before it starts:
 * const a = attachContainer({
 *   id, name, hostname, aliases: ['web'],           // --network-alias
 *   network: 'bridge',                              // or a user network's name (--network NAME)
 *   netnsPath: `/proc/${pid}/ns/net`,               // or /run/netns/NAME
 *   publish: parsePublishAll(['127.0.0.1:8080:80']),// -p; publishExposed(config.ExposedPorts) for -P
 *   ip: '10.86.0.9',                                // --ip (optional)
 *   dns, dnsSearch, dnsOptions, addHosts,           // --dns, --dns-search, --dns-option, --add-host
 *   hostsPath: `${containerDir}/hosts`,             // berth writes it and keeps it up to date
 *   root,                                           // the berth root (--root), else BERTH_ROOT
 * });
 * // a.ip, a.gateway, a.ports (host ports picked), a.hosts and a.resolvConf (file contents):
 * // hostsPath is already written; write a.resolvConf with rewriteInPlace when the file is already
 * // bind-mounted (a rename would leave the container reading the old file);
 * // print a.warnings (e.g. the network's name server could not listen).
 * detachContainer(id, { root, namespaceGone: true });// after the container exited, and before a
 *                                                  // restart (all networks; { network } for
 *                                                  // network disconnect, without namespaceGone)
 * cleanupLeftovers(liveIds, { root });              // in every command's sweep: anything of a
 *                                                  // container not in liveIds (--rm by the monitor,
 *                                                  // kill -9); no exec when there is nothing to do
 * ```
 * and `berth network …` uses createNetwork, listNetworks, inspectNetwork, removeNetwork,
 * pruneNetworks. Everything is synchronous (one transaction holds the records' lock while the
 * links and rules are made, so concurrent `run`s never interleave their changes); the records
 * are files (store.ts), no database. An attach costs one exec (native/berth-net, rtnetlink),
 * plus one `nft` exec when ports are published or the bridge is new; the engine's own containers
 * use prepareAttach instead, and berth-init plugs the veth as it clones the container (no exec
 * at all). A detach with namespaceGone execs nothing (the kernel deletes the veth with the
 * namespace). Every command's sweep asks cleanupNeededFor first, which reads
 * ROOT/network/attached (one marker per attached container, markers.ts) instead of the records.
 *
 * Names on user networks resolve two ways: every container's /etc/hosts lists the others (kept
 * up to date in place), and the network's name server (native/berth-dns on the gateway, one per
 * network in use) answers them for tools that ask DNS directly and relays other names.
 *
 * Needs root, iproute2 (`ip`, for bridges), nftables (`nft`) and native/build/berth-net and
 * berth-dns (make -C native).
 */
import { existsSync } from 'node:fs';
import { BerthError } from '../../base/errors.js';
import { hostsContent, resolvConfContent, rewriteInPlace, addHostLine, type HostsPeer } from './hosts.js';
import { parseIPv4, parseSubnet } from './ipv4.js';
import { bridgePorts, deleteLinks, hostLinks, hostRoutes, linkExists, makeBridge, plugVeth, vethName, type BridgeSpec } from './link.js';
import { networkRules, nftApply, removeNetworkRules } from './nft.js';
import { bindPorts, type PortMapping } from './ports.js';
import { ensureResponder, hostUpstreams, stopResponder, writeNames } from './dns.js';
import { cleanupNeeded, isStale, type Marker, markAttached, markPending, readMarker, readMarkers, setMarkers, surelyUnattached, unmark, validateMarkers, writeMarker } from './markers.js';
import { legacyDbPath } from './legacy.js';
import { defaultsFromEnv, networkDir, NetworkStore, type EndpointRecord, type NetworkDefaults, type NetworkRecord, type PortRecord } from './store.js';

export { parsePublish, parsePublishAll, publishExposed, type PortMapping } from './ports.js';
export { resolvConfContent, hostsContent, rewriteInPlace } from './hosts.js';
export { NetworkStore, DEFAULTS, type NetworkRecord, type EndpointRecord, type PortRecord, type NetworkDefaults } from './store.js';

export interface StoreRef {
  /** The berth root (defaults to BERTH_ROOT, then /var/lib/berth). */
  root?: string;
  defaults?: NetworkDefaults;
  /** Where user networks' name servers relay names they do not know (default: the host's name servers). */
  dnsUpstreams?: string[];
}

export interface AttachOptions extends StoreRef {
  id: string;
  name: string;
  hostname?: string;
  aliases?: string[];
  /** Network name or id; the default network (`bridge`, bridge berth0, 10.87.0.0/16) when left out. */
  network?: string;
  netnsPath: string;
  publish?: PortMapping[];
  ip?: string;
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  addHosts?: string[];
  hostsPath?: string;
}

export interface Attachment {
  network: string;
  ip: string;
  prefixLength: number;
  gateway: string;
  /** Interface name inside the container. */
  iface: string;
  /** Host end of the veth pair. */
  veth: string;
  ports: PortRecord[];
  /** The container's /etc/hosts content (also written to hostsPath when given). */
  hosts: string;
  resolvConf: string;
  /** The network's name server (its gateway) on a user network, when it runs. */
  dnsServer?: string;
  /** What did not work but did not stop the attach (e.g. the name server could not listen): print them. */
  warnings: string[];
}

function withStore<T>(ref: StoreRef, fn: (s: NetworkStore) => T): T {
  const store = NetworkStore.cached(ref.root, ref.defaults ?? defaultsFromEnv());
  store.hostRoutes = () => hostRoutes([store.defaults.defaultBridge]);
  return fn(store);
}

function bridgeSpec(net: NetworkRecord): BridgeSpec {
  return { bridge: net.bridge, subnet: parseSubnet(net.subnet), gateway: parseIPv4(net.gateway), internal: net.internal };
}

function applyRules(store: NetworkStore, net: NetworkRecord): void {
  nftApply(networkRules(net, store.portsOfNetwork(net.name)), `setting the rules of network ${net.name}`);
}

/** The /etc/hosts of one container, from the records of every network it is on. */
function hostsOf(store: NetworkStore, container: string): string {
  const eps = store.endpointsOfContainer(container);
  if (eps.length === 0) return hostsContent([], [], []);
  const self: HostsPeer[] = eps.map((e) => ({ ip: e.ip, names: [e.hostname, e.name] }));
  const peers: HostsPeer[] = [];
  for (const e of eps) {
    const net = store.network(e.network);
    if (!net?.dnsEnabled) continue;
    for (const p of store.endpoints(e.network)) if (p.container !== container) peers.push({ ip: p.ip, names: [p.name, ...p.aliases, p.container.slice(0, 12)] });
  }
  return hostsContent(self, eps[0]!.hostsExtra, peers);
}

/** Rewrites the hosts files of the containers on `network` (but `except`), which may have changed. */
function refreshHosts(store: NetworkStore, network: string, except?: string): void {
  for (const e of store.endpoints(network)) {
    if (e.container === except || !e.hostsPath) continue;
    try {
      rewriteInPlace(e.hostsPath, hostsOf(store, e.container));
    } catch {
      // A container whose files are gone is being removed; its own detach comes.
    }
  }
}

/** Connects a container's network namespace to a network (docker's run --network and network connect). */
export function attachContainer(opts: AttachOptions): Attachment {
  return attachOrPrepare(opts, opts.netnsPath);
}

/** What berth-init needs to plug a namespace it clones (runtime/plan.ts InitPlanInput.network). */
export interface PlugSpec {
  bridge: string;
  veth: string;
  iface: string;
  cidr: string;
  gateway?: string;
}

/**
 * An attach without the veth: records, bridge, rules and hosts file, for a namespace that does
 * not exist yet; the engine's berth-init plugs it as it clones the container (`plug`), then the
 * engine calls attachedAt with the namespace's path. Until then the container's marker names
 * this process: if it dies, the next sweep undoes the attach. detachContainer undoes it too.
 */
export function prepareAttach(opts: Omit<AttachOptions, 'netnsPath'>): Attachment & { plug: PlugSpec } {
  const a = attachOrPrepare(opts, undefined);
  return { ...a, plug: { bridge: a.bridge, veth: a.veth, iface: a.iface, cidr: `${a.ip}/${a.prefixLength}`, ...(a.defaultRoute ? { gateway: a.gateway } : {}) } };
}

/** After a prepared attach was plugged: `netnsPath`'s holder (/proc/PID/ns/net) keeps the endpoints alive. */
export function attachedAt(id: string, netnsPath: string, ref: StoreRef = {}): void {
  markAttached(networkDir(ref.root), id, netnsPath);
}

function attachOrPrepare(opts: Omit<AttachOptions, 'netnsPath'>, netnsPath: string | undefined): Attachment & { bridge: string; defaultRoute: boolean } {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(opts.id)) throw new BerthError('USAGE', `container id ${JSON.stringify(opts.id)} is invalid`);
  return withStore(opts, (store) => {
    const before = readMarker(store.dir, opts.id);
    let a;
    try {
      a = attachInTx(store, opts, netnsPath);
    } catch (err) {
      setMarkers(store.dir, opts.id, before);
      throw err;
    }
    if (netnsPath !== undefined) markAttached(store.dir, opts.id, netnsPath);
    const useResponder = a.dnsServer !== undefined && !opts.dns?.length;
    return { ...a, resolvConf: resolvConfContent(useResponder ? { ...opts, dns: [a.dnsServer!] } : opts) };
  });
}

/**
 * The records, links and rules of an attach, in one transaction; the marker says `pending` while
 * the kernel changes. Without `netnsPath` the veth is left to the caller (prepareAttach).
 */
function attachInTx(store: NetworkStore, opts: Omit<AttachOptions, 'netnsPath'>, netnsPath: string | undefined): Omit<Attachment, 'resolvConf'> & { bridge: string; defaultRoute: boolean } {
  return store.tx(() => {
    const net = store.requireNetwork(opts.network ?? store.defaults.defaultName);
    if (store.endpoint(opts.id, net.name)) throw new BerthError('CONTAINER_STATE', `container ${opts.name} is already on network ${net.name}`);
    if (net.internal && opts.publish?.length) {
      throw new BerthError('USAGE', `network ${net.name} is internal: ports cannot be published from it (leave out -p/-P or use another network)`);
    }
    const mine = store.endpointsOfContainer(opts.id);
    let n = 0;
    while (mine.some((e) => e.iface === `eth${n}`)) n++;
    const iface = `eth${n}`;
    const veth = vethName(opts.id, net.name);
    const hostsExtra = (opts.addHosts ?? []).map((h) => addHostLine(h, net.gateway));
    const hostname = opts.hostname ?? opts.id.slice(0, 12);
    const ip = store.allocate(net, { container: opts.id, name: opts.name, aliases: opts.aliases ?? [], iface, veth, hostsPath: opts.hostsPath ?? null, hostsExtra, hostname }, opts.ip);
    const bound = bindPorts(opts.publish ?? [], store.ports());
    const ports: PortRecord[] = bound.map((b) => ({ ...b, container: opts.id, network: net.name, containerIp: ip }));
    for (const p of ports) store.addPort(p);
    const b = bridgeSpec(net);
    const newBridge = !linkExists(net.bridge);
    // Rules too when the bridge is there but the records do not say so (an attach killed before its commit).
    const rules = newBridge || !net.active || ports.length > 0;
    if (!net.active) store.setActive(net.name, true);
    markPending(store.dir, opts.id);
    const defaultRoute = n === 0 && !net.internal;
    if (netnsPath !== undefined) plugVeth(b, { veth, netnsPath, iface, ip: parseIPv4(ip), defaultRoute }, newBridge);
    else if (newBridge) makeBridge(b);
    try {
      if (rules) applyRules(store, net);
      const hosts = hostsOf(store, opts.id);
      if (opts.hostsPath) rewriteInPlace(opts.hostsPath, hosts);
      const warnings: string[] = [];
      let dnsServer: string | undefined;
      if (net.dnsEnabled) {
        refreshHosts(store, net.name, opts.id);
        const dns = syncResponder(store, net, opts);
        if (dns === true) dnsServer = net.gateway;
        else if (dns) warnings.push(`${dns}; names on network ${net.name} still resolve through /etc/hosts`);
      }
      return { network: net.name, ip, prefixLength: b.subnet.prefix, gateway: net.gateway, iface, veth, ports, hosts, warnings, bridge: net.bridge, defaultRoute, ...(dnsServer ? { dnsServer } : {}) };
    } catch (err) {
      deleteLinks([veth]);
      throw err;
    }
  });
}

export interface DetachOptions extends StoreRef {
  /** One network only (network disconnect); all of the container's networks when left out. */
  network?: string;
  /**
   * The container's network namespace is gone (all its processes exited and nothing holds it):
   * the kernel deletes the veth pairs with it, in the background, so they are not deleted here
   * (that waits ~10 ms per pair for RCU). A pair that outlives it is found by cleanupLeftovers.
   */
  namespaceGone?: boolean;
}

/** Disconnects a container from one network, or from all. Missing links and records are fine. */
export function detachContainer(id: string, opts: DetachOptions = {}): void {
  // No marker: no endpoints, and no records to read.
  if (opts.network === undefined && surelyUnattached(networkDir(opts.root), id)) return;
  withStore(opts, (store) => {
    const left = store.tx(() => {
      const eps = store.endpointsOfContainer(id).filter((e) => opts.network === undefined || e.network === opts.network || store.findNetwork(opts.network)?.name === e.network);
      if (opts.network !== undefined && eps.length === 0) {
        const net = store.requireNetwork(opts.network);
        throw new BerthError('CONTAINER_STATE', `container ${id} is not on network ${net.name}`);
      }
      dropEndpoints(store, eps, opts, opts.namespaceGone === true);
      // The container keeps its other networks: its hosts file follows.
      const left = store.endpointsOfContainer(id)[0];
      if (left?.hostsPath) rewriteInPlace(left.hostsPath, hostsOf(store, id));
      return left;
    });
    if (!left) unmark(store.dir, id);
  });
}

/**
 * Brings a user network's name server in line with its records: names written and the responder
 * running while containers are on it, stopped when none are. Returns true when it runs, false
 * when stopped, or the reason it could not start.
 */
function syncResponder(store: NetworkStore, net: NetworkRecord, ref: StoreRef): boolean | string {
  const eps = store.endpoints(net.name);
  if (eps.length === 0) {
    stopResponder(store.dir, net);
    return false;
  }
  writeNames(store.dir, net, eps);
  try {
    ensureResponder(store.dir, net, ref.dnsUpstreams ?? hostUpstreams());
    return true;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Releases endpoints, deletes their veths, rewrites rules and hosts files that change. In a tx. */
function dropEndpoints(store: NetworkStore, eps: EndpointRecord[], ref: StoreRef, keepLinks = false): void {
  const hadPorts = new Set(eps.filter((e) => store.portsOfContainer(e.container).some((p) => p.network === e.network)).map((e) => e.network));
  for (const e of eps) store.release(e.container, e.network);
  if (!keepLinks) deleteLinks(eps.map((e) => e.veth));
  for (const name of new Set(eps.map((e) => e.network))) {
    const net = store.network(name);
    if (!net) continue;
    if (hadPorts.has(name) && linkExists(net.bridge)) applyRules(store, net);
    if (net.dnsEnabled) {
      refreshHosts(store, name);
      syncResponder(store, net, ref);
    }
  }
}

/**
 * After a crash (`kill -9` mid-run, a container removed by its monitor, a host reboot): frees
 * what belongs to containers not in `liveIds` (their published ports' rules go too), deletes
 * veths on berth's bridges that no record explains, drops the rules of bridges that vanished,
 * and restarts or stops name servers. Cheap when there is nothing to do (no exec): the engine can
 * call it from every command's sweep. `repairRules` also rewrites every network's rules from
 * the records (one nft exec per network: for `berth system check`-like commands). Returns the
 * container ids that were cleaned.
 */
export function cleanupLeftovers(liveIds: Iterable<string>, opts: StoreRef & { repairRules?: boolean } = {}): string[] {
  return withStore(opts, (store) =>
    store.tx(() => {
      const live = new Set(liveIds);
      // An attach killed mid-way may have written rules its rolled-back records do not explain.
      const markers = readMarkers(store.dir);
      const repairRules = opts.repairRules || [...markers.values()].flat().some((m) => m.pending && isStale(m));
      store.dropBroken();
      // A container whose holder or attaching berth lives keeps its endpoints even while its
      // record says otherwise (a `restart` attaching again while this sweep runs); one whose only
      // markers are of attaching berths that died lost its attach half-way: it is undone.
      const held = new Set<string>();
      const interrupted = new Set<string>();
      for (const [id, ms] of markers) {
        if (ms.some((m) => m.pid !== 0 && !isStale(m))) held.add(id);
        else if (ms.length && ms.every((m) => m.pending)) interrupted.add(id);
      }
      const dead = store.allEndpoints().filter((e) => (!live.has(e.container) && !held.has(e.container)) || interrupted.has(e.container));
      dropEndpoints(store, dead, opts);
      const known = new Set(store.allEndpoints().map((e) => e.veth));
      // A first attach killed after it made the bridge rolled back its records (even the default
      // network's, recorded on first use) but not the kernel's: such a bridge is taken on again.
      if (!store.network(store.defaults.defaultName) && linkExists(store.defaults.defaultBridge)) store.ensureDefault();
      for (const net of store.networks()) {
        if (!net.active) {
          if (!linkExists(net.bridge)) continue;
          store.setActive(net.name, true);
          applyRules(store, net);
        }
        if (!linkExists(net.bridge)) {
          // After a reboot: the bridge is made again by the next attach; stale rules go now.
          nftApply(removeNetworkRules(net), `removing the rules of network ${net.name}`);
          store.setActive(net.name, false);
          continue;
        }
        deleteLinks(bridgePorts(net.bridge).filter((p) => /^vb[0-9a-f]{12}$/.test(p) && !known.has(p)));
        if (repairRules) applyRules(store, net);
        if (net.dnsEnabled) syncResponder(store, net, opts);
      }
      syncMarkers(store, markers);
      return [...new Set(dead.map((e) => e.container))];
    }),
  );
}

/**
 * Makes the markers say what the records say (in the cleanup's transaction: attaches write
 * theirs only while they hold the lock, or after their commit), then trusts them for this boot.
 * A container with endpoints but no marker (a root from before the markers, an attach killed
 * between its commit and its marker) gets one with no holder: only its detach removes it.
 */
function syncMarkers(store: NetworkStore, markers: Map<string, Marker[]>): void {
  const attached = new Set(store.allEndpoints().map((e) => e.container));
  for (const [id, ms] of markers) {
    if (!attached.has(id)) unmark(store.dir, id);
    else if (ms.some((m) => m.pending && isStale(m))) {
      const kept = ms.filter((m) => !(m.pending && isStale(m)));
      setMarkers(store.dir, id, kept.length ? kept : [{ pending: false, pid: 0, start: 0 }]);
    }
  }
  for (const id of attached) if (!markers.has(id)) writeMarker(store.dir, id, { pending: false, pid: 0, start: 0 });
  validateMarkers(store.dir);
}

/**
 * Whether cleanupLeftovers has anything to do, without reading the records: a container's
 * namespace holder or an attaching berth died, a marker without a holder names a container
 * that `exists` says is gone, the host rebooted, markers are not kept yet, or a root of the
 * SQLite store waits to be imported.
 */
export function cleanupNeededFor(root?: string, exists?: (id: string) => boolean): boolean {
  const dir = networkDir(root);
  return existsSync(legacyDbPath(dir)) || (existsSync(dir) && cleanupNeeded(dir, exists));
}

export interface CreateOptions extends StoreRef {
  name: string;
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  bridge?: string;
}

/** `berth network create`: records the network; the bridge is made when a container first joins. */
export function createNetwork(opts: CreateOptions): NetworkRecord {
  return withStore(opts, (store) =>
    store.createNetwork({
      name: opts.name,
      ...(opts.subnet !== undefined ? { subnet: opts.subnet } : {}),
      ...(opts.gateway !== undefined ? { gateway: opts.gateway } : {}),
      ...(opts.internal ? { internal: true } : {}),
      ...(opts.bridge !== undefined ? { bridge: opts.bridge } : {}),
      hostRoutes: hostRoutes(),
      hostLinks: hostLinks(),
    }),
  );
}

export interface NetworkInfo extends NetworkRecord {
  containers: { id: string; name: string; ip: string; aliases: string[]; iface: string }[];
  ports: PortRecord[];
}

/** Every network (the default one included, created in the records on first use). */
export function listNetworks(opts: StoreRef = {}): NetworkRecord[] {
  return withStore(opts, (store) => {
    store.ensureDefault();
    return store.networks();
  });
}

export function inspectNetwork(nameOrId: string, opts: StoreRef = {}): NetworkInfo {
  return withStore(opts, (store) => {
    const net = store.requireNetwork(nameOrId);
    return {
      ...net,
      containers: store.endpoints(net.name).map((e) => ({ id: e.container, name: e.name, ip: e.ip, aliases: e.aliases, iface: e.iface })),
      ports: store.portsOfNetwork(net.name),
    };
  });
}

/**
 * docker rename: the container's endpoints carry its new name, which the others on its user
 * networks resolve: their hosts files, its own and the networks' name servers follow.
 */
export function renameEndpoints(id: string, name: string, opts: StoreRef = {}): void {
  withStore(opts, (store) => store.tx(() => {
    const eps = store.endpointsOfContainer(id);
    for (const e of eps) store.replaceEndpoint({ ...e, name });
    if (eps[0]?.hostsPath) {
      try { rewriteInPlace(eps[0].hostsPath, hostsOf(store, id)); } catch { /* its files are gone: being removed */ }
    }
    for (const e of eps) {
      const net = store.network(e.network);
      if (!net?.dnsEnabled) continue;
      refreshHosts(store, net.name, id);
      syncResponder(store, net, opts);
    }
  }));
}

/** A container's endpoints with what inspect shows of their networks (docker's NetworkSettings.Networks). */
export function containerEndpoints(id: string, opts: StoreRef = {}): { network: string; networkId: string; ip: string; prefixLength: number; gateway: string; aliases: string[] }[] {
  return withStore(opts, (store) => store.endpointsOfContainer(id).flatMap((e) => {
    const net = store.network(e.network);
    return net ? [{ network: e.network, networkId: net.id, ip: e.ip, prefixLength: parseSubnet(net.subnet).prefix, gateway: net.gateway, aliases: e.aliases }] : [];
  }));
}

/** The published ports of a container (`berth port`). */
export function containerPorts(id: string, opts: StoreRef = {}): PortRecord[] {
  return withStore(opts, (store) => store.portsOfContainer(id));
}

/** `berth network rm`: refuses a network containers are on, and the default network. */
export function removeNetwork(nameOrId: string, opts: StoreRef = {}): NetworkRecord {
  return withStore(opts, (store) =>
    store.tx(() => {
      const net = store.requireNetwork(nameOrId);
      if (net.name === store.defaults.defaultName) throw new BerthError('USAGE', `network ${net.name} is the default network and cannot be removed`);
      const users = store.endpoints(net.name);
      if (users.length) {
        throw new BerthError('CONTAINER_STATE', `network ${net.name} is in use by ${users.map((u) => u.name).join(', ')}: stop or disconnect them first (berth network disconnect ${net.name} CONTAINER)`);
      }
      teardownNetwork(store, net);
      store.deleteNetwork(net.name);
      return net;
    }),
  );
}

/** Deletes a network's bridge and chains, if it ever had them (recorded networks never used have none). */
function teardownNetwork(store: NetworkStore, net: NetworkRecord): void {
  if (net.dnsEnabled) stopResponder(store.dir, net);
  if (!net.active && !linkExists(net.bridge)) return;
  deleteLinks([net.bridge]);
  nftApply(removeNetworkRules(net), `removing the rules of network ${net.name}`);
  store.setActive(net.name, false);
}

/** `berth network prune`: removes every user network no container is on. Returns their names. */
export function pruneNetworks(opts: StoreRef = {}): string[] {
  return withStore(opts, (store) =>
    store.tx(() => {
      const removed: string[] = [];
      for (const net of store.networks()) {
        if (net.name === store.defaults.defaultName || store.endpoints(net.name).length) continue;
        teardownNetwork(store, net);
        store.deleteNetwork(net.name);
        removed.push(net.name);
      }
      return removed;
    }),
  );
}

/**
 * Removes the kernel side of the default network too (its bridge and rules) when no container
 * is on it: for tests and `berth system reset`-like commands.
 */
export function removeDefaultBridge(opts: StoreRef = {}): void {
  withStore(opts, (store) =>
    store.tx(() => {
      const net = store.network(store.defaults.defaultName);
      if (!net || store.endpoints(net.name).length) return;
      teardownNetwork(store, net);
    }),
  );
}
