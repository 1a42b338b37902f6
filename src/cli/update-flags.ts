/**
 * `update`'s flags as runc has them, turned into a LinuxResources document: sizes as docker
 * writes them (`512m`, `1g`: binary units), `-1` for unlimited.
 */
import { BerthError } from '../base/errors.js';
import type { LinuxResources } from '../runtime/spec/types.js';

export const UPDATE_FLAG_NAMES = [
  'blkio-weight', 'cpu-period', 'cpu-quota', 'cpu-share', 'cpu-rt-period', 'cpu-rt-runtime', 'cpu-idle',
  'cpuset-cpus', 'cpuset-mems', 'memory', 'memory-reservation', 'memory-swap', 'kernel-memory', 'kernel-memory-tcp',
  'pids-limit', 'l3-cache-schema', 'mem-bw-schema',
] as const;

export type UpdateFlags = Partial<Record<(typeof UPDATE_FLAG_NAMES)[number], string>>;

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** A size in bytes as docker's RAMInBytes reads it: a number with an optional k/m/g/t/p (binary) suffix; -1 is unlimited. */
export function parseBytes(flag: string, value: string): number {
  if (value.trim() === '-1') return -1;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) throw new BerthError('USAGE', `--${flag}: ${JSON.stringify(value)} is not a size (bytes, or a number with k, m, g, t or p)`);
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
}

function parseInteger(flag: string, value: string): number {
  if (!/^-?\d+$/.test(value.trim())) throw new BerthError('USAGE', `--${flag}: ${JSON.stringify(value)} is not an integer`);
  return Number(value);
}

/** The resources the flags ask for (only what they name). */
export function resourcesFromFlags(f: UpdateFlags): LinuxResources {
  if (f['l3-cache-schema'] !== undefined || f['mem-bw-schema'] !== undefined) {
    throw new BerthError('UNSUPPORTED', '--l3-cache-schema and --mem-bw-schema (Intel RDT) are not supported by berth-runtime');
  }
  const r: LinuxResources = {};
  const memory: NonNullable<LinuxResources['memory']> = {};
  if (f.memory !== undefined) memory.limit = parseBytes('memory', f.memory);
  if (f['memory-reservation'] !== undefined) memory.reservation = parseBytes('memory-reservation', f['memory-reservation']);
  if (f['memory-swap'] !== undefined) memory.swap = parseBytes('memory-swap', f['memory-swap']);
  if (f['kernel-memory'] !== undefined) memory.kernel = parseBytes('kernel-memory', f['kernel-memory']);
  if (f['kernel-memory-tcp'] !== undefined) memory.kernelTCP = parseBytes('kernel-memory-tcp', f['kernel-memory-tcp']);
  if (Object.keys(memory).length) r.memory = memory;
  const cpu: NonNullable<LinuxResources['cpu']> = {};
  if (f['cpu-share'] !== undefined) cpu.shares = parseInteger('cpu-share', f['cpu-share']);
  if (f['cpu-period'] !== undefined) cpu.period = parseInteger('cpu-period', f['cpu-period']);
  if (f['cpu-quota'] !== undefined) cpu.quota = parseInteger('cpu-quota', f['cpu-quota']);
  if (f['cpu-rt-period'] !== undefined) cpu.realtimePeriod = parseInteger('cpu-rt-period', f['cpu-rt-period']);
  if (f['cpu-rt-runtime'] !== undefined) cpu.realtimeRuntime = parseInteger('cpu-rt-runtime', f['cpu-rt-runtime']);
  if (f['cpu-idle'] !== undefined) cpu.idle = parseInteger('cpu-idle', f['cpu-idle']);
  if (f['cpuset-cpus'] !== undefined) cpu.cpus = f['cpuset-cpus'];
  if (f['cpuset-mems'] !== undefined) cpu.mems = f['cpuset-mems'];
  if (Object.keys(cpu).length) r.cpu = cpu;
  if (f['blkio-weight'] !== undefined) r.blockIO = { weight: parseInteger('blkio-weight', f['blkio-weight']) };
  if (f['pids-limit'] !== undefined) r.pids = { limit: parseInteger('pids-limit', f['pids-limit']) };
  return r;
}
