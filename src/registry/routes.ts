/**
 * Maps a request path to a distribution-spec endpoint (spec.md "Endpoints"). Names may hold
 * several components, so the endpoint is recognised from the end of the path.
 */
export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploadStart'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'token' }
  | { kind: 'metrics' }
  | { kind: 'health' }
  | { kind: 'unknown' };

export function matchRoute(pathname: string): Route {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' };
  if (pathname === '/v2/_catalog') return { kind: 'catalog' };
  if (pathname === '/token') return { kind: 'token' };
  if (pathname === '/metrics') return { kind: 'metrics' };
  if (pathname === '/healthz' || pathname === '/health') return { kind: 'health' };
  if (!pathname.startsWith('/v2/')) return { kind: 'unknown' };
  const parts = pathname.slice(4).split('/');
  const n = parts.length;
  const name = (drop: number) => decodeSafe(parts.slice(0, n - drop).join('/'));
  if (n >= 3 && parts[n - 2] === 'tags' && parts[n - 1] === 'list') return { kind: 'tags', name: name(2) };
  if (n >= 3 && parts[n - 3] === 'blobs' && parts[n - 2] === 'uploads') {
    const id = parts[n - 1]!;
    if (n >= 4 && id === '') return { kind: 'uploadStart', name: name(3) };
    if (n >= 4) return { kind: 'upload', name: name(3), id: decodeSafe(id) };
  }
  if (n >= 3 && parts[n - 2] === 'blobs' && parts[n - 1] === 'uploads') return { kind: 'uploadStart', name: name(2) };
  if (n >= 3 && parts[n - 2] === 'blobs') return { kind: 'blob', name: name(2), digest: decodeSafe(parts[n - 1]!) };
  if (n >= 3 && parts[n - 2] === 'manifests') return { kind: 'manifest', name: name(2), reference: decodeSafe(parts[n - 1]!) };
  if (n >= 3 && parts[n - 2] === 'referrers') return { kind: 'referrers', name: name(2), digest: decodeSafe(parts[n - 1]!) };
  return { kind: 'unknown' };
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
