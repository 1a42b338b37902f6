/**
 * The debug listener (`--debug-addr`, as distribution's `debug.addr`): plain HTTP with GET
 * /metrics and /healthz and no auth, for a scraper or a load balancer on an address the operator
 * keeps private (loopback, a management network). Nothing of the API is served there, and its
 * requests are neither counted nor logged.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendHealth, sendMetrics } from './handlers/operations.js';
import { listenOn } from './listen.js';
import type { Registry } from './registry.js';

export class DebugServer {
  private readonly server: http.Server;

  constructor(private readonly registry: Registry) {
    this.server = http.createServer((req, res) => {
      this.onRequest(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics unavailable\n');
        else res.destroy();
      });
    });
  }

  listen(addr: string): Promise<AddressInfo> {
    return listenOn(this.server, addr, '--debug-addr');
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    const known = path === '/metrics' || path === '/healthz' || path === '/health';
    if (!known) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('the debug listener serves /metrics and /healthz only\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end(`${req.method} is not allowed here\n`);
      return;
    }
    if (path === '/metrics') await sendMetrics(this.registry, res);
    else await sendHealth(this.registry, res);
  }
}
