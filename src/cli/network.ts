/**
 * `berth network create|ls|inspect|rm|prune|connect|disconnect`: bridge networks as docker's and
 * podman's `network` commands. Thin: the work is done by src/engine/network.
 */
import { BerthError } from '../base/errors.js';
import {
  attachContainer, containerPorts, createNetwork, detachContainer, inspectNetwork, listNetworks, pruneNetworks, removeNetwork, type StoreRef,
} from '../engine/network/index.js';
import { join } from 'node:path';
import { berthRoot } from '../engine/store.js';
import { flag, needPositionals, printJson, printLine, str, strs, type CommandGroup, type ParsedCommand } from './common.js';

const one = { type: 'string' } as const;
const many = { type: 'string', multiple: true } as const;

const USAGE = `Usage: berth network create [--subnet CIDR] [--gateway IP] [--internal] NAME
       berth network ls [--quiet]
       berth network inspect NAME...
       berth network rm NAME...
       berth network prune
       berth network connect [--ip IP] [--alias NAME]... NETWORK CONTAINER
       berth network disconnect NETWORK CONTAINER

Bridge networks for containers. The default network "bridge" (bridge berth0, 10.87.0.0/16;
BERTH_NETWORK_SUBNET and BERTH_NETWORK_BRIDGE change them) gives each container an address,
a route out and published ports (-p). On a network made with "create", containers also reach
each other by name and --network-alias. --internal: no route out of the host's networks, and
no host address but the gateway. User networks without --subnet get a free /24 from
10.86.0.0/16 (BERTH_NETWORK_POOL). A subnet that overlaps another network, or a route of this
host, is refused.

Options:
  --subnet CIDR      e.g. 10.86.7.0/24 (IPv4)
  --gateway IP       the bridge's address (default: the first address of the subnet)
  --internal         no outbound traffic
  --ip IP            (connect) the container's address on the network
  --alias NAME       (connect) another name the container answers to on the network
  --netns PATH       (connect, disconnect) a network namespace of your own instead of a
                     container: CONTAINER is then an id of your choosing
  --root DIR         berth's root (default: $BERTH_ROOT, /var/lib/berth as root)

Examples:
  berth network create app
  berth network create --subnet 10.92.0.0/24 --internal backend
  berth network ls --format json
  berth network inspect app
  berth network rm app`;

/** The engine's container store, loaded only by connect and disconnect. */
async function containers(p: ParsedCommand) {
  const { Engine } = await import('../engine/containers/engine.js');
  const root = str(p, 'root');
  return new Engine(berthRoot(root === undefined ? {} : { root })).store;
}

/** A running container's id, name, namespace and hosts file (or --netns PATH for a namespace of your own). */
async function containerTarget(p: ParsedCommand, ref: string): Promise<{ id: string; name: string; netnsPath: string; hostsPath?: string }> {
  const netns = str(p, 'netns');
  if (netns) return { id: ref, name: str(p, 'name') ?? ref, netnsPath: netns };
  const c = (await containers(p)).find(ref);
  if (c.state.status !== 'running' || !c.state.pid) throw new BerthError('CONTAINER_STATE', `container ${c.name} is not running: start it first (its network namespace lives as long as its process)`);
  if (c.config.network === 'host') throw new BerthError('USAGE', `container ${c.name} uses the host's network: it cannot join another network`);
  return { id: c.id, name: c.name, netnsPath: `/proc/${c.state.pid}/ns/net`, hostsPath: join(c.dir, 'hosts') };
}

/** The id of a container named or given by id prefix; a bare id when the engine knows no such container. */
async function containerId(p: ParsedCommand, ref: string): Promise<string> {
  if (str(p, 'netns')) return ref;
  try {
    return (await containers(p)).find(ref).id;
  } catch (err) {
    if (err instanceof BerthError && err.code === 'CONTAINER_NOT_FOUND') return ref;
    throw err;
  }
}

function storeRef(p: ParsedCommand): StoreRef {
  const root = str(p, 'root');
  return root === undefined ? {} : { root };
}

