/**
 * A busybox bundle for runtime tests: rootfs from Debian's busybox-static (/bin/busybox plus
 * its applet symlinks), /etc/passwd and /etc/group; config.json from `berth-runtime spec`'s
 * defaults, made non-interactive.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { defaultSpec } from '../../src/runtime/spec/default.js';
import type { Spec } from '../../src/runtime/spec/types.js';

export interface Bundle {
  dir: string;
  rootfs: string;
  spec: Spec;
  /** Writes spec (after edits) to config.json. */
  save(): void;
  cleanup(): void;
}

let applets: string[] | undefined;

export function makeRootfs(rootfs: string): void {
  applets ??= execFileSync('/bin/busybox', ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const d of ['etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'usr/bin', 'usr/sbin', 'sbin']) mkdirSync(join(rootfs, d), { recursive: true });
  for (const a of applets) {
    if (a === 'bin/busybox') continue;
    mkdirSync(dirname(join(rootfs, a)), { recursive: true });
    try { symlinkSync('/bin/busybox', join(rootfs, a)); } catch { /* duplicate applet */ }
  }
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\ntester:x:1000:1000::/tmp:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\ntester:x:1000:\n');
}

export function makeBusyboxBundle(args: string[] = ['/bin/true']): Bundle {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bundle-'));
  const rootfs = join(dir, 'rootfs');
  makeRootfs(rootfs);
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  spec.root = { path: 'rootfs', readonly: false };
  const bundle: Bundle = {
    dir, rootfs, spec,
    save: () => writeFileSync(join(dir, 'config.json'), JSON.stringify(bundle.spec, null, 2)),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  bundle.save();
  return bundle;
}
