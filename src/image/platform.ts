/**
 * Platforms: parsing `os[(os.version)]/arch[/variant]` specifiers, normalisation and matching,
 * following containerd's `platforms` package (the de facto reference for choosing a manifest
 * from an index), so that berth picks the same image containerd, docker and podman would.
 */
import { endianness } from 'node:os';
import { BerthError } from '../base/errors.js';
import type { Descriptor, ImageIndex, Platform } from '../base/types.js';

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
      if (v === '8' || v === 'v8') v = '';
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
 * for arm (v7) and implicit for arm64 (v8) and amd64 (v1), os.features sorted and unique,
 * as containerd does.
 */
export function normalizePlatform(p: Platform): Platform {
  const { architecture, variant } = normalizeArch(p.architecture, p.variant ?? '');
  const out: Platform = { architecture, os: normalizeOs(p.os) };
  if (p['os.version'] !== undefined && p['os.version'] !== '') out['os.version'] = p['os.version'];
  if (p['os.features'] !== undefined && p['os.features'].length > 0) out['os.features'] = [...new Set(p['os.features'])].sort();
  if (variant !== '') out.variant = variant;
  if (p.features !== undefined && p.features.length > 0) out.features = [...p.features];
  return out;
}

function usage(whole: string, why: string): BerthError {
  return new BerthError('USAGE', `invalid platform ${JSON.stringify(whole)}: ${why} (expected os[(os.version)]/arch[/variant], e.g. linux/arm64/v8)`);
}

// containerd: <os>[(<os.version>[+<os.feature>]*)], values percent-encoded where ambiguous.
const OS_COMPONENT = /^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$/;

function decodeOsOption(v: string, whole: string): string {
  try {
    return v.includes('%') ? decodeURIComponent(v) : v;
  } catch {
    throw usage(whole, `bad percent-encoding in ${JSON.stringify(v)}`);
  }
}

