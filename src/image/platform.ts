/**
 * Platforms: parsing `os[(os.version)]/arch[/variant]` specifiers, normalisation and matching,
 * following containerd's `platforms` package (the de facto reference for choosing a manifest
 * from an index), so that berth picks the same image containerd, docker and podman would.
 */
import { endianness } from 'node:os';
import { BerthError } from '../errors.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

// containerd platforms.go: specifierRe = `^[A-Za-z0-9_.-]+$`
const COMPONENT = /^[A-Za-z0-9_.-]+$/;

// Go's GOOS / GOARCH lists: a single component of a specifier is recognised by these.
const KNOWN_OS = new Set([
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux',
  'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows', 'zos',
]);
const KNOWN_ARCH = new Set([
  '386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'loong64',
  'mips', 'mipsle', 'mips64', 'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64',
  's390', 's390x', 'sparc', 'sparc64', 'wasm',
]);

function normalizeOs(os: string): string {
  const lower = os.toLowerCase();
  return lower === 'macos' ? 'darwin' : lower;
}

/** containerd normalizeArch: the canonical (architecture, variant) pair. */
function normalizeArch(arch: string, variant: string): { architecture: string; variant: string } {
  let a = arch.toLowerCase();
  let v = variant.toLowerCase();
  switch (a) {
    case 'i386':
      a = '386';
      v = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      a = 'amd64';
      if (v === 'v1') v = '';
      break;
    case 'aarch64':
    case 'arm64':
      a = 'arm64';
      if (v === '8' || v === 'v8' || v === 'v8.0') v = '';
      else if (v === '9' || v === '9.0' || v === 'v9.0') v = 'v9';
      break;
    case 'armhf':
      a = 'arm';
      v = 'v7';
      break;
    case 'armel':
      a = 'arm';
      v = 'v6';
      break;
    case 'arm':
      if (v === '' || v === '7') v = 'v7';
      else if (v === '5' || v === '6' || v === '8') v = `v${v}`;
      break;
  }
  return { architecture: a, variant: v };
}

/**
 * The canonical form of a platform, used for comparisons: lower case, aliases resolved
 * (x86_64→amd64, aarch64→arm64, armhf→arm/v7, macos→darwin), default variants made explicit
 * for arm (v7) and implicit for arm64 (v8) and amd64 (v1), as containerd does.
 */
export function normalizePlatform(p: Platform): Platform {
  const { architecture, variant } = normalizeArch(p.architecture, p.variant ?? '');
  const out: Platform = { architecture, os: normalizeOs(p.os) };
  if (p['os.version'] !== undefined && p['os.version'] !== '') out['os.version'] = p['os.version'];
  if (p['os.features'] !== undefined && p['os.features'].length > 0) out['os.features'] = [...p['os.features']];
  if (variant !== '') out.variant = variant;
  if (p.features !== undefined && p.features.length > 0) out.features = [...p.features];
  return out;
}

function checkComponent(part: string, what: string, whole: string): string {
  if (!COMPONENT.test(part)) {
    throw new BerthError(
      'USAGE',
      `invalid platform ${JSON.stringify(whole)}: ${what} ${JSON.stringify(part)} must match [A-Za-z0-9_.-]+ (expected os/arch[/variant], e.g. linux/arm64/v8)`,
    );
  }
  return part;
}

/**
 * Parses a platform specifier as containerd does: `os/arch[/variant]`, or a lone `os` or `arch`
 * (completed from the host). The OS may carry a version, `windows(10.0.17763.1)/amd64`
 * (containerd's form); `windows/amd64:10.0.17763.1` is accepted too.
 */
