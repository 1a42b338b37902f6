/**
 * Local image, volume and system commands, as docker names them: `images`, `rmi`,
 * `image ls|rm|prune|inspect|tag`, `system df|prune|check`, `volume create|ls|rm|inspect|prune`,
 * and the local forms of `inspect` and `tag` (client.ts hands them here). Thin: the work is in
 * src/engine (images.ts, volumes.ts, system.ts).
 */
import { BerthError } from '../base/errors.js';
import { formatBytes } from '../content/progress.js';
import { LocalImages, shortId, type LocalImage } from '../engine/images.js';
import { berthRoot } from '../engine/store.js';
import { checkSystem, diskUsageReport, type DfRow } from '../engine/system.js';
import { Volumes, type VolumeInfo } from '../engine/volumes.js';
import { familiarReference, parseReference } from '../image/reference.js';
import { flag, needPositionals, printJson, printLine, str, strs, type CommandGroup, type CommandSpec, type ParsedCommand } from './common.js';

const ROOT_OPTION = { root: { type: 'string' } } as const;
const ROOT_HELP = '  --root DIR           berth root directory (default: $BERTH_ROOT, /var/lib/berth as root, else $XDG_DATA_HOME/berth)';

function rootOf(p: ParsedCommand): string {
  return berthRoot({ root: str(p, 'root') });
}

/** Docker's columns: padded to the widest cell, three spaces apart. */
function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [header, ...rows]) printLine(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd());
}

/** "3 minutes ago", as docker prints ages. */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return 'N/A';
  const s = Math.max(0, Math.round((now - t) / 1000));
  const units: [number, string][] = [
    [365 * 86400, 'year'],
    [30 * 86400, 'month'],
    [7 * 86400, 'week'],
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
  ];
  for (const [n, u] of units) if (s >= n) return `${Math.floor(s / n)} ${u}${Math.floor(s / n) > 1 ? 's' : ''} ago`;
  return s < 1 ? 'Less than a second ago' : `${s} second${s > 1 ? 's' : ''} ago`;
}

/** REPOSITORY and TAG of a stored name, familiar as docker shows them (`busybox`, not docker.io/library/busybox). */
function repoTag(name: string): { repository: string; tag: string } {
  try {
    const r = parseReference(name);
    return { repository: familiarReference({ registry: r.registry, repository: r.repository }), tag: r.tag ?? (r.digest ? '<none>' : 'latest') };
  } catch {
    return { repository: name, tag: '<none>' };
  }
}

/** REGISTRY/REPO@DIGEST for a stored name. */
function repoDigest(name: string, digest: string): string {
  try {
    const r = parseReference(name);
    return `${r.registry}/${r.repository}@${digest}`;
  } catch {
    return `${name}@${digest}`;
  }
}

// ---- images ----

async function listImages(p: ParsedCommand): Promise<number> {
  const root = rootOf(p);
  const images = new LocalImages(root);
  const list = await images.list();
  if (flag(p, 'quiet')) {
    for (const id of new Set(list.map((i) => shortId(i.id)))) printLine(id);
    return 0;
  }
  const sizes = new Map((await diskUsageReport(root)).perImage.map((i) => [i.id, i]));
  const rows = list.flatMap((img) => {
    const size = sizes.get(img.id)?.size ?? 0;
    const names = img.names.length ? img.names : [undefined];
    return names.map((n) => ({ img, name: n, ...(n ? repoTag(n) : { repository: '<none>', tag: '<none>' }), size }));
  });
  if (p.json) {
    printJson(
      rows.map((r) => ({
        id: r.img.id,
        digest: r.img.digest,
        repository: r.repository,
        tag: r.tag,
        name: r.name ?? null,
        created: r.img.config?.created ?? null,
        size: r.size,
        ...(r.img.broken ? { broken: r.img.broken } : {}),
      })),
    );
    return 0;
  }
  printTable(
    ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
    rows.map((r) => [r.repository, r.tag, shortId(r.img.id), ago(r.img.config?.created), formatBytes(r.size).replace(' ', '')]),
  );
  return 0;
}

