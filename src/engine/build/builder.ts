/**
 * `berth build` without a daemon: the plan's stages built wave by wave (independent stages in
 * parallel), each over a root filesystem unpacked from its base (an image of an OCI layout or
 * the local store, an earlier stage, or scratch). Config instructions change the config with a
 * history entry as BuildKit writes it; COPY/ADD become layers made from a staging directory;
 * RUN goes to the engine through a RunStepExecutor. The result is written to an OCI layout.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, posix, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { BerthError } from '../../base/errors.js';
import { EMPTY_JSON_DIGEST, layerCompression, MediaType, ociLayerMediaType, type LayerCompression } from '../../base/media-types.js';
import type { Descriptor, HistoryEntry, ImageConfig, ImageIndex, ImageManifest, Platform } from '../../base/types.js';
import { BASE_DIGEST_ANNOTATION, nowOrEpoch, pushJson } from '../../image/build.js';
import { ociManifestToDocker } from '../../image/docker.js';
import { OciLayout } from '../../image/layout.js';
import { isLayoutPlace, parseLayoutPlace } from '../../image/place.js';
import { loadImage } from '../../image/load-image.js';
import { formatPlatform, hostPlatform, normalizePlatform, parsePlatform } from '../../image/platform.js';
import { parseReference } from '../../image/reference.js';
import type { LayerOptions, LayerResult } from '../../layer/layer-output.js';
import { unpackLayers } from '../../layer/unpack-layers.js';
import { DEFAULT_PATH_ENV } from '../../runtime/spec/default.js';
import { openImageStore, storeRefName } from '../store.js';
import { SnapshotStore } from '../snapshots.js';
import { BuildCache, shareBlob, type CachedStep } from './cache.js';
import { uncompressedDigest, type ImportedCache } from './cache-transfer.js';
import { applyConfigStep, DEFAULT_SHELL, HISTORY_COMMENT, type ConfigState } from './config-steps.js';
import { download, isTarArchive, parseChmod, realImagePath, resolveChown, Staging } from './copy-step.js';
import { expandInstruction, type StageScope } from './expand.js';
import { PatternMatcher, readIgnoreFile } from './ignore.js';
import { parseDockerfile, parseTrigger, readDockerfile, type CopyInstruction, type Dockerfile, type Instruction, type RunInstruction } from './instructions.js';
import { planBuild, resolveSourceRef, stepKey, type BuildPlan, type SourceRef } from './plan.js';
import { noExecutorError, runArgv, type RunStepExecutor } from './run-step.js';
import { contentHash, destinationPath, DigestMemo, resolveCopy, type CopyRoot } from './sources.js';
import { writeUpperLayer } from './upper.js';
import { scratchPrefix, STEP_IMAGE_REPO, sweepInterruptedBuilds } from './interrupted.js';
import { assertCanRun } from './emulation.js';
import { writeDiffLayer } from '../../layer/diff.js';

type LayerProducer = (out: Writable, opts: LayerOptions) => Promise<LayerResult>;

export interface BuildOptions {
  /** The build context directory. */
  contextDir: string;
  /** -f: the Dockerfile (default CONTEXT/Dockerfile, else CONTEXT/Containerfile). */
  dockerfile?: string;
  /** The Dockerfile's text, instead of reading a file. */
  dockerfileText?: string;
  /** --target. */
  targetStage?: string;
  /** --build-arg NAME=VALUE (undefined: from the environment). */
  buildArgs?: Record<string, string | undefined>;
  /** --platform (default: this host). */
  platform?: Platform;
  /** Where the image goes: an OCI layout directory, and the tag in it. */
  output: { layout: string; tag?: string };
  /** SOURCE_DATE_EPOCH: file times clamped and `created` set, for reproducible images. */
  sourceDateEpoch?: number;
  compression?: LayerCompression;
  /** The manifest's media types: OCI (default) or Docker schema 2 (`--format docker`). */
  format?: ImageFormat;
  /** Runs RUN steps (the engine); without it a Dockerfile with RUN fails before building. */
  runExecutor?: RunStepExecutor;
  /**
   * The berth root whose snapshot store holds the stages' layers (unpacked once, shared with
   * the engine's containers, seen through read-only overlay mounts: needs root); without it
   * each stage that needs its files unpacks them into a temporary directory.
   */
  snapshotRoot?: string;
  /** The berth root whose image store FROM/--from names are looked up in (default: BERTH_ROOT or the usual place). */
  storeRoot?: string;
  /** How FROM/--from images are found; default: `oci:DIR[:REF]`, else the local image store. */
  resolveImage?: (ref: string, platform: Platform) => Promise<{ layout: OciLayout; ref: string }>;
  /** Where temporary root filesystems go (default the system temp directory). */
  workDir?: string;
  /** --secret id=…,src=…. */
  secrets?: Map<string, string>;
  /** The build cache (a directory or an open cache); none: nothing is reused or kept. */
  cache?: BuildCache | string;
  /** --cache-from: caches exported by other builds (cache-transfer.ts), consulted after the local one. */
  cacheFrom?: ImportedCache[];
  /** --no-cache: build every step (results are still cached). */
  noCache?: boolean;
  /** Progress lines ("[2/5] COPY …"). */
  log?: (line: string) => void;
}

