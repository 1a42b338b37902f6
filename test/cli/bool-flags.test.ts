/** docker's boolean flags with a value (`--rm=false`, `-d=true`, `--sig-proxy`), as parseCommand reads them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommand, type ParsedCommand } from '../../src/cli/common.js';
import { commands } from '../../src/cli/engine.js';

function parse(cmd: string, argv: string[]): ParsedCommand {
  const p = parseCommand(cmd, commands[cmd]!, argv);
  assert.notEqual(p, 'help');
  return p as ParsedCommand;
}

describe('boolean flags as docker takes them', () => {
  it('--FLAG and --FLAG=true|1|t|True mean true, --FLAG=false|0|f|False false, for each of docker\'s standalone flags', () => {
    for (const [name, words] of Object.entries({ rm: ['--rm'], detach: ['-d', '--detach'], interactive: ['-i', '--interactive'], tty: ['-t', '--tty'], init: ['--init'], privileged: ['--privileged'], 'read-only': ['--read-only'] })) {
      for (const w of words) {
        assert.equal(parse('run', [w, 'busybox']).values[name], true, w);
        for (const v of ['true', '1', 't', 'T', 'TRUE', 'True']) assert.equal(parse('run', [`${w}=${v}`, 'busybox']).values[name], true, `${w}=${v}`);
        for (const v of ['false', '0', 'f', 'F', 'FALSE', 'False']) assert.equal(parse('run', [`${w}=${v}`, 'busybox']).values[name], false, `${w}=${v}`);
      }
      assert.equal(parse('run', ['busybox']).values[name], undefined);
    }
  });

  it('the last word for a flag wins; clusters and the image\'s command are left alone', () => {
    assert.equal(parse('run', ['--rm=false', '--rm', 'busybox']).values.rm, true);
    assert.equal(parse('run', ['--rm', '--rm=false', 'busybox']).values.rm, false);
    assert.equal(parse('run', ['-i=false', '-dit', 'busybox']).values.interactive, true);
    const p = parse('run', ['-d=false', '-e', 'A=1', 'busybox', 'echo', '--rm=false', '-d=true']);
    assert.equal(p.values.detach, false);
    assert.deepEqual(p.values.env, ['A=1']);
    assert.deepEqual(p.positionals, ['busybox', 'echo', '--rm=false', '-d=true']);
    // A value-taking flag keeps its value, whatever it looks like.
    assert.deepEqual(parse('run', ['--name=false', 'busybox']).values.name, 'false');
  });

  it('--sig-proxy stands alone (true) or takes =true|=false, for run and attach', () => {
    for (const cmd of ['run', 'attach']) {
      const target = cmd === 'run' ? 'busybox' : 'c1';
      assert.equal(parse(cmd, ['--sig-proxy', target]).values['sig-proxy'], true);
      assert.equal(parse(cmd, ['--sig-proxy=true', target]).values['sig-proxy'], true);
      assert.equal(parse(cmd, ['--sig-proxy=false', target]).values['sig-proxy'], false);
      // docker's flag parser: a bare boolean flag never takes the next word as its value.
      assert.deepEqual(parse(cmd, ['--sig-proxy', 'false', target]).positionals[0], 'false');
    }
  });

  it('an unknown flag or a missing value is one line that names it and the help to read, as docker\'s', () => {
    assert.throws(() => parse('run', ['--bogus', 'busybox']), (err: Error) => err.message === "unknown flag: --bogus; see 'berth run --help'");
    assert.throws(() => parse('ps', ['--filter']), (err: Error) => !err.message.includes('\n') && /--filter.*argument missing; see 'berth ps --help'/.test(err.message));
  });

  it('a value that is not a boolean is refused with one line naming it', () => {
    assert.throws(() => parse('run', ['--rm=yes', 'busybox']), /invalid argument "yes" for "--rm" flag: use true or false/);
    assert.throws(() => parse('run', ['-d=', 'busybox']), /invalid argument "" for "-d" flag/);
  });
});
