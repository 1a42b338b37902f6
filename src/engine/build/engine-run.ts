/**
 * RUN steps in containers of berth's engine: the stage so far becomes an image of the local
 * store under a temporary name, a container of it runs the step (same defaults as `berth run`;
 * the network is the host's unless the step says --network=none: this machine has no bridge,
 * as docker's classic builder without one), and the container's overlay upper directory is
 * the step's changes. RUN --mount: cache (a directory under the berth root, kept between
 * builds), bind (the context, an earlier stage or an image; read-only), tmpfs, secret.
 */
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { BerthError } from '../../base/errors.js';
import { MediaType } from '../../base/media-types.js';
import type { Descriptor, ImageManifest } from '../../base/types.js';
import { digestOf } from '../../base/digest.js';
import type { OciLayout } from '../../image/layout.js';
import { pushJson } from '../../image/build.js';
import type { MountSpec, RunOptions } from '../containers/options.js';
import { openImageStore } from '../store.js';
import type { RunStep, RunStepExecutor, RunStepOptions, RunStepResult } from './run-step.js';
import { shareBlob } from './cache.js';
import { BUILD_PID_LABEL, scratchPrefix, stepContainerName, STEP_IMAGE_REPO } from './interrupted.js';

export interface EngineRunOptions {
  /** The berth root (store, containers, build cache). */
  root: string;
  /** The OCI runtime (default berth's own). */
  runtime?: string;
}

/** The container's overlay comes off its root before the upper dir is read (its contents are then stable). */
async function unmountRoot(containerDir: string): Promise<void> {
  spawnSync('umount', [join(containerDir, 'rootfs')], { stdio: 'ignore' });
}

function where(step: RunStep): string {
  const l = step.instruction.loc;
  return `${l.file}:${l.line}:${l.column}`;
}

/** A cache mount's directory: one per id, under the build cache. */
function cacheDir(root: string, id: string): string {
  return join(root, 'build-cache', 'mounts', Buffer.from(id).toString('base64url'));
}

async function mountsOf(step: RunStep, o: RunStepOptions, root: string, scratch: string): Promise<MountSpec[]> {
  const out: MountSpec[] = [];
  for (const m of step.mounts) {
    const target = posix.resolve(step.workdir || '/', m.target);
    switch (m.type) {
      case 'cache': {
        const dir = cacheDir(root, m.id ?? target);
        if (!(await stat(dir).catch(() => undefined))) {
          await mkdir(dir, { recursive: true });
          await chmod(dir, m.mode ?? 0o755);
          await chown(dir, m.uid ?? 0, m.gid ?? 0);
        }
        out.push({ type: 'bind', source: dir, destination: target, options: ['rbind', m.readonly ? 'ro' : 'rw'] });
        break;
      }
      case 'bind': {
        if (!m.readonly) {
          throw new BerthError('UNSUPPORTED', `${where(step)}: RUN --mount=type=bind,rw is not supported yet (its writes must be discarded): leave the mount read-only`);
        }
        const base = await o.mountRoot(m.from);
        const source = join(base, posix.resolve('/', m.source ?? '/'));
        out.push({ type: 'bind', source, destination: target, options: ['rbind', 'ro'] });
        break;
      }
      case 'tmpfs':
        out.push({ type: 'tmpfs', source: 'tmpfs', destination: target, options: ['nosuid', 'nodev', ...(m.size ? [`size=${m.size}`] : [])] });
        break;
      case 'secret': {
        if (m.env !== undefined) throw new BerthError('UNSUPPORTED', `${where(step)}: RUN --mount=type=secret,env= is not supported yet: mount the secret as a file`);
        const src = o.secrets.get(m.id!);
        if (src === undefined) {
          if (m.required) throw new BerthError('USAGE', `${where(step)}: the build has no secret ${JSON.stringify(m.id)}: give it with --secret id=${m.id},src=FILE`);
          break;
        }
        out.push({ type: 'bind', source: src, destination: target, options: ['rbind', 'ro'] });
        break;
      }
      default:
        throw new BerthError('UNSUPPORTED', `${where(step)}: RUN --mount=type=${m.type} is not supported yet`);
    }
  }
  if (step.script) {
    const file = join(scratch, 'script');
    await writeFile(file, step.script.data, { mode: 0o755 });
    out.push({ type: 'bind', source: file, destination: step.script.path, options: ['rbind', 'ro'] });
  }
  return out;
}