export interface StepRecord {
  stage: number;
  instruction: string;
  key: string;
  /** The step's layer came from the cache. */
  cached: boolean;
}

export interface BuildResult {
  manifest: Descriptor;
  /** The image ID docker prints: the config's digest. */
  id: string;
  config: ImageConfig;
  /** The cache key of every step built, in order. */
  steps: StepRecord[];
  /** Stages that were built (the target's dependencies). */
  built: number[];
  /** The layer steps as cache records, layers in the output layout (what --cache-to exports). */
  cacheSteps: CachedStep[];
  warnings: string[];
}

interface Layer {
  desc: Descriptor;
  diffId: string;
}

interface StageResult {
  /** "[name k/N]" of the step being built, for progress lines as BuildKit prints them. */
  step?: string;
  config: ImageConfig;
  layers: Layer[];
  key: string;
  /** The root filesystem directory: layers[0..applied) are unpacked in it (see materialize). */
  rootfs: string;
  applied: number;
  /** Serialises materialize() calls on this stage. */
  lock?: Promise<void>;
  manifestMediaType: string;
  baseDigest?: string;
}

async function defaultResolveImage(ref: string, storeRoot?: string): Promise<{ layout: OciLayout; ref: string }> {
  if (isLayoutPlace(ref)) {
    const place = parseLayoutPlace(ref);
    return { layout: await OciLayout.open(place.dir), ref: place.ref ?? 'latest' };
  }
  const store = await openImageStore(storeRoot ? { root: storeRoot } : {});
  return { layout: store, ref: storeRefName(parseReference(ref)) };
}

function where(ins: Instruction): string {
  return `${ins.loc.file}:${ins.loc.line}:${ins.loc.column}`;
}

function locate(dockerfile: string | undefined, contextDir: string): string {
  if (dockerfile !== undefined) return isAbsolute(dockerfile) ? dockerfile : resolve(dockerfile);
  for (const name of ['Dockerfile', 'Containerfile']) if (existsSync(join(contextDir, name))) return join(contextDir, name);
  throw new BerthError('USAGE', `no Dockerfile or Containerfile in ${contextDir}: give one with -f`);
}

/** A build in progress. */
class Build {
  readonly results = new Map<number, StageResult>();
  readonly steps: StepRecord[] = [];
  readonly warnings: string[] = [];
  /** Every layer step of this build as the cache records it (for --cache-to). */
  readonly cacheRecords: CachedStep[] = [];
  private readonly imageRoots = new Map<string, Promise<string>>();
  /** The diffIDs of --cache-from layers, by blob digest, as their content gives them. */
  private readonly verifiedDiffIds = new Map<string, Promise<string>>();
  /** Read-only overlay views of stages (mountView): where, and how many layers they show. */
  private readonly views = new WeakMap<StageResult, { path: string; count: number }>();
  private readonly mounts: string[] = [];
  private readonly leases: (() => Promise<void>)[] = [];
  private readonly snapshots: SnapshotStore | undefined;
  private counter = 0;
  private readonly created: string;
  private readonly epoch: number;

  constructor(
    readonly opts: BuildOptions,
    readonly plan: BuildPlan,
    readonly out: OciLayout,
    readonly tmp: string,
    readonly matcher: PatternMatcher,
    readonly platform: Platform,
    readonly cache: BuildCache | undefined,
    readonly digests: DigestMemo | undefined,
  ) {
    this.snapshots = opts.snapshotRoot !== undefined ? new SnapshotStore(opts.snapshotRoot) : undefined;
    this.created = nowOrEpoch(opts.sourceDateEpoch);
    this.epoch = opts.sourceDateEpoch ?? Math.floor(Date.now() / 1000);
  }

