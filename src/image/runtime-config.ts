/**
 * Image config → runtime config.json (image-spec conversion.md), on top of the defaults that
 * `runc spec` writes (namespaces, mounts, masked and read-only paths, capabilities, rlimits).
 */
import { posix } from 'node:path';
import { BerthError } from '../base/errors.js';
import type { ImageConfig } from '../base/types.js';
import { resolveUser } from './passwd.js';
import { DEFAULT_CAPS, DEFAULT_PATH_ENV, defaultLinux, defaultMounts } from '../runtime/spec/default.js';
import type { Linux, Mount } from '../runtime/spec/types.js';
import { OCI_VERSION } from '../runtime/spec/version.js';

/** The parts of runtime-spec config.md that a converted image uses. */
export interface RuntimeSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'permitted' | 'ambient', string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: Mount[];
  annotations: Record<string, string>;
  linux: Linux;
}

export interface ConversionOptions {
  /** The unpacked root filesystem: User names resolve through its /etc/passwd and /etc/group. */
  rootfs: string;
  /** Replaces the image's Cmd (the Entrypoint stays), as `docker run IMAGE ARGS…` does. */
  args?: string[];
  /** Replaces the image's Entrypoint. */
  entrypoint?: string[];
  /** KEY=VALUE entries added to, or replacing those of, the image's Env. */
  env?: string[];
  terminal?: boolean;
  /** root.path in config.json (default "rootfs", relative to the bundle). */
  rootPath?: string;
  readonlyRootfs?: boolean;
  hostname?: string;
  /** conversion.md "Config.Volumes" (optional): 'tmpfs' mounts an empty tmpfs at each volume. Default: no mounts. */
  volumes?: 'none' | 'tmpfs';
}

export const DEFAULT_PATH = DEFAULT_PATH_ENV;
/** What `runc spec` runs when nothing else is given. */
const DEFAULT_ARGS = ['sh'];
const DEFAULT_CAPABILITIES = DEFAULT_CAPS;

const ANNOTATION = {
  os: 'org.opencontainers.image.os',
  architecture: 'org.opencontainers.image.architecture',
  variant: 'org.opencontainers.image.variant',
  osVersion: 'org.opencontainers.image.os.version',
  osFeatures: 'org.opencontainers.image.os.features',
  author: 'org.opencontainers.image.author',
  created: 'org.opencontainers.image.created',
  stopSignal: 'org.opencontainers.image.stopSignal',
  exposedPorts: 'org.opencontainers.image.exposedPorts',
} as const;

function envName(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

/** Sets or replaces KEY=VALUE entries, keeping the order of the first occurrence. */
export function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const out = [...base];
  for (const entry of overrides) {
    if (!entry.includes('=')) throw new BerthError('USAGE', `environment entry ${JSON.stringify(entry)} must be KEY=VALUE`);
    const name = envName(entry);
    const at = out.findIndex((e) => envName(e) === name);
    if (at >= 0) out[at] = entry;
    else out.push(entry);
  }
  return out;
}

function stringArray(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new BerthError('CONFIG_INVALID', `image config ${field} must be an array of strings`);
  }
  return value as string[];
}

/** The annotations of conversion.md "Annotation Fields" and "Config.ExposedPorts"; Labels win. */
export function imageAnnotations(config: ImageConfig): Record<string, string> {
  const out: Record<string, string> = {};
  const c = config.config ?? {};
  if (config.os) out[ANNOTATION.os] = config.os;
  if (config.architecture) out[ANNOTATION.architecture] = config.architecture;
  if (config.variant) out[ANNOTATION.variant] = config.variant;
  if (config['os.version']) out[ANNOTATION.osVersion] = config['os.version'];
  if (config['os.features']?.length) out[ANNOTATION.osFeatures] = config['os.features'].join(',');
  if (config.author) out[ANNOTATION.author] = config.author;
  if (config.created) out[ANNOTATION.created] = config.created;
  if (c.StopSignal) out[ANNOTATION.stopSignal] = c.StopSignal;
  const ports = Object.keys(c.ExposedPorts ?? {});
  if (ports.length) out[ANNOTATION.exposedPorts] = ports.join(',');
  // conversion.md "Annotations": an explicit Label takes precedence over an implicit annotation.
  for (const [k, v] of Object.entries(c.Labels ?? {})) if (typeof v === 'string') out[k] = v;
  return out;
}

export async function imageConfigToRuntimeSpec(config: ImageConfig, opts: ConversionOptions): Promise<RuntimeSpec> {
  const c = config.config ?? {};
  const entrypoint = opts.entrypoint ?? stringArray(c.Entrypoint, 'Entrypoint') ?? [];
  const cmd = opts.args ?? stringArray(c.Cmd, 'Cmd') ?? [];
  // conversion.md: Entrypoint followed by Cmd.
  let args = [...entrypoint, ...cmd];
  if (args.length === 0) args = [...DEFAULT_ARGS];

  const imageEnv = stringArray(c.Env, 'Env') ?? [];
  // conversion.md note 1: defaults only add variables the image does not name.
  const defaults: string[] = [];
  const names = new Set(imageEnv.map(envName));
  if (!names.has('PATH')) defaults.push(DEFAULT_PATH);
  if (opts.terminal && !names.has('TERM')) defaults.push('TERM=xterm');

  const user = await resolveUser(opts.rootfs, typeof c.User === 'string' ? c.User : undefined);
  if (user.home && !names.has('HOME')) defaults.push(`HOME=${user.home}`);
  const env = mergeEnv([...imageEnv, ...defaults], opts.env ?? []);

  const workdir = typeof c.WorkingDir === 'string' && c.WorkingDir !== '' ? posix.resolve('/', c.WorkingDir) : '/';

  const mounts: RuntimeSpec['mounts'] = defaultMounts();
  if (opts.volumes === 'tmpfs') {
    for (const volume of Object.keys(c.Volumes ?? {})) {
      mounts.push({ destination: posix.resolve('/', volume), type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755'] });
    }
  }

  const processUser: RuntimeSpec['process']['user'] = { uid: user.uid, gid: user.gid };
  if (user.additionalGids?.length) processUser.additionalGids = user.additionalGids;

  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: opts.terminal ?? false,
      user: processUser,
      args,
      env,
      cwd: workdir,
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
        ambient: [...DEFAULT_CAPABILITIES],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: opts.rootPath ?? 'rootfs', readonly: opts.readonlyRootfs ?? false },
    hostname: opts.hostname ?? 'berth',
    mounts,
    annotations: imageAnnotations(config),
    linux: defaultLinux(),
  };
}
