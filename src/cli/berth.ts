#!/usr/bin/env node
/**
 * The `berth` command: a thin dispatcher. Each command group lives in its own module,
 * loaded only when one of its commands runs, so that start-up stays small.
 */
import * as fs from 'node:fs';
import { BerthError } from '../base/errors.js';
import { berthVersion } from '../base/package.js';
import { parseCommand, type CommandGroup } from './common.js';
import { takePlanRequest } from '../engine/containers/run-plan-request.js';

type GroupLoader = () => Promise<{ commands: CommandGroup }>;

const groups: Record<string, GroupLoader> = {
  images: () => import('./images.js'),
  image: () => import('./image.js'),
  client: () => import('./client.js'),
  serve: () => import('./serve.js'),
  engine: () => import('./engine.js'),
  network: () => import('./network.js'),
  build: () => import('./build.js'),
};

/** Which group serves each command: edit this table when adding a command. */
const commandGroup: Record<string, keyof typeof groups> = {
  // image-spec: layouts, validation, unpacking, creating images (cli/image.ts)
  validate: 'image',
  layout: 'image',
  unpack: 'image',
  create: 'image', // and containers: sharedGroup
  append: 'image',
  mutate: 'image',
  artifact: 'image',
  // registry client and copy (cli/client.ts)
  copy: 'client',
  pull: 'client',
  push: 'client',
  inspect: 'client', // and containers: sharedGroup
  tags: 'client',
  catalog: 'client',
  digest: 'client',
  tag: 'client',
  delete: 'client',
  referrers: 'client',
  attach: 'client', // and containers: sharedGroup
  login: 'client',
  // the local store: images, volumes, disk usage (cli/images.ts)
  images: 'images',
  rmi: 'images',
  image: 'images',
  system: 'images',
  volume: 'images',
  logout: 'client',
  // registry server (cli/serve.ts)
  serve: 'serve',
  registry: 'serve',
  // containers (cli/engine.ts)
  run: 'engine',
  start: 'engine',
  stop: 'engine',
  kill: 'engine',
  restart: 'engine',
  pause: 'engine',
  unpause: 'engine',
  rename: 'engine',
  rm: 'engine',
  ps: 'engine',
  logs: 'engine',
  exec: 'engine',
  wait: 'engine',
  top: 'engine',
  cp: 'engine',
  commit: 'engine',
  diff: 'engine',
  container: 'engine',
  // networks and published ports (cli/network.ts)
  network: 'network',
  port: 'network',
  // images from a Dockerfile (cli/build.ts)
  build: 'build',
  builder: 'build',
};

/**
 * Commands two groups share, told apart by their arguments: `create DIR oci:LAYOUT:TAG` makes an
 * image (else a container), `inspect X` shows a container when X names one (else an image),
 * `attach --artifact-type T REF FILE...` pushes an artifact (else it attaches to a container).
 */
function sharedGroup(cmd: string, args: string[]): keyof typeof groups | undefined {
  if (cmd === 'create') return args.some((a) => /^oci:/.test(a)) ? 'image' : 'engine';
  if (cmd === 'attach') return args.some((a) => a === '--artifact-type' || a.startsWith('--artifact-type=')) ? 'client' : 'engine';
  if (cmd === 'inspect') {
    const target = args.filter((a) => !a.startsWith('-')).pop();
    return target !== undefined && namesContainer(target, args) ? 'engine' : 'client';
  }
  return undefined;
}

/** Whether ref is a container's name or id (prefix) in the berth root the args or environment name. */
function namesContainer(ref: string, args: string[]): boolean {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(ref)) return false;
  const at = args.findIndex((a) => a === '--root' || a.startsWith('--root='));
  const root = at < 0 ? undefined : args[at]!.includes('=') ? args[at]!.slice(7) : args[at + 1];
  const base = root ?? process.env.BERTH_ROOT ?? (process.getuid?.() === 0 ? '/var/lib/berth' : undefined);
  if (!base) return false;
  const dir = `${base}/containers`;
  try {
    if (fs.lstatSync(`${dir}/names/${ref}`).isSymbolicLink()) return true;
  } catch { /* not a name */ }
  if (!/^[0-9a-f]+$/.test(ref)) return false;
  try {
    return fs.readdirSync(dir).some((n) => n.length === 64 && n.startsWith(ref));
  } catch {
    return false;
  }
}

async function loadGroup(name: string): Promise<CommandGroup | undefined> {
  try {
    return (await groups[name]!()).commands;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
}

async function printHelp(): Promise<void> {
  const lines = [
    'berth: OCI images, registries and containers, without a daemon',
    '',
    'Usage: berth COMMAND [OPTIONS] [ARGS]   (berth COMMAND --help for examples)',
    '',
    'Places are named as skopeo names them: docker://HOST/REPO:TAG, oci:DIR[:REF],',
    'oci-archive:FILE[:REF], docker-archive:FILE.',
    '',
    'Commands:',
  ];
  for (const [cmd, group] of Object.entries(commandGroup)) {
    const g = await loadGroup(group);
    const spec = g?.[cmd];
    if (spec) lines.push(`  ${cmd.padEnd(11)} ${spec.summary}`);
  }
  lines.push('', 'Output: --format json on every command that prints data. Exit status: 0 ok, 1 failure, 2 usage error.');
  process.stdout.write(lines.join('\n') + '\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    await printHelp();
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === 'version') {
    process.stdout.write(`berth ${berthVersion()}\n`);
    return 0;
  }
  const groupName = sharedGroup(cmd, rest) ?? commandGroup[cmd];
  const group = groupName ? await loadGroup(groupName) : undefined;
  const spec = group?.[cmd];
  if (!spec) {
    process.stderr.write(`berth: unknown command ${JSON.stringify(cmd)}; run "berth --help" for the list\n`);
    return 2;
  }
  const parsed = parseCommand(cmd, spec, rest);
  if (parsed === 'help') {
    process.stdout.write(spec.usage.trimEnd() + '\n');
    return 0;
  }
  return spec.run(parsed);
}

export function reportError(err: unknown): number {
  if (err instanceof BerthError) {
    process.stderr.write(`berth: ${err.message}\n`);
    return err.code === 'USAGE' ? 2 : 1;
  }
  const e = err as Error;
  process.stderr.write(`berth: ${e?.stack ?? String(err)}\n`);
  return 1;
}

/**
 * Build time only (scripts/bundle-cli.mjs): BERTH_CODE_CACHE_WARMUP holds a JSON list of
 * command lines run one after another in this process, so that the V8 code cache written at
 * exit holds the functions a push and a pull compile, not only those of `--help`.
 */
async function warmUp(commands: string[][]): Promise<number> {
  for (const argv of commands) {
    const code = await main(argv).catch(reportError);
    if (code !== 0) return code;
  }
  return 0;
}

// Every command awaits its own work and stdio writes are synchronous on Linux, so once main()
// settles nothing is left to do: exit at once. Node's own teardown would free every buffer one by
// one first (10-20 ms after a pull, for nothing).
takePlanRequest();
const warmup = process.env.BERTH_CODE_CACHE_WARMUP;
(warmup === undefined ? main(process.argv.slice(2)) : warmUp(JSON.parse(warmup) as string[][])).then(
  (code) => process.exit(code),
  (err) => process.exit(reportError(err)),
);
