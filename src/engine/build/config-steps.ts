/**
 * The instructions that change only the image config (ENV, LABEL, WORKDIR's setting, USER, CMD,
 * ENTRYPOINT, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER), and the
 * history text BuildKit writes for every step (`docker history` shows it), so that images
 * built by berth read as docker's do.
 */
import { posix } from 'node:path';
import { BerthError } from '../../base/errors.js';
import type { ExecConfig, ImageConfig } from '../../base/types.js';
import { mergeEnv } from '../../image/runtime-config.js';
import type { CommandLine, Instruction } from './instructions.js';

export const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** BuildKit's history comment. */
export const HISTORY_COMMENT = 'buildkit.dockerfile.v0';

/** Go's %q of a []string: ["a" "b c"]. */
function goQuoteList(list: readonly string[]): string {
  return `[${list.map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** Go's time.Duration String(): 1m30s, 500ms, 0s. */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${trim(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trim(ns / 1e6)}ms`;
  const h = Math.floor(ns / 3600e9);
  const m = Math.floor((ns % 3600e9) / 60e9);
  const s = (ns % 60e9) / 1e9;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${trim(s)}s`;
  function trim(x: number): string {
    return String(Number(x.toFixed(9)));
  }
}

/** The argv of CMD/ENTRYPOINT/RUN: exec form as is, shell form under the stage's SHELL. */
export function commandArgv(cmd: CommandLine, shell: readonly string[] | undefined): string[] {
  return cmd.json ? [...cmd.args] : [...(shell && shell.length ? shell : DEFAULT_SHELL), cmd.args[0]!];
}

/** EXPOSE values as ExposedPorts keys: 80 → 80/tcp, 53/udp, ranges 8000-8002 expanded. */
export function exposedPorts(values: string[], where: string): string[] {
  const out: string[] = [];
  for (const v of values) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(v);
    if (!m) throw new BerthError('USAGE', `${where}: EXPOSE ${JSON.stringify(v)} is not a port: write PORT, PORT/tcp|udp|sctp or a range 8000-8010`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo > 65535 || hi > 65535 || hi < lo) throw new BerthError('USAGE', `${where}: EXPOSE ${v} is out of range: ports are 0-65535`);
    for (let p = lo; p <= hi; p++) out.push(`${p}/${(m[3] ?? 'tcp').toLowerCase()}`);
  }
  return out;
}

function where(ins: Instruction): string {
  return `${ins.loc.file}:${ins.loc.line}:${ins.loc.column}`;
}

/** The state of a stage's config that config-only steps change. */
export interface ConfigState {
  config: ImageConfig;
  /** CMD was set in this stage (ENTRYPOINT then keeps it; else ENTRYPOINT clears an inherited CMD). */
  cmdSet: boolean;
}

/**
 * Applies a config-only instruction (already substituted) and returns its history text.
 * undefined for instructions that are not config-only.
 */
export function applyConfigStep(state: ConfigState, ins: Instruction): string | undefined {
  const c: ExecConfig = (state.config.config ??= {});
  switch (ins.kind) {
    case 'ENV': {
      for (const p of ins.pairs) if (p.key === '') throw new BerthError('USAGE', `${where(ins)}: ENV names can not be blank`);
      c.Env = mergeEnv(c.Env ?? [], ins.pairs.map((p) => `${p.key}=${p.value}`));
      return `ENV ${ins.pairs.map((p) => `${p.key}=${p.value}`).join(' ')}`;
    }
    case 'LABEL': {
      c.Labels = { ...(c.Labels ?? {}) };
      for (const p of ins.pairs) {
        if (p.key === '') throw new BerthError('USAGE', `${where(ins)}: LABEL names can not be blank`);
        c.Labels[p.key] = p.value;
      }
      return `LABEL ${ins.pairs.map((p) => `${p.key}=${p.value}`).join(' ')}`;
    }
    case 'WORKDIR':
      c.WorkingDir = posix.resolve(c.WorkingDir || '/', ins.value);
      return `WORKDIR ${c.WorkingDir}`;
    case 'USER':
      c.User = ins.value;
      return `USER ${ins.value}`;
    case 'STOPSIGNAL':
      if (!/^(SIG[A-Z0-9+-]+|[0-9]+)$/i.test(ins.value)) throw new BerthError('USAGE', `${where(ins)}: STOPSIGNAL ${ins.value} is not a signal: write SIGTERM or a number`);
      c.StopSignal = ins.value;
      return `STOPSIGNAL ${ins.value}`;
    case 'EXPOSE': {
      const ports = exposedPorts(ins.values, where(ins));
      c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
      for (const p of ports) c.ExposedPorts[p] = {};
      return `EXPOSE map[${[...new Set(ports)].sort().map((p) => `${p}:{}`).join(' ')}]`;
    }
    case 'VOLUME': {
      c.Volumes = { ...(c.Volumes ?? {}) };
      for (const v of ins.values) {
        if (v.trim() === '') throw new BerthError('USAGE', `${where(ins)}: VOLUME specified can not be an empty string`);
        c.Volumes[v] = {};
      }
      return `VOLUME [${ins.values.join(' ')}]`;
    }
    case 'CMD': {
      c.Cmd = commandArgv(ins, c.Shell as string[] | undefined);
      state.cmdSet = true;
      return `CMD ${goQuoteList(c.Cmd)}`;
    }
    case 'ENTRYPOINT': {
      c.Entrypoint = commandArgv(ins, c.Shell as string[] | undefined);
      // Dockerfile reference: an ENTRYPOINT resets a CMD inherited from the base image.
      if (!state.cmdSet) delete c.Cmd;
      return `ENTRYPOINT ${goQuoteList(c.Entrypoint)}`;
    }
    case 'SHELL':
      c.Shell = [...ins.shell];
      return `SHELL [${ins.shell.join(' ')}]`;
    case 'HEALTHCHECK': {
      const h: Record<string, unknown> = { Test: ins.test };
      if (ins.interval) h.Interval = ins.interval;
      if (ins.timeout) h.Timeout = ins.timeout;
      if (ins.startPeriod) h.StartPeriod = ins.startPeriod;
      if (ins.startInterval) h.StartInterval = ins.startInterval;
      if (ins.retries) h.Retries = ins.retries;
      c.Healthcheck = h;
      const r = ins.retries ?? 0;
      const retries = r >= 32 && r < 127 ? `'${String.fromCharCode(r)}'` : `'\\x${r.toString(16).padStart(2, '0')}'`;
      const d = [ins.interval, ins.timeout, ins.startPeriod, ins.startInterval].map((x) => JSON.stringify(goDuration(x ?? 0)));
      return `HEALTHCHECK &{${goQuoteList(ins.test)} ${d.join(' ')} ${retries}}`;
    }
    case 'ONBUILD':
      c.OnBuild = [...((c.OnBuild as string[] | undefined) ?? []), ins.trigger];
      return `ONBUILD ${ins.trigger}`;
    case 'MAINTAINER':
      state.config.author = ins.value;
      return `MAINTAINER ${ins.value}`;
    default:
      return undefined;
  }
}
