import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ExecError, MINIMAL_PATH, runProcess } from './run.ts';

const base = { timeoutMs: 10_000, maxOutputBytes: 1024 * 1024 };

/** True while `pid` is a live (non-zombie) process. PID 1 in a container may not reap zombies. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function waitUntil(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const leftovers: number[] = [];
afterEach(() => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
});

describe('runProcess', () => {
  it('reports exit code zero and captures stdout and stderr separately', async () => {
    const result = await runProcess({
      ...base,
      file: 'sh',
      args: ['-c', 'echo out; echo err >&2'],
    });
    expect(result).toMatchObject({
      exitCode: 0,
      signal: null,
      stdout: 'out\n',
      stderr: 'err\n',
      truncated: false,
      timedOut: false,
      cancelled: false,
    });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('reports non-zero exit codes', async () => {
    const result = await runProcess({ ...base, file: '/bin/sh', args: ['-c', 'exit 7'] });
    expect(result.exitCode).toBe(7);
    expect(result.signal).toBeNull();
  });

  it('passes arguments verbatim, without any shell interpretation', async () => {
    const tricky = ['$(id)', '; rm -rf /', "it's", '*', 'a b'];
    const result = await runProcess({ ...base, file: 'printf', args: ['%s\\n', ...tricky] });
    expect(result.stdout).toBe(`${tricky.join('\n')}\n`);
  });

  it('feeds stdin and closes it', async () => {
    const result = await runProcess({ ...base, file: 'cat', args: [], stdin: 'hello\nworld' });
    expect(result.stdout).toBe('hello\nworld');
  });

  it('pipes one process into another through streams, like a shell pipe without a shell', async () => {
    const pipe = new PassThrough();
    const [producer, consumer] = await Promise.all([
      runProcess({ ...base, file: 'seq', args: ['1', '200000'], stdoutTo: pipe }),
      runProcess({ ...base, file: 'wc', args: ['-l'], stdin: pipe }),
    ]);
    expect(producer).toMatchObject({ exitCode: 0, stdout: '' });
    expect(consumer).toMatchObject({ exitCode: 0, stdout: '200000\n' });
  });

  it('ends the piped stream when the producer fails, and survives a consumer that stops reading', async () => {
    const pipe = new PassThrough();
    const [producer, consumer] = await Promise.all([
      runProcess({ ...base, file: 'sh', args: ['-c', 'echo partial; exit 3'], stdoutTo: pipe }),
      runProcess({ ...base, file: 'cat', args: [], stdin: pipe }),
    ]);
    expect(producer.exitCode).toBe(3);
    expect(consumer).toMatchObject({ exitCode: 0, stdout: 'partial\n' });

    const early = new PassThrough();
    const controller = new AbortController();
    const writer = runProcess({
      ...base,
      file: 'seq',
      args: ['1', '100000000'],
      stdoutTo: early,
      signal: controller.signal,
    });
    const reader = await runProcess({ ...base, file: 'head', args: ['-n', '1'], stdin: early });
    expect(reader).toMatchObject({ exitCode: 0, stdout: '1\n' });
    controller.abort();
    expect((await writer).cancelled).toBe(true);
  });

  it('gives the child /dev/null as stdin when none is provided', async () => {
    const result = await runProcess({ ...base, file: 'cat', args: [] });
    expect(result).toMatchObject({ exitCode: 0, stdout: '' });
  });

  it('caps each stream at maxOutputBytes and reports truncation', async () => {
    const result = await runProcess({
      ...base,
      maxOutputBytes: 100,
      file: 'sh',
      args: ['-c', 'head -c 100000 /dev/zero | tr "\\0" a; echo small >&2'],
    });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe('a'.repeat(100));
    expect(result.stderr).toBe('small\n');
    expect(result.truncated).toBe(true);
  });

  it('does not report truncation when the output fits exactly', async () => {
    const result = await runProcess({ ...base, maxOutputBytes: 6, file: 'echo', args: ['12345'] });
    expect(result).toMatchObject({ stdout: '12345\n', truncated: false });
  });

  it('streams lines of both streams, including a final unterminated line', async () => {
    const lines: Array<[string, string]> = [];
    const result = await runProcess({
      ...base,
      file: 'sh',
      args: ['-c', 'printf "one\\r\\ntwo\\n"; echo warn >&2; printf tail'],
      onLine: (stream, line) => lines.push([stream, line]),
    });
    expect(result.exitCode).toBe(0);
    expect(lines.filter(([s]) => s === 'stdout').map(([, l]) => l)).toEqual(['one', 'two', 'tail']);
    expect(lines.filter(([s]) => s === 'stderr').map(([, l]) => l)).toEqual(['warn']);
  });

  it('keeps multi-byte characters split across chunks intact in streamed lines', async () => {
    const lines: string[] = [];
    await runProcess({
      ...base,
      file: 'sh',
      // "é" is 0xC3 0xA9; write the two bytes in separate writes with a pause between them.
      args: ['-c', 'printf "\\303"; sleep 0.05; printf "\\251\\n"'],
      onLine: (_stream, line) => lines.push(line),
    });
    expect(lines).toEqual(['é']);
  });

  it('survives an onLine callback that throws', async () => {
    const result = await runProcess({
      ...base,
      file: 'echo',
      args: ['x'],
      onLine: () => {
        throw new Error('sink broken');
      },
    });
    expect(result).toMatchObject({ exitCode: 0, stdout: 'x\n' });
  });

  it('kills a process that runs past its timeout', async () => {
    const result = await runProcess({ ...base, timeoutMs: 200, file: 'sleep', args: ['30'] });
    expect(result.timedOut).toBe(true);
    expect(result.cancelled).toBe(false);
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe('SIGTERM');
    expect(result.durationMs).toBeGreaterThanOrEqual(150);
    expect(result.durationMs).toBeLessThan(5_000);
  });

  it('escalates to SIGKILL when the group ignores SIGTERM', async () => {
    let grandchild = 0;
    const result = await runProcess({
      ...base,
      timeoutMs: 200,
      killGraceMs: 300,
      file: 'sh',
      // Fixture only: a shell that ignores SIGTERM and has a grandchild that ignores it too.
      args: ['-c', 'trap "" TERM; sleep 100 & echo $!; wait'],
      onLine: (_stream, line) => {
        grandchild = Number(line);
        leftovers.push(grandchild);
      },
    });
    expect(result.timedOut).toBe(true);
    expect(result.signal).toBe('SIGKILL');
    expect(result.durationMs).toBeGreaterThanOrEqual(450);
    expect(grandchild).toBeGreaterThan(0);
    await waitUntil(() => !isAlive(grandchild));
  });

  it('cancellation kills the child and its grandchild', async () => {
    const controller = new AbortController();
    let grandchild = 0;
    const running = runProcess({
      ...base,
      timeoutMs: 60_000,
      file: 'sh',
      // Fixture only: the grandchild `sleep` is what must not be orphaned.
      args: ['-c', 'sleep 100 & echo $!; wait'],
      signal: controller.signal,
      onLine: (_stream, line) => {
        grandchild = Number(line);
        leftovers.push(grandchild);
        controller.abort();
      },
    });
    const result = await running;
    expect(result.cancelled).toBe(true);
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe('SIGTERM');
    expect(grandchild).toBeGreaterThan(0);
    await waitUntil(() => !isAlive(grandchild));
  });

  it('kills background processes a command leaves behind when it exits', async () => {
    let background = 0;
    const result = await runProcess({
      ...base,
      file: 'sh',
      args: ['-c', 'sleep 100 & echo $!; exit 3'],
      onLine: (_stream, line) => {
        background = Number(line);
        leftovers.push(background);
      },
    });
    expect(result.exitCode).toBe(3);
    expect(result.durationMs).toBeLessThan(5_000);
    await waitUntil(() => !isAlive(background));
  });

  it('does not start anything when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const result = await runProcess({
      ...base,
      file: 'sh',
      args: ['-c', 'echo started'],
      signal: controller.signal,
    });
    expect(result).toMatchObject({ cancelled: true, exitCode: null, stdout: '' });
  });

  it('never passes the agent environment to the child', async () => {
    process.env.WPCP_TEST_SECRET = 'top-secret';
    try {
      const result = await runProcess({
        ...base,
        file: 'env',
        args: [],
        env: { WP_CLI_CACHE_DIR: '/tmp/x' },
      });
      expect(result.stdout).not.toContain('top-secret');
      const names = result.stdout
        .trim()
        .split('\n')
        .map((line) => line.slice(0, line.indexOf('=')))
        .sort();
      expect(names).toEqual(['LANG', 'PATH', 'WP_CLI_CACHE_DIR']);
      expect(result.stdout).toContain(`PATH=${MINIMAL_PATH}\n`);
    } finally {
      delete process.env.WPCP_TEST_SECRET;
    }
  });

  it('runs in / by default and in cwd when given', async () => {
    expect((await runProcess({ ...base, file: 'pwd', args: [] })).stdout).toBe('/\n');
    expect((await runProcess({ ...base, file: 'pwd', args: [], cwd: '/tmp' })).stdout).toBe('/tmp\n');
  });

  it.runIf(process.getuid?.() === 0)('runs as another user and drops supplementary groups', async () => {
    const uid = await runProcess({ ...base, file: 'id', args: ['-u'], uid: 65534, gid: 65534 });
    const groups = await runProcess({ ...base, file: 'id', args: ['-G'], uid: 65534, gid: 65534 });
    expect(uid).toMatchObject({ exitCode: 0, stdout: '65534\n' });
    expect(groups.stdout).toBe('65534\n');
  });

  it('rejects a missing command with spawn_failed', async () => {
    await expect(runProcess({ ...base, file: 'wpcp-no-such-command', args: [] })).rejects.toMatchObject({
      name: 'ExecError',
      code: 'spawn_failed',
    });
  });

  it.each([
    ['relative path', { file: 'bin/sh' }],
    ['dot-dot path', { file: '/usr/../bin/sh' }],
    ['double slash', { file: '//bin/sh' }],
    ['trailing slash', { file: '/bin/' }],
    ['option-like name', { file: '-rf' }],
    ['dot name', { file: '..' }],
    ['name with space', { file: 'sh -c' }],
    ['NUL in file', { file: '/bin/sh\0' }],
    ['empty file', { file: '' }],
    ['non-string arg', { args: [1 as unknown as string] }],
    ['NUL in arg', { args: ['a\0b'] }],
    ['uid without gid', { uid: 65534 }],
    ['negative uid', { uid: -1, gid: 0 }],
    ['relative cwd', { cwd: 'tmp' }],
    ['bad env name', { env: { 'A=B': 'x' } }],
    ['zero timeout', { timeoutMs: 0 }],
    ['fractional cap', { maxOutputBytes: 1.5 }],
  ])('refuses invalid options: %s', async (_name, override) => {
    await expect(runProcess({ ...base, file: 'true', args: [], ...override })).rejects.toSatisfy(
      (err) => err instanceof ExecError && err.code === 'invalid_argument',
    );
  });
});
