/**
 * `berth build` vs `buildah bud --layers` on a four-stage Dockerfile of ~20 steps that needs no
 * RUN (COPY of ~60 MB of /usr/share, COPY --from between stages, config instructions): a cold
 * build (empty caches), a rebuild with nothing changed, and a rebuild after changing one source
 * file. berth runs in this process (its build function, not the CLI: add ~0.1 s of Node start-up
 * for the command). Prints medians and berth/buildah ratios (below 1: berth is faster).
 * The bench/build.ts (with RUN steps, docker's classic builder too) needs the engine.
 *
 *   node dist/bench/build-copy.js        BERTH_BENCH_RUNS=3 to change the number of runs
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from '../src/engine/build/builder.js';
import { buildahEnv, cleanBuildah } from './lib/buildah.js';

const RUNS = Number(process.env.BERTH_BENCH_RUNS ?? 3);
const SOURCES = ['/usr/share/doc', '/usr/share/man', '/usr/share/perl5'];

const DOCKERFILE = `
FROM scratch AS docs
COPY doc /doc
LABEL stage=docs
ENV DOCS=1
FROM scratch AS man
COPY man /man
ENV A=1
FROM scratch AS src
WORKDIR /src
COPY src/ ./
COPY src/main.c /src/main-copy.c
FROM scratch
COPY --from=docs /doc /usr/share/doc
COPY --from=man /man /usr/share/man
COPY perl5 /usr/share/perl5
COPY --from=src /src /app
ENV PATH=/app:/usr/bin:/bin
LABEL org.example.name=bench
EXPOSE 80
WORKDIR /app
COPY src/config.txt /etc/app.conf
USER 1000
CMD ["/app/main"]
`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timed(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function timedAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function prepareContext(work: string): string {
  const ctx = join(work, 'ctx');
  mkdirSync(join(ctx, 'src'), { recursive: true });
  for (const s of SOURCES) if (existsSync(s)) cpSync(s, join(ctx, s.split('/').pop()!), { recursive: true, verbatimSymlinks: true });
  for (let i = 0; i < 50; i++) writeFileSync(join(ctx, 'src', `file${i}.c`), `int f${i}(void) { return ${i}; }\n`);
  writeFileSync(join(ctx, 'src/main.c'), 'int main(void) { return 0; }\n');
  writeFileSync(join(ctx, 'src/config.txt'), 'a=1\n');
  writeFileSync(join(ctx, 'Dockerfile'), DOCKERFILE);
  return ctx;
}

function buildah(env: NodeJS.ProcessEnv, ctx: string): void {
  const r = spawnSync('buildah', ['bud', '--layers', '-q', '-t', 'bench', ctx], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error('buildah bud failed');
}

async function main(): Promise<void> {
  if (spawnSync('buildah', ['--version']).status !== 0) {
    console.log('buildah is not installed (Debian package buildah): nothing to compare with');
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-build-'));
  try {
    const ctx = prepareContext(work);
    const results: Record<'cold' | 'nochange' | 'onechange', { berth: number[]; buildah: number[] }> = {
      cold: { berth: [], buildah: [] },
      nochange: { berth: [], buildah: [] },
      onechange: { berth: [], buildah: [] },
    };
    for (let run = 0; run < RUNS; run++) {
      writeFileSync(join(ctx, 'src/main.c'), 'int main(void) { return 0; }\n');
      const cache = join(work, `cache${run}`);
      const out = join(work, `out${run}`);
      const berthOnce = () => build({ contextDir: ctx, output: { layout: out, tag: 'bench' }, cache });
      results.cold.berth.push(await timedAsync(berthOnce));
      results.nochange.berth.push(await timedAsync(berthOnce));
      writeFileSync(join(ctx, 'src/main.c'), `int main(void) { return ${run + 1}; }\n`);
      results.onechange.berth.push(await timedAsync(berthOnce));
      rmSync(cache, { recursive: true, force: true });
      rmSync(out, { recursive: true, force: true });

      writeFileSync(join(ctx, 'src/main.c'), 'int main(void) { return 0; }\n');
      const bdir = join(work, `buildah${run}`);
      const env = buildahEnv(bdir);
      results.cold.buildah.push(timed(() => buildah(env, ctx)));
      results.nochange.buildah.push(timed(() => buildah(env, ctx)));
      writeFileSync(join(ctx, 'src/main.c'), `int main(void) { return ${run + 1}; }\n`);
      results.onechange.buildah.push(timed(() => buildah(env, ctx)));
      cleanBuildah(bdir, env);
    }
    console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; ${RUNS} runs, medians`);
    for (const [name, r] of Object.entries(results)) {
      const b = median(r.berth);
      const h = median(r.buildah);
      console.log(`${name.padEnd(10)} berth ${b.toFixed(2)} s   buildah ${h.toFixed(2)} s   ratio ${(b / h).toFixed(2)}x`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
