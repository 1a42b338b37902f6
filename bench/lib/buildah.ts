/**
 * Debian's buildah for benchmarks: its own storage (overlay, graph and run roots) and temp dir
 * under `dir`, configured as the peers notes configure podman (cgroupfs, file events, runc).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function buildahEnv(dir: string): NodeJS.ProcessEnv {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'containers.conf'), '[containers]\nnetns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n');
  writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${join(dir, 'graph')}"\nrunroot = "${join(dir, 'run')}"\n`);
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  return { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'), TMPDIR: join(dir, 'tmp') };
}

/** Removes the images and the storage. */
export function cleanBuildah(dir: string, env: NodeJS.ProcessEnv): void {
  spawnSync('buildah', ['rm', '--all'], { env, stdio: 'ignore' });
  spawnSync('buildah', ['rmi', '--all', '--force'], { env, stdio: 'ignore' });
  spawnSync('umount', ['-R', join(dir, 'graph')], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}