export function parsePlatform(s: string): Platform {
  let spec = s.trim();
  let osVersion: string | undefined;
  const paren = /^([^/()]+)\(([^()]*)\)(\/.*)?$/.exec(spec);
  if (paren) {
    osVersion = paren[2];
    spec = paren[1] + (paren[3] ?? '');
  } else {
    const colon = spec.lastIndexOf(':');
    if (colon !== -1) {
      osVersion = spec.slice(colon + 1);
      spec = spec.slice(0, colon);
    }
  }
  if (osVersion !== undefined && !/^[A-Za-z0-9_.-]*$/.test(osVersion)) {
    throw new BerthError('USAGE', `invalid platform ${JSON.stringify(s)}: bad os.version ${JSON.stringify(osVersion)}`);
  }
  if (spec === '') throw new BerthError('USAGE', 'invalid platform "": expected os/arch[/variant], e.g. linux/amd64');
  const parts = spec.split('/');
  if (parts.length > 3) {
    throw new BerthError('USAGE', `invalid platform ${JSON.stringify(s)}: too many components (expected os/arch[/variant])`);
  }
  parts.forEach((part, i) => checkComponent(part, ['os', 'architecture', 'variant'][i] ?? 'component', s));
  const withVersion = (p: Platform): Platform => {
    if (osVersion !== undefined && osVersion !== '') p['os.version'] = osVersion;
    return p;
  };
  const host = hostPlatform();
  if (parts.length === 1) {
    const only = parts[0]!.toLowerCase();
    const os = normalizeOs(only);
    if (KNOWN_OS.has(os)) {
      const p: Platform = { os, architecture: host.architecture };
      if (host.variant) p.variant = host.variant;
      return withVersion(p);
    }
    const { architecture, variant } = normalizeArch(only, '');
    if (KNOWN_ARCH.has(architecture)) {
      const p: Platform = { os: host.os, architecture };
      if (variant) p.variant = variant;
      return withVersion(p);
    }
    throw new BerthError(
      'USAGE',
      `invalid platform ${JSON.stringify(s)}: ${JSON.stringify(only)} is neither a known operating system nor a known architecture`,
    );
  }
  const os = normalizeOs(parts[0]!);
  if (parts.length === 2) {
    const { architecture, variant } = normalizeArch(parts[1]!, '');
    const p: Platform = { os, architecture };
    // containerd: for a 2-part specifier, arm's default variant v7 stays implicit.
    if (variant && !(architecture === 'arm' && variant === 'v7')) p.variant = variant;
    return withVersion(p);
  }
  const { architecture, variant } = normalizeArch(parts[1]!, parts[2]!);
  const p: Platform = { os, architecture };
  // containerd: an explicit arm64 v8 is kept in the parsed form.
  if (variant) p.variant = variant;
  else if (architecture === 'arm64') p.variant = 'v8';
  else if (architecture === 'amd64' && parts[2]!.toLowerCase() === 'v1') p.variant = 'v1';
  return withVersion(p);
}

/** `os[(os.version)]/arch[/variant]`, the form parsePlatform reads. */
export function formatPlatform(p: Platform): string {
  const os = p['os.version'] ? `${p.os}(${p['os.version']})` : p.os;
  return [os, p.architecture, p.variant].filter((x) => x !== undefined && x !== '').join('/');
}

function nodeArchToGo(arch: string): { architecture: string; variant?: string } {
  switch (arch) {
    case 'x64':
      return { architecture: 'amd64' };
    case 'ia32':
      return { architecture: '386' };
    case 'arm64':
      return { architecture: 'arm64', variant: 'v8' };
    case 'arm': {
      const v = (process.config.variables as Record<string, unknown>)['arm_version'];
      return { architecture: 'arm', variant: `v${typeof v === 'string' || typeof v === 'number' ? v : '7'}` };
    }
    case 'ppc64':
      return { architecture: endianness() === 'LE' ? 'ppc64le' : 'ppc64' };
    case 'loong64':
    case 'riscv64':
    case 's390x':
    case 'mips':
    case 'mipsel':
      return { architecture: arch === 'mipsel' ? 'mipsle' : arch };
    default:
      return { architecture: arch };
  }
}

/** The platform this process runs on, in OCI terms (win32→windows, x64→amd64, arm64→arm64/v8). */
export function hostPlatform(): Platform {
  const os = process.platform === 'win32' ? 'windows' : process.platform === 'sunos' ? 'solaris' : process.platform;
  const { architecture, variant } = nodeArchToGo(process.arch);
  const p: Platform = { os, architecture };
  if (variant) p.variant = variant;
  return p;
}

