/**
 * What the unpack and engine-pull benchmarks share: the four layers they tar from this machine's
 * /usr, and timing of wall and CPU seconds (this process's threads and its waited-for children).
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { createGunzip } from 'node:zlib';

/** The directories (relative to /) of each benchmark layer, lowest first. */
export const LAYER_DIRS: string[][] = [
  ['usr/lib/python3.11', 'usr/share/perl', 'usr/share/zoneinfo'],
  ['usr/include'],
  ['usr/libexec'],
  ['usr/share/i18n'],
];

/** The diffID of a gzip layer: the digest of its uncompressed tar. */
export async function tarDigest(gz: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(gz).pipe(createGunzip())) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

export interface Timing {
  wall: number;
  /** CPU seconds (user + system) of all threads and waited-for children. */
  cpu: number;
}

/** CPU seconds of this process (all threads) plus its waited-for children (/proc/self/stat cutime, cstime). */
export function cpuSeconds(): number {
  const own = process.cpuUsage();
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  const children = (Number(fields[13]) + Number(fields[14])) / 100; // clock ticks (USER_HZ = 100)
  return (own.user + own.system) / 1e6 + children;
}

export async function timed(fn: () => unknown): Promise<Timing> {
  const cpu = cpuSeconds();
  const t = process.hrtime.bigint();
  await fn();
  return { wall: Number(process.hrtime.bigint() - t) / 1e9, cpu: cpuSeconds() - cpu };
}

/** The faster of two timings (by wall time). */
export function better(a: Timing | undefined, b: Timing): Timing {
  return a === undefined || b.wall < a.wall ? b : a;
}
