/** The operations endpoints: /metrics (Prometheus text) and /healthz, on the main or the debug listener. */
import type { ServerResponse } from 'node:http';
import { sendJson } from '../http-util.js';
import type { Registry } from '../registry.js';

export async function sendMetrics(reg: Registry, res: ServerResponse): Promise<void> {
  const text = Buffer.from(reg.metrics.render(reg.uploads.metrics.inFlight, await reg.meta.stats()));
  res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4', 'Content-Length': text.length });
  res.end(text);
}

export function sendHealth(res: ServerResponse): void {
  sendJson(res, 200, { status: 'ok' });
}
