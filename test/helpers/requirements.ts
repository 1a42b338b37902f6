/**
 * What a test needs from the host (a peer from Debian, root, an architecture, the spec documents)
 * and what happens when the host lacks it.
 *
 * On a developer's machine a missing peer or root skips the tests that need it, with the reason
 * in the TAP output (`# SKIP …`). Under CI (`CI=true`) or `BERTH_REQUIRE_PEERS=1` a missing peer or
 * root is a failure that names the package to install: a CI machine that lost a peer must not pass
 * by skipping. An architecture the host is not, and spec documents that were not given through
 * BERTH_SPEC_DIR, are only ever skips: no install step can change them.
 */
import { test, type TestContext } from 'node:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const peersRequired = process.env.CI === 'true' || process.env.BERTH_REQUIRE_PEERS === '1';

/** One thing a test needs: a reason when the host lacks it, and whether CI can install it. */
export interface Need {
  /** Why the tests cannot run here, or undefined when the need is met. */
  missing: string | undefined;
  /** True when an install step (or running as root) would meet it, so CI must have it. */
  installable: boolean;
}

const whichCache = new Map<string, string | undefined>();
/** The first executable named `bin` on PATH (or `bin` itself when it is a path). */
export function which(bin: string): string | undefined {
  if (bin.includes('/')) return existsSync(bin) ? bin : undefined;
  if (!whichCache.has(bin)) {
    const dirs = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
    whichCache.set(bin, dirs.map((d) => join(d, bin)).find((p) => existsSync(p)));
  }
  return whichCache.get(bin);
}

/** A program from a Debian package, found by path (`/usr/bin/skopeo`) or on PATH (`skopeo`). */
export function peer(bin: string, pkg: string): Need {
  return { missing: which(bin) ? undefined : `${bin} is not installed (apt-get install -y ${pkg})`, installable: true };
}

export function root(why: string): Need {
  return { missing: process.getuid?.() === 0 ? undefined : `needs root (${why}): run as root, as CI does`, installable: true };
}

export function arch(...archs: NodeJS.Architecture[]): Need {
  return { missing: archs.includes(process.arch) ? undefined : `needs ${archs.join(' or ')} (this host is ${process.arch})`, installable: false };
}

/** Any other condition, e.g. a kernel feature: a skip that CI does not turn into a failure. */
export function hostHas(present: boolean, missing: string): Need {
  return { missing: present ? undefined : missing, installable: false };
}

/**
 * The spec documents (image-spec, runtime-spec, …) under BERTH_SPEC_DIR, which `.ci/run` sets
 * when the specs are beside the checkout. Returns the directory of `sub`, or a Need that is missing.
 */
export function specDir(sub: string): { dir: string | undefined; need: Need } {
  const base = process.env.BERTH_SPEC_DIR;
  if (!base) return { dir: undefined, need: { missing: 'BERTH_SPEC_DIR is not set: point it at the OCI spec documents (.ci/run does when they are beside the checkout)', installable: false } };
  const dir = join(base, sub);
  if (!existsSync(dir)) return { dir: undefined, need: { missing: `BERTH_SPEC_DIR has no ${sub}`, installable: false } };
  return { dir, need: { missing: undefined, installable: false } };
}

const reported = new Set<string>();
/** Registers, once per reason, a test that fails because CI lacks something it must have. */
function failRequired(reason: string): void {
  if (reported.has(reason)) return;
  reported.add(reason);
  test(`required on CI: ${reason}`, () => {
    throw new Error(`${reason}; CI requires every peer (CI=true or BERTH_REQUIRE_PEERS=1): install it in .ci/run`);
  });
}

/**
 * The skip option for a suite or test that needs all of `needs`: false when it can run, else the
 * reason. Under CI an installable need that is missing also registers a failing test.
 */
export function skipUnless(...needs: Need[]): string | false {
  const missing = needs.filter((n) => n.missing !== undefined);
  if (missing.length === 0) return false;
  const reason = missing.map((n) => n.missing).join('; ');
  if (peersRequired) for (const n of missing) if (n.installable) failRequired(n.missing!);
  return reason;
}

/**
 * Inside a running test: skips it with `reason`, or fails it under CI when `installable`
 * (a peer that is there but did not do its part, e.g. podman never calling the runtime).
 */
export function skipOrFail(t: TestContext, reason: string, installable = true): void {
  if (peersRequired && installable) throw new Error(`${reason}; CI requires every peer (CI=true or BERTH_REQUIRE_PEERS=1)`);
  t.skip(reason);
}