/**
 * Whether `path` is in the image below an overlay: in the topmost lower dir (snapshot) that has
 * it, unless that is a whiteout (a 0/0 character device).
 */
export async function inOverlayLowers(dirs: string[], path: string): Promise<boolean> {
  for (const d of [...dirs].reverse()) {
    const st = await lstat(join(d, path)).catch(() => undefined);
    if (!st) continue;
    return !(st.isCharacterDevice() && st.rdev === 0);
  }
  return false;
}

/** The lower dirs (lowest first) the engine recorded for a container's overlay root (snapshots.ts "rootfs.json"). */
async function overlayLowers(containerDir: string): Promise<string[]> {
  const rec = JSON.parse(await readFile(join(containerDir, 'rootfs.json'), 'utf8')) as { dirs?: unknown };
  if (!Array.isArray(rec.dirs) || !rec.dirs.every((d) => typeof d === 'string')) {
    throw new BerthError('INTERNAL', `${containerDir}/rootfs.json lists no lower directories`);
  }
  return rec.dirs as string[];
}

/** Where the engine mounts things in every container (runtime files, kernel file systems). */
const ENGINE_MOUNTS = ['/etc/resolv.conf', '/etc/hostname', '/etc/hosts', '/proc', '/sys', '/dev'];

/**
 * Removes the mount points the runtime had to create in the changes (an empty file or
 * directory where the image had nothing, and the empty parents it made for them), as BuildKit
 * does: a RUN --mount leaves no trace in the image.
 */
export async function pruneMountpoints(changes: string, inLower: (path: string) => Promise<boolean>, destinations: string[]): Promise<void> {
  for (const dest of destinations) {
    let path = posix.resolve('/', dest);
    while (path !== '/') {
      if (await inLower(path)) break;
      const st = await lstat(join(changes, path)).catch(() => undefined);
      if (!st) break;
      if (st.isDirectory()) {
        if ((await readdir(join(changes, path))).length > 0) break;
        await rmdir(join(changes, path));
      } else if (st.isFile() && st.size === 0) await unlink(join(changes, path));
      else break;
      path = posix.dirname(path);
    }
  }
}

/** Documents pushed by running steps of this process, by digest: how many steps use each. */
const inUse = new Map<string, number>();

/**
 * The JSON documents of a step image: pushed into the store for the engine, and removed again
 * by release() when this process wrote them and no other running step uses them.
 */
class StepDocuments {
  private readonly owned: Descriptor[] = [];
  constructor(private readonly store: OciLayout) {}

  async push(mediaType: string, doc: unknown): Promise<Descriptor> {
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = digestOf(bytes);
    const held = inUse.get(digest) ?? 0;
    const existed = held === 0 && (await this.store.exists({ mediaType, digest, size: bytes.length }));
    inUse.set(digest, held + 1);
    const desc = await pushJson(this.store, mediaType, doc);
    if (desc.digest !== digest) throw new BerthError('INTERNAL', `pushJson wrote ${desc.digest} for a document that hashes to ${digest}`);
    if (!existed) this.owned.push(desc);
    else inUse.set(digest, inUse.get(digest)! - 1);
    return desc;
  }

  async release(): Promise<void> {
    for (const d of this.owned.splice(0)) {
      const left = (inUse.get(d.digest) ?? 1) - 1;
      if (left > 0) {
        inUse.set(d.digest, left);
        continue;
      }
      inUse.delete(d.digest);
      await unlink(this.store.blobPath(d.digest)).catch(() => undefined);
    }
  }
}

