/**
 * Registry client commands: copy, pull, push, inspect, tags, catalog, digest, delete,
 * referrers, attach, login, logout. Thin: the work is done by src/client and src/content.
 * Names and flags follow skopeo and crane.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { BerthError } from '../base/errors.js';
import { digestStream } from '../base/digest.js';
import { isIndexMediaType, MediaType } from '../base/media-types.js';
import { formatPlatform } from '../image/platform.js';
import { parseReference, formatReference, referenceTarget, validateTag, type Reference } from '../image/reference.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '../base/types.js';
import { findCredentials, removeCredentials, storeCredentials, defaultLoginFile, type Credentials } from '../client/credentials.js';
import { RegistryClient } from '../client/registry.js';
import type { Repository } from '../client/repository.js';
import { copy, type CopyOptions, type CopyResult } from '../content/copy.js';
import { openDestination, openSource, parsePlace, type OpenedPlace, type Place } from '../client/places.js';
import { ProgressPrinter } from '../content/progress.js';
import { fetchBytes, fetchJson } from '../base/read.js';
import type { Target } from '../base/target.js';
import { flag, needPositionals, printJson, printLine, str, strs, type CommandGroup, type ParsedCommand } from './common.js';

export const REGISTRY_OPTIONS = {
  'tls-verify': { type: 'string' },
  insecure: { type: 'boolean' },
  authfile: { type: 'string' },
  'cert-dir': { type: 'string' },
} as const;

/** Options of the commands that act on registries as a user (everything but login/logout). */
const USER_REGISTRY_OPTIONS = { ...REGISTRY_OPTIONS, creds: { type: 'string' } } as const;

const CREDS_HELP = `  --creds USER[:PASS]  credentials to use instead of the auth files (prompts for PASS on a terminal)`;

const REGISTRY_HELP = `Registry options:
  --tls-verify=false   plain HTTP (or unverified HTTPS) for every registry (also --insecure);
                       loopback registries always use plain HTTP; others can be listed in
                       BERTH_INSECURE_REGISTRIES=host:port,… or $XDG_CONFIG_HOME/berth/registries.json
  --authfile FILE      credentials file (default: $REGISTRY_AUTH_FILE, podman's and docker's files)
  --cert-dir DIR       CAs (*.crt) and client certificate (*.cert + *.key) for the registries,
                       instead of /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST
                       (the system's CA bundle is trusted either way)
Proxies: $HTTPS_PROXY, $HTTP_PROXY (http:// or https://, credentials in the URL), $NO_PROXY.
Mirrors, moved, blocked and insecure registries: containers-registries.conf(5)
($CONTAINERS_REGISTRIES_CONF, ~/.config/containers/registries.conf, /etc/containers/registries.conf).`;

/** Credentials as skopeo's --creds give them: USER:PASSWORD, or USER and a prompt on a terminal. */
async function credsOption(p: ParsedCommand, name: 'creds' | 'src-creds' | 'dest-creds'): Promise<Credentials | undefined> {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const colon = v.indexOf(':');
  if (colon === 0 || v === '') throw new BerthError('USAGE', `--${name}: the user name is empty (give USER[:PASSWORD])`);
  if (colon > 0) return { username: v.slice(0, colon), password: v.slice(colon + 1) };
  if (!process.stdin.isTTY) throw new BerthError('USAGE', `--${name} ${v}: no password; give ${v}:PASSWORD (or run on a terminal to be prompted)`);
  return { username: v, password: await promptHidden(`Password for ${v}: `) };
}

/** A client for one command; `creds`, when given, are used for every registry it talks to instead of the auth files. */
export function clientFor(p: ParsedCommand, creds?: Credentials): RegistryClient {
  const tls = str(p, 'tls-verify');
  if (tls !== undefined && tls !== 'true' && tls !== 'false') throw new BerthError('USAGE', `--tls-verify must be true or false, got ${JSON.stringify(tls)}`);
  const authfile = str(p, 'authfile');
  const certDir = str(p, 'cert-dir');
  return new RegistryClient({
    ...(certDir ? { certDir } : {}),
    insecureAll: tls === 'false' || flag(p, 'insecure'),
    credentials: creds ? async () => creds : authfile ? (host) => findCredentials(host, { ...process.env, REGISTRY_AUTH_FILE: authfile }) : undefined,
  });
}