async function removeImages(p: ParsedCommand, names: string[]): Promise<number> {
  if (names.length === 0) throw new BerthError('USAGE', 'berth rmi: name at least one image (NAME[:TAG], ID or digest)');
  const images = new LocalImages(rootOf(p));
  let failed = 0;
  const results: unknown[] = [];
  for (const name of names) {
    try {
      const r = await images.remove(name, { force: flag(p, 'force'), collect: false });
      results.push({ name, ...r });
      if (!p.json) {
        for (const u of r.untagged) printLine(`Untagged: ${u}`);
        for (const d of r.deleted) printLine(`Deleted: ${d}`);
      }
    } catch (err) {
      if (!(err instanceof BerthError) || err.code === 'INTERNAL') throw err;
      process.stderr.write(`berth: ${err.message}\n`);
      failed++;
    }
  }
  const collected = await images.collect();
  if (p.json) printJson({ removed: results, reclaimed: collected.bytes });
  return failed > 0 ? 1 : 0;
}

async function pruneImages(p: ParsedCommand): Promise<number> {
  const r = await new LocalImages(rootOf(p)).prune({ all: flag(p, 'all') });
  if (p.json) {
    printJson({ deleted: r.deleted, blobs: r.reclaimed.blobs.length, snapshots: r.reclaimed.snapshots.length, reclaimed: r.reclaimed.bytes });
    return 0;
  }
  if (r.deleted.length) {
    printLine('Deleted Images:');
    for (const d of r.deleted) printLine(`deleted: ${d}`);
    printLine();
  }
  printLine(`Total reclaimed space: ${formatBytes(r.reclaimed.bytes)}`);
  return 0;
}

/** docker image inspect's shape (Id, RepoTags, Config, RootFS…), plus where berth keeps it. */
function inspectDocument(img: LocalImage, snapshotDirs: string[]): Record<string, unknown> {
  const c = img.config;
  return {
    Id: img.id,
    Digest: img.digest,
    RepoTags: img.names.filter((n) => !n.includes('@')),
    RepoDigests: [...new Set(img.names.map((n) => repoDigest(n, img.manifestDigest)))],
    Created: c?.created ?? null,
    Author: c?.author ?? '',
    Architecture: c?.architecture ?? null,
    Variant: c?.variant,
    Os: c?.os ?? null,
    Config: c?.config ?? {},
    RootFS: { Type: 'layers', Layers: c?.rootfs.diff_ids ?? [] },
    History: c?.history ?? [],
    Manifest: img.manifest ?? null,
    Snapshots: { ChainID: img.chain[img.chain.length - 1] ?? null, Dirs: snapshotDirs },
    ...(img.broken ? { Broken: img.broken } : {}),
  };
}

/** `berth inspect IMAGE` for an image of the local store (JSON, an array as docker prints it). */
export async function inspectLocal(p: ParsedCommand, names: string[]): Promise<number> {
  const images = new LocalImages(rootOf(p));
  const all = await images.list();
  const out: unknown[] = [];
  for (const name of names) {
    const img = await images.find(name, all);
    const dirs: string[] = [];
    for (const c of img.chain) if (await images.snapshots.meta(c)) dirs.push(images.snapshots.fsDir(c));
    const doc = inspectDocument(img, dirs);
    out.push(flag(p, 'config') ? (img.config ?? null) : flag(p, 'raw') ? (img.manifest ?? null) : doc);
  }
  printJson(flag(p, 'raw') || flag(p, 'config') ? (out.length === 1 ? out[0] : out) : out);
  return 0;
}

/** `berth tag SRC DST` in the local store. */
export async function tagLocal(p: ParsedCommand): Promise<number> {
  const [src, dst] = p.positionals as [string, string];
  const { image, name } = await new LocalImages(rootOf(p)).tag(src, dst);
  if (p.json) printJson({ id: image.id, digest: image.digest, name });
  return 0;
}

