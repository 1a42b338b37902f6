/**
 * berth serve vs Debian's docker-registry (CNCF distribution 2.8.2), both on loopback, one run:
 *  - requests/s and p99 latency: GET manifest by tag (wrk -t2 -c32), HEAD blob (ab -i -k -c32,
 *    since wrk 4.1 never completes HEAD requests), GET small blob (wrk);
 *  - skopeo copy push and pull of a ~200 MB multi-layer image (layers: tars of /usr subtrees);
 *  - resident memory of berth serve idle and under load (VmRSS / VmHWM).
 * Prints each figure for both and the ratio berth/distribution.
 *
 *   node dist/bench/registry.js        BERTH_BENCH_SECONDS=10 BERTH_BENCH_MB=200 to override
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startRegistry } from '../test/helpers/distribution.js';
import { abHead, buildBigLayout, MANIFEST_TYPE, pushSmallImage, rssMb, row, timeSkopeo, wrk, type Load } from './lib/registry-load.js';

const BERTH_BIN = join(fileURLToPath(import.meta.url), '..', '..', '..', 'bin', 'berth.cjs');

interface Server {
  name: string;
  url: string;
  host: string;
  pid: number;
  stop(): Promise<void>;
}

async function waitFor(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${url}: server exited with ${child.exitCode}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} did not come up`);
}

/** Debian's docker-registry, started as the client tests start it. */
async function startDistribution(): Promise<Server> {
  const reg = await startRegistry();
  return { name: 'distribution', url: `http://${reg.host}`, host: reg.host, pid: reg.pid, stop: reg.stop };
}

async function startBerth(dir: string): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, [BERTH_BIN, 'serve', '--addr', `127.0.0.1:${port}`, '--data', join(dir, 'data'), '--log-format', 'off'], {
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/v2/`, child);
  const stop = async () => {
    child.kill('SIGKILL');
  };
  return { name: 'berth', url, host: `127.0.0.1:${port}`, pid: child.pid!, stop };
}

async function main(): Promise<void> {
  for (const tool of ['/usr/bin/docker-registry', '/usr/bin/wrk', '/usr/bin/ab', '/usr/bin/skopeo']) {
    if (!existsSync(tool)) {
      console.log(`skipping the registry benchmark: ${tool} is missing`);
      return;
    }
  }
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-registry-'));
  const servers: Server[] = [];
  try {
    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    mkdirSync(join(work, 'berth'));
    const dist = await startDistribution();
    servers.push(dist);
    const berth = await startBerth(join(work, 'berth'));
    servers.push(berth);
    const idle = rssMb(berth.pid);
    const smallBlob = new Map<Server, string>();
    for (const s of [berth, dist]) smallBlob.set(s, await pushSmallImage(s.url));

    const results = new Map<string, Map<Server, Load>>();
    const measureAll = (label: string, f: (s: Server) => Load) => {
      const m = new Map<Server, Load>();
      for (const s of [berth, dist]) m.set(s, f(s));
      results.set(label, m);
    };
    measureAll('GET manifest by tag (wrk)', (s) => wrk(`${s.url}/v2/bench/app/manifests/latest`, [`Accept: ${MANIFEST_TYPE}`]));
    measureAll('HEAD blob (ab -i -k)', (s) => abHead(`${s.url}/v2/bench/app/blobs/${smallBlob.get(s)}`));
    measureAll('GET small blob 1 KiB (wrk)', (s) => wrk(`${s.url}/v2/bench/app/blobs/${smallBlob.get(s)}`));
    const loaded = rssMb(berth.pid);
    const distMem = rssMb(dist.pid);

    console.log('');
    for (const [label, m] of results) {
      const b = m.get(berth)!;
      const d = m.get(dist)!;
      row(label, b.rps, d.rps, 'req/s', true);
      console.log(`${''.padEnd(34)} p99   ${b.p99ms.toFixed(2).padStart(9)} ms     p99          ${d.p99ms.toFixed(2).padStart(9)} ms     errors ${b.errors}/${d.errors}`);
    }

    console.log('');
    const layout = await buildBigLayout(join(work, 'big'));
    const push = new Map<Server, number>();
    const pull = new Map<Server, number>();
    for (const round of [0, 1]) {
      for (const s of round === 0 ? [berth, dist] : [dist, berth]) {
        // a new repository each round, so that every blob is uploaded again
        const ref = `${s.host}/bench/big-r${round}:v1`;
        const t = timeSkopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${ref}`]);
        push.set(s, Math.min(push.get(s) ?? Infinity, t));
        const out = join(work, `pull-${s.name}`);
        const tp = timeSkopeo(['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:big`]);
        pull.set(s, Math.min(pull.get(s) ?? Infinity, tp));
        rmSync(out, { recursive: true, force: true });
      }
    }
    row('skopeo copy push ~200 MB (best of 2)', push.get(berth)!, push.get(dist)!, 's', false);
    row('skopeo copy pull ~200 MB (best of 2)', pull.get(berth)!, pull.get(dist)!, 's', false);
    const after = rssMb(berth.pid);
    console.log('');
    console.log(`berth serve memory: idle ${idle.rss.toFixed(1)} MB, after request load VmRSS ${loaded.rss.toFixed(1)} MB (peak ${loaded.hwm.toFixed(1)} MB), after pushes/pulls peak ${after.hwm.toFixed(1)} MB`);
    console.log(`distribution memory after request load: VmRSS ${distMem.rss.toFixed(1)} MB (peak ${distMem.hwm.toFixed(1)} MB)`);
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    for (const s of servers) await s.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
