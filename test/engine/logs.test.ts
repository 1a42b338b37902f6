/** Reading the json-file log (src/engine/containers/logs.ts): --since, --until, --tail, -f. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseSince, readLogs, type LogEntry } from '../../src/engine/containers/logs.js';

describe('container logs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-logs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'ctr.log');
  const line = (log: string, time: string, stream = 'stdout') => `${JSON.stringify({ log, stream, time })}\n`;
  writeFileSync(`${log}.1`, line('one\n', '2026-01-01T10:00:00.100000000Z'));
  writeFileSync(log, line('two\n', '2026-01-01T10:00:01.500000000Z', 'stderr') + line('three\n', '2026-01-01T10:00:03.000000000Z') + line('four\n', '2026-01-01T10:00:05.000000000Z'));
  const read = async (opts: Parameters<typeof readLogs>[1]) => {
    const out: LogEntry[] = [];
    await readLogs(log, opts, (e) => out.push(e));
    return out.map((e) => e.log.trim()).join(' ');
  };

  it('--since and --until keep the entries between them (both ends included), across the rotated file', async () => {
    assert.equal(await read({}), 'one two three four');
    assert.equal(await read({ since: Date.parse('2026-01-01T10:00:01Z') }), 'two three four');
    assert.equal(await read({ until: Date.parse('2026-01-01T10:00:03Z') }), 'one two three');
    assert.equal(await read({ since: Date.parse('2026-01-01T10:00:01Z'), until: Date.parse('2026-01-01T10:00:04Z') }), 'two three');
    assert.equal(await read({ until: Date.parse('2026-01-01T10:00:04Z'), tail: 1 }), 'three');
  });

  it('-f with an --until already past ends at once, though the container runs on', async () => {
    const started = Date.now();
    assert.equal(await read({ follow: true, stopped: () => false, until: Date.parse('2026-01-01T10:00:02Z') }), 'one two');
    assert.ok(Date.now() - started < 2000);
  });

  it('times: RFC 3339, Unix seconds or a duration ago; a bad one names its flag', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    assert.equal(parseSince('2026-01-01T10:00:00Z', now), Date.parse('2026-01-01T10:00:00Z'));
    assert.equal(parseSince('1767261600', now), Date.parse('2026-01-01T10:00:00Z'));
    assert.equal(parseSince('1h30m', now), Date.parse('2026-01-01T10:30:00Z'));
    assert.throws(() => parseSince('yesterday', now, '--until'), /^Error: --until yesterday: give a time/);
  });
});
