/** Binding a server to a HOST:PORT setting, with an error that names the setting to change. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BerthError } from '../base/errors.js';
import { splitAddr } from './config.js';

/** Listens on `addr`; `flag` (e.g. "--addr") is named when the address cannot be used. */
export async function listenOn(server: Server, addr: string, flag: string): Promise<AddressInfo> {
  const { host, port } = splitAddr(addr);
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'is in use' : err.code === 'EACCES' ? 'needs privileges' : `cannot be used (${err.message})`;
      reject(new BerthError('NETWORK', `address ${addr} ${why}: choose another with ${flag} HOST:PORT`, { cause: err }));
    };
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
