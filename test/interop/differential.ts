/**
 * The cases berth's engine differential tests share (engine-podman.test.ts, engine-docker.test.ts):
 * the same image and command under `berth run --rm` and a peer's `run --rm` must give the same
 * exit codes, streams and outputs.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Ran { code: number; stdout: string; stderr: string }
/** Runs ARGS IMAGE CMD under the peer and under berth. */
export type Both = (args: string[], cmd: string[]) => Promise<{ peer: Ran; berth: Ran }>;

/** Options whose effect both engines must print alike: --read-only, -u 65534, --entrypoint, -w. */
export const OPTION_CASES: [string[], string[]][] = [
  [['--read-only'], ['sh', '-c', 'touch /x 2>&1; echo $?']],
  [['-u', '65534'], ['sh', '-c', 'id; grep -E "^Cap(Eff|Prm)" /proc/self/status']],
  [['--entrypoint', 'echo'], ['a', 'b']],
  [['-w', '/tmp'], ['pwd']],
];

/** Exit codes 0, 1, 7, 126 (not executable), 127 (not found), and stdout and stderr kept apart. */
export async function sameExitCodesAndStreams(both: Both, peerName: string): Promise<void> {
  for (const [cmd, want] of [[['true'], 0], [['false'], 1], [['sh', '-c', 'exit 7'], 7], [['/etc'], 126], [['no-such-command'], 127]] as const) {
    const { peer, berth } = await both([], [...cmd]);
    assert.equal(peer.code, want, `${peerName} ${cmd.join(' ')}`);
    assert.equal(berth.code, want, `berth ${cmd.join(' ')}`);
  }
  const { peer, berth } = await both([], ['sh', '-c', 'echo to-out; echo to-err >&2']);
  assert.deepEqual([berth.stdout, berth.stderr], [peer.stdout, peer.stderr]);
}

/** A -v file read and written by each, then each option case of `cases` alike. */
export async function sameVolumeAndOptions(both: Both, peerName: string, cases: [string[], string[]][]): Promise<void> {
  const vol = mkdtempSync(join(tmpdir(), 'berth-differential-vol-'));
  chmodSync(vol, 0o777);
  try {
    writeFileSync(join(vol, 'in'), 'host data\n');
    const { peer, berth } = await both(['-v', `${vol}:/v`], ['sh', '-c', 'cat /v/in; echo written >> /v/out']);
    for (const [name, r] of [[peerName, peer], ['berth', berth]] as const) assert.equal(r.stdout, 'host data\n', `${name}: ${r.stderr}`);
    assert.equal(readFileSync(join(vol, 'out'), 'utf8'), 'written\nwritten\n', 'each engine appended a line');
  } finally {
    rmSync(vol, { recursive: true, force: true });
  }
  for (const [args, cmd] of cases) {
    const { peer, berth } = await both(args, cmd);
    assert.equal(berth.code, peer.code, `${args.join(' ')}: ${berth.stderr}`);
    assert.equal(berth.stdout, peer.stdout, args.join(' '));
  }
}