/** The repository a reference names, where registries.conf says it is (DENIED when blocked). */
function locatedRepository(client: RegistryClient, ref: Reference): Repository {
  const at = client.locate(ref.registry, ref.repository);
  return client.repository(at.host, at.repository);
}

/** A place (`docker://…`, `oci:…`, …) or a bare image reference, which means the registry. */
const PLACE_PREFIX = /^(docker:\/\/|oci:|oci-archive:|docker-archive:)/;

function placeOf(s: string): Place {
  if (PLACE_PREFIX.test(s)) return parsePlace(s);
  return { kind: 'docker', reference: parseReference(s) };
}

/**
 * inspect and tag act on the local store unless their first argument is a place
 * (docker://…, oci:…, oci-archive:…, docker-archive:…) or --remote is given.
 */
function isLocalForm(p: ParsedCommand): boolean {
  return !flag(p, 'remote') && !PLACE_PREFIX.test(p.positionals[0] ?? '');
}

function registryRef(s: string): Reference {
  const place = placeOf(s);
  if (place.kind !== 'docker') throw new BerthError('USAGE', `${JSON.stringify(s)}: this command works on registry references (HOST/REPO[:TAG|@DIGEST])`);
  return place.reference;
}

function numberOption(p: ParsedCommand, key: string, fallback: number): number {
  const v = str(p, key);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new BerthError('USAGE', `--${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function copyOptions(p: ParsedCommand, progress?: ProgressPrinter): CopyOptions {
  const opts: CopyOptions = { all: flag(p, 'all'), referrers: flag(p, 'referrers'), concurrency: numberOption(p, 'concurrency', 4) };
  const platform = str(p, 'platform');
  if (platform) opts.platform = platform;
  if (flag(p, 'oci')) opts.convertToOci = true;
  if (progress) opts.onProgress = progress.handle;
  return opts;
}

function report(p: ParsedCommand, result: CopyResult, progress: ProgressPrinter | undefined, extra: Record<string, unknown> = {}): void {
  if (p.json) {
    printJson({ ...extra, digest: result.descriptor.digest, mediaType: result.descriptor.mediaType, size: result.descriptor.size, sourceDigest: result.source.digest, converted: result.converted, blobsCopied: result.blobsCopied, blobsSkipped: result.blobsSkipped, blobsMounted: result.blobsMounted, bytesCopied: result.bytesCopied, referrersCopied: result.referrersCopied });
    return;
  }
  if (progress) process.stderr.write(progress.finish() + '\n');
  if (result.converted) process.stderr.write(`Converted to OCI media types: the digest changed from ${result.source.digest}\n`);
  printLine(result.descriptor.digest);
}

/** Whether a docker:// place names a tag or digest (references default to :latest once parsed). */
function namesTagOrDigest(place: string): boolean {
  const rest = place.replace(/^docker:\/\//, '');
  return rest.includes('@') || rest.lastIndexOf(':') > rest.lastIndexOf('/');
}

/** copy --all-tags: every tag of a registry repository to another repository or a layout, under the same tags (as crane copy --all-tags). */
async function copyAllTags(p: ParsedCommand, client: RegistryClient, dstClient: RegistryClient): Promise<number> {
  const [srcArg, dstArg] = p.positionals as [string, string];
  const srcPlace = parsePlace(srcArg);
  const dstPlace = parsePlace(dstArg);
  if (srcPlace.kind !== 'docker' || namesTagOrDigest(srcArg)) {
    throw new BerthError('USAGE', `--all-tags copies a registry repository: give the source as docker://HOST/REPO, without a tag (got ${srcArg})`);
  }
  const dstNamed = dstPlace.kind === 'docker' ? namesTagOrDigest(dstArg) : dstPlace.ref !== undefined;
  if (dstPlace.kind === 'docker-archive' || dstNamed) {
    throw new BerthError('USAGE', `--all-tags keeps the source's tags: give the destination as docker://HOST/REPO, oci:DIR or oci-archive:FILE, without a tag (got ${dstArg})`);
  }
  const source = locatedRepository(client, srcPlace.reference);
  const tags = await source.tags();
  if (tags.length === 0) throw new BerthError('NOT_FOUND', `${srcArg} has no tags to copy`);
  const dst = await openDestination(dstPlace, { client: dstClient });
  const copied: { tag: string; digest: string }[] = [];
  let ok = false;
  try {
    for (const tag of tags) {
      const progress = progressFor(p);
      const r = await copy(source, tag, dst.target, tag, copyOptions(p, progress));
      if (progress) process.stderr.write(`${tag}: ${progress.finish()}\n`);
      copied.push({ tag, digest: r.descriptor.digest });
    }
    ok = true;
  } finally {
    await dst.close(ok);
  }
  if (p.json) printJson(copied);
  else for (const c of copied) printLine(`${c.tag} ${c.digest}`);
  return 0;
}