  private get df(): Dockerfile {
    return this.plan.dockerfile;
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private resolveImage(ref: string, platform: Platform): Promise<{ layout: OciLayout; ref: string }> {
    return this.opts.resolveImage ? this.opts.resolveImage(ref, platform) : defaultResolveImage(ref, this.opts.storeRoot);
  }

  /**
   * The platform a stage is built for: its FROM --platform (`FROM --platform=$BUILDPLATFORM`
   * for a stage that cross-compiles without an emulator), else its base stage's, else the build's.
   */
  platformOf(index: number): Platform {
    const sp = this.plan.stages[index]!;
    if (sp.platform !== undefined) return normalizePlatform(parsePlatform(sp.platform));
    return sp.base.kind === 'stage' ? this.platformOf(sp.base.index) : this.platform;
  }

  /** Unpacks layers into a new directory under the build's temp dir. */
  private async unpack(name: string, layout: OciLayout, layers: Layer[], diffIds: string[]): Promise<string> {
    const dir = await mkdtemp(join(this.tmp, `${name}-`));
    await unpackLayers(
      dir,
      layers.map((l, i) => ({ mediaType: l.desc.mediaType, digest: l.desc.digest, size: l.desc.size, diffId: diffIds[i], open: () => layout.fetch(l.desc) })),
    );
    return dir;
  }

  /** The root filesystem of an image read by COPY --from / mount from= (unpacked once per platform). */
  private imageRoot(ref: string, platform: Platform): Promise<string> {
    const at = `${formatPlatform(platform)} ${ref}`;
    let p = this.imageRoots.get(at);
    if (!p) {
      p = (async () => {
        const { layout, ref: inner } = await this.resolveImage(ref, platform);
        const img = await loadImage(layout, inner, platform);
        return this.unpack('image', layout, img.manifest.layers.map((desc, i) => ({ desc, diffId: img.config.rootfs.diff_ids[i]! })), img.config.rootfs.diff_ids);
      })();
      this.imageRoots.set(at, p);
    }
    return p;
  }

  /** The starting point of a stage. */
  private async base(index: number): Promise<StageResult & { triggers: string[] }> {
    const sp = this.plan.stages[index]!;
    const base: SourceRef = sp.base;
    const platform = this.platformOf(index);
    if (base.kind === 'scratch') {
      const p = platform;
      const config: ImageConfig = {
        architecture: p.architecture,
        os: p.os,
        ...(p.variant ? { variant: p.variant } : {}),
        config: { Env: [DEFAULT_PATH_ENV] },
        rootfs: { type: 'layers', diff_ids: [] },
        history: [],
      };
      const rootfs = await mkdtemp(join(this.tmp, 'scratch-'));
      return { config, layers: [], key: 'scratch', rootfs, applied: 0, manifestMediaType: MediaType.imageManifest, triggers: [] };
    }
    if (base.kind === 'stage') {
      const from = this.results.get(base.index)!;
      const rootfs = await mkdtemp(join(this.tmp, `stage${index}-`));
      const { lock: _lock, ...rest } = from;
      return { ...rest, config: structuredClone(from.config), layers: [...from.layers], rootfs, applied: 0, triggers: [] };
    }
    const { layout, ref } = await this.resolveImage(base.ref, platform);
    const img = await loadImage(layout, ref, platform);
    const layers = img.manifest.layers.map((desc, i) => ({ desc, diffId: img.config.rootfs.diff_ids[i]! }));
    // The result holds the base's blobs too.
    // (copied, digests verified: the base may come from any layout)
    for (const l of layers) if (!(await this.out.exists(l.desc))) await this.out.push(l.desc, await layout.fetch(l.desc));
    const rootfs = await mkdtemp(join(this.tmp, `stage${index}-`));
    const config = structuredClone(img.config);
    config.config ??= {};
    if (!(config.config.Env ?? []).some((e) => e.startsWith('PATH='))) config.config.Env = [DEFAULT_PATH_ENV, ...(config.config.Env ?? [])];
    const triggers = (config.config.OnBuild as string[] | null | undefined) ?? [];
    // ONBUILD triggers fire once, in the image built FROM this one.
    if (triggers.length) delete config.config.OnBuild;
    return { config, layers, key: img.manifestDesc.digest, rootfs, applied: 0, manifestMediaType: MediaType.imageManifest, baseDigest: img.manifestDesc.digest, triggers };
  }

  private history(config: ImageConfig, createdBy: string, emptyLayer: boolean): void {
    const h: HistoryEntry = { created: this.created, created_by: createdBy, comment: HISTORY_COMMENT };
    if (emptyLayer) h.empty_layer = true;
    config.history = [...(config.history ?? []), h];
  }

  /** A new layer on top of the stage: what `produce` writes. */
  private async commitLayer(state: StageResult, produce: LayerProducer): Promise<Layer> {
    const compression = this.opts.compression ?? 'gzip';
    const opts: LayerOptions = { compression, ...(this.opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: this.opts.sourceDateEpoch } : {}) };
    let diffId = '';
    const desc = await this.out.ingest(ociLayerMediaType(compression), async (out) => {
      diffId = (await produce(out, opts)).diffId;
    });
    const layer: Layer = { desc, diffId };
    await this.addLayer(state, layer);
    return layer;
  }

  /** Puts a layer (already in the output layout) on the stage; its files reach the root filesystem when it is needed. */
  private async addLayer(state: StageResult, layer: Layer): Promise<void> {
    state.layers.push(layer);
    state.config.rootfs = { type: 'layers', diff_ids: [...state.config.rootfs.diff_ids, layer.diffId] };
  }

