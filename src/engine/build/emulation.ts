/**
 * Whether this host can run the binaries of a RUN step built for another platform: natively
 * (the platforms the host's own runs, containerd's matcher: an arm64 host runs arm/v7), or
 * through a binfmt_misc handler the host already has for that architecture (qemu-user-static,
 * binfmt-support or tonistiigi/binfmt register them as qemu-ARCH), registered with the F flag
 * so that the kernel holds the emulator open and it works inside the container's root. berth
 * never registers a handler itself. Steps without RUN build for any platform.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.js';
import type { Platform } from '../../base/types.js';
import { formatPlatform, hostPlatform, platformMatches } from '../../image/platform.js';

/** qemu's names for the OCI architectures (the handlers are named qemu-NAME). */
const QEMU_ARCH: Record<string, string> = {
  amd64: 'x86_64', '386': 'i386', arm64: 'aarch64', arm: 'arm', ppc64le: 'ppc64le', ppc64: 'ppc64', s390x: 's390x',
  riscv64: 'riscv64', mips64le: 'mips64el', mips64: 'mips64', mipsle: 'mipsel', mips: 'mips', loong64: 'loongarch64',
};

export const BINFMT_MISC = '/proc/sys/fs/binfmt_misc';

/** How a RUN for `target` runs here: natively, through a handler's interpreter, or not (why, and what to do). */
export type RunSupport = { native: true } | { native: false; interpreter: string } | { native: false; error: string };

export function runSupport(target: Platform, host: Platform = hostPlatform(), binfmtDir = BINFMT_MISC): RunSupport {
  if (target.os === host.os && platformMatches(host, target)) return { native: true };
  const want = formatPlatform(target);
  const qemu = QEMU_ARCH[target.architecture];
  const advice = `install qemu-user-static (with binfmt-support, which registers its handlers with the F flag), or build ${want} on a ${target.architecture} host; steps without RUN build for any platform`;
  if (target.os !== 'linux' || qemu === undefined) return { native: false, error: `this ${formatPlatform(host)} host cannot run ${want} binaries: build it on a ${want} host` };
  const read = (name: string): string | undefined => {
    try {
      return readFileSync(join(binfmtDir, name), 'utf8');
    } catch {
      return undefined;
    }
  };
  if (read('status')?.trim() !== 'enabled') {
    return { native: false, error: `this ${formatPlatform(host)} host cannot run ${want} binaries: binfmt_misc is not mounted or disabled (${binfmtDir}), so there is no emulator for them: ${advice}` };
  }
  let names: string[] = [];
  try {
    names = readdirSync(binfmtDir);
  } catch {
    // listed as none
  }
  for (const name of names) {
    if (name === 'status' || name === 'register') continue;
    const text = read(name) ?? '';
    const interpreter = /^interpreter (.+)$/m.exec(text)?.[1] ?? '';
    if (name !== `qemu-${qemu}` && !interpreter.split('/').pop()!.startsWith(`qemu-${qemu}`)) continue;
    if (!/^enabled$/m.test(text)) continue;
    const flags = /^flags: ?(\S*)$/m.exec(text)?.[1] ?? '';
    if (!flags.includes('F')) {
      return { native: false, error: `the binfmt_misc handler ${name} for ${want} binaries was registered without the F flag: its emulator ${interpreter} would be looked up inside the container's root; register it again with F (qemu-user-static's binfmt-support does)` };
    }
    return { native: false, interpreter };
  }
  return { native: false, error: `this ${formatPlatform(host)} host cannot run ${want} binaries: no binfmt_misc handler for ${qemu} in ${binfmtDir}: ${advice}` };
}

/** Throws the error of a RUN (at `where`) that cannot run here for `target`. */
export function assertCanRun(target: Platform, where: string, binfmtDir = BINFMT_MISC): void {
  const s = runSupport(target, hostPlatform(), binfmtDir);
  if ('error' in s) throw new BerthError('UNSUPPORTED', `${where}: RUN for ${formatPlatform(target)}: ${s.error}`);
}