function encodeOsOption(v: string): string {
  return v.replace(/%/g, '%25').replace(/\+/g, '%2B').replace(/\(/g, '%28').replace(/\)/g, '%29').replace(/\//g, '%2F');
}

/**
 * Parses a platform specifier as containerd does: `os/arch[/variant]`, or a lone `os` or `arch`
 * (the rest completed from the host). The OS may carry a version and features,
 * `windows(10.0.17763+win32k)/amd64` (containerd's form); `windows/amd64:10.0.17763.1` is
 * accepted too.
 */
export function parsePlatform(s: string): Platform {
  let spec = s.trim();
  let colonVersion: string | undefined;
  if (spec.includes('*')) throw usage(s, 'wildcards are not supported');
  const colon = spec.lastIndexOf(':');
  if (colon !== -1 && !spec.includes('(')) {
    colonVersion = spec.slice(colon + 1);
    spec = spec.slice(0, colon);
    if (!/^[A-Za-z0-9_.-]*$/.test(colonVersion)) throw usage(s, `bad os.version ${JSON.stringify(colonVersion)}`);
  }
  if (spec === '') throw usage(s, 'it is empty');
  const parts = spec.split('/');
  if (parts.length > 3) throw usage(s, 'too many components');
  const osMatch = OS_COMPONENT.exec(parts[0]!);
  if (!osMatch) throw usage(s, `os ${JSON.stringify(parts[0])} must match [A-Za-z0-9_-]+, optionally followed by (version+feature...)`);
  parts.slice(1).forEach((part, i) => {
    if (!COMPONENT.test(part)) throw usage(s, `${i === 0 ? 'architecture' : 'variant'} ${JSON.stringify(part)} must match [A-Za-z0-9_.-]+`);
  });
  const os = normalizeOs(osMatch[1]!);
  const osVersion = colonVersion ?? decodeOsOption(osMatch[2] ?? '', s);
  const osFeatures = osMatch[3] ? osMatch[3].slice(1).split('+').map((f) => decodeOsOption(f, s)) : [];
  const finish = (architecture: string, variant: string): Platform => {
    const p: Platform = { os, architecture };
    if (variant) p.variant = variant;
    if (osVersion) p['os.version'] = osVersion;
    if (osFeatures.length > 0) p['os.features'] = osFeatures;
    return p;
  };

  if (parts.length === 1) {
    const host = hostPlatform();
    if (KNOWN_OS.has(os)) {
      // containerd: the host architecture; its variant only for arm other than the default v7.
      return finish(host.architecture, host.architecture === 'arm' && host.variant !== 'v7' ? (host.variant ?? '') : '');
    }
    const { architecture, variant } = normalizeArch(parts[0]!, '');
    if (KNOWN_ARCH.has(architecture)) {
      const p = finish(architecture, architecture === 'arm' && variant === 'v7' ? '' : variant);
      p.os = host.os;
      return p;
    }
    throw usage(s, `${JSON.stringify(parts[0])} is neither a known operating system nor a known architecture`);
  }
  if (parts.length === 2) {
    const { architecture, variant } = normalizeArch(parts[1]!, '');
    // containerd: for os/arch, arm's default variant v7 stays implicit.
    return finish(architecture, architecture === 'arm' && variant === 'v7' ? '' : variant);
  }
  const { architecture, variant } = normalizeArch(parts[1]!, parts[2]!);
  // containerd: an explicit arm64 v8 is kept in the parsed form.
  return finish(architecture, architecture === 'arm64' && variant === '' ? 'v8' : variant);
}

/** `os[(os.version[+feature…])]/arch[/variant]`, the form parsePlatform reads (containerd FormatAll). */
export function formatPlatform(p: Platform): string {
  let options = encodeOsOption(p['os.version'] ?? '');
  for (const f of [...(p['os.features'] ?? [])].sort()) options += `+${encodeOsOption(f)}`;
  const os = options !== '' ? `${p.os}(${options})` : p.os;
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
 * amd64/vN runs vN…v1 then 386; arm/vN runs vN…v5; arm64/v8.x runs v8.x…v8, arm64/v9.x runs
 * v9.x…v9 then v8.(x+5)…v8; every arm64 then runs 32-bit arm.
 */
function platformVector(p: Platform): Platform[] {
  const base: Platform = { os: p.os, architecture: p.architecture };
  if (p['os.version']) base['os.version'] = p['os.version'];
  if (p['os.features']) base['os.features'] = p['os.features'];
  const at = (architecture: string, variant?: string): Platform => (variant ? { ...base, architecture, variant } : { ...base, architecture });
  const vector: Platform[] = [p];
  const level = (v: string | undefined): number => {
    const m = /^v?(\d+)$/.exec(v ?? '');
    return m ? Number(m[1]) : NaN;
  };
  switch (p.architecture) {
    case 'amd64': {
      const n = level(p.variant);
      for (let i = n - 1; i >= 1; i--) vector.push(at('amd64', `v${i}`));
      vector.push(at('386'));
      break;
    }
    case 'arm': {
      const n = level(p.variant);
      for (let i = n - 1; i >= 5; i--) vector.push(at('arm', `v${i}`));
      break;
    }
    case 'arm64': {
      let variant = p.variant || 'v8';
      const m = /^v?(\d+)(?:\.(\d+))?$/.exec(variant);
      let major = m ? Number(m[1]) : NaN;
      // containerd only reads a minor version from a 4-character variant such as v8.2.
      let minor = m && m[2] !== undefined && variant.length === 4 ? Number(m[2]) : 0;
      if (major >= 8) {
        const minorsDown = (maj: number, from: number): void => {
          for (let i = from - 1; i >= 0; i--) vector.push(at('arm64', i === 0 ? `v${maj}` : `v${maj}.${i}`));
        };
        if (major === 9) {
          minorsDown(9, minor);
          // arm v9.0 branched from v8.5: v9.x runs v8.(x+5) and below.
          minor += 5;
          major = 8;
          vector.push(at('arm64', `v8.${minor}`));
        }
        minorsDown(major, minor);
      }
      if (variant.startsWith('v8.') || variant.startsWith('v9.')) variant = 'v8';
      vector.push(...platformVector(at('arm', variant)));
      break;
    }
  }
  return vector.map(normalizePlatform);
}

// containerd windowsVersionMatcher: major.minor.build of a Windows os.version.
function windowsBuild(v: string | undefined): { major: number; minor: number; build: number } | undefined {
  if (!v || (v.match(/\./g) ?? []).length < 2) return undefined;
  const [major, minor, build] = v.split('.').map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));
  if (!(major! <= 255 && minor! <= 255 && build! <= 65535)) return undefined;
  return { major: major!, minor: minor!, build: build! };
}