  /**
   * A step that may make a layer: reused from the cache when its key is there (the layer is
   * then applied, not made), else `produce` runs and its result is cached.
   */
  private async layerStep(
    index: number,
    state: StageResult,
    k: { instruction: string; args: string[]; content?: string },
    createdBy: string,
    produce: () => Promise<Layer | undefined>,
    link = false,
  ): Promise<void> {
    // COPY --link: the layer does not depend on the stage below it, so neither does its key
    // (a new base keeps it cached, as BuildKit); the steps after it depend on both.
    const platform = formatPlatform(this.platformOf(index));
    const key = stepKey({ parent: link ? 'link' : state.key, ...k, platform });
    const mediaType = ociLayerMediaType(this.opts.compression ?? 'gzip');
    const hit = this.opts.noCache ? undefined : ((await this.cache?.get(key, mediaType)) ?? (await this.imported(key, mediaType)));
    let layer: Layer | undefined;
    const n = ++this.counter;
    const started = Date.now();
    this.log(`#${n} ${state.step ?? ''} ${createdBy.replace(/ # buildkit$/, '')}`);
    if (hit) {
      this.log(`#${n} CACHED`);
      layer = hit.layer;
      if (layer) {
        if (!(await this.out.exists(layer.desc))) await shareBlob(this.cache!.layout, this.out, layer.desc);
        await this.addLayer(state, layer);
      }
    } else {
      layer = await produce();
      if (this.cache) await this.cache.put({ key, createdBy, ...(layer ? { layer } : {}) }, this.out);
      this.log(`#${n} DONE ${((Date.now() - started) / 1000).toFixed(1)}s`);
    }
    this.cacheRecords.push({ key, createdBy, ...(layer ? { layer } : {}) });
    state.key = link ? stepKey({ parent: state.key, instruction: 'link', args: [key], platform }) : key;
    this.steps.push({ stage: index, instruction: k.instruction, key, cached: hit !== undefined });
    this.history(state.config, createdBy, layer === undefined);
  }

  /**
   * A step of a --cache-from cache: its layer fetched into the output (its digest verified by
   * the push), its diffID checked against the layer's content, and kept in the local cache. A
   * layer whose content does not match the diffID the cache lists is a cache miss with a warning
   * (the step is built; a bad cache entry is never used, and never fails a build that can
   * make the layer itself).
   */
  private async imported(key: string, mediaType: string): Promise<CachedStep | undefined> {
    for (const imp of this.opts.cacheFrom ?? []) {
      const step = imp.steps.get(key);
      if (!step || (step.layer && step.layer.desc.mediaType !== mediaType)) continue;
      if (step.layer) {
        const { desc, diffId } = step.layer;
        if (!(await this.out.exists(desc))) await this.out.push(desc, await imp.source.fetch(desc));
        let verified = this.verifiedDiffIds.get(desc.digest);
        if (verified === undefined) {
          verified = uncompressedDigest(this.out, desc).catch((err: unknown) => `nothing (${(err as Error).message})`);
          this.verifiedDiffIds.set(desc.digest, verified);
        }
        const got = await verified;
        if (got !== diffId) {
          const line = `--cache-from: the layer ${desc.digest} of step "${step.createdBy.replace(/ # buildkit$/, '')}" decompresses to ${got}, not to the diffID ${diffId} the cache lists: not used, the step is built instead; export the cache again with --cache-to`;
          this.warnings.push(line);
          continue;
        }
      }
      if (this.cache) await this.cache.put(step, this.out);
      return step;
    }
    return undefined;
  }

  /**
   * The stage's root filesystem with all its layers: unpacked only when a step needs it (a COPY
   * or RUN that is not cached, a COPY --from it), so that a rebuild of cached steps unpacks nothing.
   */
  private materialize(state: StageResult): Promise<string> {
    if (this.snapshots) return this.mountView(this.snapshots, state);
    const next = (state.lock ?? Promise.resolve()).then(async () => {
      const pending = state.layers.slice(state.applied);
      if (pending.length === 0) return;
      await unpackLayers(
        state.rootfs,
        pending.map((l) => ({ mediaType: l.desc.mediaType, digest: l.desc.digest, size: l.desc.size, diffId: l.diffId, open: () => this.out.fetch(l.desc) })),
      );
      state.applied += pending.length;
    });
    state.lock = next.catch(() => undefined);
    return next.then(() => state.rootfs);
  }