// ---- volumes ----

function volumeJson(v: VolumeInfo): Record<string, unknown> {
  return { Name: v.name, Driver: v.driver, Mountpoint: v.mountpoint, CreatedAt: v.createdAt, Labels: v.labels, Scope: 'local', Anonymous: v.anonymous };
}

function labelsOf(p: ParsedCommand): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const l of strs(p, 'label')) {
    const eq = l.indexOf('=');
    labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
  }
  return labels;
}

async function volumeCommand(p: ParsedCommand, sub: string | undefined, args: string[]): Promise<number> {
  const volumes = new Volumes(rootOf(p));
  switch (sub) {
    case 'create': {
      if (args.length > 1) throw new BerthError('USAGE', 'berth volume create [NAME]: at most one name');
      const v = await volumes.create(args[0], { labels: labelsOf(p) });
      if (p.json) printJson(volumeJson(v));
      else printLine(v.name);
      return 0;
    }
    case 'ls':
    case 'list': {
      const list = await volumes.list();
      if (p.json) printJson(list.map(volumeJson));
      else if (flag(p, 'quiet')) for (const v of list) printLine(v.name);
      else printTable(['DRIVER', 'VOLUME NAME'], list.map((v) => [v.driver, v.name]));
      return 0;
    }
    case 'inspect': {
      if (args.length === 0) throw new BerthError('USAGE', 'berth volume inspect NAME...: name a volume');
      const out = [];
      for (const n of args) out.push(volumeJson(await volumes.inspect(n)));
      printJson(out);
      return 0;
    }
    case 'rm':
    case 'remove': {
      if (args.length === 0) throw new BerthError('USAGE', 'berth volume rm [-f] NAME...: name a volume');
      let failed = 0;
      for (const n of args) {
        try {
          await volumes.remove(n, { force: flag(p, 'force') });
          printLine(n);
        } catch (err) {
          if (!(err instanceof BerthError)) throw err;
          if (err.code === 'NOT_FOUND' && flag(p, 'force')) continue;
          process.stderr.write(`berth: ${err.message}\n`);
          failed++;
        }
      }
      return failed ? 1 : 0;
    }
    case 'prune': {
      const r = await volumes.prune({ all: flag(p, 'all') });
      if (p.json) printJson(r);
      else {
        if (r.removed.length) {
          printLine('Deleted Volumes:');
          for (const n of r.removed) printLine(n);
          printLine();
        }
        printLine(`Total reclaimed space: ${formatBytes(r.bytes)}`);
      }
      return 0;
    }
    default:
      throw new BerthError('USAGE', `berth volume ${sub ?? ''}: unknown command; use create, ls, inspect, rm or prune`);
  }
}

// ---- system ----

function dfLine(type: string, r: DfRow): string[] {
  const pct = r.size > 0 ? ` (${Math.round((100 * r.reclaimable) / r.size)}%)` : '';
  return [type, String(r.total), String(r.active), formatBytes(r.size).replace(' ', ''), `${formatBytes(r.reclaimable).replace(' ', '')}${pct}`];
}

