/** docker's --format templates: the Go text/template subset (src/cli/go-template.ts) and ps's table (ps-format.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileTemplate } from '../../src/cli/go-template.js';
import { psTemplate, type PsRow } from '../../src/cli/ps-format.js';
import type { Container } from '../../src/engine/containers/store.js';

const doc = { Name: '/web', State: { Status: 'running', Running: true, Pid: 42 }, Config: { Cmd: ['sleep', '300'], Labels: { app: 'web', tier: 'front' }, Env: ['A=1', 'B=2'] } };
const render = (t: string, v: unknown = doc) => compileTemplate(t)(v);

describe('--format templates (Go text/template, as docker users write them)', () => {
  it('fields, nested fields and literal text; values printed as Go prints them', () => {
    assert.equal(render('{{.State.Status}} pid={{.State.Pid}} {{.State.Running}} {{.Name}}'), 'running pid=42 true /web');
    assert.equal(render('{{.Config.Labels}}'), 'map[app:web tier:front]');
    assert.equal(render('{{.Config.Cmd}}'), '[sleep 300]');
    assert.equal(render('{{.Nope}}|{{.State.Nope.Deeper}}'), '<no value>|<no value>');
    assert.equal(render('{{ .Name }}'), '/web');
  });

  it('json, index, join, upper, lower, len, println; \\t and \\n as typed in a shell; {{- -}} trims', () => {
    assert.equal(render('{{json .Config.Cmd}}'), '["sleep","300"]');
    assert.equal(render('{{json .State}}'), '{"Status":"running","Running":true,"Pid":42}');
    assert.equal(render('{{index .Config.Labels "app"}}[{{index .Config.Labels "none"}}]'), 'web[]');
    assert.equal(render('{{join .Config.Env ","}}'), 'A=1,B=2');
    assert.equal(render('{{upper .State.Status}} {{lower "ABC"}} {{len .Config.Env}}'), 'RUNNING abc 2');
    assert.equal(render('{{println .Name}}'), '/web\n');
    assert.equal(render('a\\tb\\nc'), 'a\tb\nc');
    assert.equal(render('x   {{- .Name -}}   y'), 'x/weby');
  });

  it('refuses what it cannot do in one line', () => {
    assert.throws(() => render('{{.Name'), /--format "{{.Name": an action {{ without its }}/);
    assert.throws(() => render('{{range .Config.Env}}{{.}}{{end}}'), /unknown function range/);
    assert.throws(() => render('{{.Name "x"}}'), /.Name takes no arguments/);
  });

  it('ps: docker\'s fields, .Label "K", and table with docker\'s headers aligned as its tabwriter', () => {
    const c = {
      id: 'a'.repeat(64), name: 'web', created: '2026-12-07T16:19:00.000Z', dir: '/nonexistent',
      state: { status: 'running', pid: 1, pidStart: 1, monitorPid: 1 },
      config: { image: 'busybox', labels: { app: 'web' }, mounts: [{ type: 'volume', source: 'data', destination: '/data', options: [] }], network: 'none', publish: [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, proto: 'tcp' }] },
    } as unknown as Container;
    const rows: PsRow[] = [{ c, id: 'aaaaaaaaaaaa', command: '"sleep 300"', status: 'Up 2 seconds', state: 'running', created: '2 seconds' }];
    assert.deepEqual(psTemplate('{{.ID}} {{.Names}} {{.Label "app"}} {{.Labels}} {{.Mounts}} {{.Networks}} {{.Ports}} {{.CreatedAt}} {{.RunningFor}}', rows),
      ['aaaaaaaaaaaa web web app=web data none 127.0.0.1:8080->80/tcp 2026-12-07 16:19:00 +0000 UTC 2 seconds ago']);
    assert.deepEqual(psTemplate('table {{.Names}}\\t{{.Status}}\\t{{.Command}}', rows), [
      'NAMES     STATUS         COMMAND',
      'web       Up 2 seconds   "sleep 300"',
    ]);
  });
});
