/**
 * A PostgreSQL 15 server for tests: `initdb` (as the postgres user when the tests run as root,
 * which PostgreSQL refuses to be) in a temp dir, then the server in the foreground on a free
 * 127.0.0.1 port with its socket in that dir; stopped by its pid. About 1-2 s to start.
 */
import { execFile } from 'node:child_process';
import { chownSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { startDaemon, waitFor } from './daemons.js';
import { freePort } from './distribution.js';
import { peer, type Need } from './requirements.js';

const run = promisify(execFile);
export const PG_BIN = '/usr/lib/postgresql/15/bin';

export const postgresNeeds: Need[] = [peer(join(PG_BIN, 'postgres'), 'postgresql-15')];

export interface PgServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  pid: number;
  /** Creates an empty database and resolves to its URL. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

/** uid and gid of the `postgres` account, when running as root. */
function postgresAccount(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root needs a postgres account to run PostgreSQL (apt-get install -y postgresql-15 creates it)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

let databases = 0;

export async function startPostgres(): Promise<PgServer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-pg-'));
  const account = postgresAccount();
  if (account) chownSync(dir, account.uid, account.gid);
  const as = account ? { uid: account.uid, gid: account.gid } : {};
  const data = join(dir, 'data');
  await run(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { ...as, cwd: dir });
  const port = await freePort();
  // Durability is not under test here: fsync off keeps CREATE DATABASE and commits fast.
  const daemon = startDaemon(
    'postgres',
    join(PG_BIN, 'postgres'),
    ['-D', data, '-c', 'listen_addresses=127.0.0.1', '-p', String(port), '-k', dir, '-c', 'fsync=off', '-c', 'max_connections=200'],
    join(dir, 'postgres.log'),
    { ...as, cwd: dir },
  );
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const admin = postgres(url, { max: 1, onnotice: () => undefined, connect_timeout: 2 });
  try {
    await waitFor('PostgreSQL accepting connections', async () => (await admin`SELECT 1 AS ok`)[0]?.ok === 1, 30_000, daemon);
  } catch (err) {
    await admin.end();
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    port,
    pid: daemon.pid,
    async createDatabase() {
      const name = `t${process.pid}_${databases++}`;
      await admin.unsafe(`CREATE DATABASE ${name}`);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async stop() {
      await admin.end({ timeout: 1 });
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
