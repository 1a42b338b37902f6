// Bundles the unpack worker thread (src/layer/unpack-worker.ts) into dist/berth-unpack.bundle.cjs
// with its loader dist/berth-unpack.cjs, which src/layer/unpack-pool.ts starts from the CLI
// bundles (scripts/bundle.mjs). The code cache is made here: a worker applies one small gzip
// layer (files, directories, a symlink, a hardlink) and is then asked to exit, which writes it.
// Run after tsc: `node scripts/bundle-unpack.mjs`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, linkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import { bundleCli, dist } from './bundle.mjs';

await bundleCli({ entry: 'src/layer/unpack-worker.js', name: 'berth-unpack', external: ['zstd-napi'] });

const work = mkdtempSync(join(tmpdir(), 'berth-unpack-cache-'));
try {
  const src = join(work, 'src');
  mkdirSync(join(src, 'etc', 'sub'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(src, 'etc', `f${i}`), `file ${i}\n`.repeat(i * 50));
  symlinkSync('f1', join(src, 'etc', 'link'));
  linkSync(join(src, 'etc', 'f2'), join(src, 'etc', 'sub', 'hard'));
  const tgz = join(work, 'layer.tar.gz');
  const tar = spawnSync('tar', ['-czf', tgz, '-C', src, '.']);
  if (tar.status !== 0) throw new Error(`bundle-unpack: tar failed: ${tar.stderr}`);
  const bytes = readFileSync(tgz);
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
  const root = join(work, 'root');
  mkdirSync(root);
  const worker = new Worker(join(dist, 'berth-unpack.cjs'));
  const { port1, port2 } = new MessageChannel();
  const answer = await new Promise((resolve, reject) => {
    let sent = false;
    port1.on('message', (m) => {
      if (m.type === 'more') {
        port1.postMessage(sent ? { type: 'end' } : { type: 'chunk', data: new Uint8Array(bytes) });
        sent = true;
      } else resolve(m);
    });
    worker.once('error', reject);
    worker.postMessage({ port: port2, root, layer, apply: {}, usage: true }, [port2]);
  });
  port1.close();
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  worker.postMessage('exit');
  const code = await exited;
  if (answer.type !== 'done' || code !== 0) {
    console.error(`bundle-unpack: the worker's warm-up failed (${answer.type === 'error' ? answer.error.message : `exit ${code}`}): no code cache`);
    process.exit(1);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
