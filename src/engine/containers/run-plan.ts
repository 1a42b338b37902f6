/**
 * Run plans: what one `berth run` did, written down so that native/berth.c can do exactly the
 * same again without starting Node (Node's start-up alone is 70–80 ms here, as much as the
 * whole container takes).
 *
 * The native front end looks a run up by a key made of everything the run may depend on: the
 * CLI's build, the user, umask, working directory, which of stdio are terminals, the
 * arguments and the whole environment. On a miss it runs this CLI with BERTH_RUN_PLAN (the
 * plan's path) and BERTH_RUN_KEY (the key, hex) set; when the run was of a kind a plan can
 * repeat and it started, the CLI writes the plan there. On a hit, berth.c checks that nothing
 * the plan read has changed (the store's index.json, the host files copied into the container,
 * the snapshots), then writes the same files with the new container's id, name and times, and
 * speaks the same protocol to berth-monitor and berth-init. Anything it cannot check makes the
 * run ineligible (refuse()): user networks and published ports, terminals, volumes, --pull always,
 * hooks. The default bridge network is repeated with an address of the replay's own
 * (bridgeAttach).
 *
 * Two parts of a command line are left out of the key, so that one plan serves many runs: the
 * first --name's value (berth.c substitutes the name) and the arguments after the command's
 * name (command()): the plan then holds "\x01A" where the JSON files list them and an "argtail"
 * record where berth-init's plan does, which berth.c fills in; it looks a run up under its whole
 * command line first, then with its last 0, 1, 2, … arguments left out.
 *
 * The file is a sequence of records, "KEY LEN\nVALUE\n", as the init plan's (runtime/plan.ts);
 * berth.c reads them in order. Same-length substitution keeps the init plan's own lengths
 * valid: the id (64 hex), its short form (12), a generated name (berth_ + 8 hex) and ISO times
 * are replaced by values of the same length; the few values known only later (pids) are
 * "\x01X" placeholders in the records that berth.c writes itself.
 */
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fnv1a64 } from '../../base/fnv.js';
import { markersTrusted } from '../network/markers.js';
import type { PlanRecord } from '../../runtime/plan.js';
import { takenPlanRequest, type PlanRequest as Request } from './run-plan-request.js';

/** Bumped with any change of the records: berth.c refuses other versions (a miss). */
export const RUN_PLAN_VERSION = 1;

/** A run being written down; refuse() makes it one that is not repeated natively. */
export class RunPlanCapture {
  private readonly records: PlanRecord[] = [];
  private refused: string | undefined;
  /** Channel bytes to berth-init before its "pid" message. */
  private toInit: Buffer[] = [];
  private pidSeen = false;
  private readonly times = new Set<string>();

  constructor(private readonly req: Request) {
    this.records.push(['version', String(RUN_PLAN_VERSION)], ['key', req.key]);
  }

  get active(): boolean { return this.refused === undefined; }

  refuse(why: string): void {
    this.refused ??= why;
    if (process.env.BERTH_RUN_PLAN_TRACE) process.stderr.write(`berth: no run plan: ${why}\n`);
  }

  add(key: string, value: string | Buffer): void {
    if (this.active) this.records.push([key, value]);
  }

