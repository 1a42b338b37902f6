/**
 * Starts `berth serve` as a child process on a free loopback port with a temp data dir, for
 * the registry tests and for other areas' tests that need a registry. Always stop() it in
 * `after`/`finally`.
 *
 *   const reg = await startBerthRegistry();
 *   // reg.url = 'http://127.0.0.1:PORT', reg.host = '127.0.0.1:PORT'
 *   await reg.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bin/berth.cjs at the root of the repository (this file runs from dist/test/helpers/). */
export const BERTH_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'berth.cjs');

export interface BerthRegistryOptions {
  /** Extra `berth serve` arguments (auth, TLS, …). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Reuse this data directory (it is then not removed on stop). */
  dataDir?: string;
  /** Listen on this port instead of a free one (for restarts on the same address). */
  port?: number;
  /** Collect the access log here instead of discarding it. */
  onLog?: (text: string) => void;
}

export interface BerthRegistry {
  url: string;
  host: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** SIGTERM, wait for exit; removes the data dir unless it was given. */
  stop(): Promise<void>;
  /** SIGKILL (for crash tests); keeps the data dir. */
  kill9(): Promise<void>;
}

export async function startBerthRegistry(opts: BerthRegistryOptions = {}): Promise<BerthRegistry> {
  const ownData = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'berth-registry-'));
  const args = [BERTH_BIN, 'serve', '--addr', `127.0.0.1:${opts.port ?? 0}`, '--data', dataDir, ...(opts.args ?? [])];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, XDG_DATA_HOME: join(dataDir, 'xdg'), ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    if (opts.onLog) opts.onLog(d);
    else if (stderr.length < 64 * 1024) stderr += d;
  });
  const started = new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`berth serve did not start within 15 s: ${stderr}`));
    }, 15_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      out += d;
      const m = /listening on (https?:\/\/\S+?),/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`berth serve exited with ${code} before listening: ${stderr}`));
    });
  });
  let url: string;
  try {
    url = await started;
  } catch (err) {
    if (ownData) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const port = Number(new URL(url).port);
  const stopWith = async (signal: NodeJS.Signals, removeData: boolean) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    if (removeData) rmSync(dataDir, { recursive: true, force: true });
  };
  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    dataDir,
    child,
    stop: () => stopWith('SIGTERM', ownData),
    kill9: () => stopWith('SIGKILL', false),
  };
}