async function withPlaces<T>(src: OpenedPlace, dst: OpenedPlace, fn: () => Promise<T>): Promise<T> {
  let ok = false;
  try {
    const out = await fn();
    ok = true;
    return out;
  } finally {
    await src.close(ok);
    await dst.close(ok);
  }
}

function progressFor(p: ParsedCommand): ProgressPrinter | undefined {
  if (p.json || flag(p, 'quiet')) return undefined;
  return new ProgressPrinter(process.stderr);
}

const COPY_OPTIONS = {
  ...REGISTRY_OPTIONS,
  all: { type: 'boolean', short: 'a' },
  platform: { type: 'string' },
  referrers: { type: 'boolean' },
  oci: { type: 'boolean' },
  concurrency: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
} as const;

const COPY_FLAGS_HELP = `  --all, -a            copy every platform of an index (default: this host's platform only)
  --platform OS/ARCH[/VARIANT]   the platform to pick from an index
  --referrers          also copy artifacts that refer to the image (signatures, SBOMs)
  --oci                convert Docker media types to OCI (manifest digests change)
  --concurrency N      blobs transferred at once (default 4)
  --quiet, -q          no progress output`;

async function readPassword(p: ParsedCommand): Promise<string> {
  if (flag(p, 'password-stdin')) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  const given = str(p, 'password');
  if (given !== undefined) {
    process.stderr.write('WARNING! Using --password on the command line is insecure; use --password-stdin.\n');
    return given;
  }
  if (!process.stdin.isTTY) throw new BerthError('USAGE', 'no password: use --password-stdin (or run on a terminal to be prompted)');
  return promptHidden('Password: ');
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new BerthError('USAGE', 'login cancelled'));
          return;
        }
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

async function promptLine(prompt: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(prompt)).trim();
  } finally {
    rl.close();
  }
}

