/**
 * Debian's haproxy in HTTP mode, round robin over registry replicas, on a free 127.0.0.1 port;
 * retries and redispatch so that a request to a dead replica goes to another. Stopped by pid.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, waitFor } from './daemons.js';
import { freePort } from './distribution.js';
import { peer, type Need } from './requirements.js';

export const haproxyNeeds: Need[] = [peer('haproxy', 'haproxy')];

export interface Haproxy {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** `backends`: host:port of each replica. */
export async function startHaproxy(backends: string[]): Promise<Haproxy> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-haproxy-'));
  const port = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  await writeFile(
    cfg,
    `global
  maxconn 1000
defaults
  mode http
  timeout connect 2s
  timeout client 300s
  timeout server 300s
  retries 3
  option redispatch
frontend registry
  bind 127.0.0.1:${port}
  default_backend replicas
backend replicas
  balance roundrobin
${backends.map((b, i) => `  server r${i} ${b} check inter 1s fall 2 rise 1`).join('\n')}
`,
  );
  const daemon = startDaemon('haproxy', 'haproxy', ['-f', cfg, '-db'], join(dir, 'haproxy.log'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`haproxy answering on ${url}`, async () => (await fetch(`${url}/v2/`)).status === 200, 15_000, daemon);
  return {
    url,
    pid: daemon.pid,
    async stop() {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
