/** The Dockerfile parser against the Dockerfile reference and BuildKit's frontend behaviour. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile, type CopyInstruction, type Instruction, type RunInstruction } from '../../../src/engine/build/instructions.js';
import { parseDockerfileText, extractBuilderFlags, parseWords, parseHeredocMarker, parseJsonArray } from '../../../src/engine/build/parser.js';
import { parseGoDuration, parseRunMount } from '../../../src/engine/build/flags.js';
import { isBerthError } from '../../../src/base/errors.js';

function only(text: string): Instruction {
  const df = parseDockerfile(`FROM scratch\n${text}`);
  assert.equal(df.stages[0]!.instructions.length, 1);
  return df.stages[0]!.instructions[0]!;
}

function parseFails(text: string, re: RegExp): void {
  assert.throws(() => parseDockerfile(text, 'Containerfile'), (err: unknown) => {
    assert.ok(isBerthError(err, 'USAGE'), String(err));
    assert.match((err as Error).message, re);
    return true;
  });
}

const failure = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('expected an error');
};

describe('Dockerfile lines', () => {
  it('joins continuations, skips comments and empty lines inside them, keeps positions', () => {
    const p = parseDockerfileText('FROM a\n  RUN echo a \\\n# inner comment\n\n      b \\  \n  c\n');
    assert.equal(p.nodes.length, 2);
    const run = p.nodes[1]!;
    assert.equal(run.original, 'RUN echo a       b   c');
    assert.deepEqual([run.loc.line, run.loc.column, run.loc.endLine], [2, 3, 6]);
    assert.equal(run.rest, 'echo a       b   c');
    assert.deepEqual(run.position(run.original.lastIndexOf('c')), { line: 6, column: 3 });
    assert.match(p.warnings.join('\n'), /empty continuation line/);
  });

  it('reads parser directives only at the top, with the escape character changing continuations', () => {
    const p = parseDockerfileText('# syntax=docker/dockerfile:1\n#escape = `\n# check=skip=all\nFROM a\nRUN dir c:\\ `\n  /w\n');
    assert.equal(p.directives.escape, '`');
    assert.equal(p.directives.syntax, 'docker/dockerfile:1');
    assert.equal(p.directives.check, 'skip=all');
    assert.match(p.warnings[0]!, /syntax directive .* ignored/);
    assert.equal(p.nodes[1]!.original, 'RUN dir c:\\   /w');
    // After a comment, an empty line or an instruction, directives are plain comments.
    assert.equal(parseDockerfileText('# hello\n# escape=`\nFROM a\n').directives.escape, '\\');
    assert.equal(parseDockerfileText('\n# escape=`\nFROM a\n').directives.escape, '\\');
    assert.equal(parseDockerfileText('# unknown=1\n# escape=`\nFROM a\n').directives.escape, '\\');
    assert.equal(parseDockerfileText('\uFEFF# escape=`\r\nFROM a\r\n').directives.escape, '`');
  });

  it('refuses bad and repeated directives with their line', () => {
    assert.match(failure(() => parseDockerfileText('# escape=x\nFROM a', 'Dockerfile')), /^Dockerfile:1:1: invalid escape token "x"/);
    assert.match(failure(() => parseDockerfileText('# escape=\\\n# ESCAPE=`\nFROM a')), /Dockerfile:2:1: only one escape parser directive/);
  });

  it('extracts flags as BuildKit does', () => {
    assert.deepEqual(extractBuilderFlags(' --a=1 --b="x y" --c c d'), { flags: ['a=1', 'b=x y', 'c'].map((f) => `--${f}`), rest: 'c d', restOffset: 21 });
    assert.deepEqual(extractBuilderFlags('--a -- --b').flags, ['--a']);
    assert.equal(extractBuilderFlags('--a -- --b').rest, '--b');
    assert.deepEqual(extractBuilderFlags('-x').flags, []);
  });

  it('splits words keeping quotes and escapes', () => {
    assert.deepEqual(parseWords(`a="b c" d='e \\' f\\ g`, '\\'), [`a="b c"`, `d='e \\'`, `f\\ g`]);
    assert.deepEqual(parseWords('a=`  b', '`'), ['a=` ', 'b']);
  });

  it('tells JSON form from shell form as BuildKit', () => {
    assert.deepEqual(parseJsonArray(' ["a", "b c"]'), ['a', 'b c']);
    assert.equal(parseJsonArray("['a']"), undefined);
    assert.equal(parseJsonArray('["a" "b"]'), undefined);
    assert.equal(parseJsonArray('["a", 1]'), 'not-strings');
    assert.deepEqual(parseJsonArray('[]'), []);
  });
});

describe('heredocs', () => {
  it('parses markers', () => {
    assert.deepEqual(parseHeredocMarker('<<EOF'), { name: 'EOF', expand: true, chomp: false, fd: 0 });
    assert.deepEqual(parseHeredocMarker('<<-"E O"'), undefined);
    assert.deepEqual(parseHeredocMarker(`3<<-'END'`), { name: 'END', expand: false, chomp: true, fd: 3 });
    assert.equal(parseHeredocMarker('<<<x'), undefined);
    assert.equal(parseHeredocMarker('a<<b'), undefined);
    assert.equal(parseHeredocMarker('<<'), undefined);
  });

  it('reads the bodies of several heredocs in one RUN, keeping comments and continuations inside', () => {
    const df = parseDockerfile('FROM a\nRUN <<one cat - /dev/fd/3 3<<-"two"\n# kept\nx \\\none\n\ty\n\ttwo\nENV A=1\n');
    const run = df.stages[0]!.instructions[0] as RunInstruction;
    assert.equal(run.kind, 'RUN');
    assert.equal(run.json, false);
    assert.deepEqual(run.heredocs.map((h) => [h.name, h.content, h.expand, h.chomp, h.fd]), [
      ['one', '# kept\nx \\\n', true, false, 0],
      ['two', '\ty\n', false, true, 3],
    ]);
    assert.equal(run.loc.endLine, 7);
    assert.equal(df.stages[0]!.instructions[1]!.kind, 'ENV');
  });

  it('turns COPY heredoc sources into inline files', () => {
    const c = only('COPY --chmod=755 <<-EOF <<"LIT" file /dest/\n\techo $A\n\tEOF\n$B\nLIT\n') as CopyInstruction;
    assert.deepEqual(c.inline, [
      { name: 'EOF', data: 'echo $A\n', expand: true },
      { name: 'LIT', data: '$B\n', expand: false },
    ]);
    assert.deepEqual(c.sources, ['file']);
    assert.equal(c.dest, '/dest/');
    assert.equal(c.chmod, '755');
  });

  it('has no heredocs in JSON form and reports unterminated ones', () => {
    const run = only('RUN ["cat", "<<EOF"]') as RunInstruction;
    assert.deepEqual(run.heredocs, []);
    assert.match(failure(() => parseDockerfile('FROM a\nRUN cat <<EOF\nhello\n')), /^Dockerfile:2:1: unterminated heredoc <<EOF: end it with a line that holds only EOF/);
    parseFails('FROM a\nCOPY a <<EOF\nx\nEOF\n', /cannot take a heredoc as its destination/);
  });
});

describe('instructions', () => {
  it('FROM with platform, AS, scratch, ARGs before it', () => {
    const df = parseDockerfile('ARG BASE=alpine V\nFROM --platform=$BUILDPLATFORM ${BASE}:3 AS Build\nFROM scratch\nARG x\n');
    assert.equal(df.metaArgs.length, 1);
    assert.deepEqual(df.metaArgs[0]!.args, [{ name: 'BASE', default: 'alpine' }, { name: 'V' }]);
    assert.deepEqual([df.stages[0]!.from.image, df.stages[0]!.name, df.stages[0]!.from.platform], ['${BASE}:3', 'build', '$BUILDPLATFORM']);
    assert.equal(df.stages[1]!.from.image, 'scratch');
    assert.equal(df.stages[1]!.instructions[0]!.kind, 'ARG');
    parseFails('FROM a b', /Containerfile:1:6: FROM requires either one or three arguments/);
    parseFails('FROM a AS 1x', /invalid name for build stage/);
    parseFails('FROM a AS x\nFROM b AS X', /Containerfile:2:\d+: duplicate stage name "x"/);
    parseFails('ENV a=b\nFROM x', /Containerfile:1:1: ENV comes before any FROM/);
    parseFails('ARG a', /has no FROM/);
    parseFails('FROM --plat=x a', /Containerfile:1:6: unknown flag --plat for FROM: FROM takes --platform/);
  });

  it('RUN: shell and exec form, mounts, network, security', () => {
    const r = only('RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked --mount=type=secret,id=tok --network=none echo "$HOME"') as RunInstruction;
    assert.deepEqual([r.json, r.args], [false, ['echo "$HOME"']]);
    assert.equal(r.mounts.length, 2);
    assert.equal(r.network, 'none');
    const e = only('RUN --security=insecure ["/bin/echo", "a b"]') as RunInstruction;
    assert.deepEqual([e.json, e.args, e.security], [true, ['/bin/echo', 'a b'], 'insecure']);
    assert.deepEqual((only(`RUN ['x']`) as RunInstruction).args, [`['x']`]);
    parseFails('FROM a\nRUN ["a", 2]', /Containerfile:2:5: a JSON array \(exec form\) must hold strings only/);
    parseFails('FROM a\nRUN --network=bridge x', /unsupported RUN --network=bridge/);
    parseFails('FROM a\nRUN --mount=type=cache x', /Containerfile:2:13: a cache mount needs a target/);
    parseFails('FROM a\nRUN --mount=target=/x,bogus=1 x', /unexpected key "bogus"/);
    parseFails('FROM a\nRUN', /RUN needs a command/);
  });

  it('reads --mount values as BuildKit', () => {
    const f = (what: string, todo: string) => new Error(`${what}: ${todo}`);
    assert.deepEqual(parseRunMount('type=cache,target=/c', f), { type: 'cache', target: '/c', readonly: false, sharing: 'shared', id: '/c' });
    assert.deepEqual(parseRunMount('from=build,source=/out,target=/in,rw', f), { type: 'bind', from: 'build', source: '/out', target: '/in', readonly: false });
    assert.deepEqual(parseRunMount('target=/in', f).readonly, true);
    assert.deepEqual(parseRunMount('type=tmpfs,target=/t,size=64m', f), { type: 'tmpfs', target: '/t', size: 64 * 1024 * 1024, readonly: false });
    assert.deepEqual(parseRunMount('type=secret,id=tok,required', f), { type: 'secret', id: 'tok', target: '/run/secrets/tok', required: true, readonly: true });
    assert.deepEqual(parseRunMount('type=secret,target=/etc/key', f).id, 'key');
    assert.deepEqual(parseRunMount('type=cache,target=/c,mode=0700,uid=1000,gid=100,"id=a,b"', f), { type: 'cache', target: '/c', mode: 0o700, uid: 1000, gid: 100, id: 'a,b', sharing: 'shared', readonly: false });
    assert.deepEqual(parseRunMount('type=cache,target=$D', f, (s) => s.replace('$D', '/d')).target, '/d');
    assert.throws(() => parseRunMount('type=volume,target=/x', f), /unsupported mount type/);
    assert.throws(() => parseRunMount('type=tmpfs,target=/x,sharing=locked', f), /only to cache/);
  });

  it('CMD, ENTRYPOINT, SHELL', () => {
    assert.deepEqual(only('CMD ["a","b"]'), { kind: 'CMD', loc: { file: 'Dockerfile', line: 2, column: 1, endLine: 2 }, original: 'CMD ["a","b"]', json: true, args: ['a', 'b'] });
    const ep = only('entrypoint  exec  app --x') as Instruction & { json: boolean; args: string[] };
    assert.deepEqual([ep.kind, ep.json, ep.args], ['ENTRYPOINT', false, ['exec  app --x']]);
    assert.deepEqual((only('SHELL ["/bin/bash", "-eo", "pipefail", "-c"]') as { shell: string[] }).shell, ['/bin/bash', '-eo', 'pipefail', '-c']);
    parseFails('FROM a\nSHELL /bin/sh -c', /SHELL requires the arguments to be in JSON form/);
    parseFails('FROM a\nCMD --help', /unknown flag --help for CMD: CMD takes no flags/);
  });

  it('COPY and ADD with their flags; JSON form with spaces', () => {
    const c = only('COPY --from=build --chown=app:app --chmod=0644 --link --exclude=*.md --exclude=x a b* /dst/') as CopyInstruction;
    assert.deepEqual([c.from, c.chown, c.chmod, c.link, c.exclude, c.sources, c.dest], ['build', 'app:app', '0644', true, ['*.md', 'x'], ['a', 'b*'], '/dst/']);
    const a = only('ADD --checksum=sha256:abc --link=false ["https://h/x y", "/z"]') as CopyInstruction;
    assert.deepEqual([a.kind, a.checksum, a.link, a.sources, a.dest], ['ADD', 'sha256:abc', false, ['https://h/x y'], '/z']);
    parseFails('FROM a\nCOPY onlyone', /COPY needs at least two arguments, but only one was given/);
    parseFails('FROM a\nADD --from=x a b', /unknown flag --from for ADD/);
    parseFails('FROM a\nCOPY --from a b', /missing a value on flag --from/);
    parseFails('FROM a\nCOPY --link=maybe a b', /--link must be true or false/);
    parseFails('FROM a\nCOPY --chown=a --chown=b a b', /duplicate flag --chown/);
  });

  it('ENV and LABEL in both forms', () => {
    assert.deepEqual((only('ENV A=1 B="two words" C=three\\ words D=') as { pairs: unknown }).pairs, [
      { key: 'A', value: '1' },
      { key: 'B', value: '"two words"' },
      { key: 'C', value: 'three\\ words' },
      { key: 'D', value: '' },
    ]);
    assert.deepEqual((only('ENV PATH  /a b  c') as { pairs: unknown }).pairs, [{ key: 'PATH', value: '/a b  c' }]);
    assert.deepEqual((only('LABEL "com.x.y"="a b" k=v') as { pairs: unknown }).pairs, [
      { key: '"com.x.y"', value: '"a b"' },
      { key: 'k', value: 'v' },
    ]);
    parseFails('FROM a\nENV A=1 B', /Containerfile:2:9: can't find = in "B"/);
    parseFails('FROM a\nENV A', /ENV A has no value/);
    parseFails('FROM a\nLABEL =x', /LABEL names can not be blank/);
  });

  it('ARG, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, MAINTAINER', () => {
    assert.deepEqual((only('ARG A B=2 C="x y"') as { args: unknown }).args, [{ name: 'A' }, { name: 'B', default: '2' }, { name: 'C', default: '"x y"' }]);
    assert.equal((only('WORKDIR /a b') as { value: string }).value, '/a b');
    assert.equal((only('USER app:app') as { value: string }).value, 'app:app');
    assert.deepEqual((only('EXPOSE 80 443/tcp 53/udp') as { values: string[] }).values, ['80', '443/tcp', '53/udp']);
    assert.deepEqual((only('VOLUME ["/a", "/b c"]') as { values: string[] }).values, ['/a', '/b c']);
    assert.deepEqual((only('VOLUME /a /b') as { values: string[] }).values, ['/a', '/b']);
    assert.equal((only('STOPSIGNAL SIGKILL') as { value: string }).value, 'SIGKILL');
    const df = parseDockerfile('FROM a\nMAINTAINER me <me@x>\n');
    assert.match(df.warnings.join(), /MAINTAINER is deprecated/);
    parseFails('FROM a\nSTOPSIGNAL A B', /exactly one/);
    parseFails('FROM a\nVOLUME [""]', /empty string/);
    parseFails('FROM a\nWORKDIR', /WORKDIR needs an argument/);
    parseFails('FROM a\nFROBNICATE x', /Containerfile:2:1: unknown instruction FROBNICATE/);
  });

  it('HEALTHCHECK with all options and NONE', () => {
    const h = only('HEALTHCHECK --interval=1m30s --timeout=5s --start-period=500ms --start-interval=2s --retries=3 CMD ["curl", "-f", "http://x/"]');
    assert.deepEqual(h, {
      kind: 'HEALTHCHECK', loc: h.loc, original: h.original,
      test: ['CMD', 'curl', '-f', 'http://x/'], interval: 90e9, timeout: 5e9, startPeriod: 5e8, startInterval: 2e9, retries: 3,
    });
    assert.deepEqual((only('HEALTHCHECK CMD curl -f http://x/ || exit 1') as { test: string[] }).test, ['CMD-SHELL', 'curl -f http://x/ || exit 1']);
    assert.deepEqual((only('HEALTHCHECK none') as { test: string[] }).test, ['NONE']);
    parseFails('FROM a\nHEALTHCHECK NONE x', /takes no arguments/);
    parseFails('FROM a\nHEALTHCHECK --interval=1us CMD x', /cannot be less than 1ms/);
    parseFails('FROM a\nHEALTHCHECK --interval=abc CMD x', /is not a duration/);
    parseFails('FROM a\nHEALTHCHECK --retries=-1 CMD x', /cannot be negative/);
    parseFails('FROM a\nHEALTHCHECK CMD', /missing command after HEALTHCHECK CMD/);
    parseFails('FROM a\nHEALTHCHECK RUN x', /unknown type "RUN"/);
    assert.equal(parseGoDuration('1h2m3.5s'), 3723.5e9);
    assert.equal(parseGoDuration('10'), undefined);
  });

  it('ONBUILD records a trigger that must parse and may not be ONBUILD/FROM/MAINTAINER', () => {
    assert.equal((only('ONBUILD COPY . /app') as { trigger: string }).trigger, 'COPY . /app');
    parseFails('FROM a\nONBUILD ONBUILD RUN x', /ONBUILD isn't allowed as an ONBUILD trigger/);
    parseFails('FROM a\nONBUILD from x', /FROM isn't allowed/);
    parseFails('FROM a\nONBUILD COPY x', /COPY needs at least two arguments/);
  });

  it('keeps comments above an instruction and the keyword case-insensitive', () => {
    const p = parseDockerfileText('# one\n# two\nfRoM a\n');
    assert.deepEqual(p.nodes[0]!.comments, ['one', 'two']);
    assert.equal(p.nodes[0]!.command, 'from');
  });
});
