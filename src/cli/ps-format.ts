/**
 * `berth ps --format TEMPLATE` as docker's: the fields of a ps row (ID, Image, Command, CreatedAt,
 * RunningFor, Ports, State, Status, Size, Names, Labels, Label "K", Mounts, Networks) through a
 * Go template; `table TEMPLATE` adds docker's column headers and aligns the tab-separated columns.
 */
import type { Container } from '../engine/containers/store.js';
import { compileTemplate } from './go-template.js';

export interface PsRow {
  c: Container;
  /** As ps shows them (short or --no-trunc). */
  id: string;
  command: string;
  status: string;
  /** created, running, paused, exited. */
  state: string;
  /** "5 minutes" (without "ago"). */
  created: string;
}

const HEADERS: Record<string, string> = {
  ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED', Ports: 'PORTS',
  State: 'STATE', Status: 'STATUS', Size: 'SIZE', Names: 'NAMES', Labels: 'LABELS', Label: 'LABEL', Mounts: 'MOUNTS', Networks: 'NETWORKS',
};

/** Go's time.Time String(), as docker's CreatedAt prints: 2026-12-07 16:19:00 +0000 UTC. */
function goTime(iso: string): string {
  return `${iso.slice(0, 19).replace('T', ' ')} +0000 UTC`;
}

function fields(r: PsRow): Record<string, unknown> {
  const cfg = r.c.config;
  return {
    ID: r.id, Image: cfg.image, Command: r.command, CreatedAt: goTime(r.c.created), RunningFor: `${r.created} ago`,
    Ports: (cfg.publish ?? []).map((p) => `${p.hostIp || '0.0.0.0'}:${p.hostPort}->${p.containerPort}/${p.proto}`).join(', '),
    State: r.state, Status: r.status, Size: '0B', Names: r.c.name,
    Labels: Object.entries(cfg.labels).map(([k, v]) => `${k}=${v}`).join(','),
    Label: (key: unknown) => cfg.labels[String(key)] ?? '',
    Mounts: cfg.mounts.map((m) => (m.type === 'volume' ? m.source : m.destination)).join(','),
    Networks: cfg.network,
  };
}

/** The lines to print. */
export function psTemplate(format: string, rows: PsRow[]): string[] {
  const table = /^table(\s|$)/.exec(format);
  const body = table ? format.slice(5).trimStart() : format;
  const render = compileTemplate(body);
  const lines = rows.map((r) => render(fields(r)));
  if (!table) return lines;
  // The header: each field's column name in place of the field (docker's table writer).
  const header = compileTemplate(body.replace(/{{\s*\.(\w+)[^}]*}}/g, (_, f: string) => HEADERS[f] ?? f.toUpperCase()))({});
  const cells = [header, ...lines].map((l) => l.split('\t'));
  const widths: number[] = [];
  for (const row of cells) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  // docker's tabwriter: columns at least 10 wide, 3 spaces of padding.
  return cells.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(Math.max(10, widths[i]! + 3)))).join('').trimEnd());
}