async function run(p: ParsedCommand): Promise<number> {
  const [sub, ...args] = p.positionals;
  const ref = storeRef(p);
  const need = (min: number, max: number) => needPositionals({ ...p, positionals: args }, min, max, USAGE);
  switch (sub) {
    case 'create': {
      need(1, 1);
      const subnet = str(p, 'subnet');
      const gateway = str(p, 'gateway');
      const net = createNetwork({ ...ref, name: args[0]!, ...(subnet ? { subnet } : {}), ...(gateway ? { gateway } : {}), internal: flag(p, 'internal') });
      if (p.json) printJson(net);
      else printLine(net.id);
      return 0;
    }
    case 'ls':
    case 'list': {
      need(0, 0);
      const nets = listNetworks(ref);
      if (p.json) printJson(nets);
      else if (flag(p, 'quiet')) for (const n of nets) printLine(n.name);
      else {
        printLine(`${'NETWORK ID'.padEnd(14)}${'NAME'.padEnd(20)}${'BRIDGE'.padEnd(10)}${'SUBNET'.padEnd(18)}INTERNAL`);
        for (const n of nets) printLine(`${n.id.slice(0, 12).padEnd(14)}${n.name.padEnd(20)}${n.bridge.padEnd(10)}${n.subnet.padEnd(18)}${n.internal}`);
      }
      return 0;
    }
    case 'inspect': {
      need(1, Infinity);
      printJson(args.map((a) => inspectNetwork(a, ref)));
      return 0;
    }
    case 'rm':
    case 'remove': {
      need(1, Infinity);
      for (const a of args) printLine(removeNetwork(a, ref).name);
      return 0;
    }
    case 'prune': {
      need(0, 0);
      const removed = pruneNetworks(ref);
      if (p.json) printJson(removed);
      else for (const r of removed) printLine(r);
      return 0;
    }
    case 'connect': {
      need(2, 2);
      const ip = str(p, 'ip');
      const target = await containerTarget(p, args[1]!);
      const a = attachContainer({ ...ref, network: args[0]!, ...target, aliases: strs(p, 'alias'), ...(ip ? { ip } : {}) });
      for (const w of a.warnings) process.stderr.write(`berth: ${w}\n`);
      if (p.json) printJson(a);
      else printLine(`${target.name} ${a.ip}/${a.prefixLength} on ${a.network}`);
      return 0;
    }
    case 'disconnect': {
      need(2, 2);
      const id = await containerId(p, args[1]!);
      detachContainer(id, { ...ref, network: args[0]! });
      return 0;
    }
    default:
      throw new BerthError('USAGE', `berth network: unknown subcommand ${JSON.stringify(sub ?? '')}\n\n${USAGE}`);
  }
}

const PORT_USAGE = `Usage: berth port CONTAINER [PRIVATE_PORT[/PROTO]]

Lists the container's published ports (-p, -P) as docker port does: PORT/PROTO -> HOST_IP:HOST_PORT.

Examples:
  berth port web
  berth port web 80/tcp
  berth port web --format json`;

async function port(p: ParsedCommand): Promise<number> {
  needPositionals(p, 1, 2, PORT_USAGE);
  const [ref, filter] = p.positionals as [string, string | undefined];
  const id = await containerId(p, ref);
  let ports = containerPorts(id, storeRef(p));
  if (filter !== undefined) {
    const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(filter);
    if (!m) throw new BerthError('USAGE', `berth port: ${JSON.stringify(filter)} is not PORT[/tcp|/udp]\n\n${PORT_USAGE}`);
    ports = ports.filter((x) => x.containerPort === Number(m[1]) && x.proto === (m[2] ?? 'tcp'));
    if (ports.length === 0) throw new BerthError('NOT_FOUND', `no public port ${filter} published for ${ref}`);
  }
  if (p.json) printJson(ports);
  else for (const x of ports) printLine(`${filter === undefined ? `${x.containerPort}/${x.proto} -> ` : ''}${x.hostIp}:${x.hostPort}`);
  return 0;
}

export const commands: CommandGroup = {
  port: {
    summary: 'List a container\'s published ports',
    usage: PORT_USAGE,
    options: { root: one },
    run: port,
  },
  network: {
    summary: 'Bridge networks: create, ls, inspect, rm, prune, connect, disconnect',
    usage: USAGE,
    options: {
      subnet: one, gateway: one, internal: { type: 'boolean' }, ip: one, alias: many, netns: one, name: one,
      quiet: { type: 'boolean', short: 'q' }, root: one,
    },
    run,
  },
};
