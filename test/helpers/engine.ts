/**
 * For engine tests: a berth root in a temp dir whose store holds a busybox image (built here
 * from busybox-static, tagged docker.io/library/busybox:latest), and `berth` run against it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImage, type ImageSettings } from '../../src/image/build.js';
import { openImageStore } from '../../src/engine/store.js';
import { buildBusyboxRootfs, type BusyboxUser } from './busybox.js';
import { runTag } from './netns.js';
import { defaultsFromEnv, NetworkStore } from '../../src/engine/network/store.js';
import { cleanupLeftovers, pruneNetworks, removeDefaultBridge } from '../../src/engine/network/index.js';
import { runBerth, type BerthRun } from './run-berth.js';

export interface EngineRoot {
  root: string;
  env: NodeJS.ProcessEnv;
  berth(args: string[], input?: string | Buffer, timeoutMs?: number): Promise<BerthRun>;
  close(): Promise<void>;
}

/** Adds a busybox image to the store of `root` under `tag` (a full reference). */
export async function addBusyboxImage(root: string, tag = 'docker.io/library/busybox:latest', settings: ImageSettings = { cmd: ['sh'] }, users: BusyboxUser[] = []): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-bb-'));
  try {
    await buildBusyboxRootfs(join(dir, 'rootfs'), { users });
    const store = await openImageStore({ root });
    const desc = await createImage(store, { dir: join(dir, 'rootfs'), tag, ...settings });
    return desc.digest;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function engineRoot(): Promise<EngineRoot> {
  const root = await mkdtemp(join(tmpdir(), 'berth-engine-'));
  // Each root has its own network records: its own default bridge and subnets (10.224.0.0/12,
  // clear of the network tests' 10.200.0.0/13), so that test files running at once never
  // share a bridge or an address, and one root's sweep never takes another's links.
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const env = {
    ...process.env, BERTH_ROOT: root, BERTH_NETWORK_BRIDGE: `${runTag()}0`,
    BERTH_NETWORK_SUBNET: `10.${224 + rnd(8)}.${rnd(256)}.0/24`, BERTH_NETWORK_POOL: `10.${232 + rnd(8)}.${16 * rnd(16)}.0/20`,
  };
  await addBusyboxImage(root);
  return {
    root,
    env,
    berth: (args, input, timeoutMs) => runBerth(args, env, input, timeoutMs),
    async close() {
      await runBerth(['rm', '-f', ...(await runBerth(['ps', '-aq', '--no-trunc'], env)).stdout.split('\n').filter(Boolean)], env);
      // The bridges and rules of this root's networks go with it.
      const ref = { root, defaults: defaultsFromEnv(env) };
      cleanupLeftovers([], ref);
      pruneNetworks(ref);
      removeDefaultBridge(ref);
      NetworkStore.closeShared();
      await rm(root, { recursive: true, force: true });
    },
  };
}
