/** How a RUN becomes an argv for the engine, as BuildKit builds it. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile, type RunInstruction } from '../../../src/engine/build/instructions.js';
import { noExecutorError, runArgv } from '../../../src/engine/build/run-step.js';

const run = (text: string): RunInstruction => parseDockerfile(`FROM scratch\n${text}`).stages[0]!.instructions[0] as RunInstruction;
const SH = ['/bin/sh', '-c'];

describe('RUN argv', () => {
  it('exec form as written, shell form under the shell', () => {
    assert.deepEqual(runArgv(run('RUN ["/bin/echo", "$HOME"]'), SH), { argv: ['/bin/echo', '$HOME'] });
    assert.deepEqual(runArgv(run('RUN echo $HOME'), ['/bin/bash', '-eo', 'pipefail', '-c']), { argv: ['/bin/bash', '-eo', 'pipefail', '-c', 'echo $HOME'] });
  });

  it('a RUN that is only a heredoc runs its body; with #! as a script', () => {
    assert.deepEqual(runArgv(run('RUN <<EOF\napt-get update\necho done\nEOF'), SH), { argv: [...SH, 'apt-get update\necho done\n'] });
    assert.deepEqual(runArgv(run('RUN <<-"END"\n\techo tab\n\tEND'), SH), { argv: [...SH, 'echo tab\n'] });
    assert.deepEqual(runArgv(run('RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF'), SH), {
      argv: ['/dev/pipes/berth-heredoc-EOF'],
      script: { path: '/dev/pipes/berth-heredoc-EOF', data: '#!/usr/bin/env python3\nprint(1)\n' },
    });
  });

  it('heredocs of a command are appended for the shell to read', () => {
    assert.deepEqual(runArgv(run('RUN cat <<A > /a && cat <<B > /b\none\nA\ntwo\nB'), SH), { argv: [...SH, 'cat <<A > /a && cat <<B > /b\none\nA\ntwo\nB'] });
  });

  it('says where the RUN is when there is no engine', () => {
    assert.match(noExecutorError(run('RUN true')).message, /^Dockerfile:2:1: RUN needs the engine to run a container/);
  });
});