function normalizeHost(s: string): string {
  const host = s.replace(/^https?:\/\//, '').replace(/^docker:\/\//, '').replace(/\/.*$/, '');
  if (!host) throw new BerthError('USAGE', 'a registry host is required, e.g. localhost:5000');
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

export const commands: CommandGroup = {
  copy: {
    summary: 'Copy an image or index between registries, layouts and archives',
    usage: `Usage: berth copy [OPTIONS] SRC DST

Copies an image (and, with --all, every platform of an index) from one place to another,
skipping blobs the destination has and mounting across repositories of one registry.
Places: docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF].

Options:
${COPY_FLAGS_HELP}
  --all-tags           every tag of the source repository (SRC without a tag), under the same tags
  --src-creds USER[:PASS], --dest-creds USER[:PASS]
                       credentials for the source / the destination registry (instead of the auth files)
${REGISTRY_HELP}

Examples:
  berth copy --all docker://localhost:5000/app:1 oci:./app-layout:1
  berth copy --all-tags docker://registry.example/team/app docker://mirror.internal/team/app
  berth copy oci:./app-layout:1 docker://registry.example/team/app:1
  berth copy docker://localhost:5000/app:1 docker-archive:app.tar:app:1`,
    options: { ...COPY_OPTIONS, 'src-creds': { type: 'string' }, 'dest-creds': { type: 'string' }, 'all-tags': { type: 'boolean' } },
    async run(p) {
      needPositionals(p, 2, 2, this.usage);
      // Separate credentials for the two sides mean separate clients (they may be one registry).
      const srcCreds = await credsOption(p, 'src-creds');
      const dstCreds = await credsOption(p, 'dest-creds');
      const client = clientFor(p, srcCreds);
      const dstClient = srcCreds || dstCreds ? clientFor(p, dstCreds) : client;
      try {
        if (flag(p, 'all-tags')) return await copyAllTags(p, client, dstClient);
        const srcPlace = parsePlace(p.positionals[0]!);
        const dstPlace = parsePlace(p.positionals[1]!);
        // The source opens and resolves (a registry round trip, through its mirrors) while the
        // destination opens (a layout's files).
        const opening = openSource(srcPlace, { client });
        opening.catch(() => undefined); // awaited below
        const dst = await openDestination(dstPlace, { client: dstClient }).catch(async (err: unknown) => {
          await (await opening.catch(() => undefined))?.close(false);
          throw err;
        });
        const src = await opening.catch(async (err: unknown) => {
          await dst.close(false);
          throw err;
        });
        const root = src.resolved ?? (await src.target.resolve(src.ref ?? '', { prefetch: true }));
        const progress = progressFor(p);
        const result = await withPlaces(src, dst, async () => {
          const r = await copy(src.target, root, dst.target, dst.ref, copyOptions(p, progress));
          if (dstPlace.kind === 'docker' && dstPlace.reference.digest && dstPlace.reference.digest !== r.descriptor.digest) {
            throw new BerthError('DIGEST_MISMATCH', `the copied image has digest ${r.descriptor.digest}, not ${dstPlace.reference.digest} as the destination names`);
          }
          return r;
        });
        report(p, result, progress);
        return 0;
      } finally {
        client.close();
        if (dstClient !== client) dstClient.close();
      }
    },
  },

  pull: {
    summary: 'Pull an image from a registry into the local image store',
    usage: `Usage: berth pull [OPTIONS] REF

Copies REF (HOST/REPO[:TAG|@DIGEST], docker.io defaults) into the local store that
"berth run" uses, tagged with its full reference.
Store: --root DIR, else $BERTH_ROOT, else /var/lib/berth (root) or $XDG_DATA_HOME/berth.

Options:
${COPY_FLAGS_HELP}
  --root DIR           berth root directory (the store is DIR/images)
${CREDS_HELP}
${REGISTRY_HELP}

Examples:
  berth pull localhost:5000/busybox:latest
  berth pull --platform linux/arm64 registry.example/app@sha256:…`,
    options: { ...COPY_OPTIONS, creds: { type: 'string' }, root: { type: 'string' } },
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const ref = registryRef(p.positionals[0]!);
      const client = clientFor(p, await credsOption(p, 'creds'));
      try {
        // Resolved through the mirrors registries.conf names, while the store opens.
        const resolving = client.resolveForPull(ref.registry, ref.repository, referenceTarget(ref), { prefetch: true });
        resolving.catch(() => undefined); // awaited below, once the store is open
        const { berthRoot, openImageStore, storeRefName } = await import('../engine/store.js');
        const { takeLease } = await import('../engine/leases.js');
        const store = await openImageStore({ root: str(p, 'root') });
        // The blobs land before the tag: a gc in another process (rmi, prune) must keep them meanwhile.
        const endLease = await takeLease(berthRoot({ root: str(p, 'root') }), { writesBlobs: true });
        try {
          const progress = progressFor(p);
          const name = storeRefName(ref);
          const { repository: repo, descriptor: root } = await resolving;
          const result = await copy(repo, root, store, name, copyOptions(p, progress));
          report(p, result, progress, { reference: name, store: store.dir });
          return 0;
        } finally {
          await endLease();
        }
      } finally {
        client.close();
      }
    },
  },

  push: {
    summary: 'Push an image from the local image store to a registry',
    usage: `Usage: berth push [OPTIONS] REF

Copies the image the local store holds under REF to the registry REF names.

Options:
${COPY_FLAGS_HELP}
  --root DIR           berth root directory (the store is DIR/images)
${CREDS_HELP}
${REGISTRY_HELP}

Example:
  berth push localhost:5000/busybox:latest`,
    options: { ...COPY_OPTIONS, creds: { type: 'string' }, root: { type: 'string' } },
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const ref = registryRef(p.positionals[0]!);
      const client = clientFor(p, await credsOption(p, 'creds'));
      try {
        const { openImageStore, storeRefName } = await import('../engine/store.js');
        const store = await openImageStore({ root: str(p, 'root') });
        const progress = progressFor(p);
        const opts = copyOptions(p, progress);
        // The store keeps what was pulled; push it as it is unless a platform is asked for.
        if (!opts.platform) opts.all = true;
        const result = await copy(store, storeRefName(ref), locatedRepository(client, ref), ref.tag, opts);
        report(p, result, progress, { reference: formatReference(ref) });
        return 0;
      } finally {
        client.close();
      }
    },
  },

  inspect: {
    summary: 'Show an image of the local store, or of a registry or place: manifest, config, platforms',
    usage: `Usage: berth inspect [OPTIONS] IMAGE|REF|CONTAINER

A bare name is looked up in the local store (as docker inspect does, never over the network):
a reference (busybox, registry.example/app:1), an image ID or digest; the result is JSON in
docker's shape. To inspect an image in its registry, give docker://REF or --remote REF; places
(oci:DIR:REF, oci-archive:…, docker-archive:…) are read where they are.

Options:
  --remote             REF is in its registry (same as docker://REF)
  --root DIR           berth root directory of the local store
  --raw                print the manifest or index exactly as stored
  --config             print the image config (of this host's platform for an index)
  --platform P         the platform to describe when REF is an index
  --format json        structured output
${CREDS_HELP}
${REGISTRY_HELP}

Examples:
  berth inspect busybox
  berth inspect docker://localhost:5000/busybox:latest
  berth inspect --remote --raw localhost:5000/app@sha256:…
  berth inspect --config oci:./layout:1`,
    options: { ...USER_REGISTRY_OPTIONS, raw: { type: 'boolean' }, config: { type: 'boolean' }, platform: { type: 'string' }, remote: { type: 'boolean' }, root: { type: 'string' } },
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      if (isLocalForm(p)) return (await import('./images.js')).inspectLocal(p, p.positionals);
      const client = clientFor(p, await credsOption(p, 'creds'));
      const src = await openSource(placeOf(p.positionals[0]!), { client });
      try {
        // The document is read next: a registry answers both with one GET.
        const desc = src.resolved ?? (await src.target.resolve(src.ref ?? '', { prefetch: true }));
        const raw = await fetchBytes(src.target, desc);
        if (flag(p, 'raw')) {
          process.stdout.write(raw);
          return 0;
        }
        let manifestDesc = desc;
        let index: ImageIndex | undefined;
        if (isIndexMediaType(desc.mediaType)) {
          index = JSON.parse(raw.toString('utf8')) as ImageIndex;
          const { selectManifests, hostPlatform, parsePlatform } = await import('../image/platform.js');
          const platform = str(p, 'platform');
          const [best] = selectManifests(index, platform ? parsePlatform(platform) : hostPlatform());
          manifestDesc = best ?? index.manifests[0]!;
        }
        const manifest = manifestDesc === desc ? (JSON.parse(raw.toString('utf8')) as ImageManifest) : await fetchJson<ImageManifest>(src.target, manifestDesc);
        const config = manifest.config && manifest.config.mediaType !== MediaType.empty && manifest.config.size < 4 << 20
          ? await fetchJson<ImageConfig>(src.target, manifest.config).catch(() => undefined)
          : undefined;
        if (flag(p, 'config')) {
          if (!config) throw new BerthError('NOT_FOUND', `${p.positionals[0]} has no image config (is it an artifact?)`);
          printJson(config);
          return 0;
        }
        const info = {
          name: src.target.name,
          digest: desc.digest,
          mediaType: desc.mediaType,
          size: desc.size,
          platforms: index ? index.manifests.filter((m) => m.platform).map((m) => ({ platform: formatPlatform(m.platform!), digest: m.digest })) : undefined,
          manifest: manifestDesc.digest,
          artifactType: manifest.artifactType,
          created: config?.created,
          architecture: config?.architecture,
          os: config?.os,
          variant: config?.variant,
          env: config?.config?.Env,
          entrypoint: config?.config?.Entrypoint,
          cmd: config?.config?.Cmd,
          labels: config?.config?.Labels,
          layers: (manifest.layers ?? []).map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
          subject: manifest.subject?.digest,
          annotations: manifest.annotations,
        };
        if (p.json) {
          printJson(info);
          return 0;
        }
        printLine(`Name:         ${info.name}`);
        printLine(`Digest:       ${info.digest}`);
        printLine(`MediaType:    ${info.mediaType}`);
        if (info.platforms) {
          printLine('Platforms:');
          for (const pl of info.platforms) printLine(`  ${pl.platform.padEnd(20)} ${pl.digest}`);
          printLine(`Manifest:     ${info.manifest}`);
        }
        if (info.artifactType) printLine(`ArtifactType: ${info.artifactType}`);
        if (info.subject) printLine(`Subject:      ${info.subject}`);
        if (config) {
          printLine(`Platform:     ${config.os}/${config.architecture}${config.variant ? `/${config.variant}` : ''}`);
          if (config.created) printLine(`Created:      ${config.created}`);
          if (info.entrypoint) printLine(`Entrypoint:   ${JSON.stringify(info.entrypoint)}`);
          if (info.cmd) printLine(`Cmd:          ${JSON.stringify(info.cmd)}`);
          for (const e of info.env ?? []) printLine(`Env:          ${e}`);
          for (const [k, v] of Object.entries(info.labels ?? {})) printLine(`Label:        ${k}=${v}`);
        }
        printLine('Layers:');
        for (const l of info.layers) printLine(`  ${l.digest}  ${String(l.size).padStart(12)}  ${l.mediaType}`);
        return 0;
      } finally {
        await src.close(true);
        client.close();
      }
    },
  },

  tags: {
    summary: 'List the tags of a repository',
    usage: `Usage: berth tags [OPTIONS] REPO

REPO is HOST/REPO (docker.io defaults) or oci:DIR.

Example:
  berth tags localhost:5000/busybox
${CREDS_HELP}
${REGISTRY_HELP}`,
    options: USER_REGISTRY_OPTIONS,
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const arg = p.positionals[0]!;
      const client = clientFor(p, await credsOption(p, 'creds'));
      try {
        let tags: string[];
        if (arg.startsWith('oci:')) {
          const { OciLayout } = await import('../image/layout.js');
          tags = await (await OciLayout.open(arg.slice(4))).tags();
        } else {
          const ref = registryRef(arg.replace(/@.*$/, ''));
          tags = await locatedRepository(client, ref).tags();
        }
        if (p.json) printJson(tags);
        else for (const t of tags) printLine(t);
        return 0;
      } finally {
        client.close();
      }
    },
  },

  catalog: {
    summary: "List a registry's repositories",
    usage: `Usage: berth catalog [OPTIONS] HOST

Example:
  berth catalog localhost:5000
${CREDS_HELP}
${REGISTRY_HELP}`,
    options: USER_REGISTRY_OPTIONS,
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const client = clientFor(p, await credsOption(p, 'creds'));
      try {
        const names = await client.catalog(normalizeHost(p.positionals[0]!));
        if (p.json) printJson(names);
        else for (const n of names) printLine(n);
        return 0;
      } finally {
        client.close();
      }
    },
  },

  digest: {
    summary: 'Print the digest of an image reference',
    usage: `Usage: berth digest [OPTIONS] REF

Example:
  berth digest localhost:5000/busybox:latest
${CREDS_HELP}
${REGISTRY_HELP}`,
    options: USER_REGISTRY_OPTIONS,
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const client = clientFor(p, await credsOption(p, 'creds'));
      const src = await openSource(placeOf(p.positionals[0]!), { client, digestOnly: true });
      try {
        const desc = src.resolved ?? (await src.target.resolve(src.ref ?? ''));
        if (p.json) printJson(desc);
        else printLine(desc.digest);
        return 0;
      } finally {
        await src.close(true);
        client.close();
      }
    },
  },

  tag: {
    summary: 'Name an image of the local store again (SRC DST), or tag an image in its registry (docker://REF TAG)',
    usage: `Usage: berth tag [OPTIONS] SRC DST
       berth tag [OPTIONS] docker://REF TAG    (or --remote REF TAG)

In the local store (as docker tag): DST (a reference: app:v1, registry.example/app:v1) now
names the image SRC names (a reference, an image ID or digest).
In a registry (docker://REF or --remote): puts the manifest REF names under TAG in the same
repository (as crane tag): one manifest read and one write, no blobs.

Options:
  --remote             REF is in its registry (same as docker://REF)
  --root DIR           berth root directory of the local store
${CREDS_HELP}

Examples:
  berth tag busybox registry.example/team/busybox:1.36
  berth tag docker://registry.example/team/app:rc1 v1.0.0
${REGISTRY_HELP}`,
    options: { ...USER_REGISTRY_OPTIONS, remote: { type: 'boolean' }, root: { type: 'string' } },
    async run(p) {
      needPositionals(p, 2, 2, this.usage);
      if (isLocalForm(p)) return (await import('./images.js')).tagLocal(p);
      const ref = registryRef(p.positionals[0]!);
      const tag = p.positionals[1]!;
      validateTag(tag);
      const client = clientFor(p, await credsOption(p, 'creds'));
      try {
        const repo = locatedRepository(client, ref);
        const desc = await repo.resolve(referenceTarget(ref), { prefetch: true });
        await repo.tag(desc, tag);
        if (p.json) printJson({ ...desc, tag });
        else printLine(desc.digest);
        return 0;
      } finally {
        client.close();
      }
    },
  },

  delete: {
    summary: 'Delete an image (manifest) from a registry',
    usage: `Usage: berth delete [OPTIONS] REF

Deletes the manifest REF names (a tag is resolved to its digest first, as skopeo does, so
every tag on that manifest goes). The registry must allow deletes.

Example:
  berth delete localhost:5000/app:old
${CREDS_HELP}
${REGISTRY_HELP}`,
    options: USER_REGISTRY_OPTIONS,
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const ref = registryRef(p.positionals[0]!);
      const client = clientFor(p, await credsOption(p, 'creds'));
      try {
        const repo = locatedRepository(client, ref);
        const desc = await repo.resolve(referenceTarget(ref));
        await repo.delete(desc);
        if (p.json) printJson({ deleted: desc.digest });
        else printLine(`Deleted ${desc.digest}`);
        return 0;
      } finally {
        client.close();
      }
    },
  },

  referrers: {
    summary: 'List the artifacts that refer to an image',
    usage: `Usage: berth referrers [OPTIONS] REF

Uses the referrers API, or the referrers tag schema where the registry has none.

Options:
  --artifact-type T    only artifacts of this type

Example:
  berth referrers --artifact-type application/vnd.example.sbom localhost:5000/app:1
${CREDS_HELP}
${REGISTRY_HELP}`,
    options: { ...USER_REGISTRY_OPTIONS, 'artifact-type': { type: 'string' } },
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const client = clientFor(p, await credsOption(p, 'creds'));
      const src = await openSource(placeOf(p.positionals[0]!), { client, digestOnly: true });
      try {
        const lister = src.target as Target & { referrers?: (d: Descriptor, t?: string) => Promise<Descriptor[]> };
        if (!lister.referrers) throw new BerthError('UNSUPPORTED', `${p.positionals[0]} cannot list referrers`);
        const subject = src.resolved ?? (await src.target.resolve(src.ref ?? ''));
        const list = await lister.referrers(subject, str(p, 'artifact-type'));
        if (p.json) printJson(list);
        else for (const d of list) printLine(`${d.digest}  ${d.artifactType ?? '-'}  ${d.size}`);
        return 0;
      } finally {
        await src.close(true);
        client.close();
      }
    },
  },

  attach: {
    summary: 'Push an artifact (files) whose subject is an image, as oras attach',
    usage: `Usage: berth attach [OPTIONS] REF --artifact-type T FILE[:MEDIATYPE]...

Pushes an artifact manifest (empty config, each file a layer titled with its name) whose
subject is REF, and prints its digest. Registries without a referrers API get the referrers
tag schema index updated.

Options:
  --artifact-type T    required: the artifact type
  --annotation K=V     manifest annotation (repeatable)

Example:
  berth attach --artifact-type application/vnd.example.sbom localhost:5000/app:1 sbom.json:application/json
${CREDS_HELP}
${REGISTRY_HELP}`,
    options: { ...USER_REGISTRY_OPTIONS, 'artifact-type': { type: 'string' }, annotation: { type: 'string', multiple: true } },
    async run(p) {
      if (p.positionals.length < 2) throw new BerthError('USAGE', `REF and at least one FILE are required\n\n${this.usage}`);
      const artifactType = str(p, 'artifact-type');
      if (!artifactType) throw new BerthError('USAGE', `--artifact-type is required\n\n${this.usage}`);
      const ref = registryRef(p.positionals[0]!);
      const annotations: Record<string, string> = {};
      for (const a of strs(p, 'annotation')) {
        const eq = a.indexOf('=');
        if (eq <= 0) throw new BerthError('USAGE', `--annotation must be KEY=VALUE, got ${JSON.stringify(a)}`);
        annotations[a.slice(0, eq)] = a.slice(eq + 1);
      }
      const client = clientFor(p, await credsOption(p, 'creds'));
      try {
        const repo: Repository = locatedRepository(client, ref);
        const subject = await repo.resolve(referenceTarget(ref));
        const layers: Descriptor[] = [];
        for (const spec of p.positionals.slice(1)) {
          const m = /^(.*?)(?::([\w.+-]+\/[\w.+-]+))?$/.exec(spec)!;
          const path = m[1]!;
          const mediaType = m[2] ?? 'application/vnd.oci.image.layer.v1.tar';
          if (!(await stat(path)).isFile()) throw new BerthError('USAGE', `${path} is not a regular file`);
          const { digest, size } = await digestStream(createReadStream(path));
          const desc: Descriptor = { mediaType, digest, size, annotations: { 'org.opencontainers.image.title': basename(path) } };
          if (!(await repo.exists(desc))) await repo.push(desc, createReadStream(path));
          layers.push(desc);
        }
        const { MemoryStore } = await import('../content/memory.js');
        const mem = new MemoryStore();
        const empty = mem.add(MediaType.empty, '{}');
        if (!(await repo.exists(empty))) await repo.push(empty, await mem.fetch(empty));
        const manifest: ImageManifest = {
          schemaVersion: 2,
          mediaType: MediaType.imageManifest,
          artifactType,
          config: { mediaType: MediaType.empty, digest: empty.digest, size: empty.size },
          layers,
          subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
          annotations: { 'org.opencontainers.image.created': new Date().toISOString(), ...annotations },
        };
        const desc = mem.addJson(MediaType.imageManifest, manifest, { artifactType });
        await repo.push(desc, await mem.fetch(desc));
        if (p.json) printJson({ digest: desc.digest, subject: subject.digest, artifactType });
        else printLine(desc.digest);
        return 0;
      } finally {
        client.close();
      }
    },
  },

  login: {
    summary: 'Log in to a registry (checks the credentials, then stores them)',
    usage: `Usage: berth login [OPTIONS] HOST

Checks the credentials against the registry, then stores them where docker and podman read
them: --authfile, else $REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json or
~/.docker/config.json (through its credsStore/credHelpers when configured).

Options:
  -u, --username USER
  --password-stdin     read the password from standard input
  -p, --password PASS  (insecure: visible to other users)

Examples:
  echo "$PASSWORD" | berth login -u ci --password-stdin registry.example
  berth login localhost:5000      (prompts, with echo off)`,
    options: { ...REGISTRY_OPTIONS, username: { type: 'string', short: 'u' }, password: { type: 'string', short: 'p' }, 'password-stdin': { type: 'boolean' } },
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const host = normalizeHost(p.positionals[0]!);
      let username = str(p, 'username');
      if (username === undefined) {
        if (!process.stdin.isTTY || flag(p, 'password-stdin')) throw new BerthError('USAGE', '--username is required when not on a terminal');
        username = await promptLine('Username: ');
      }
      const password = await readPassword(p);
      const creds: Credentials = { username, password };
      const client = clientFor(p);
      try {
        await client.ping(host, creds);
      } finally {
        client.close();
      }
      const file = await storeCredentials(host, creds, str(p, 'authfile') ?? defaultLoginFile());
      if (p.json) printJson({ host, file });
      else printLine(`Login Succeeded (credentials for ${host} in ${file})`);
      return 0;
    },
  },

  logout: {
    summary: 'Remove stored credentials for a registry',
    usage: `Usage: berth logout [--authfile FILE] HOST

Removes the credentials for HOST from every file berth reads them from (and its credential helper).

Example:
  berth logout registry.example`,
    options: { authfile: { type: 'string' } },
    async run(p) {
      needPositionals(p, 1, 1, this.usage);
      const host = normalizeHost(p.positionals[0]!);
      const authfile = str(p, 'authfile');
      const changed = await removeCredentials(host, authfile ? { ...process.env, REGISTRY_AUTH_FILE: authfile } : process.env);
      if (changed.length === 0) throw new BerthError('NOT_FOUND', `not logged in to ${host}`);
      if (p.json) printJson({ host, files: changed });
      else printLine(`Removed login credentials for ${host}`);
      return 0;
    },
  },
};