  /** An ISO time of this run (replaced by the time of the native run). */
  time(iso: string): void {
    if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(iso)) this.times.add(iso);
    else this.refuse(`a time of unexpected shape: ${iso}`);
  }

  /** Content the run copied from a host file: the native run checks it is still the same. */
  hostFile(path: string): void {
    let text: Buffer;
    try { text = readFileSync(path); } catch { text = Buffer.alloc(0); }
    this.add('check-content', Buffer.concat([Buffer.from(`${path}\0`), text]));
  }

  /** A file whose replacement (by rename) means the run would differ: device, inode, size, mtime. */
  fileIdentity(path: string): void {
    try {
      const st = statSync(path, { bigint: true });
      this.add('check-stat', `${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${path}`);
    } catch {
      this.refuse(`${path} is missing`);
    }
  }

  /** A path the run needs (a snapshot, a bind mount's source). */
  exists(path: string): void {
    this.add('check-exist', path);
  }

  /**
   * The container's directory as create left it (the root not mounted yet): its directories
   * and files, in an order that makes parents first; container.json and state.json last, as
   * ContainerStore.complete writes them.
   */
  containerDir(dir: string, id: string, name: string, created: string): void {
    this.add('id', id);
    this.add('name', name);
    this.time(created);
    const last: [string, Buffer, number][] = [];
    const walk = (rel: string): void => {
      for (const n of readdirSync(join(dir, rel)).sort()) {
        const r = rel ? `${rel}/${n}` : n;
        const st = lstatSync(join(dir, r));
        const mode = (st.mode & 0o7777).toString(8);
        if (st.isDirectory()) {
          // The overlay's own work dir (made by the mount) is not the container's.
          if (r === 'work/work') continue;
          this.add('cdir', `${mode} ${r}`);
          // The root, mounted when create had to look into it: the monitor mounts it in a
          // replay (its -C/-O/-T are there either way). What create wrote into it (the upper
          // dir) carries overlay xattrs a replay would not have: not repeated.
          if (r === 'rootfs') continue;
          if (r === 'upper' && readdirSync(join(dir, r)).length) return this.refuse('create wrote into the root');
          walk(r);
        } else if (st.isFile()) {
          const content = readFileSync(join(dir, r));
          if (r === 'container.json' || r === 'state.json') last.push([r, content, st.mode & 0o7777]);
          else this.add('cfile', Buffer.concat([Buffer.from(`${mode} ${r === 'rootfs.json' ? 1 : 0} ${r}\0`), content]));
        } else if (st.isSymbolicLink()) {
          this.add('clink', `${readlinkSync(join(dir, r))}\0${r}`);
        } else {
          this.refuse(`an unexpected file in the container's directory: ${r}`);
        }
      }
    };
    walk('');
    last.sort(([a], [b]) => (a === 'container.json' ? -1 : b === 'container.json' ? 1 : 0));
    for (const [r, content, mode] of last) this.add('cfile', Buffer.concat([Buffer.from(`${mode.toString(8)} ${r === 'container.json' ? 1 : 0} ${r}\0`), content]));
  }

  /**
   * The attach to the default bridge network (no published port, no DNS, no --ip): berth.c takes
   * an address itself, under the network's lock, as NetworkStore.allocate does, and names the
   * veth as vethName does. The plan holds the network's record and what the attach wrote (the
   * endpoint's record, the hosts file, resolv.conf) with "\x01I" for the address, "\x01V" for
   * the veth and "\x01N" for the name; it is followed only while the network's record, its
   * `.active` mark, its bridge and the markers' boot id are as they were (so an attach would
   * neither make the bridge nor write rules).
   */
  bridgeAttach(a: { netDir: string; network: string; ip: string; prefixLength: number; veth: string; iface: string; hosts: string; resolvConf: string; warnings: string[]; ports: unknown[]; dnsServer?: string }): void {
    if (!this.active) return;
    // (Untrusted markers give the next command's sweep work that a replay, which sweeps nothing, would skip.)
    if (!markersTrusted(a.netDir)) return this.refuse('the network\'s markers are not checked yet in this boot');
    if (a.warnings.length || a.ports.length || a.dnsServer !== undefined || a.iface !== 'eth0') return this.refuse('a network attach with ports, a name server or warnings');
    const netFile = join(a.netDir, 'networks', `${a.network}.json`);
    let net: { subnet?: unknown; gateway?: unknown; bridge?: unknown; internal?: unknown; dnsEnabled?: unknown };
    let endpoint: string;
    try {
      net = JSON.parse(readFileSync(netFile, 'utf8')) as typeof net;
      endpoint = readFileSync(join(a.netDir, 'endpoints', a.network, a.ip), 'utf8');
    } catch {
      return this.refuse('the network\'s records cannot be read');
    }
    if (net.dnsEnabled !== false || net.internal !== false || typeof net.subnet !== 'string' || typeof net.gateway !== 'string' || typeof net.bridge !== 'string') return this.refuse('a user network');
    const ep = JSON.parse(endpoint) as { name?: unknown; hostname?: unknown };
    if (typeof ep.name !== 'string' || typeof ep.hostname !== 'string' || ep.name === ep.hostname) return this.refuse('a hostname that is the name');
    // Each exactly once, or not at all: a replay would put the new values in the wrong places.
    const once = (text: string | undefined, from: string, to: string) => (text !== undefined && text.split(from).length === 2 ? text.replace(from, () => to) : undefined);
    let template = once(endpoint, `"ip":"${a.ip}"`, '"ip":"\x01I"');
    template = once(template, `"veth":"${a.veth}"`, '"veth":"\x01V"');
    template = once(template, `"name":${JSON.stringify(ep.name)}`, '"name":"\x01N"');
    const hosts = once(a.hosts, `\n${a.ip}\t${ep.hostname} ${ep.name}\n`, `\n\x01I\t${ep.hostname} \x01N\n`);
    if (template === undefined || hosts === undefined || hosts.includes(a.ip) || template.includes(a.ip)) return this.refuse('the address or the name in unexpected places');
    this.add('net-dir', a.netDir);
    this.add('net-name', a.network);
    this.add('net-subnet', net.subnet);
    this.add('net-gateway', net.gateway);
    this.add('net-ip', `${a.ip}/${a.prefixLength}`);
    this.add('net-veth', a.veth);
    this.add('net-endpoint', template);
    this.add('net-hosts', hosts);
    this.add('net-resolv', a.resolvConf);
    this.fileIdentity(netFile);
    this.exists(join(a.netDir, 'networks', `${a.network}.active`));
    this.exists(`/sys/class/net/${net.bridge}`);
    this.hostFile(join(a.netDir, 'attached', '.boot'));
  }

  cgroupWrite(path: string, value: string): void {
    this.add('cgwrite', `${path}\0${value}`);
  }

  /**
   * The command (its name and arguments, the end of the command line): its arguments are left out
   * of the plan's key and filled in by berth.c (see the header). Without a command (the image's
   * CMD), the plan is for the whole command line.
   */
  command(cmd: string[]): void {
    const argv = process.argv.slice(2);
    if (cmd.length === 0) return;
    if (argv.length < cmd.length + 2 || argv.slice(-cmd.length).some((a, i) => a !== cmd[i])) return this.refuse('the command is not the end of the command line');
    this.cmd = cmd;
  }
  private cmd: string[] = [];

  /** Bytes written to berth-init's channel (those before its "pid" are replayed as they are). */
  sentToInit(data: Buffer): void {
    if (!this.pidSeen) this.toInit.push(data);
  }

  /** berth-init reported the container's pid: what follows is replayed by berth.c's own steps. */
  pidReported(): void {
    if (this.pidSeen) return;
    this.pidSeen = true;
    this.add('init', Buffer.concat(this.toInit));
    this.toInit = [];
  }

  /**
   * The runtime's record (runtime/state.ts writeRecord): its state.json and state.txt with the
   * container's pid and start time as placeholders.
   */
  runtimeRecord(json: string, text: string, pid: number, startTime: number): void {
    const pidJson = `"pid":${pid},"startTime":${startTime},`;
    const pidText = `pid ${pid}\nstarttime ${startTime}\n`;
    if (json.split(pidJson).length !== 2 || !text.startsWith(pidText)) return this.refuse('the runtime record has an unexpected shape');
    this.add('rt-json', json.replace(pidJson, '"pid":\x01P,"startTime":\x01T,'));
    this.add('rt-text', `pid \x01P\nstarttime \x01T\n${text.slice(pidText.length)}`);
  }

  /**
   * Writes the plan (atomically; nothing when refused). A run that cannot be repeated leaves
   * the plan that may be there alone: it is for another key.
   */
  async save(): Promise<void> {
    if (!this.active) return;
    // (Loaded by create already; not by the commands that only import this module.)
    const { encodeRecords } = await import('../../runtime/plan.js');
    if (!this.pidSeen) return this.refuse('berth-init was not driven by this process');
    for (const t of this.times) this.records.push(['time', t]);
    this.records.push(['end', '']);
    let path = this.req.path;
    if (this.cmd.length) {
      const key = tailKey(this.req.key, this.cmd.length - 1);
      const made = key && withTail(this.records, this.cmd, key, encodeRecords);
      if (!made) return this.refuse('the command\'s arguments are not where a plan can fill them in');
      this.records.splice(0, this.records.length, ...made);
      path = join(dirname(path), `${fnv1a64(key!)}.plan`);
    }
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const tmp = `${path}.tmp-${process.pid}`;
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, encodeRecords(this.records));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      prunePlans(dirname(path));
    } catch (err) {
      // A plan is only a shortcut: the run itself went fine.
      if (process.env.BERTH_RUN_PLAN_TRACE) process.stderr.write(`berth: cannot write the run plan ${path}: ${(err as Error).message}\n`);
    }
  }
}


