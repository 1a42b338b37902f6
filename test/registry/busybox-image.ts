/**
 * A small two-layer busybox image in an OCI layout, built with umoci from busybox-static,
 * for the interop tests with real clients.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BusyboxImage {
  layout: string;
  tag: string;
  /** Digest of the image manifest the layout's index points at. */
  digest: string;
}

export function buildBusyboxImage(workDir: string, tag = 'v1'): BusyboxImage {
  const layout = join(workDir, 'oci');
  const bundle = join(workDir, 'bundle');
  const umoci = (...args: string[]) => execFileSync('umoci', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  umoci('init', '--layout', layout);
  umoci('new', '--image', `${layout}:${tag}`);
  umoci('unpack', '--image', `${layout}:${tag}`, bundle);
  mkdirSync(join(bundle, 'rootfs', 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(bundle, 'rootfs', 'bin', 'busybox'));
  umoci('repack', '--image', `${layout}:${tag}`, bundle);
  rmSync(bundle, { recursive: true, force: true });
  umoci('unpack', '--image', `${layout}:${tag}`, bundle);
  mkdirSync(join(bundle, 'rootfs', 'etc'), { recursive: true });
  writeFileSync(join(bundle, 'rootfs', 'etc', 'hello'), `hello from berth ${Date.now()}\n`);
  umoci('repack', '--image', `${layout}:${tag}`, bundle);
  rmSync(bundle, { recursive: true, force: true });
  umoci('config', '--image', `${layout}:${tag}`, '--config.cmd', '/bin/busybox', '--config.cmd', 'cat', '--config.cmd', '/etc/hello');
  umoci('gc', '--layout', layout);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`umoci left no ${tag} in ${layout}`);
  return { layout, tag, digest: entry.digest };
}

/** Pulls a manifest and every blob it references from the registry and checks their digests. */
export async function verifyPulled(base: string, repo: string, ref: string, headers: Record<string, string> = {}): Promise<string> {
  const { createHash } = await import('node:crypto');
  const hash = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, {
    headers: { Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json', ...headers },
  });
  if (res.status !== 200) throw new Error(`manifest ${repo}:${ref}: ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  const digest = res.headers.get('docker-content-digest')!;
  if (hash(body) !== digest) throw new Error(`manifest ${repo}:${ref} does not hash to its Docker-Content-Digest`);
  const m = JSON.parse(body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
    const b = await fetch(`${base}/v2/${repo}/blobs/${d}`, { headers });
    if (hash(Buffer.from(await b.arrayBuffer())) !== d) throw new Error(`blob ${d} of ${repo}:${ref} is wrong`);
  }
  return digest;
}
