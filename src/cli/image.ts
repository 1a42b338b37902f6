/**
 * image-spec commands: validate, layout (verify, gc, tags), unpack, create, append, mutate,
 * artifact. Thin: the work is done by src/image/*.
 */
import { readFile, stat } from 'node:fs/promises';
import { BerthError } from '../base/errors.js';
import { flag, needPositionals, printJson, printLine, str, strs, type CommandGroup, type ParsedCommand } from './common.js';
import { OciLayout } from '../image/layout.js';
import { gcLayout, verifyLayout, type LayoutProblem } from '../image/layout-verify.js';
import { parseLayoutPlace, isLayoutPlace } from '../image/place.js';
import { appendLayer, createImage, mutateImage, type ImageSettings } from '../image/build.js';
import { createArtifact, type ArtifactFile } from '../image/artifact.js';
import { unpackImage } from '../image/unpack.js';
import { parsePlatform } from '../image/platform.js';
import { validateConfig, validateIndex, validateLayoutHeader, validateManifest } from '../image/validate.js';
import { MAX_MANIFEST_BYTES } from '../base/read.js';
import type { LayerCompression } from '../base/media-types.js';
import type { Descriptor, Platform } from '../base/types.js';

// ---- option helpers --------------------------------------------------------------------------

const many = { type: 'string', multiple: true } as const;
const one = { type: 'string' } as const;

