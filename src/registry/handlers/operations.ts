/** The operations endpoints: /metrics (Prometheus text) and /healthz, on the main or the debug listener. */
import type { ServerResponse } from 'node:http';
import { sendJson } from '../http-util.js';
import type { Registry } from '../registry.js';

export async function sendMetrics(reg: Registry, res: ServerResponse): Promise<void> {
  const text = Buffer.from(reg.metrics.render(reg.uploads.metrics.inFlight, await reg.meta.stats()));
  res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4', 'Content-Length': text.length });
  res.end(text);
}

/** 200 when the blob store and the metadata store answer, else 503; says which failed. */
export async function sendHealth(reg: Registry, res: ServerResponse): Promise<void> {
  const h = await reg.health();
  sendJson(res, h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'unavailable', storage: h.storage, metadata: h.metadata });
}
