/** Prometheus text-format metrics (exposition format 0.0.4), kept in plain counters. */

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export interface StoredStats {
  blobs: number;
  bytes: number;
  repositories: number;
  manifests: number;
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  bytesIn = 0;
  bytesOut = 0;

  /** Records one finished request. */
  observe(route: string, method: string, status: number, seconds: number): void {
    const key = `${route}\0${method}\0${status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let h = this.latency.get(route);
    if (!h) {
      h = { counts: new Array(BUCKETS.length).fill(0), sum: 0, count: 0 };
      this.latency.set(route, h);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  render(uploadsInFlight: number, stored: StoredStats): string {
    const out: string[] = [];
    out.push('# HELP berth_http_requests_total HTTP requests by route, method and status.');
    out.push('# TYPE berth_http_requests_total counter');
    for (const [key, n] of this.requests) {
      const [route, method, status] = key.split('\0');
      out.push(`berth_http_requests_total{route="${route}",method="${method}",status="${status}"} ${n}`);
    }
    out.push('# HELP berth_http_request_duration_seconds Request latency by route.');
    out.push('# TYPE berth_http_request_duration_seconds histogram');
    for (const [route, h] of this.latency) {
      BUCKETS.forEach((b, i) => out.push(`berth_http_request_duration_seconds_bucket{route="${route}",le="${b}"} ${h.counts[i]}`));
      out.push(`berth_http_request_duration_seconds_bucket{route="${route}",le="+Inf"} ${h.count}`);
      out.push(`berth_http_request_duration_seconds_sum{route="${route}"} ${h.sum}`);
      out.push(`berth_http_request_duration_seconds_count{route="${route}"} ${h.count}`);
    }
    const gauge = (name: string, help: string, type: string, value: number) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
    };
    gauge('berth_http_received_bytes_total', 'Bytes of request bodies received.', 'counter', this.bytesIn);
    gauge('berth_http_sent_bytes_total', 'Bytes of response bodies sent.', 'counter', this.bytesOut);
    gauge('berth_uploads_in_flight', 'Blob upload requests being received now.', 'gauge', uploadsInFlight);
    gauge('berth_blobs_stored', 'Blobs stored.', 'gauge', stored.blobs);
    gauge('berth_blob_bytes_stored', 'Bytes of blobs stored.', 'gauge', stored.bytes);
    gauge('berth_manifests_stored', 'Manifests stored.', 'gauge', stored.manifests);
    gauge('berth_repositories', 'Repositories known.', 'gauge', stored.repositories);
    return out.join('\n') + '\n';
  }
}