async function systemCommand(p: ParsedCommand, sub: string | undefined): Promise<number> {
  const root = rootOf(p);
  switch (sub) {
    case 'df': {
      const r = await diskUsageReport(root);
      if (p.json) {
        printJson(r);
        return 0;
      }
      printTable(
        ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
        [dfLine('Images', r.images), dfLine('Snapshots', r.snapshots), dfLine('Containers', r.containers), dfLine('Local Volumes', r.volumes)],
      );
      if (flag(p, 'verbose')) {
        printLine();
        printLine('Images space usage (blobs and snapshots; SHARED is also held by another image):');
        printLine();
        printTable(
          ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE', 'CONTAINERS'],
          r.perImage.map((i) => {
            const { repository, tag } = i.names[0] ? repoTag(i.names[0]) : { repository: '<none>', tag: '<none>' };
            const b = (n: number) => formatBytes(n).replace(' ', '');
            return [repository, tag, shortId(i.id), ago(i.created), b(i.size), b(i.shared), b(i.unique), String(i.containers)];
          }),
        );
      }
      return 0;
    }
    case 'prune': {
      // As docker: stopped containers first, then what they no longer hold.
      const { Engine } = await import('../engine/containers/engine.js');
      const containers = await new Engine(root).pruneStopped();
      const images = new LocalImages(root);
      const r = await images.prune({ all: flag(p, 'all') });
      const v = flag(p, 'volumes') ? await new Volumes(root).prune({ all: flag(p, 'all') }) : { removed: [], bytes: 0 };
      const total = r.reclaimed.bytes + v.bytes;
      if (p.json) printJson({ containers, images: r.deleted, snapshots: r.reclaimed.snapshots.length, blobs: r.reclaimed.blobs.length, volumes: v.removed, reclaimed: total });
      else {
        for (const id of containers) printLine(`deleted container: ${id}`);
        for (const d of r.deleted) printLine(`deleted: ${d}`);
        for (const n of v.removed) printLine(`deleted volume: ${n}`);
        printLine(`Total reclaimed space: ${formatBytes(total)}`);
      }
      return 0;
    }
    case 'check': {
      const problems = await checkSystem(root, { repair: flag(p, 'repair') });
      const left = problems.filter((x) => x.severity === 'error' && !x.repaired);
      if (p.json) printJson({ problems, ok: left.length === 0 });
      else if (problems.length === 0) printLine('berth root is consistent');
      else {
        for (const x of problems) printLine(`${x.repaired ? 'repaired' : x.severity}: ${x.problem}${x.path ? ` (${x.path})` : ''}`);
        if (!flag(p, 'repair') && problems.some((x) => !x.repaired)) printLine('run berth system check --repair to fix what can be fixed');
      }
      return left.length === 0 ? 0 : 1;
    }
    default:
      throw new BerthError('USAGE', `berth system ${sub ?? ''}: unknown command; use df, prune or check`);
  }
}

const IMAGES_USAGE = `Usage: berth images [OPTIONS]

Lists the images of the local store: REPOSITORY, TAG, IMAGE ID (the config digest), CREATED and
SIZE (its blobs and unpacked snapshots).

Options:
  -q, --quiet          only the image IDs
  --format json        structured output
${ROOT_HELP}`;

const RMI_USAGE = `Usage: berth rmi [OPTIONS] IMAGE...

Removes a name from an image; the image (its blobs and snapshots, unless another image shares
them) goes with its last name, or when named by ID. An image a container uses stays: with -f
it goes anyway when the containers are stopped (their roots keep their snapshots); a running
container's image never goes.

Options:
  -f, --force          remove an image with several names, or one stopped containers use
${ROOT_HELP}

Examples:
  berth rmi busybox
  berth rmi 3f57d9401f8d`;

const IMAGE_USAGE = `Usage: berth image COMMAND

Commands:
  ls                   as berth images
  rm IMAGE...          as berth rmi
  prune [-a]           remove untagged images; with -a every image no container uses,
                       then the blobs and snapshots nothing uses any more
  inspect IMAGE...     as berth inspect for a local image
  tag SRC DST          as berth tag SRC DST

Options: -a/--all, -f/--force, -q/--quiet, --format json
${ROOT_HELP}`;

const SYSTEM_USAGE = `Usage: berth system COMMAND

Commands:
  df [-v]              disk used by images (store blobs), snapshots (unpacked layers),
                       containers (their own changes) and volumes; -v per image, with the
                       size it shares with other images
  prune [-a] [--volumes]
                       remove stopped containers, untagged images (-a: every image no
                       container uses), unused snapshots and blobs, and with --volumes the
                       unused volumes
  check [--repair]     verify the store (index, every blob's digest, manifests), snapshots
                       and leftovers of interrupted commands; --repair removes what cannot be
                       used (half-unpacked snapshots, stale locks, dangling references,
                       corrupt blobs: pull the image again) and what nothing uses

Options: --format json
${ROOT_HELP}

Examples:
  berth system df -v
  berth system check --repair`;

