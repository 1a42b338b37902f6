/**
 * A single-node Ceph cluster with a RADOS Gateway, as a real S3 service for tests: one monitor,
 * one BlueStore OSD on a sparse file, one radosgw on a free 127.0.0.1 port, every file (conf,
 * keyring, data, logs, sockets) in a temp dir and nothing in /etc/ceph. Without cephx
 * (`auth_*_required = none`), which makes radosgw hang connecting to the monitor unless the conf
 * has `ms_mon_client_mode = crc`. Starting takes 15-25 s here: start it once per test file.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDaemon, waitFor, type Daemon } from './daemons.js';
import { freePort } from './distribution.js';
import { peer, type Need } from './requirements.js';

const run = promisify(execFile);

/** What the fixture needs from the host (Debian packages). */
export const cephNeeds: Need[] = [peer('ceph-mon', 'ceph-mon'), peer('ceph-osd', 'ceph-osd'), peer('radosgw', 'radosgw')];

export interface CephRgw {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dir: string;
  /** The radosgw process(es), for benchmarks reading their memory. */
  daemons: Daemon[];
  /** Starts one more stateless gateway over the same cluster; resolves to its endpoint. */
  addGateway(): Promise<string>;
  stop(): Promise<void>;
}

async function httpAnswers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status < 500;
}

export async function startCeph(): Promise<CephRgw> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ceph-'));
  const conf = join(dir, 'ceph.conf');
  const daemons: Daemon[] = [];
  const stop = async () => {
    for (const d of [...daemons].reverse()) await d.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const fsid = randomUUID();
    const monPort = await freePort();
    for (const sub of ['run', 'log', 'mon', 'osd', 'rgw']) await mkdir(join(dir, sub));
    const gateways: string[] = [];
    const gatewaySection = (n: number, port: number) => `[client.rgw.g${n}]\nrgw_frontends = beast endpoint=127.0.0.1:${port}\n`;
    const base = `[global]
fsid = ${fsid}
mon_host = v2:127.0.0.1:${monPort}
public_network = 127.0.0.0/8
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_allow_pool_size_one = true
osd_crush_chooseleaf_type = 0
mon_warn_on_pool_no_redundancy = false
run_dir = ${dir}/run
admin_socket = ${dir}/run/$cluster-$name.asok
log_file = ${dir}/log/$name.log
keyring = ${dir}/keyring
mon_data = ${dir}/mon/$cluster-$id
osd_data = ${dir}/osd/$id
osd_objectstore = bluestore
bluestore_block_path = ${dir}/osd/block.$id
bluestore_block_size = 10737418240
bluestore_block_create = true
rgw_data = ${dir}/rgw/$name
`;
    const writeConf = () => writeFile(conf, base + gateways.join(''));
    await writeConf();
    const c = ['--conf', conf];
    await run('ceph-authtool', ['--create-keyring', join(dir, 'keyring'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    await run('monmaptool', ['--create', '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, '--fsid', fsid, join(dir, 'monmap')]);
    await run('ceph-mon', [...c, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap')]);
    daemons.push(startDaemon('ceph-mon', 'ceph-mon', [...c, '-i', 'a', '-f'], join(dir, 'log', 'mon.out')));
    const osdUuid = randomUUID();
    const id = (await run('ceph', [...c, '--connect-timeout', '30', 'osd', 'new', osdUuid])).stdout.trim();
    await mkdir(join(dir, 'osd', id));
    await run('ceph-osd', [...c, '-i', id, '--mkfs', '--osd-uuid', osdUuid]);
    daemons.push(startDaemon('ceph-osd', 'ceph-osd', [...c, '-i', id, '-f'], join(dir, 'log', 'osd.out')));

    let n = 0;
    const addGateway = async () => {
      const port = await freePort();
      const name = `g${n++}`;
      gateways.push(gatewaySection(n - 1, port));
      await writeConf();
      await mkdir(join(dir, 'rgw', `client.rgw.${name}`), { recursive: true });
      const d = startDaemon(`radosgw ${name}`, 'radosgw', [...c, '-n', `client.rgw.${name}`, '-f'], join(dir, 'log', `rgw.${name}.out`));
      daemons.push(d);
      const endpoint = `http://127.0.0.1:${port}`;
      await waitFor(`radosgw answering on ${endpoint}`, () => httpAnswers(endpoint), 90_000, d);
      return endpoint;
    };
    const endpoint = await addGateway();
    const accessKeyId = `BERTH${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = randomBytes(24).toString('base64url');
    await run('radosgw-admin', [...c, 'user', 'create', '--uid=berth', '--display-name=berth', `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`]);
    return {
      endpoint,
      accessKeyId,
      secretAccessKey,
      region: 'us-east-1',
      dir,
      daemons,
      addGateway,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