/**
 * The key with its last `count` arguments left out: berth.c's key is "HEADER\0ARG...\0\0ENV...",
 * and the left-out arguments (none, or any number) become one "\x01TAIL" entry.
 */
export function tailKey(key: Buffer, count: number, argc = process.argv.length - 2): Buffer | undefined {
  const parts = key.toString('latin1').split('\0');
  // (An argument may be empty: the end of the arguments is where their count says.)
  const end = 1 + argc;
  if (parts[end] !== '' || argc <= count) return undefined;
  parts.splice(end - count, count, '\x01TAIL');
  return Buffer.from(parts.join('\0'), 'latin1');
}

/**
 * The records with the command's arguments as a place to fill in: "\x01A" after its name in the
 * JSON lists that end with the command (the runtime config's process.args, the record's args
 * and cmd), and one "argtail" record after its name's "arg" record in berth-init's plan.
 * Undefined when they are not found exactly there.
 */
function withTail(records: PlanRecord[], cmd: string[], key: Buffer, encode: (r: PlanRecord[]) => Buffer): PlanRecord[] | undefined {
  const [name] = cmd as [string, ...string[]];
  const json = Buffer.from(JSON.stringify(cmd).slice(1));
  const jsonTemplate = Buffer.from(`${JSON.stringify(name)}\x01A]`);
  const argRecords = encode(cmd.map((a) => ['arg', a]));
  const argTemplate = Buffer.concat([encode([['arg', name]]), Buffer.from('argtail 0\n\n')]);
  const want: Record<string, number> = { 'bundle/config.json': 1, 'container.json': 2 };
  const out: PlanRecord[] = [];
  for (const [k, v] of records) {
    if (k === 'key') { out.push([k, key]); continue; }
    const b = typeof v === 'string' ? Buffer.from(v) : v;
    if (k === 'cfile') {
      const rel = b.toString('latin1', 0, b.indexOf(0)).split(' ')[2]!;
      if (rel in want) {
        const parts: Buffer[] = [];
        let from = 0;
        for (let at; (at = b.indexOf(json, from)) >= 0; from = at + json.length) parts.push(b.subarray(from, at), jsonTemplate);
        if (parts.length / 2 !== want[rel]) return undefined;
        delete want[rel];
        out.push([k, Buffer.concat([...parts, b.subarray(from)])]);
        continue;
      }
    }
    if (k === 'init') {
      const at = b.indexOf(argRecords);
      // Once, and as whole records (the one before ends with a newline).
      if (at <= 0 || b.indexOf(argRecords, at + 1) >= 0 || b[at - 1] !== 0x0a) return undefined;
      out.push([k, Buffer.concat([b.subarray(0, at), argTemplate, b.subarray(at + argRecords.length)])]);
      continue;
    }
    out.push([k, v]);
  }
  if (Object.keys(want).length) return undefined;
  out.splice(out.length - 1, 0, ['tail', '1']);
  return out;
}

/** How many plans a root keeps (each ~30 KB): the most recently written. */
export const PLANS_KEPT = 64;

/** Removes all but the PLANS_KEPT newest plans (one run per distinct command line each). */
function prunePlans(dir: string): void {
  const names = readdirSync(dir).filter((n) => n.endsWith('.plan'));
  if (names.length <= PLANS_KEPT) return;
  const aged = names.map((n) => {
    try { return { n, t: statSync(join(dir, n)).mtimeMs }; } catch { return { n, t: 0 }; }
  }).sort((a, b) => b.t - a.t);
  for (const { n } of aged.slice(PLANS_KEPT)) rmSync(join(dir, n), { force: true });
}

let current: RunPlanCapture | undefined;

/** Starts writing this run down, when the native front end asked for a plan. */
export function beginRunPlan(): RunPlanCapture | undefined {
  const req = takenPlanRequest();
  if (req) current = new RunPlanCapture(req);
  return current;
}

/** The run being written down, if any (and not refused). */
export function runPlan(): RunPlanCapture | undefined {
  return current?.active ? current : undefined;
}