const WINDOWS_SERVER_2022 = 20348; // the first build with a stable container ABI (LTSC releases)

/**
 * Whether a Windows host of version `want` runs a container image of version `have`
 * (containerd checkWindowsHostAndContainerCompat): same major.minor; before Server 2022 the same
 * build; from Server 2022 on, any build from 20348 up to the host's. Other OSes ignore os.version.
 */
function osVersionCompatible(want: Platform, have: Platform): boolean {
  if (want.os !== 'windows') return true;
  const host = windowsBuild(want['os.version']);
  if (host === undefined || !have['os.version']) return true;
  const image = windowsBuild(have['os.version']) ?? { major: 0, minor: 0, build: 0 };
  if (host.major !== image.major || host.minor !== image.minor) return false;
  if (host.build < WINDOWS_SERVER_2022) return host.build === image.build;
  return image.build >= WINDOWS_SERVER_2022 && image.build <= host.build;
}

// containerd matcher: the image's os.features must all be among the host's.
function osFeaturesCompatible(want: Platform, have: Platform): boolean {
  const hostFeatures = new Set(want['os.features'] ?? []);
  return (have['os.features'] ?? []).every((f) => hostFeatures.has(f));
}

function sameTriple(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/** A ranking function: the rank of `have` among what `want` can run (0 = exact), or -1 when it cannot run it. */
function rankerFor(want: Platform): (have: Platform) => number {
  const w = normalizePlatform(want);
  const vector = platformVector(w);
  return (have) => {
    const h = normalizePlatform(have);
    if (!osVersionCompatible(w, h) || !osFeaturesCompatible(w, h)) return -1;
    return vector.findIndex((candidate) => sameTriple(candidate, h));
  };
}

/**
 * Whether a machine of platform `want` can run an image built for `have` (containerd's
 * `platforms.Only(want).Match(have)`): exact after normalisation, or one of the compatible
 * fallbacks (arm/v7 runs v6 and v5, amd64/v3 runs v2, v1 and 386, arm64 runs arm).
 */
export function platformMatches(want: Platform, have: Platform): boolean {
  return rankerFor(want)(have) !== -1;
}

/**
 * The manifests of an index that a `want` machine can run, best first (containerd's
 * `Only(want).Less` ordering: the closer fallback first; among Windows images of equal rank the
 * higher os.version first, as containerd's Windows comparer does; otherwise the index's order).
 * Descriptors without a platform are not selected.
 */
export function selectManifests(index: ImageIndex, want: Platform): Descriptor[] {
  const isWindows = normalizePlatform(want).os === 'windows';
  const rankOf = rankerFor(want);
  const ranked: { desc: Descriptor; rank: number; osVersion: string; order: number }[] = [];
  index.manifests.forEach((desc, order) => {
    if (desc.platform === undefined) return;
    const rank = rankOf(desc.platform);
    if (rank === -1) return;
    ranked.push({ desc, rank, osVersion: isWindows ? (desc.platform['os.version'] ?? '') : '', order });
  });
  ranked.sort((a, b) => a.rank - b.rank || (a.osVersion === b.osVersion ? 0 : a.osVersion > b.osVersion ? -1 : 1) || a.order - b.order);
  return ranked.map((r) => r.desc);
}