function keyValues(p: ParsedCommand, key: string): Record<string, string> | undefined {
  const list = strs(p, key);
  if (list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new BerthError('USAGE', `--${key} takes KEY=VALUE, got ${JSON.stringify(kv)}`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** A command line: a JSON array (exact), `null` (clear), or a string split on whitespace. */
function commandLine(p: ParsedCommand, key: string): string[] | null | undefined {
  const v = str(p, key);
  if (v === undefined) return undefined;
  const t = v.trim();
  if (t.startsWith('[') || t === 'null') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(t);
    } catch (err) {
      throw new BerthError('USAGE', `--${key}: invalid JSON ${JSON.stringify(v)}: ${(err as Error).message}`);
    }
    if (parsed === null) return null;
    if (!Array.isArray(parsed) || parsed.some((x) => typeof x !== 'string')) {
      throw new BerthError('USAGE', `--${key}: a JSON value must be an array of strings, e.g. '["/bin/sh","-c","echo hi"]'`);
    }
    return parsed as string[];
  }
  return t === '' ? [] : t.split(/\s+/);
}

function platformOpt(p: ParsedCommand): Platform | undefined {
  const v = str(p, 'platform');
  return v === undefined ? undefined : parsePlatform(v);
}

function compressionOpt(p: ParsedCommand): LayerCompression | undefined {
  const v = str(p, 'compression');
  if (v === undefined) return undefined;
  if (v !== 'gzip' && v !== 'zstd' && v !== 'none') throw new BerthError('USAGE', `--compression must be gzip, zstd or none, got ${JSON.stringify(v)}`);
  return v;
}

function intOpt(p: ParsedCommand, key: string, fallbackEnv?: string): number | undefined {
  const v = str(p, key) ?? (fallbackEnv ? process.env[fallbackEnv] : undefined);
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new BerthError('USAGE', `--${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function settings(p: ParsedCommand): ImageSettings {
  const s: ImageSettings = {};
  const entrypoint = commandLine(p, 'entrypoint');
  if (entrypoint !== undefined) s.entrypoint = entrypoint;
  const cmd = commandLine(p, 'cmd');
  if (cmd !== undefined) s.cmd = cmd;
  const env = strs(p, 'env');
  if (env.length) {
    for (const e of env) if (!e.includes('=')) throw new BerthError('USAGE', `--env takes KEY=VALUE, got ${JSON.stringify(e)}`);
    s.env = env;
  }
  const workdir = str(p, 'workdir');
  if (workdir !== undefined) s.workdir = workdir;
  const user = str(p, 'user');
  if (user !== undefined) s.user = user;
  const labels = keyValues(p, 'label');
  if (labels) s.labels = labels;
  const ports = strs(p, 'expose');
  if (ports.length) s.exposedPorts = ports;
  const volumes = strs(p, 'volume');
  if (volumes.length) s.volumes = volumes;
  const stop = str(p, 'stop-signal');
  if (stop !== undefined) s.stopSignal = stop;
  return s;
}

const SETTING_OPTIONS = {
  entrypoint: one,
  cmd: one,
  env: many,
  workdir: one,
  user: one,
  label: many,
  annotation: many,
  expose: many,
  volume: many,
  'stop-signal': one,
  platform: one,
  tag: one,
} as const;

const SETTINGS_HELP = `  --entrypoint CMD       JSON array ('["/app","-v"]'), null to clear, or words split on spaces
  --cmd CMD              same forms as --entrypoint
  --env KEY=VALUE        set an environment variable (repeatable)
  --workdir DIR          working directory
  --user USER[:GROUP]    user name or uid, optional group name or gid
  --label KEY=VALUE      config label (repeatable)
  --annotation KEY=VALUE manifest annotation (repeatable)
  --expose PORT[/PROTO]  exposed port (repeatable)
  --volume PATH          volume (repeatable)
  --stop-signal SIGNAL   stop signal, e.g. SIGTERM`;

function printDescriptor(p: ParsedCommand, verb: string, place: string, desc: Descriptor, extra: Record<string, unknown> = {}): void {
  if (p.json) printJson({ ...desc, ...extra });
  else printLine(`${verb} ${place} ${desc.digest}`);
}

function reportProblems(p: ParsedCommand, target: string, problems: LayoutProblem[]): number {
  const errors = problems.filter((x) => x.severity === 'error');
  if (p.json) printJson({ target, valid: errors.length === 0, problems });
  else {
    for (const x of problems) printLine(`${x.severity}: ${[x.path, x.digest && !x.path?.includes(x.digest) ? x.digest : undefined].filter(Boolean).join(' ')}: ${x.problem}`);
    const warnings = problems.length - errors.length;
    printLine(errors.length === 0 ? `${target}: valid${warnings ? ` (${warnings} warning${warnings > 1 ? 's' : ''})` : ''}` : `${target}: ${errors.length} error${errors.length > 1 ? 's' : ''}${warnings ? `, ${warnings} warning${warnings > 1 ? 's' : ''}` : ''}`);
  }
  return errors.length === 0 ? 0 : 1;
}

// ---- validate --------------------------------------------------------------------------------

type DocType = 'manifest' | 'index' | 'config' | 'layout-header';
const VALIDATORS: Record<DocType, (doc: unknown) => unknown> = {
  manifest: validateManifest,
  index: validateIndex,
  config: validateConfig,
  'layout-header': validateLayoutHeader,
};

function detectType(doc: unknown): DocType | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  const mt = typeof d.mediaType === 'string' ? d.mediaType : '';
  if (/index|manifest\.list/.test(mt) || Array.isArray(d.manifests)) return 'index';
  if (/manifest/.test(mt) || ('config' in d && 'layers' in d)) return 'manifest';
  if ('rootfs' in d || ('architecture' in d && 'os' in d)) return 'config';
  if ('imageLayoutVersion' in d) return 'layout-header';
  return undefined;
}

async function validateFile(p: ParsedCommand, file: string): Promise<number> {
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) throw new BerthError('USAGE', `${file} is not a file: give a manifest, index or config JSON file, or oci:DIR[:REF]`);
  if (st.size > MAX_MANIFEST_BYTES) throw new BerthError('TOO_LARGE', `${file} is ${st.size} bytes: over the ${MAX_MANIFEST_BYTES}-byte limit for documents`);
  const given = str(p, 'type');
  if (given !== undefined && !(given in VALIDATORS)) throw new BerthError('USAGE', `--type must be manifest, index, config or layout-header, got ${JSON.stringify(given)}`);
  let doc: unknown;
  let type = given as DocType | undefined;
  let problem: string | undefined;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
    type ??= detectType(doc);
    if (type === undefined) throw new Error('cannot tell whether this is a manifest, an index or a config: pass --type');
    VALIDATORS[type](doc);
  } catch (err) {
    problem = (err as Error).message;
  }
  const mediaType = doc && typeof doc === 'object' ? (doc as Record<string, unknown>).mediaType : undefined;
  if (p.json) printJson({ target: file, type: type ?? null, mediaType: mediaType ?? null, valid: problem === undefined, problems: problem ? [{ problem, severity: 'error' }] : [] });
  else printLine(problem === undefined ? `${file}: valid ${type}${typeof mediaType === 'string' ? ` (${mediaType})` : ''}` : `${file}: invalid${type ? ` ${type}` : ''}: ${problem}`);
  return problem === undefined ? 0 : 1;
}

async function validatePlace(p: ParsedCommand, target: string): Promise<number> {
  const place = parseLayoutPlace(target);
  const layout = await OciLayout.open(place.dir);
  const problems = await verifyLayout(layout, place.ref === undefined ? {} : { ref: place.ref });
  return reportProblems(p, target, problems);
}

// ---- commands --------------------------------------------------------------------------------

export const commands: CommandGroup = {
  validate: {
    summary: 'Validate a manifest, index or config file, or a whole OCI layout',
    usage: `Usage: berth validate FILE|oci:DIR[:REF] [--type manifest|index|config|layout-header]

Checks a JSON document against the image spec (the kind is detected unless --type is given),
or verifies a whole layout (every blob, manifest, index and config reachable from index.json;
with :REF only what that reference reaches). Exit status 1 when anything is invalid.

Examples:
  berth validate manifest.json
  berth validate --type config config.json
  berth validate oci:./images
  berth validate oci:./images:v1 --format json`,
    options: { type: one },
    async run(p) {
      needPositionals(p, 1, 1, commands.validate!.usage);
      const target = p.positionals[0]!;
      return isLayoutPlace(target) ? validatePlace(p, target) : validateFile(p, target);
    },
  },

  layout: {
    summary: 'Work on an OCI image layout: verify, gc, tags',
    usage: `Usage: berth layout verify oci:DIR
       berth layout gc oci:DIR [--dry-run]
       berth layout tags oci:DIR

verify  reports every problem: missing blobs, digest and size mismatches, invalid manifests,
        indexes and configs, dangling subjects and stray temporary files (warnings).
gc      removes blobs that nothing listed in index.json reaches, and stale temporary files.
tags    lists the references (org.opencontainers.image.ref.name) in index.json.

Examples:
  berth layout verify oci:./images
  berth layout gc oci:./images --dry-run
  berth layout tags oci:./images --format json`,
    options: { 'dry-run': { type: 'boolean' } },
    async run(p) {
      needPositionals(p, 2, 2, commands.layout!.usage);
      const [sub, target] = p.positionals as [string, string];
      const place = parseLayoutPlace(target, { ref: 'forbidden' });
      const layout = await OciLayout.open(place.dir);
      switch (sub) {
        case 'verify':
          return reportProblems(p, target, await verifyLayout(layout));
        case 'gc': {
          const dryRun = flag(p, 'dry-run');
          const r = await gcLayout(layout, { dryRun });
          if (p.json) printJson({ dryRun, ...r });
          else {
            for (const x of r.removed) printLine(`${dryRun ? 'would remove' : 'removed'} ${x}`);
            printLine(`${dryRun ? 'would free' : 'freed'} ${r.bytes} bytes in ${r.removed.length} file${r.removed.length === 1 ? '' : 's'}`);
          }
          return 0;
        }
        case 'tags': {
          const tags = await layout.tags();
          if (p.json) printJson(tags);
          else for (const t of tags) printLine(t);
          return 0;
        }
        default:
          throw new BerthError('USAGE', `unknown layout command ${JSON.stringify(sub)}: use verify, gc or tags\n\n${commands.layout!.usage}`);
      }
    },
  },

  unpack: {
    summary: 'Unpack an image from a layout into a runtime bundle (rootfs + config.json)',
    usage: `Usage: berth unpack oci:DIR[:REF] BUNDLE [--platform OS/ARCH[/VARIANT]] [--force]

Applies the image's layers into BUNDLE/rootfs and converts its config into BUNDLE/config.json
(image-spec conversion.md, runc's defaults otherwise). REF may be omitted when the layout holds
one image. --platform chooses from a multi-platform index (default: this machine). --force
unpacks over an existing non-empty rootfs.

Examples:
  berth unpack oci:./images:v1 ./bundle && runc run -b ./bundle demo
  berth unpack oci:./images:multi ./bundle-arm --platform linux/arm64`,
    options: { platform: one, force: { type: 'boolean' } },
    async run(p) {
      needPositionals(p, 2, 2, commands.unpack!.usage);
      const [target, bundle] = p.positionals as [string, string];
      const place = parseLayoutPlace(target);
      const layout = await OciLayout.open(place.dir);
      let ref = place.ref;
      if (ref === undefined) {
        const entries = (await layout.index()).manifests;
        const digests = [...new Set(entries.map((d) => d.digest))];
        if (digests.length !== 1) {
          throw new BerthError('USAGE', `${target} holds ${digests.length} images: name one as oci:${place.dir}:REF (tags: ${(await layout.tags()).join(', ') || 'none'})`);
        }
        ref = digests[0]!;
      }
      const layers: string[] = [];
      const r = await unpackImage(layout, ref, bundle, {
        platform: platformOpt(p),
        allowNonEmpty: flag(p, 'force'),
        onLayer: (_i, layer) => layers.push(layer.digest),
      });
      if (p.json) printJson({ manifest: r.manifest, bundle, layers });
      else printLine(`unpacked ${r.manifest.digest} (${layers.length} layer${layers.length === 1 ? '' : 's'}) into ${bundle}`);
      return 0;
    },
  },

  create: {
    summary: 'Create an image from a directory (one layer, from scratch) in a layout',
    usage: `Usage: berth create DIR oci:LAYOUT:TAG [OPTIONS]

Makes DIR one layer of a new image, writes its config and manifest into the layout (created
when absent) and points TAG at it.

Options:
${SETTINGS_HELP}
  --platform OS/ARCH[/VARIANT]   default: this machine
  --compression gzip|zstd|none   default gzip
  --source-date-epoch N          clamp file times and set created (default: $SOURCE_DATE_EPOCH)

Examples:
  berth create ./rootfs oci:./images:v1 --cmd '["/bin/sh","-c","echo hi"]' --env A=1
  berth create ./site oci:./images:web --entrypoint /bin/httpd --expose 80 --user www --compression zstd`,
    options: { ...SETTING_OPTIONS, compression: one, 'source-date-epoch': one },
    async run(p) {
      needPositionals(p, 2, 2, commands.create!.usage);
      const [dir, target] = p.positionals as [string, string];
      const place = parseLayoutPlace(target, { ref: 'required' });
      const layout = await OciLayout.open(place.dir, { create: true });
      const desc = await createImage(layout, {
        ...settings(p),
        dir,
        tag: place.ref,
        platform: platformOpt(p),
        annotations: keyValues(p, 'annotation'),
        compression: compressionOpt(p),
        sourceDateEpoch: intOpt(p, 'source-date-epoch', 'SOURCE_DATE_EPOCH'),
      });
      printDescriptor(p, 'created', target, desc, { tag: place.ref });
      return 0;
    },
  },

  append: {
    summary: 'Add a directory as a new layer on top of an image in a layout',
    usage: `Usage: berth append oci:LAYOUT:REF DIR [--tag NEWTAG] [--compression gzip|zstd|none] [--source-date-epoch N] [--platform P]

Writes DIR as a layer on top of REF's image (its config gains the diff_id and a history entry).
The result is tagged NEWTAG, or REF itself when REF is a tag.

Examples:
  berth append oci:./images:v1 ./overlay
  berth append oci:./images:v1 ./overlay --tag v1-debug`,
    options: { tag: one, compression: one, 'source-date-epoch': one, platform: one },
    async run(p) {
      needPositionals(p, 2, 2, commands.append!.usage);
      const [target, dir] = p.positionals as [string, string];
      const place = parseLayoutPlace(target, { ref: 'required' });
      const layout = await OciLayout.open(place.dir);
      const desc = await appendLayer(layout, place.ref!, {
        dir,
        tag: str(p, 'tag'),
        compression: compressionOpt(p),
        sourceDateEpoch: intOpt(p, 'source-date-epoch', 'SOURCE_DATE_EPOCH'),
        platform: platformOpt(p),
      });
      printDescriptor(p, 'appended', target, desc, { tag: str(p, 'tag') ?? place.ref });
      return 0;
    },
  },

  mutate: {
    summary: "Change an image's config (entrypoint, cmd, env, labels, …) or annotations in a layout",
    usage: `Usage: berth mutate oci:LAYOUT:REF [OPTIONS]

Writes a new config and manifest with the changes (layers untouched). The result is tagged
--tag, or REF itself when REF is a tag.

Options:
${SETTINGS_HELP}
  --unset-env KEY        remove an environment variable (repeatable)
  --unset-label KEY      remove a label (repeatable)
  --unset-annotation KEY remove a manifest annotation (repeatable)
  --tag NEWTAG           tag the result NEWTAG instead of moving REF

Examples:
  berth mutate oci:./images:v1 --entrypoint '["/app"]' --cmd null --env MODE=prod
  berth mutate oci:./images:v1 --label org.opencontainers.image.version=1.2 --tag v1.2`,
    options: { ...SETTING_OPTIONS, 'unset-env': many, 'unset-label': many, 'unset-annotation': many },
    async run(p) {
      needPositionals(p, 1, 1, commands.mutate!.usage);
      const target = p.positionals[0]!;
      const place = parseLayoutPlace(target, { ref: 'required' });
      const layout = await OciLayout.open(place.dir);
      const desc = await mutateImage(layout, place.ref!, {
        ...settings(p),
        annotations: keyValues(p, 'annotation'),
        unsetEnv: strs(p, 'unset-env'),
        unsetLabels: strs(p, 'unset-label'),
        unsetAnnotations: strs(p, 'unset-annotation'),
        tag: str(p, 'tag'),
        platform: platformOpt(p),
      });
      printDescriptor(p, 'mutated', target, desc, { tag: str(p, 'tag') ?? place.ref });
      return 0;
    },
  },

  artifact: {
    summary: 'Store files as an OCI artifact (as oras push does) in a layout',
    usage: `Usage: berth artifact oci:LAYOUT[:TAG] --artifact-type TYPE FILE[:MEDIATYPE]... [--subject REF] [--annotation KEY=VALUE]...

Writes an artifact manifest: artifactType TYPE, the empty config, one layer per file (titled with
its base name; media type MEDIATYPE or application/vnd.oci.image.layer.v1.tar), and with
--subject the manifest REF names in the same layout, so that it lists among REF's referrers.

Examples:
  berth artifact oci:./images:v1-sbom --artifact-type application/spdx+json sbom.json:application/spdx+json --subject v1
  berth artifact oci:./images --artifact-type application/vnd.example.notes notes.txt`,
    options: { 'artifact-type': one, subject: one, annotation: many },
    async run(p) {
      if (p.positionals.length < 1) throw new BerthError('USAGE', `wrong number of arguments\n\n${commands.artifact!.usage}`);
      const [target, ...fileArgs] = p.positionals as [string, ...string[]];
      const artifactType = str(p, 'artifact-type');
      if (!artifactType) throw new BerthError('USAGE', `--artifact-type is required\n\n${commands.artifact!.usage}`);
      const place = parseLayoutPlace(target);
      const layout = await OciLayout.open(place.dir, { create: true });
      const files: ArtifactFile[] = fileArgs.map((arg) => {
        const colon = arg.lastIndexOf(':');
        const suffix = colon > 0 ? arg.slice(colon + 1) : '';
        return suffix.includes('/') ? { path: arg.slice(0, colon), mediaType: suffix } : { path: arg };
      });
      const subjectRef = str(p, 'subject');
      const subject = subjectRef === undefined ? undefined : await layout.resolve(subjectRef);
      const desc = await createArtifact(layout, { artifactType, files, subject, annotations: keyValues(p, 'annotation'), tag: place.ref });
      printDescriptor(p, 'stored', target, desc, { tag: place.ref ?? null, subject: subject ?? null });
      return 0;
    },
  },
};