  /**
   * With the engine's snapshot store: the stage's layers unpacked once into shared snapshots
   * (the same ones RUN containers use), seen through a read-only overlay mount, instead of a
   * copy per stage. A new mount when the stage has grown; earlier ones stay until the build ends
   * (a COPY --from may still read them).
   */
  private mountView(snapshots: SnapshotStore, state: StageResult): Promise<string> {
    const next = (state.lock ?? Promise.resolve()).then(async () => {
      const seen = this.views.get(state);
      if (state.layers.length === 0) return state.rootfs;
      if (seen && seen.count === state.layers.length) return seen.path;
      const layers = [...state.layers];
      const prepared = await snapshots.prepare({
        layout: this.out,
        manifest: { schemaVersion: 2, mediaType: MediaType.imageManifest, config: { mediaType: MediaType.imageConfig, digest: EMPTY_JSON_DIGEST, size: 2 }, layers: layers.map((l) => l.desc) },
        config: { architecture: state.config.architecture, os: state.config.os, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } },
      });
      this.leases.push(prepared.release);
      const dir = await mkdtemp(join(this.tmp, 'view-'));
      this.mounts.push(dir);
      const path = await snapshots.mountRootfs(prepared.dirs, dir, { readOnly: true });
      this.views.set(state, { path, count: layers.length });
      return path;
    });
    state.lock = next.then(() => undefined, () => undefined);
    return next;
  }

  /** Unmounts the views (one umount(8) for all of them) and ends the snapshot leases. */
  async close(): Promise<void> {
    const views = this.mounts.splice(0).map((dir) => this.snapshots!.rootfsPath(dir));
    if (views.length && spawnSync('umount', views, { stdio: 'ignore' }).status !== 0) {
      for (const v of views) spawnSync('umount', ['-l', v], { stdio: 'ignore' }); // busy or already gone: detach what is left
    }
    for (const release of this.leases.splice(0)) await release().catch(() => undefined);
  }

  private async newStaging(): Promise<string> {
    return mkdtemp(join(this.tmp, 'staging-'));
  }

  /** A config-only step: its key, and its history entry. */
  private configStep(index: number, state: StageResult, instruction: string, args: string[]): void {
    const n = ++this.counter;
    this.log(`#${n} ${state.step ?? ''} ${instruction}`);
    this.log(`#${n} DONE 0.0s`);
    state.key = stepKey({ parent: state.key, instruction, args, platform: formatPlatform(this.platformOf(index)) });
    this.steps.push({ stage: index, instruction, key: state.key, cached: false });
    this.history(state.config, instruction, true);
  }

  /** Builds one stage. */
  async stage(index: number): Promise<void> {
    const sp = this.plan.stages[index]!;
    const label = sp.stage.name ?? `stage-${index}`;
    const total = sp.stage.instructions.length + 1;
    const n = ++this.counter;
    const started = Date.now();
    this.log(`#${n} [${label} 1/${total}] FROM ${sp.base.kind === 'image' ? sp.base.ref : sp.base.kind === 'stage' ? (this.df.stages[sp.base.index]!.name ?? String(sp.base.index)) : 'scratch'}`);
    const { triggers, ...state } = await this.base(index);
    this.log(`#${n} DONE ${((Date.now() - started) / 1000).toFixed(1)}s`);
    const scope = this.plan.args.stage(state.config.config?.Env ?? [], this.df.directives.escape);
    const cs: ConfigState = { config: state.config, cmdSet: false };
    const instructions: Instruction[] = [...triggers.map((t) => parseTrigger(t, this.df.directives, sp.stage.from.loc)), ...sp.stage.instructions];
    for (const [i, ins] of instructions.entries()) {
      state.step = `[${label} ${Math.max(2, i - triggers.length + 2)}/${total}]`;
      if (ins.kind === 'ARG') {
        scope.declare(ins);
        continue;
      }
      const ex = expandInstruction(ins, scope);
      const e = ex.ins;
      if (e.kind === 'COPY' || e.kind === 'ADD') {
        await this.copy(index, state, e);
        continue;
      }
      if (e.kind === 'RUN') {
        await this.run(index, state, scope, e);
        continue;
      }
      const text = applyConfigStep(cs, e);
      if (text === undefined) throw new BerthError('INTERNAL', `${where(e)}: ${e.kind} has no step`);
      if (e.kind === 'ENV') scope.setEnv(state.config.config?.Env ?? []);
      if (e.kind === 'WORKDIR') await this.workdir(index, state, text, scope.argsIn(ex.used));
      else this.configStep(index, state, text, scope.argsIn(ex.used));
    }
    this.results.set(index, state);
  }

  /** WORKDIR creates its directory (owned by USER) when the image lacks it, as BuildKit does. */
  private async workdir(index: number, state: StageResult, text: string, args: string[]): Promise<void> {
    await this.layerStep(index, state, { instruction: text, args }, text, async () => {
      const rootfs = await this.materialize(state);
      const wd = state.config.config?.WorkingDir ?? '/';
      const real = await realImagePath(rootfs, wd);
      const st = await stat(join(rootfs, real)).catch(() => undefined);
      if (st?.isDirectory() || real === '/') return undefined;
      const user = state.config.config?.User;
      const owner = user ? await resolveChown(rootfs, user, 'WORKDIR').catch(() => ({ uid: 0, gid: 0 })) : undefined;
      const s = new Staging({ rootfs, now: this.epoch, ...(owner ? { owner } : {}) });
      await s.parents(`${real}/x`);
      return this.commitLayer(state, (out, o) => s.write(out, o));
    });
  }

  /**
   * Where a COPY reads: the context (its content hashed), or a stage or an image, whose files
   * follow from their cache key or digest (`key`); `open` gives the directory when the step runs.
   */
  private async copySource(index: number, from: string | undefined): Promise<{ open: () => Promise<CopyRoot>; key?: string }> {
    if (from === undefined) {
      const root: CopyRoot = { dir: this.opts.contextDir, matcher: this.matcher, label: 'the build context' };
      return { open: async () => root };
    }
    const ref = resolveSourceRef(this.df, from, index, true);
    if (ref.kind === 'stage') {
      const r = this.results.get(ref.index)!;
      const label = `stage ${this.df.stages[ref.index]!.name ?? ref.index}`;
      return { open: async () => ({ dir: await this.materialize(r), label }), key: `stage:${r.key}` };
    }
    if (ref.kind === 'scratch') throw new BerthError('USAGE', `--from=scratch has no files to copy: name a stage or an image`);
    const platform = this.platformOf(index);
    const { layout, ref: inner } = await this.resolveImage(ref.ref, platform);
    const digest = (await loadImage(layout, inner, platform)).manifestDesc.digest;
    return { open: async () => ({ dir: await this.imageRoot(ref.ref, platform), label: `image ${ref.ref}` }), key: `image:${digest}` };
  }

  private async copy(index: number, state: StageResult, c: CopyInstruction): Promise<void> {
    const at = where(c);
    const workdir = state.config.config?.WorkingDir || '/';
    const mode = c.chmod !== undefined ? parseChmod(c.chmod, at) : undefined;
    const source = await this.copySource(index, c.from);
    const exclude = c.exclude.length ? new PatternMatcher(c.exclude) : undefined;
    const urls = c.kind === 'ADD' ? c.sources.filter((s) => /^https?:\/\//i.test(s)) : [];
    const locals = c.sources.filter((s) => !urls.includes(s));
    if (c.checksum !== undefined && (urls.length === 0 || locals.length > 0)) {
      throw new BerthError('USAGE', `${at}: ADD --checksum verifies http(s) sources only: remove it or give a URL`);
    }
    if (c.kind === 'ADD' && c.sources.some((s) => /^git@|\.git(#.*)?$/.test(s) && !/^https?:/.test(s))) {
      throw new BerthError('UNSUPPORTED', `${at}: ADD of a git repository is not supported: clone it into the context and COPY it`);
    }
    const downloads = await Promise.all(urls.map((u) => download(u, c.checksum, at)));
    const inline = [...c.inline.map((f) => ({ name: f.name, data: f.data })), ...downloads.map((dl, i) => ({ name: urls[i]!, data: dl.data.toString('latin1') }))];
    // The key: the context's files by content (each source resolved on its own, as if into /),
    // another stage's or image's by its key or digest.
    let content: string;
    if (source.key === undefined) {
      const root = await source.open();
      const hashes: string[] = [];
      for (const src of locals) {
        const entries = resolveCopy(root, [src], '/', { workdir: '/', isDirInImage: () => true, what: c.kind, parents: c.parents, ...(exclude ? { exclude } : {}) });
        hashes.push(`${src}=${await contentHash(entries, [], this.digests)}`);
      }
      content = await contentHash([], [...inline, { name: 'sources', data: hashes.join('\n') }]);
    } else content = `${source.key}+${await contentHash([], inline)}`;
    const text = `${c.kind}${c.from !== undefined ? ` --from=${c.from}` : ''} ${[...c.sources, ...c.inline.map((f) => `<<${f.name}`)].join(' ')} ${c.dest}`;
    const keyText = JSON.stringify({ kind: c.kind, sources: c.sources, inline: c.inline.map((f) => f.name), dest: c.dest, workdir, chown: c.chown, chmod: c.chmod, link: c.link, parents: c.parents, exclude: c.exclude, from: c.from });
    // --link copies onto an empty root (destinations are not resolved in the stage's files); a
    // --chown by name still reads the stage's /etc/passwd and /etc/group.
    const link = c.link === true && (c.chown === undefined || /^\d+(:\d+)?$/.test(c.chown));
    await this.layerStep(index, state, { instruction: keyText, args: [], content }, `${text} # buildkit`, async () => {
      const rootfs = link ? await mkdtemp(join(this.tmp, 'link-')) : await this.materialize(state);
      const root = await source.open();
      const d = destinationPath(c.dest, workdir);
      const real = await realImagePath(rootfs, d.path);
      const isDirInImage = (p: string): boolean => {
        try {
          return statSync(join(rootfs, p)).isDirectory();
        } catch {
          return false;
        }
      };
      const intoDir = d.isDir || isDirInImage(real);
      if (c.sources.length + c.inline.length > 1 && !intoDir && !c.parents) {
        throw new BerthError('USAGE', `${at}: ${c.kind} with more than one source needs a directory destination ending in /: write ${c.dest}/`);
      }
      const owner = c.chown !== undefined ? await resolveChown(rootfs, c.chown, at) : undefined;
      const opts = { workdir, isDirInImage, what: c.kind, parents: c.parents, ...(exclude ? { exclude } : {}) };
      const dir = await this.newStaging();
      try {
        const s = new Staging({ rootfs, now: this.epoch, scratchDir: dir, ...(owner ? { owner } : {}), ...(mode !== undefined ? { mode } : {}) });
        // Each local source on its own: ADD extracts a source that is a tar archive.
        for (const src of locals) {
          const entries = resolveCopy(root, [src], intoDir ? `${real}/` : real, opts);
          const single = entries.length === 1 ? entries[0]! : undefined;
          if (c.kind === 'ADD' && c.unpack !== false && single?.kind === 'file' && (await isTarArchive(single.abs))) {
            await s.extract(single.abs, real);
            continue;
          }
          await s.addEntries(entries);
        }
        for (const f of c.inline) await s.addFile(intoDir ? posix.join(real, f.name) : real, f.data, 0o644);
        for (const dl of downloads) await s.addFile(intoDir ? posix.join(real, dl.name) : real, dl.data, 0o600, dl.mtime);
        return await this.commitLayer(state, (out, o) => s.write(out, o));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, link);
  }

  private async run(index: number, state: StageResult, scope: StageScope, ins: RunInstruction): Promise<void> {
    const executor = this.opts.runExecutor;
    if (!executor) throw noExecutorError(ins);
    const c = state.config.config ?? {};
    const { argv, script } = runArgv(ins, (c.Shell as string[] | undefined) ?? DEFAULT_SHELL);
    const { args, proxy } = scope.runArgs();
    const mounts = expandInstruction(ins, scope).mounts ?? [];
    const text = `RUN ${args.length ? `|${args.length} ${args.join(' ')} ` : ''}${argv.join(' ')}`;
    await this.layerStep(index, state, { instruction: JSON.stringify({ text, mounts, network: ins.network, security: ins.security }), args: [...args] }, `${text} # buildkit`, async () => {
      // A foreign platform's binaries need an emulator the host already has (a cached RUN does not).
      assertCanRun(this.platformOf(index), where(ins));
      const rootfs = () => this.materialize(state);
      const result = await executor.run(
        {
          instruction: ins,
          argv,
          env: [...(c.Env ?? []), ...args, ...proxy],
          user: c.User ?? '',
          workdir: c.WorkingDir || '/',
          mounts,
          network: (ins.network ?? 'default') as 'default' | 'none' | 'host',
          security: (ins.security ?? 'sandbox') as 'sandbox' | 'insecure',
          platform: this.platformOf(index),
          image: { layout: this.out, layers: state.layers.map((l) => l.desc), diffIds: state.layers.map((l) => l.diffId), config: structuredClone(state.config) },
          ...(script ? { script } : {}),
          stage: { index, ...(this.df.stages[index]!.name ? { name: this.df.stages[index]!.name } : {}) },
        },
        rootfs,
        {
          stdout: process.stdout,
          stderr: process.stderr,
          mountRoot: async (from) => (await (await this.copySource(index, from)).open()).dir,
          secrets: this.opts.secrets ?? new Map(),
        },
      );
      try {
        const lower = 'upperDir' in result ? undefined : await rootfs();
        return await this.commitLayer(state, (out, o) => ('upperDir' in result ? writeUpperLayer(result.upperDir, out, o) : writeDiffLayer(lower!, result.rootDir, out, o)));
      } finally {
        await result.release?.();
      }
    });
  }

  /** Writes the target stage as an image into the output layout. */
  async finish(target: number): Promise<{ manifest: Descriptor; config: ImageConfig; id: string }> {
    const r = this.results.get(target)!;
    const config: ImageConfig = { ...r.config, created: this.created };
    const configDesc = await pushJson(this.out, MediaType.imageConfig, config);
    // A base image's layers may carry Docker media types: the result uses one format throughout.
    const layers = r.layers.map((l) => ({ ...l.desc, mediaType: ociLayerTypeOf(l.desc.mediaType) }));
    let manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.imageManifest, config: configDesc, layers };
    if (r.baseDigest) manifest.annotations = { [BASE_DIGEST_ANNOTATION]: r.baseDigest };
    // --format docker: the same config and layer blobs under Docker schema 2 media types (no annotations there).
    if (this.opts.format === 'docker') manifest = ociManifestToDocker(manifest);
    const desc = await pushJson(this.out, manifest.mediaType!, manifest);
    const withPlatform: Descriptor = { ...desc, platform: { architecture: config.architecture, os: config.os, ...(config.variant ? { variant: config.variant } : {}) } };
    if (this.opts.output.tag !== undefined) await this.out.tag(withPlatform, this.opts.output.tag);
    else await this.out.addManifest(withPlatform);
    return { manifest: desc, config, id: configDesc.digest };
  }
}

export type ImageFormat = 'oci' | 'docker';

/** The OCI media type of a layer that may have come with a Docker one. */
function ociLayerTypeOf(mediaType: string): string {
  const c = layerCompression(mediaType);
  return c === undefined || mediaType.includes('nondistributable') || mediaType.includes('foreign') ? mediaType : ociLayerMediaType(c);
}

/** The first RUN of the stages to build, when there is no executor for it. */
function firstRun(plan: BuildPlan): RunInstruction | undefined {
  for (const i of plan.needed) for (const ins of plan.stages[i]!.stage.instructions) if (ins.kind === 'RUN') return ins;
  return undefined;
}

/** Builds an image from a Dockerfile into an OCI layout. */
export async function build(opts: BuildOptions): Promise<BuildResult> {
  const contextDir = resolve(opts.contextDir);
  const st = await stat(contextDir).catch(() => undefined);
  if (!st?.isDirectory()) throw new BerthError('USAGE', `the build context ${opts.contextDir} is not a directory: give the directory to build from`);
  const dockerfilePath = opts.dockerfileText === undefined ? locate(opts.dockerfile, contextDir) : undefined;
  const df = opts.dockerfileText !== undefined ? parseDockerfile(opts.dockerfileText, opts.dockerfile ?? 'Dockerfile') : await readDockerfile(dockerfilePath!);
  const platform = normalizePlatform(opts.platform ?? hostPlatform());
  const plan = planBuild(df, { target: platform, build: hostPlatform(), buildArgs: opts.buildArgs ?? {}, ...(opts.targetStage !== undefined ? { targetStage: opts.targetStage } : {}) });
  for (const i of plan.needed) {
    const p = plan.stages[i]!.platform;
    try {
      if (p !== undefined) parsePlatform(p);
    } catch (err) {
      throw new BerthError('USAGE', `${df.file}:${plan.stages[i]!.stage.from.loc.line}: FROM --platform=${p}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (opts.format === 'docker' && opts.compression === 'zstd') {
    throw new BerthError('USAGE', 'Docker schema 2 has no zstd layers: use --compression gzip with --format docker, or --format oci with zstd');
  }
  const run = firstRun(plan);
  if (run && !opts.runExecutor) throw noExecutorError(run);
  const { patterns } = readIgnoreFile(contextDir, dockerfilePath);
  const out = await OciLayout.open(opts.output.layout, { create: true });
  await mkdir(opts.workDir ?? tmpdir(), { recursive: true });
  // What builds killed mid-step left (their views still mounted, a RUN container still running) goes first.
  await sweepInterruptedBuilds({ workDirs: [opts.workDir ?? tmpdir(), tmpdir()], ...(opts.storeRoot !== undefined ? { root: opts.storeRoot } : {}) });
  const tmp = await mkdtemp(join(opts.workDir ?? tmpdir(), scratchPrefix('build')));
  const cache = typeof opts.cache === 'string' ? await BuildCache.open(opts.cache) : opts.cache;
  const digests = cache ? await DigestMemo.load(join(cache.dir, 'file-digests.json')) : undefined;
  const b = new Build({ ...opts, contextDir }, plan, out, tmp, new PatternMatcher(patterns), platform, cache, digests);
  try {
    for (const wave of plan.waves) await Promise.all(wave.map((i) => b.stage(i)));
    const { manifest, config, id } = await b.finish(plan.target);
    await digests?.save();
    const unused = plan.args.unconsumed();
    const warnings = [...df.warnings, ...b.warnings, ...(unused.length ? [`build args that no ARG uses: ${unused.join(', ')}`] : [])];
    return { manifest, id, config, steps: b.steps, built: plan.needed, warnings, cacheSteps: b.cacheRecords };
  } finally {
    await b.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

export interface MultiPlatformResult extends BuildResult {
  /** Each platform's image (its manifest is in the index). */
  platforms: { platform: Platform; result: BuildResult }[];
}

/**
 * `--platform A,B,…`: the Dockerfile built once per platform (each FROM of an index picks that
 * platform's manifest; steps without RUN build for any platform, a RUN for a platform this host
 * cannot run fails naming the emulator it needs), and an image index listing each platform's
 * manifest (a Docker manifest list with `--format docker`), tagged as the output says. One
 * platform: an image manifest, as build() makes.
 */
export async function buildPlatforms(opts: BuildOptions, platforms: Platform[]): Promise<BuildResult | MultiPlatformResult> {
  if (platforms.length <= 1) return build({ ...opts, ...(platforms[0] ? { platform: platforms[0] } : {}) });
  const seen = new Set<string>();
  for (const p of platforms) {
    const name = formatPlatform(normalizePlatform(p));
    if (seen.has(name)) throw new BerthError('USAGE', `--platform lists ${name} twice: name each platform once`);
    seen.add(name);
  }
  const out = await OciLayout.open(opts.output.layout, { create: true });
  const results: { platform: Platform; result: BuildResult }[] = [];
  // One after another: each platform's RUN steps are CPU-bound, and its stages already build in parallel.
  // Each platform's manifest is held by a temporary tag until the index holds it (a build killed
  // meanwhile leaves tags that the next build's sweep removes: interrupted.ts).
  const holds = platforms.map((_, i) => `${STEP_IMAGE_REPO}:${process.pid}-platform-${i}`);
  let desc: Descriptor;
  try {
    for (const [i, platform] of platforms.entries()) {
      const result = await build({ ...opts, platform, output: { layout: opts.output.layout, tag: holds[i]! } });
      results.push({ platform: normalizePlatform(platform), result });
    }
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: opts.format === 'docker' ? MediaType.dockerManifestList : MediaType.imageIndex,
      manifests: results.map(({ result }) => {
        const c = result.config;
        return { ...result.manifest, platform: { architecture: c.architecture, os: c.os, ...(c.variant ? { variant: c.variant } : {}) } };
      }),
    };
    desc = await pushJson(out, index.mediaType!, index);
    if (opts.output.tag !== undefined) await out.tag(desc, opts.output.tag);
    else await out.addManifest(desc);
  } finally {
    for (const hold of holds.slice(0, results.length)) await out.untag(hold).catch(() => undefined);
  }
  const first = results[0]!.result;
  return {
    ...first,
    manifest: desc,
    id: desc.digest,
    steps: results.flatMap((r) => r.result.steps),
    cacheSteps: results.flatMap((r) => r.result.cacheSteps),
    warnings: [...new Set(results.flatMap((r) => r.result.warnings))],
    platforms: results,
  };
}