export class EngineRunExecutor implements RunStepExecutor {
  constructor(private readonly opts: EngineRunOptions) {}

  async run(step: RunStep, rootfs: () => Promise<string>, o: RunStepOptions): Promise<RunStepResult> {
    const { Engine } = await import('../containers/engine.js');
    const engine = new Engine(this.opts.root);
    const store = await openImageStore({ root: this.opts.root });
    // The stage so far, as an image of the store.
    for (const l of step.image.layers) await shareBlob(step.image.layout, store, l);
    // The step image's config and manifest are the store's only while the step runs (release
    // removes them unless they were there before: a base image with nothing added yet).
    const docs = new StepDocuments(store);
    const configDesc = await docs.push(MediaType.imageConfig, step.image.config);
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.imageManifest, config: configDesc, layers: step.image.layers };
    const manifestDesc = await docs.push(MediaType.imageManifest, manifest);
    // The pid in the tag and the label: what a build killed mid-step left is found by it (interrupted.ts).
    const name = `${STEP_IMAGE_REPO}:${process.pid}-${randomBytes(8).toString('hex')}`;
    await store.tag(manifestDesc, name);
    const scratch = await mkdtemp(join(tmpdir(), scratchPrefix('run-step')));
    let container: Awaited<ReturnType<typeof engine.create>> | undefined;
    const release = async (): Promise<void> => {
      if (container) await engine.remove(container, true).catch(() => undefined);
      await store.untag(name).catch(() => undefined);
      await docs.release();
      await rm(scratch, { recursive: true, force: true });
    };
    try {
      const runOpts: RunOptions = {
        name: stepContainerName(),
        command: step.argv,
        entrypoint: '',
        env: step.env,
        workdir: step.workdir,
        ...(step.user ? { user: step.user } : {}),
        network: step.network === 'none' ? 'none' : 'host',
        publish: [],
        publishAll: false,
        networkAliases: [],
        dns: [], dnsSearch: [], dnsOptions: [],
        addHosts: [],
        mounts: await mountsOf(step, o, this.opts.root, scratch),
        readOnly: false,
        capAdd: [],
        capDrop: [],
        privileged: step.security === 'insecure',
        noNewPrivileges: false,
        ulimits: [],
        init: false,
        labels: { [BUILD_PID_LABEL]: String(process.pid) },
        tty: false,
        interactive: false,
        autoRemove: false,
        // The image's VOLUMEs are not mounted during RUN (as BuildKit): what RUN writes there stays in the layer.
        imageVolumes: false,
        runtime: this.opts.runtime ?? 'berth',
        logMaxSize: 10 << 20,
      };
      container = await engine.create(name, runOpts, undefined);
      const code = await engine.start(container, true, undefined, { endsWithCaller: true });
      if (code !== 0) {
        throw new BerthError('RUNTIME_ERROR', `${where(step)}: RUN ${step.argv.join(' ')} failed with exit code ${code}: see its output above`, { detail: { exitCode: code } });
      }
      const upperDir = join(container.dir, 'upper');
      const overlay = (await stat(upperDir).catch(() => undefined))?.isDirectory() === true;
      const changes = overlay ? upperDir : join(container.dir, 'rootfs');
      if (overlay) await unmountRoot(container.dir);
      // What the step saw below its changes: the overlay's snapshots, else (a copied root) the stage's files.
      let inLower: (path: string) => Promise<boolean>;
      if (overlay) {
        const lowers = await overlayLowers(container.dir);
        inLower = (path) => inOverlayLowers(lowers, path);
      } else {
        const lower = await rootfs();
        inLower = async (path) => (await lstat(join(lower, path)).catch(() => undefined)) !== undefined;
      }
      await pruneMountpoints(changes, inLower, [...ENGINE_MOUNTS, ...runOpts.mounts.map((m) => m.destination)]);
      return overlay ? { upperDir, release } : { rootDir: changes, release };
    } catch (err) {
      await release();
      throw err;
    }
  }
}
