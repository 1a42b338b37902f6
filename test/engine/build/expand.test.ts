/** Variable substitution and ARG scoping, as docker's Dockerfile reference describes them. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { processHeredoc, processWord, processWords } from '../../../src/engine/build/lexer.js';
import { ArgScope, expandInstruction, platformArgs } from '../../../src/engine/build/expand.js';
import { parseDockerfile, type ArgInstruction, type CopyInstruction, type EnvInstruction, type Instruction } from '../../../src/engine/build/instructions.js';
import { isBerthError } from '../../../src/base/errors.js';

const env: Record<string, string> = { A: 'a', EMPTY: '', SP: 'x  y', PATHX: '/usr/local/bin:/usr/bin', FILE: 'archive.tar.gz' };
const look = (n: string): string | undefined => env[n];
const w = (s: string, escape = '\\'): string => processWord(s, look, escape).value;

const linux = { os: 'linux', architecture: 'amd64' };
const arm = { os: 'linux', architecture: 'arm', variant: 'v7' };

describe('word substitution', () => {
  it('expands $VAR and ${VAR}, leaves a lone $', () => {
    assert.equal(w('$A-${A}b$Ab $UNSET.'), 'a-ab .');
    assert.equal(w('cost $ 5 $'), 'cost $ 5 $');
    assert.equal(w('${A}${A}'), 'aa');
  });

  it('does the :- - :+ + :? ? modifiers with their set/empty distinctions', () => {
    assert.equal(w('${UNSET:-d}|${EMPTY:-d}|${A:-d}'), 'd|d|a');
    assert.equal(w('${UNSET-d}|${EMPTY-d}|${A-d}'), 'd||a');
    assert.equal(w('${UNSET:+x}|${EMPTY:+x}|${A:+x}'), '||x');
    assert.equal(w('${UNSET+x}|${EMPTY+x}|${A+x}'), '|x|x');
    assert.equal(w('${UNSET:-${A}/"q q"}'), 'a/q q');
    assert.equal(w('${A:?must be set}'), 'a');
    assert.throws(() => w('${EMPTY:?must be set}'), /EMPTY: must be set/);
    assert.equal(w('${EMPTY?x}'), '');
    assert.throws(() => w('${UNSET?}'), /is not allowed to be unset/);
  });

  it('does the pattern modifiers', () => {
    assert.equal(w('${FILE#*.}|${FILE##*.}|${FILE%.*}|${FILE%%.*}'), 'tar.gz|gz|archive.tar|archive');
    assert.equal(w('${PATHX/usr/opt}|${PATHX//usr/opt}|${PATHX//:}'), '/opt/local/bin:/usr/bin|/opt/local/bin:/opt/bin|/usr/local/bin/usr/bin');
  });

  it('handles quotes and escapes as the lexer does', () => {
    assert.equal(w(`'$A' "$A" \\$A "\\$A" "\\x" 'a\\b'`), `$A a $A $A \\x a\\b`);
    assert.equal(w('a\\ b'), 'a b');
    assert.equal(w('c:\\dir `$A', '`'), 'c:\\dir $A');
    assert.throws(() => w(`'open`), /matching single-quote/);
    assert.throws(() => w(`"open`), /matching double-quote/);
    assert.throws(() => w('${A'), /missing '}'/);
    assert.throws(() => w('${}'), /bad substitution/);
    assert.throws(() => w('${A!x}'), /unsupported modifier/);
  });

  it('records which variables a word used and splits words as ProcessWords', () => {
    assert.deepEqual([...processWord('$A ${UNSET:-$EMPTY}', look).used].sort(), ['A', 'EMPTY', 'UNSET']);
    assert.deepEqual(processWords('80 $SP "q  r" 9', look).words, ['80', 'x', 'y', 'q  r', '9']);
  });

  it('expands heredoc bodies like sh: quotes stay, \\ escapes only $ \\ `', () => {
    assert.equal(processHeredoc(`echo "$A" '$A' \\$A \\n \\\\\n`, look).value, `echo "a" 'a' $A \\n \\\n`);
  });
});

describe('ARG scoping', () => {
  const dockerfile = [
    'ARG BASE=busybox',
    'ARG TAG=${BASE}-1',
    'ARG UNUSEDGLOBAL=g',
    'FROM --platform=$BUILDPLATFORM ${BASE}:${TAG} AS one',
    'ARG BASE',
    'ARG LOCAL=l-${BASE}',
    'ARG TARGETARCH',
    'ENV FROMENV=$LOCAL LOCAL=overridden',
    'LABEL l1=$LOCAL l2=$UNUSEDGLOBAL l3="$TARGETARCH" l4=${TARGETOS:-none}',
    'FROM one',
    'LABEL again=${BASE:-gone}',
  ].join('\n');

  it('gives FROM only global args, redeclared ones their global value, ENV precedence over ARG', () => {
    const df = parseDockerfile(dockerfile);
    const scope = new ArgScope({ target: arm, build: linux, buildArgs: { TAG: 'given', NOTUSED: 'x' } }, df.metaArgs);
    const from = scope.expandFrom(df.stages[0]!.from);
    assert.equal(from.image, 'busybox:given');
    assert.equal(from.platform, 'linux/amd64');
    const stage = scope.stage([]);
    const ins = df.stages[0]!.instructions;
    stage.declare(ins[0] as ArgInstruction);
    stage.declare(ins[1] as ArgInstruction);
    stage.declare(ins[2] as ArgInstruction);
    const envIns = expandInstruction(ins[3] as EnvInstruction, stage).ins;
    assert.deepEqual(envIns.pairs, [
      { key: 'FROMENV', value: 'l-busybox' },
      { key: 'LOCAL', value: 'overridden' },
    ]);
    stage.setEnv(['FROMENV=l-busybox', 'LOCAL=overridden']);
    const label = expandInstruction(ins[4] as EnvInstruction, stage);
    assert.deepEqual(label.ins.pairs.map((p) => p.value), ['overridden', '', 'arm', 'none']);
    assert.deepEqual([...label.used].sort(), ['LOCAL', 'TARGETARCH', 'TARGETOS', 'UNUSEDGLOBAL']);
    // LOCAL is shadowed by ENV: not a build arg in use; TARGETARCH is.
    assert.deepEqual(stage.argsIn(label.used), ['TARGETARCH=arm']);
    assert.deepEqual(stage.runArgs().args, ['BASE=busybox', 'TARGETARCH=arm']);
    assert.deepEqual(scope.unconsumed(), ['NOTUSED']);
    // A new stage starts without the previous stage's ARGs.
    const second = scope.stage([]);
    assert.equal(expandInstruction(df.stages[1]!.instructions[0] as EnvInstruction, second).ins.pairs[0]!.value, 'gone');
  });

  it('takes --build-arg NAME without a value from the environment; proxies need no ARG', () => {
    const scope = new ArgScope({ target: linux, build: linux, buildArgs: { FOO: undefined, http_proxy: 'http://p:3128' }, env: { FOO: 'from-env' } });
    const stage = scope.stage(['PATH=/bin']);
    stage.declare({ kind: 'ARG', args: [{ name: 'FOO' }], loc: { file: 'D', line: 1, column: 1, endLine: 1 }, original: 'ARG FOO' });
    assert.deepEqual(stage.runArgs(), { args: ['FOO=from-env'], proxy: ['http_proxy=http://p:3128'] });
    assert.deepEqual(scope.unconsumed(), []);
  });

  it('predefined platform args', () => {
    assert.deepEqual(platformArgs(arm, linux), {
      TARGETPLATFORM: 'linux/arm/v7', TARGETOS: 'linux', TARGETARCH: 'arm', TARGETVARIANT: 'v7',
      BUILDPLATFORM: 'linux/amd64', BUILDOS: 'linux', BUILDARCH: 'amd64', BUILDVARIANT: '',
    });
  });

  it('substitutes in the instructions docker substitutes in, not in RUN/CMD shell text', () => {
    const df = parseDockerfile([
      'FROM scratch',
      'ARG D=/dst V=1.0 P=80',
      'COPY --chown=${U:-app} --chmod=$M --from=${S:-build} <<EOF src-$V/* $D/',
      'v=$V "q"',
      'EOF',
      'WORKDIR $D/w',
      'USER ${U:-nobody}',
      'EXPOSE $P ${P}/udp',
      'VOLUME ["$D/data"]',
      'STOPSIGNAL SIG${SIG:-TERM}',
      'RUN --mount=type=cache,target=$D/cache echo $V',
      'CMD echo $V',
      'ENTRYPOINT ["$V"]',
    ].join('\n'));
    const scope = new ArgScope({ target: linux, build: linux });
    const stage = scope.stage([]);
    const [arg, ...rest] = df.stages[0]!.instructions as Instruction[];
    stage.declare(arg as ArgInstruction);
    const out = rest.map((i) => expandInstruction(i, stage));
    const copy = out[0]!.ins as CopyInstruction;
    assert.deepEqual([copy.chown, copy.chmod, copy.from, copy.sources, copy.dest, copy.inline[0]!.data], ['app', '', 'build', ['src-1.0/*'], '/dst/', 'v=1.0 "q"\n']);
    assert.deepEqual(out.slice(1, 6).map((e) => (e.ins as { value?: string; values?: string[] }).value ?? (e.ins as { values: string[] }).values), [
      '/dst/w', 'nobody', ['80', '80/udp'], ['/dst/data'], 'SIGTERM',
    ]);
    assert.equal(out[6]!.mounts![0]!.target, '/dst/cache');
    assert.deepEqual((out[6]!.ins as { args: string[] }).args, ['echo $V']);
    assert.deepEqual((out[7]!.ins as { args: string[] }).args, ['echo $V']);
    assert.deepEqual((out[8]!.ins as { args: string[] }).args, ['$V']);
  });

  it('reports a bad substitution with its location', () => {
    const df = parseDockerfile('FROM scratch\n\nWORKDIR ${X');
    const stage = new ArgScope({ target: linux, build: linux }).stage([]);
    assert.throws(() => expandInstruction(df.stages[0]!.instructions[0]!, stage), (err: unknown) => {
      assert.ok(isBerthError(err, 'USAGE'));
      assert.match((err as Error).message, /^Dockerfile:3:1: syntax error: missing '}'/);
      return true;
    });
    const empty = parseDockerfile('ARG B\nFROM $B');
    assert.throws(() => new ArgScope({ target: linux, build: linux }, empty.metaArgs).expandFrom(empty.stages[0]!.from), /names no image/);
  });
});
