/**
 * `berth ps --filter KEY=VALUE`, as docker 20.10 reads it: values of one key are alternatives
 * (status=exited --filter status=created: either), different keys must all hold, except
 * `label`, whose filters must all hold. `name` is a regular expression (matched against NAME
 * and /NAME), `before`/`since` name a container. A key or value docker refuses is refused.
 */
import { BerthError } from '../../base/errors.js';
import type { Container } from './store.js';

const STATUSES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];
const KEYS = ['id', 'name', 'label', 'exited', 'status', 'before', 'since', 'isolation', 'health', 'ancestor', 'volume', 'network', 'publish', 'expose', 'is-task'];

export interface PsFilter {
  /** Whether the filters look past running containers (status, exited: as if -a). */
  all: boolean;
  /** status: the container's as ps shows it (paused, while frozen). */
  matches(c: Container, exitCode: number | undefined, status?: string): boolean;
}

function invalid(f: string): BerthError {
  return new BerthError('USAGE', `invalid filter '${f}'`);
}

/** `80`, `80/udp` or `8000-8010/tcp`: a test of port numbers and protocol. */
function portTest(f: string, value: string): (port: number, proto: string) => boolean {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(value);
  if (!m) throw invalid(f);
  const lo = Number(m[1]), hi = m[2] ? Number(m[2]) : lo;
  const proto = m[3] ?? 'tcp';
  return (port, p) => port >= lo && port <= hi && p === proto;
}

/**
 * Parses the filters once (errors before any output); `find` resolves a container reference
 * for before= and since= (throws when there is none).
 */
export function parsePsFilters(filters: string[], find: (ref: string) => Container): PsFilter {
  const byKey = new Map<string, string[]>();
  for (const f of filters) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new BerthError('USAGE', `bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, eq).toLowerCase();
    if (!KEYS.includes(key)) throw new BerthError('USAGE', `invalid filter '${key}' (${KEYS.join(', ')})`);
    byKey.set(key, [...(byKey.get(key) ?? []), f.slice(eq + 1)]);
  }
  const tests: ((c: Container, exit: number | undefined, status: string) => boolean)[] = [];
  const anyOf = (key: string, make: (value: string) => (c: Container, exit: number | undefined, status: string) => boolean) => {
    const values = byKey.get(key);
    if (!values) return;
    const each = values.map(make);
    tests.push((c, exit, status) => each.some((t) => t(c, exit, status)));
  };
  anyOf('id', (v) => (c) => c.id.startsWith(v));
  anyOf('name', (v) => {
    let re: RegExp;
    try { re = new RegExp(v); } catch { throw invalid(`name=${v}`); }
    return (c) => re.test(c.name) || re.test(`/${c.name}`);
  });
  anyOf('status', (v) => {
    if (!STATUSES.includes(v)) throw invalid(`status=${v}`);
    return (_c, _exit, status) => status === v;
  });
  anyOf('exited', (v) => {
    if (!/^-?\d+$/.test(v)) throw invalid(`exited=${v}`);
    return (c, exit) => c.state.status === 'exited' && (exit ?? c.state.exitCode) === Number(v);
  });
  anyOf('ancestor', (v) => (c) => c.config.image === v || c.config.image.endsWith(`/${v}`) || c.config.image.endsWith(`/${v}:latest`) || c.config.image.includes(`/library/${v}`)
    || c.config.imageDigest === v || (v.startsWith('sha256:') && c.config.imageDigest.startsWith(v)));
  anyOf('network', (v) => (c) => c.config.network === v);
  anyOf('volume', (v) => (c) => c.config.mounts.some((m) => m.destination === v || m.source === v) || (c.config.anonymousVolumes ?? []).includes(v));
  anyOf('publish', (v) => { const t = portTest(`publish=${v}`, v); return (c) => (c.config.publish ?? []).some((p) => p.hostPort > 0 && t(p.hostPort, p.proto)); });
  anyOf('expose', (v) => { const t = portTest(`expose=${v}`, v); return (c) => (c.config.publish ?? []).some((p) => t(p.containerPort, p.proto)); });
  // No health checks, no swarm tasks, one isolation: what docker answers for such containers.
  anyOf('health', (v) => {
    if (!['starting', 'healthy', 'unhealthy', 'none'].includes(v)) throw invalid(`health=${v}`);
    return () => v === 'none';
  });
  anyOf('is-task', (v) => {
    if (v !== 'true' && v !== 'false') throw invalid(`is-task=${v}`);
    return () => v === 'false';
  });
  anyOf('isolation', (v) => () => v === 'default');
  for (const v of byKey.get('label') ?? []) {
    const eq = v.indexOf('=');
    tests.push((c) => (eq < 0 ? v in c.config.labels : c.config.labels[v.slice(0, eq)] === v.slice(eq + 1)));
  }
  for (const [key, older] of [['before', true], ['since', false]] as const) {
    for (const v of byKey.get(key) ?? []) {
      const ref = find(v);
      tests.push((c) => c.id !== ref.id && (older ? c.created < ref.created : c.created > ref.created));
    }
  }
  return { all: byKey.has('status') || byKey.has('exited'), matches: (c, exit, status = c.state.status) => tests.every((t) => t(c, exit, status)) };
}