const VOLUME_USAGE = `Usage: berth volume COMMAND

Commands:
  create [NAME] [--label K=V]  a named volume (a random name without NAME); existing: kept
  ls [-q]                      the volumes
  inspect NAME...              as JSON (Mountpoint: the host directory)
  rm [-f] NAME...              remove volumes no container uses
  prune [-a]                   remove unused anonymous volumes (-a: every unused volume)

Volumes live under BERTH_ROOT/volumes/NAME/_data; berth run -v NAME:/path mounts them.

Options: --format json
${ROOT_HELP}

Examples:
  berth volume create data
  berth volume inspect data`;

const spec = (s: CommandSpec): CommandSpec => s;

export const commands: CommandGroup = {
  images: spec({
    summary: 'List the images of the local store',
    usage: IMAGES_USAGE,
    options: { ...ROOT_OPTION, quiet: { type: 'boolean', short: 'q' }, all: { type: 'boolean', short: 'a' } },
    async run(p) {
      needPositionals(p, 0, 0, this.usage);
      return listImages(p);
    },
  }),
  rmi: spec({
    summary: 'Remove images from the local store',
    usage: RMI_USAGE,
    options: { ...ROOT_OPTION, force: { type: 'boolean', short: 'f' } },
    async run(p) {
      return removeImages(p, p.positionals);
    },
  }),
  image: spec({
    summary: 'Local images: berth image ls|rm|prune|inspect|tag',
    usage: IMAGE_USAGE,
    options: {
      ...ROOT_OPTION,
      quiet: { type: 'boolean', short: 'q' },
      all: { type: 'boolean', short: 'a' },
      force: { type: 'boolean', short: 'f' },
      raw: { type: 'boolean' },
      config: { type: 'boolean' },
    },
    async run(p) {
      const [sub, ...args] = p.positionals;
      const rest = { ...p, positionals: args };
      switch (sub) {
        case 'ls':
        case 'list':
          return listImages(rest);
        case 'rm':
        case 'remove':
          return removeImages(rest, args);
        case 'prune':
          return pruneImages(rest);
        case 'inspect':
          if (args.length === 0) throw new BerthError('USAGE', 'berth image inspect IMAGE...: name an image');
          return inspectLocal(rest, args);
        case 'tag':
          needPositionals(rest, 2, 2, 'Usage: berth image tag SRC DST');
          return tagLocal(rest);
        default:
          throw new BerthError('USAGE', `berth image ${sub ?? ''}: unknown command\n\n${IMAGE_USAGE}`);
      }
    },
  }),
  system: spec({
    summary: 'Disk usage, pruning and checking the berth root: berth system df|prune|check',
    usage: SYSTEM_USAGE,
    options: {
      ...ROOT_OPTION,
      verbose: { type: 'boolean', short: 'v' },
      all: { type: 'boolean', short: 'a' },
      force: { type: 'boolean', short: 'f' },
      volumes: { type: 'boolean' },
      repair: { type: 'boolean' },
    },
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      return systemCommand(p, p.positionals[0]);
    },
  }),
  volume: spec({
    summary: 'Named volumes: berth volume create|ls|inspect|rm|prune',
    usage: VOLUME_USAGE,
    options: {
      ...ROOT_OPTION,
      quiet: { type: 'boolean', short: 'q' },
      all: { type: 'boolean', short: 'a' },
      force: { type: 'boolean', short: 'f' },
      label: { type: 'string', multiple: true },
    },
    async run(p) {
      const [sub, ...args] = p.positionals;
      return volumeCommand(p, sub, args);
    },
  }),
};
