/**
 * berth run and the container commands, as a user runs them (the built CLI, as root), on a
 * busybox image built in the test and put in the store of a temp BERTH_ROOT.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

/** The container's status once it is `want`, or the last seen after 10 s. */
async function waitStatus(e: EngineRoot, name: string, want: string): Promise<string> {
  let status = '';
  for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    status = (await e.berth(['inspect', '-f', '{{.State.Status}}', name])).stdout.trim();
    if (status === want) break;
  }
  return status;
}

const needs = skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'));

describe('berth run (foreground)', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => { e = await engineRoot(); });
  after(async () => { await e.close(); });

  it('passes the output and the exit status through, stdout and stderr apart', async () => {
    const r = await e.berth(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.equal(r.code, 7);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal((await e.berth(['run', '--rm', 'busybox', 'true'])).code, 0);
    assert.equal((await e.berth(['run', '--rm', 'busybox', 'false'])).code, 1);
  });

  it('gives 127 for a command that is not there and 126 for one that cannot run, with docker\'s messages', async () => {
    const nf = await e.berth(['run', '--rm', 'busybox', 'no-such-command']);
    assert.equal(nf.code, 127);
    assert.match(nf.stderr, /exec: "no-such-command": executable file not found in \$PATH/);
    const dir = await e.berth(['run', '--rm', 'busybox', '/etc']);
    assert.equal(dir.code, 126);
    assert.match(dir.stderr, /permission denied/);
    const abs = await e.berth(['run', '--rm', 'busybox', '/nope/x']);
    assert.equal(abs.code, 127);
  });

  it('gives 125 when berth itself fails: unknown image, unknown network, bad volume', async () => {
    const img = await e.berth(['run', '--rm', '--pull', 'never', 'nosuchimage']);
    assert.equal(img.code, 125);
    assert.match(img.stderr, /unable to find image 'nosuchimage' locally/);
    const net = await e.berth(['run', '--rm', '--network', 'nosuchnet', 'busybox', 'true']);
    assert.equal(net.code, 125);
    assert.match(net.stderr, /network "nosuchnet" not found: create it with "berth network create nosuchnet"/);
    const pub = await e.berth(['run', '--rm', '--network', 'none', '-p', '8080:80', 'busybox', 'true']);
    assert.equal(pub.code, 125);
    assert.match(pub.stderr, /--publish cannot be used with --network none/);
    const vol = await e.berth(['run', '--rm', '-v', '/does/not/exist:/x', 'busybox', 'true']);
    assert.equal(vol.code, 125);
    assert.match(vol.stderr, /does not exist/);
    assert.equal((await e.berth(['ps', '-aq'])).stdout, '', 'a failed run leaves no container');
  });

  it('applies docker\'s defaults: root, /, PATH and HOSTNAME, its capabilities, seccomp, no no_new_privs', async () => {
    const r = await e.berth(['run', '--rm', 'busybox', 'sh', '-c', 'id; pwd; env | sort; grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; hostname']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], 'uid=0(root) gid=0(root) groups=0(root)'); // as docker: the primary group is a supplementary one too
    assert.equal(lines[1], '/');
    assert.ok(lines.includes('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'));
    assert.ok(lines.includes('HOME=/root'));
    const host = lines.find((l) => l.startsWith('HOSTNAME='))!.slice(9);
    assert.match(host, /^[0-9a-f]{12}$/);
    assert.equal(lines[lines.length - 2], host);
    // docker's 14 capabilities: chown dac_override fowner fsetid kill setgid setuid setpcap
    // net_bind_service net_raw sys_chroot mknod audit_write setfcap.
    assert.ok(lines.includes('CapEff:\t00000000a80425fb'), r.stdout);
    assert.ok(lines.includes('CapBnd:\t00000000a80425fb'));
    assert.ok(lines.includes('NoNewPrivs:\t0'));
    assert.ok(lines.includes('Seccomp:\t2'));
  });

  it('takes -e, --env-file, -w, -u, --entrypoint, --hostname, --read-only, --tmpfs, -v', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-run-'));
    chmodSync(dir, 0o777); // -u 65534 reads and writes it
    try {
      writeFileSync(join(dir, 'env'), '# comment\nFROM_FILE=yes\n');
      writeFileSync(join(dir, 'in.txt'), 'from host\n');
      const r = await e.berth(['run', '--rm', '-e', 'A=1', '--env-file', join(dir, 'env'), '-w', '/made/here', '-u', '65534', '--hostname', 'box',
        '-v', `${dir}:/host`, 'busybox', 'sh', '-c', 'echo $A $FROM_FILE; pwd; id -u; id -g; hostname; cat /host/in.txt; echo back > /host/out.txt']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '1 yes\n/made/here\n65534\n65534\nbox\nfrom host\n');
      assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'back\n');
      const ro = await e.berth(['run', '--rm', '--read-only', '--tmpfs', '/scratch', '-v', `${dir}:/host:ro`, 'busybox', 'sh', '-c',
        'touch /x 2>/dev/null && echo root-writable; touch /scratch/y && echo tmpfs-writable; touch /host/z 2>/dev/null && echo host-writable; true']);
      assert.equal(ro.stdout, 'tmpfs-writable\n');
      const ep = await e.berth(['run', '--rm', '--entrypoint', 'echo', 'busybox', 'a', 'b']);
      assert.equal(ep.stdout, 'a b\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes capabilities, privileges and resources', async () => {
    const caps = await e.berth(['run', '--rm', '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--security-opt', 'no-new-privileges',
      'busybox', 'grep', '-E', '^(CapEff|NoNewPrivs)', '/proc/self/status']);
    assert.equal(caps.stdout, 'CapEff:\t0000000000001000\nNoNewPrivs:\t1\n');
    const unconfined = await e.berth(['run', '--rm', '--security-opt', 'seccomp=unconfined', 'busybox', 'grep', '^Seccomp:', '/proc/self/status']);
    assert.equal(unconfined.stdout, 'Seccomp:\t0\n');
    const res = await e.berth(['run', '--rm', '--memory', '64m', '--pids-limit', '50', '--ulimit', 'nofile=100:200', 'busybox', 'sh', '-c',
      'ulimit -n; ulimit -Hn; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, '100\n200\n50\n');
  });

  it('--init puts a reaper at PID 1 that passes the status on', async () => {
    const r = await e.berth(['run', '--rm', '--init', 'busybox', 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; exit 3']);
    assert.equal(r.code, 3);
    assert.match(r.stdout, /^\/sbin\/docker-init -- sh -c/);
  });

  it('--name is unique; --cidfile gets the id; --rm leaves nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cid-'));
    try {
      const a = await e.berth(['run', '--name', 'one', '--cidfile', join(dir, 'cid'), 'busybox', 'true']);
      assert.equal(a.code, 0, a.stderr);
      assert.match(readFileSync(join(dir, 'cid'), 'utf8'), /^[0-9a-f]{64}$/);
      const b = await e.berth(['run', '--name', 'one', 'busybox', 'true']);
      assert.equal(b.code, 125);
      assert.match(b.stderr, /name "\/one" is already in use/);
      assert.equal((await e.berth(['rm', 'one'])).code, 0);
      assert.equal((await e.berth(['run', '--rm', '--name', 'one', 'busybox', 'true'])).code, 0);
      assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
      assert.deepEqual(readdirSync(join(e.root, 'containers')).filter((n) => n !== 'names'), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('forwards signals to the container process', async () => {
    const { spawn } = await import('node:child_process');
    const { BERTH_BIN } = await import('../helpers/run-berth.js');
    const child = spawn(process.execPath, [BERTH_BIN, 'run', '--rm', 'busybox', 'sh', '-c', 'trap "echo got-term; exit 42" TERM; echo ready; while true; do sleep 0.1; done'],
      { env: e.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    await new Promise<void>((res) => child.stdout.on('data', (d: Buffer) => { out += d; if (out.includes('ready')) res(); }));
    child.kill('SIGTERM');
    const code = await new Promise<number>((res) => child.on('exit', (c) => res(c ?? -1)));
    assert.equal(code, 42);
    assert.match(out, /got-term/);
  });

  it('--sig-proxy (alone or =true) forwards signals; --sig-proxy=false does not: berth ends, the container runs on', async () => {
    const { spawn } = await import('node:child_process');
    const { BERTH_BIN } = await import('../helpers/run-berth.js');
    const script = 'trap "echo got-term; exit 42" TERM; echo ready; while true; do sleep 0.1; done';
    for (const flag of ['--sig-proxy', '--sig-proxy=true', '--sig-proxy=false']) {
      const name = `proxy-${flag.length}`;
      const child = spawn(process.execPath, [BERTH_BIN, 'run', flag, '--name', name, 'busybox', 'sh', '-c', script], { env: e.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      await new Promise<void>((res) => child.stdout.on('data', (d: Buffer) => { out += d; if (out.includes('ready')) res(); }));
      child.kill('SIGTERM');
      const [code, sig] = await new Promise<[number | null, string | null]>((res) => child.on('exit', (c, s) => res([c, s])));
      const state = JSON.parse((await e.berth(['inspect', name])).stdout)[0].State;
      if (flag.endsWith('false')) {
        assert.equal(sig, 'SIGTERM', flag);
        assert.equal(state.Status, 'running', flag);
      } else {
        assert.equal(code, 42, flag);
        assert.match(out, /got-term/, flag);
        assert.equal(state.Status, 'exited', flag);
      }
      assert.equal((await e.berth(['rm', '-f', name])).code, 0);
    }
  });

  it('-t gives a terminal whose size follows ours (through script(1)); the output is exactly the container\'s', { skip: skipUnless(peer('script', 'bsdutils')) }, async () => {
    const { spawn } = await import('node:child_process');
    const { BERTH_BIN } = await import('../helpers/run-berth.js');
    // script(1)'s input stays open until it exits: when its input ends, script writes an
    // end-of-file byte into the terminal (NUL while the terminal is raw, as berth's is), which
    // berth passes to the container like any typed key (docker does too) and whose terminal
    // then echoes it as ^@ between the container's lines.
    const child = spawn('script', ['-qec', `stty cols 91 rows 33; ${process.execPath} ${BERTH_BIN} run --rm -it busybox sh -c 'tty; stty size; exit 5'`, '/dev/null'],
      { env: e.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    clearTimeout(timer);
    child.stdin.destroy();
    assert.equal(code, 5, out);
    assert.match(out, /^\/dev\/pts\/\d+\r\n33 91\r\n$/);
  });
});

describe('berth run -d and the container commands', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => { e = await engineRoot(); });
  after(async () => { await e.close(); });

  it('as docker: rm -f of a container that does not exist reports it and succeeds (rm without -f fails); a foreground run is logged; logs --until and --since', async () => {
    const forced = await e.berth(['rm', '-f', 'no-such-ctr']);
    assert.equal(forced.code, 0);
    assert.match(forced.stderr, /no such container: no-such-ctr/);
    assert.equal((await e.berth(['rm', 'no-such-ctr'])).code, 1);
    // docker's statuses outside run and create: 1 for any failure.
    for (const args of [['logs', 'no-such-ctr'], ['stop', 'no-such-ctr'], ['top', 'no-such-ctr'], ['exec', 'no-such-ctr', 'true']]) {
      assert.equal((await e.berth(args)).code, 1, args.join(' '));
    }
    assert.equal((await e.berth(['run', '--name', 'until', 'busybox', 'sh', '-c', 'echo early; sleep 1.5; echo late'])).code, 0);
    // A foreground run's output is in its log too, as docker's.
    const all = await e.berth(['logs', '-t', 'until']);
    const early = /^(\S+) early$/m.exec(all.stdout)?.[1];
    assert.ok(early, `logs -t: ${all.stdout}${all.stderr}`);
    const r = await e.berth(['logs', '--until', new Date(Date.parse(early) + 500).toISOString(), 'until']);
    assert.equal(r.stdout, 'early\n', r.stderr);
    assert.equal((await e.berth(['logs', '--since', new Date(Date.parse(early) + 500).toISOString(), 'until'])).stdout, 'late\n');
    const stopped = await Promise.all([e.berth(['kill', 'until']), e.berth(['exec', 'until', 'true'])]);
    assert.deepEqual(stopped.map((r) => r.code), [1, 1], stopped.map((r) => r.stderr).join(''));
    assert.equal((await e.berth(['rm', 'until'])).code, 0);
  });

  it('-d outlives berth: logs -f, exec, top, stop (SIGTERM then SIGKILL), wait, inspect, rm', async () => {
    const run = await e.berth(['run', '-d', '--name', 'ticker', 'busybox', 'sh', '-c', 'echo started; echo warn >&2; i=0; while [ $i -lt 1000 ]; do i=$((i+1)); echo tick $i; sleep 0.05; done']);
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const ps = await e.berth(['ps', '--format', 'json']);
    const listed = JSON.parse(ps.stdout) as { Id: string; Names: string[]; State: string }[];
    assert.deepEqual(listed.map((c) => [c.Id, c.Names[0], c.State]), [[id, 'ticker', 'running']]);
    // No Node process holds it: its parent is the monitor (a subreaper), in a session of its own.
    const pid = (JSON.parse((await e.berth(['inspect', 'ticker'])).stdout) as { State: { Pid: number } }[])[0]!.State.Pid;
    const ppid = (p: number) => Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]);
    const monitor = ppid(pid);
    assert.match(readFileSync(`/proc/${monitor}/comm`, 'utf8'), /berth-monitor/);
    const stat = readFileSync(`/proc/${monitor}/stat`, 'utf8');
    assert.equal(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3], String(monitor), 'the monitor leads its own session');

    const exec = await e.berth(['exec', '-e', 'X=9', '-w', '/tmp', 'ticker', 'sh', '-c', 'echo $X $(pwd); exit 4']);
    assert.equal(exec.code, 4);
    assert.equal(exec.stdout, '9 /tmp\n');
    const top = await e.berth(['top', 'ticker']);
    assert.match(top.stdout, /sh -c echo started/);

    const logs = await e.berth(['logs', 'ticker']);
    assert.match(logs.stdout, /^started\ntick 1\n/);
    assert.equal(logs.stderr, 'warn\n');
    const tail = await e.berth(['logs', '--tail', '1', '-t', 'ticker']);
    assert.match(tail.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z tick \d+\n$/);

    // PID 1 of a pid namespace ignores SIGTERM without a handler: SIGKILL after -t.
    const t0 = Date.now();
    const stop = await e.berth(['stop', '-t', '1', 'ticker']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.ok(Date.now() - t0 >= 1000);
    assert.equal((await e.berth(['wait', 'ticker'])).stdout, '137\n');
    const doc = JSON.parse((await e.berth(['inspect', id.slice(0, 10)])).stdout) as { State: { Status: string; ExitCode: number }; Name: string }[];
    assert.equal(doc[0]!.State.Status, 'exited');
    assert.equal(doc[0]!.State.ExitCode, 137);
    assert.equal(doc[0]!.Name, '/ticker');
    const follow = await e.berth(['logs', '-f', 'ticker']);
    assert.equal(follow.code, 0);
    assert.equal((await e.berth(['ps', '-q'])).stdout, '');
    assert.match((await e.berth(['ps', '-a', '--filter', 'exited=137'])).stdout, /Exited \(137\)/);
    assert.equal((await e.berth(['rm', 'ticker'])).code, 0);
    assert.equal((await e.berth(['inspect', 'ticker'])).code, 1);
  });

  it('logs -f follows until the container exits; wait gives its code', async () => {
    const id = (await e.berth(['run', '-d', 'busybox', 'sh', '-c', 'for i in 1 2 3; do echo line $i; sleep 0.2; done; exit 3'])).stdout.trim();
    const f = await e.berth(['logs', '-f', id]);
    assert.equal(f.stdout, 'line 1\nline 2\nline 3\n');
    assert.equal((await e.berth(['wait', id])).stdout, '3\n');
    await e.berth(['rm', id]);
  });

  it('create, start -a, restart, kill -s, rm of a running container needs -f', async () => {
    const created = await e.berth(['create', '--name', 'later', 'busybox', 'sh', '-c', 'trap "exit 9" USR1; echo run; while true; do sleep 0.1; done']);
    assert.equal(created.code, 0, created.stderr);
    assert.match((await e.berth(['ps', '-a'])).stdout, /Created\s+later/);
    assert.equal((await e.berth(['start', 'later'])).stdout, 'later\n');
    const rm = await e.berth(['rm', 'later']);
    assert.equal(rm.code, 1); // docker's: only run and create exit 125
    assert.match(rm.stderr, /it is running; stop it first or use rm -f/);
    assert.equal((await e.berth(['kill', '-s', 'USR1', 'later'])).code, 0);
    // (PID 1 of a pid namespace gets only the signals it handles.)
    assert.equal((await e.berth(['wait', 'later'])).stdout, '9\n');
    assert.equal((await e.berth(['restart', '-t', '1', 'later'])).code, 0);
    assert.match((await e.berth(['ps'])).stdout, /Up .*later/);
    assert.equal((await e.berth(['rm', '-f', 'later'])).code, 0);
    const attached = await e.berth(['create', 'busybox', 'sh', '-c', 'echo attached; exit 6']);
    const a = await e.berth(['start', '-a', attached.stdout.trim()]);
    assert.equal(a.code, 6);
    assert.equal(a.stdout, 'attached\n');
    assert.equal((await e.berth(['rm', attached.stdout.trim()])).code, 0);
  });

  it('run -d --rm: the monitor removes the container when it exits', async () => {
    const id = (await e.berth(['run', '-d', '--rm', 'busybox', 'true'])).stdout.trim();
    for (let i = 0; i < 100 && existsSync(join(e.root, 'containers', id)); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(existsSync(join(e.root, 'containers', id)), false);
    assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
  });

  it('--stop-timeout is stop\'s default wait (-t still wins); --restart no is taken, other policies refused in one line', async () => {
    assert.equal((await e.berth(['run', '-d', '--stop-timeout', '3', '--name', 'quick-stop', 'busybox', 'sleep', '60'])).code, 0);
    assert.equal(JSON.parse((await e.berth(['inspect', 'quick-stop'])).stdout)[0].Config.StopTimeout, 3);
    // sleep as PID 1 ignores SIGTERM: stop waits its timeout, then kills; -t 0 kills at once.
    let started = Date.now();
    assert.equal((await e.berth(['stop', '-t', '0', 'quick-stop'])).code, 0);
    assert.ok(Date.now() - started < 2500, `stop -t 0 took ${Date.now() - started} ms`);
    assert.equal((await e.berth(['start', 'quick-stop'])).code, 0);
    started = Date.now();
    assert.equal((await e.berth(['stop', 'quick-stop'])).code, 0);
    const waited = Date.now() - started;
    assert.ok(waited >= 3000 && waited < 9000, `stop took ${waited} ms`);
    assert.equal((await e.berth(['rm', 'quick-stop'])).code, 0);
    const no = await e.berth(['run', '--rm', '--restart', 'no', 'busybox', 'echo', 'ok']);
    assert.equal(no.stdout, 'ok\n', no.stderr);
    const always = await e.berth(['run', '--rm', '--restart=always', 'busybox', 'true']);
    assert.equal(always.code, 125);
    assert.match(always.stderr, /^berth: --restart always: berth has no daemon to restart containers; only --restart no is supported[^\n]*\n$/);
  });

  it('inspect of several containers is one JSON array; inspect -f and ps --format take docker\'s templates', async () => {
    assert.equal((await e.berth(['run', '--name', 'fmt-a', '--label', 'app=a', 'busybox', 'sh', '-c', 'exit 4'])).code, 4);
    assert.equal((await e.berth(['run', '--name', 'fmt-b', 'busybox', 'true'])).code, 0);
    const both = await e.berth(['inspect', 'fmt-a', 'fmt-b']);
    assert.deepEqual((JSON.parse(both.stdout) as { Name: string }[]).map((d) => d.Name), ['/fmt-a', '/fmt-b']);
    const f = await e.berth(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{index .Config.Labels "app"}}', 'fmt-a', 'fmt-b']);
    assert.equal(f.stdout, 'exited 4 a\nexited 0 \n', f.stderr);
    const ps = await e.berth(['ps', '-a', '--filter', 'name=^fmt-', '--format', '{{.Names}}:{{.State}}:{{.Label "app"}}']);
    assert.deepEqual(ps.stdout.split('\n').filter(Boolean).sort(), ['fmt-a:exited:a', 'fmt-b:exited:']);
    assert.equal((await e.berth(['rm', 'fmt-a', 'fmt-b'])).code, 0);
  });

  it('pause and unpause as docker\'s: ps and inspect show it, exec is refused, kill, stop and rm -f still end it', async () => {
    const started = await e.berth(['run', '-d', '--name', 'frozen', 'busybox', 'sh', '-c', 'while :; do date +%s%N > /tmp/tick; sleep 0.05; done']);
    assert.equal(started.code, 0);
    const frozenId = started.stdout.trim();
    assert.equal((await e.berth(['pause', 'frozen'])).stdout, 'frozen\n');
    const again = await e.berth(['pause', 'frozen']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already paused/);
    assert.equal((await e.berth(['inspect', '-f', '{{.State.Status}} {{.State.Paused}} {{.State.Running}}', 'frozen'])).stdout, 'paused true true\n');
    assert.match((await e.berth(['ps', '--filter', 'name=frozen', '--format', '{{.Status}}'])).stdout, /^Up .* \(Paused\)\n$/);
    assert.equal((await e.berth(['ps', '-q', '--filter', 'status=paused', '--filter', 'name=frozen'])).stdout.trim().length, 12);
    assert.equal((await e.berth(['ps', '-q', '--filter', 'status=running', '--filter', 'name=frozen'])).stdout, '');
    const exec = await e.berth(['exec', 'frozen', 'true']);
    assert.notEqual(exec.code, 0);
    assert.match(exec.stderr, /is paused: berth unpause frozen before exec/);
    assert.equal(existsSync(join(e.root, 'containers', frozenId, 'paused')), true, 'the mark ps reads');
    assert.equal((await e.berth(['unpause', 'frozen'])).code, 0);
    assert.equal(existsSync(join(e.root, 'containers', frozenId, 'paused')), false);
    assert.match((await e.berth(['ps', '--filter', 'name=frozen', '--format', '{{.Status}}'])).stdout, /^Up [^(]*\n$/);
    assert.equal((await e.berth(['unpause', 'frozen'])).code, 1);
    assert.equal((await e.berth(['exec', 'frozen', 'true'])).code, 0);
    // Frozen without the mark (as by a berth from before the marks): exec, unpause still see it.
    assert.equal((await e.berth(['pause', 'frozen'])).code, 0);
    rmSync(join(e.root, 'containers', frozenId, 'paused'));
    assert.match((await e.berth(['exec', 'frozen', 'true'])).stderr, /is paused/);
    assert.equal((await e.berth(['unpause', 'frozen'])).code, 0);
    assert.equal((await e.berth(['exec', 'frozen', 'true'])).code, 0);
    // kill and rm -f of a paused container end it (the processes thaw to take the signal).
    assert.equal((await e.berth(['pause', 'frozen'])).code, 0);
    assert.equal((await e.berth(['kill', 'frozen'])).code, 0);
    assert.equal(await waitStatus(e, 'frozen', 'exited'), 'exited');
    assert.equal((await e.berth(['start', 'frozen'])).code, 0);
    assert.equal((await e.berth(['pause', 'frozen'])).code, 0);
    assert.equal((await e.berth(['stop', '-t', '1', 'frozen'])).code, 0);
    assert.equal((await e.berth(['inspect', '-f', '{{.State.Status}}', 'frozen'])).stdout, 'exited\n');
    assert.equal((await e.berth(['start', 'frozen'])).code, 0);
    assert.equal((await e.berth(['pause', 'frozen'])).code, 0);
    assert.equal((await e.berth(['rm', '-f', 'frozen'])).code, 0);
    assert.equal((await e.berth(['ps', '-aq', '--filter', 'name=frozen'])).stdout, '');
  });

  it('rename: the new name finds it, the old one is free; a taken, equal or invalid name is refused and changes nothing', async () => {
    const made = await e.berth(['create', '--network', 'none', '--name', 'before', 'busybox', 'true']);
    assert.equal(made.code, 0, made.stderr);
    const id = made.stdout.trim();
    assert.equal((await e.berth(['create', '--network', 'none', '--name', 'other', 'busybox', 'true'])).code, 0);
    assert.equal((await e.berth(['rename', 'before', 'after'])).code, 0);
    assert.equal((await e.berth(['inspect', '-f', '{{.Name}} {{.Id}}', 'after'])).stdout, `/after ${id}\n`);
    assert.match((await e.berth(['ps', '-a', '--format', '{{.Names}}'])).stdout, /^after$/m);
    assert.equal((await e.berth(['inspect', 'before'])).code !== 0, true, 'the old name is gone');
    for (const [to, why] of [['other', /already in use by container/], ['after', /already named after/], ['bad/name', /invalid container name/]] as const) {
      const r = await e.berth(['rename', 'after', to]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, why);
    }
    assert.equal((await e.berth(['inspect', '-f', '{{.Name}}', id])).stdout, '/after\n');
    // The old name can be taken again; rm by the new name leaves no name behind.
    assert.equal((await e.berth(['create', '--network', 'none', '--name', 'before', 'busybox', 'true'])).code, 0);
    assert.equal((await e.berth(['rm', 'after', 'before', 'other'])).code, 0);
    assert.deepEqual(readdirSync(join(e.root, 'containers', 'names')).filter((n) => !n.startsWith('.')), []);
  });

  it('rm kills what is left in a container\'s own cgroups (a start killed before the pid was recorded)', async () => {
    const made = await e.berth(['create', '--network', 'none', '--name', 'orphaned', 'busybox', 'sleep', '60']);
    assert.equal(made.code, 0, made.stderr);
    const id = made.stdout.trim();
    const { hostCgroupLayout } = await import('../../src/runtime/cgroups/host.js');
    const layout = hostCgroupLayout();
    const mount = layout.v1.pids ?? layout.v2?.mountPoint;
    assert.ok(mount, 'a pids or unified cgroup hierarchy');
    const dir = join(mount, 'berth', id);
    mkdirSync(dir, { recursive: true });
    // As berth-init's clone waiting on its exec fifo: in the container's cgroup, in no record.
    const stray = spawn('sleep', ['60'], { stdio: 'ignore' });
    const gone = new Promise((r) => stray.once('exit', r));
    writeFileSync(join(dir, 'cgroup.procs'), String(stray.pid));
    assert.equal((await e.berth(['rm', '-f', 'orphaned'])).code, 0);
    await gone;
    assert.equal(stray.signalCode, 'SIGKILL');
    // And removed the cgroup once the process had left it (nothing would retry it later).
    assert.equal(existsSync(dir), false, 'rm removed the container\'s cgroup');
  });

  it('run --env-file through the berth command itself: berth reads the file, not Node (nodejs/node#54232)', async () => {
    const { BERTH_BIN } = await import('../helpers/run-berth.js');
    const dir = mkdtempSync(join(tmpdir(), 'berth-envfile-'));
    try {
      writeFileSync(join(dir, 'env.list'), 'FROM_FILE=yes\n');
      // The bin entry as a user's shell runs it (its #! line), not `node bin/berth.cjs`.
      const ok = spawnSync(BERTH_BIN, ['run', '--rm', '--env-file', join(dir, 'env.list'), 'busybox', 'sh', '-c', 'echo $FROM_FILE'], { env: e.env, encoding: 'utf8' });
      assert.equal(ok.stdout, 'yes\n', ok.stderr);
      const missing = spawnSync(BERTH_BIN, ['run', '--rm', '--env-file', join(dir, 'missing.list'), 'busybox', 'true'], { env: e.env, encoding: 'utf8' });
      assert.equal(missing.status, 125, missing.stderr);
      assert.match(missing.stderr, /^berth: --env-file .*missing\.list: no such file/);
      // And through npm's entry (bin/berth: the native front end, which hands the run to Node and,
      // from the second run on, replays it with the file's content checked).
      const front = join(BERTH_BIN, '..', 'berth');
      for (const want of ['yes', 'yes', 'changed', 'changed']) {
        if (want === 'changed') writeFileSync(join(dir, 'env.list'), 'FROM_FILE=changed\n');
        const r = spawnSync(front, ['run', '--rm', '--network', 'none', '--env-file', join(dir, 'env.list'), 'busybox', 'sh', '-c', 'echo $FROM_FILE'], { env: e.env, encoding: 'utf8' });
        assert.equal(r.stdout, `${want}\n`, r.stderr);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('diff as docker\'s: A, C and D on top of the image, sorted; berth\'s own mount points are not changes', async () => {
    const script = 'touch /tmp/new; mkdir -p /etc/sub; echo x > /etc/sub/f; rm /bin/true; echo changed >> /etc/passwd';
    assert.equal((await e.berth(['run', '--name', 'changed', 'busybox', 'sh', '-c', script])).code, 0);
    const d = await e.berth(['diff', 'changed']);
    assert.equal(d.stdout, ['C /bin', 'D /bin/true', 'C /etc', 'C /etc/passwd', 'A /etc/sub', 'A /etc/sub/f', 'C /tmp', 'A /tmp/new', ''].join('\n'), d.stderr);
    assert.equal((await e.berth(['run', '--name', 'unchanged', 'busybox', 'true'])).code, 0);
    assert.equal((await e.berth(['diff', 'unchanged'])).stdout, '');
    assert.equal((await e.berth(['rm', 'changed', 'unchanged'])).code, 0);
  });

  it('cp of symbolic links as docker\'s: the link itself, -L or a trailing / for what it points to (inside the container\'s root)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cp-links-'));
    try {
      const made = await e.berth(['run', '-d', '--name', 'links', 'busybox', 'sh', '-c', 'mkdir -p /d/sub; echo inside > /d/f; ln -s f /d/l; ln -s /etc/hostname /d/abs; ln -s sub /d/sl; sleep 60']);
      assert.equal(made.code, 0, made.stderr);
      await new Promise((r) => setTimeout(r, 500));
      const cp = async (...args: string[]) => { const r = await e.berth(['cp', ...args]); assert.equal(r.code, 0, r.stderr); };
      await cp('links:/d/l', join(dir, 'l'));
      assert.equal(readlinkSync(join(dir, 'l')), 'f');
      await cp('links:/d/abs', join(dir, 'abs'));
      assert.equal(readlinkSync(join(dir, 'abs')), '/etc/hostname');
      await cp('-L', 'links:/d/l', join(dir, 'followed'));
      assert.equal(readFileSync(join(dir, 'followed'), 'utf8'), 'inside\n');
      await cp('links:/d/sl', join(dir, 'sl'));
      assert.equal(readlinkSync(join(dir, 'sl')), 'sub');
      await cp('links:/d/sl/', join(dir, 'sldir'));
      assert.ok(lstatSync(join(dir, 'sldir')).isDirectory());
      // Host to container: a link stays a link, -L copies what it points to.
      writeFileSync(join(dir, 'target.txt'), 'host\n');
      symlinkSync('target.txt', join(dir, 'hostlink'));
      await cp(join(dir, 'hostlink'), 'links:/tmp/');
      await cp('-L', join(dir, 'hostlink'), 'links:/tmp/hostfile');
      const inside = await e.berth(['exec', 'links', 'sh', '-c', 'readlink /tmp/hostlink; cat /tmp/hostfile; [ -L /tmp/hostfile ] || echo regular']);
      assert.equal(inside.stdout, 'target.txt\nhost\nregular\n');
    } finally {
      await e.berth(['rm', '-f', 'links']);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cp both ways, commit the changes as a layer, container prune', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cp-'));
    try {
      const id = (await e.berth(['run', '-d', 'busybox', 'sh', '-c', 'echo inside > /made; rm /etc/group; sleep 30'])).stdout.trim();
      await new Promise((r) => setTimeout(r, 300));
      writeFileSync(join(dir, 'up.txt'), 'uploaded\n');
      assert.equal((await e.berth(['cp', join(dir, 'up.txt'), `${id}:/tmp/`])).code, 0);
      assert.equal((await e.berth(['exec', id, 'cat', '/tmp/up.txt'])).stdout, 'uploaded\n');
      assert.equal((await e.berth(['cp', `${id}:/made`, join(dir, 'down.txt')])).code, 0);
      assert.equal(readFileSync(join(dir, 'down.txt'), 'utf8'), 'inside\n');
      // As tar streams: out of the container, and into it (unpacked inside its root).
      const { BERTH_BIN } = await import('../helpers/run-berth.js');
      const tarOut = spawnSync('sh', ['-c', `"${process.execPath}" "${BERTH_BIN}" cp ${id}:/tmp - | tar -tf -`], { env: e.env, encoding: 'utf8' });
      assert.match(tarOut.stdout, /^tmp\/up\.txt$/m);
      const tarIn = spawnSync('sh', ['-c', `tar -C "${dir}" -cf - up.txt | "${process.execPath}" "${BERTH_BIN}" cp - ${id}:/root`], { env: e.env, encoding: 'utf8' });
      assert.equal(tarIn.status, 0, tarIn.stderr);
      assert.equal((await e.berth(['exec', id, 'cat', '/root/up.txt'])).stdout, 'uploaded\n');
      const commit = await e.berth(['commit', id, 'committed:v1']);
      assert.equal(commit.code, 0, commit.stderr);
      const r = await e.berth(['run', '--rm', 'committed:v1', 'sh', '-c', 'cat /made; test -e /etc/group || echo group-gone']);
      assert.equal(r.stdout, 'inside\ngroup-gone\n');
      await e.berth(['stop', '-t', '0', id]);
      const prune = await e.berth(['container', 'prune', '-f']);
      assert.match(prune.stdout, new RegExp(id));
      assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('berth run from a registry and through runc', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => { e = await engineRoot(); });
  after(async () => { await e.close(); });

  it('pulls a missing image from berth serve on 127.0.0.1 and runs it; --pull never refuses', async () => {
    const { startBerthRegistry } = await import('../helpers/berth-registry.js');
    const reg = await startBerthRegistry();
    try {
      // The test image goes to the registry from the store (berth push), then leaves the store.
      const push = await e.berth(['copy', `oci:${join(e.root, 'images')}:docker.io/library/busybox:latest`, `docker://${reg.host}/demo/app:v1`]);
      assert.equal(push.code, 0, push.stderr);
      const ref = `${reg.host}/demo/app:v1`;
      const never = await e.berth(['run', '--rm', '--pull', 'never', ref, 'true']);
      assert.equal(never.code, 125);
      const r = await e.berth(['run', '--rm', ref, 'sh', '-c', 'echo pulled and ran']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'pulled and ran\n');
      const missing = await e.berth(['run', '--rm', `${reg.host}/demo/nothing:v1`, 'true']);
      assert.equal(missing.code, 125);
      assert.match(missing.stderr, /cannot pull/);
    } finally {
      await reg.stop();
    }
  });

  it('--runtime runc: foreground and detached (logs, exec, rm)', { skip: skipUnless(peer('runc', 'runc')) }, async () => {
    const fg = await e.berth(['run', '--rm', '--runtime', 'runc', '--network', 'none', 'busybox', 'sh', '-c', 'echo via runc; grep ^Seccomp: /proc/self/status; exit 3']);
    assert.equal(fg.code, 3, fg.stderr);
    assert.equal(fg.stdout, 'via runc\nSeccomp:\t2\n');
    const id = (await e.berth(['run', '-d', '--runtime', 'runc', '--network', 'none', 'busybox', 'sh', '-c', 'echo detached; sleep 30'])).stdout.trim();
    assert.equal((await e.berth(['exec', id, 'echo', 'exec-runc'])).stdout, 'exec-runc\n');
    assert.equal((await e.berth(['logs', id])).stdout, 'detached\n');
    assert.equal((await e.berth(['rm', '-f', id])).code, 0);
    assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
  });
});