/**
 * containerd platformVector: the platforms a machine of `p` can run, best first.
 * amd64/vN runs vN…v1 then 386; arm/vN runs vN…v5; arm64 runs arm64 then arm/v8…v5.
 */
function platformVector(p: Platform): Platform[] {
  const base = { os: p.os, ...(p['os.version'] ? { 'os.version': p['os.version'] } : {}) };
  const vector: Platform[] = [p];
  const level = (v: string | undefined): number => {
    const m = /^v?(\d+)$/.exec(v ?? '');
    return m ? Number(m[1]) : NaN;
  };
  switch (p.architecture) {
    case 'amd64': {
      const n = level(p.variant);
      for (let i = n - 1; i >= 1; i--) vector.push({ ...base, architecture: 'amd64', ...(i > 1 ? { variant: `v${i}` } : {}) });
      vector.push({ ...base, architecture: '386' });
      break;
    }
    case 'arm': {
      const n = level(p.variant);
      for (let i = n - 1; i >= 5; i--) vector.push({ ...base, architecture: 'arm', variant: `v${i}` });
      break;
    }
    case 'arm64': {
      const m = /^v(\d+)(?:\.(\d+))?$/.exec(p.variant ?? 'v8');
      const major = m ? Number(m[1]) : 8;
      // arm64 v9 runs v8 (the implicit default) images.
      if (major > 8) vector.push({ ...base, architecture: 'arm64' });
      vector.push(...platformVector({ ...base, architecture: 'arm', variant: 'v8' }));
      break;
    }
  }
  return vector.map(normalizePlatform);
}

// containerd matchOSVersion: on Windows the build (major.minor.build) must agree when both
// sides give one; elsewhere os.version does not take part in matching.
function osVersionCompatible(want: Platform, have: Platform): boolean {
  if (want.os !== 'windows') return true;
  const w = want['os.version'];
  const h = have['os.version'];
  if (!w || !h) return true;
  return buildPrefix(w) === buildPrefix(h);
}

function buildPrefix(v: string): string {
  return v.split('.').slice(0, 3).join('.');
}

function sameTriple(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/** The rank of `have` among what `want` can run (0 = exact), or -1 when it cannot run it. */
function matchRank(want: Platform, have: Platform): number {
  const h = normalizePlatform(have);
  const w = normalizePlatform(want);
  const vector = platformVector(w);
  for (let i = 0; i < vector.length; i++) {
    if (sameTriple(vector[i]!, h) && osVersionCompatible(w, h)) return i;
  }
  return -1;
}

/**
 * Whether a machine of platform `want` can run an image built for `have` (containerd's
 * `platforms.Only(want).Match(have)`): exact after normalisation, or one of the compatible
 * fallbacks (arm/v7 runs v6 and v5, amd64/v3 runs v2, v1 and 386, arm64 runs arm).
 */
export function platformMatches(want: Platform, have: Platform): boolean {
  return matchRank(want, have) !== -1;
}

/**
 * The manifests of an index that a `want` machine can run, best first (containerd's
 * `Only(want).Less` ordering: the closer fallback first; for Windows an exact os.version first;
 * otherwise the index's order). Descriptors without a platform are not selected.
 */
export function selectManifests(index: ImageIndex, want: Platform): Descriptor[] {
  const w = normalizePlatform(want);
  const ranked: { desc: Descriptor; rank: number; exactVersion: number; order: number }[] = [];
  index.manifests.forEach((desc, order) => {
    if (desc.platform === undefined) return;
    const rank = matchRank(w, desc.platform);
    if (rank === -1) return;
    const exactVersion = w['os.version'] !== undefined && desc.platform['os.version'] === w['os.version'] ? 0 : 1;
    ranked.push({ desc, rank, exactVersion, order });
  });
  ranked.sort((a, b) => a.rank - b.rank || a.exactVersion - b.exactVersion || a.order - b.order);
  return ranked.map((r) => r.desc);
}
