// The real CLI as a child process (bin/wpcp-agent.js → src/main.ts): usage errors, enrollment, and
// what happens to a running command when the agent is stopped (SIGTERM) or dies (SIGKILL).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandStatus } from '@wpcp/shared/agent-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from './agent.ts';
import { countingHandlers, noopCommand, testConfig, testLogger } from './testing/agent-harness.ts';
import { FakeControlPlane, type FakeStream } from './testing/fake-control-plane.ts';

const BIN = fileURLToPath(new URL('../bin/wpcp-agent.js', import.meta.url));

interface Child {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

function runCli(args: string[], options: { env?: Record<string, string>; stdin?: string } = {}): Child {
  const child = spawn(process.execPath, [BIN, ...args], {
    // A clean environment: no WPCP_AGENT_* variables from the test runner.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env },
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    err += chunk;
  });
  if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, stdout: () => out, stderr: () => err, exited };
}

describe('wpcp-agent command line', () => {
  it('prints help and the version', async () => {
    const help = runCli(['--help']);
    expect((await help.exited)[0]).toBe(0);
    expect(help.stdout()).toContain('usage: wpcp-agent <enroll|run>');
    expect(help.stdout()).toContain('--token-file FILE');

    const version = runCli(['--version']);
    expect((await version.exited)[0]).toBe(0);
    expect(version.stdout()).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('exits 2 with a usage line on a bad flag or a missing argument', async () => {
    const bad = runCli(['run', '--frobnicate']);
    expect((await bad.exited)[0]).toBe(2);
    expect(bad.stderr()).toMatch(/^wpcp-agent: Unknown option '--frobnicate'\nusage: wpcp-agent run /);

    const missing = runCli(['enroll', '--server', 'cp.example.com:8443']);
    expect((await missing.exited)[0]).toBe(2);
    expect(missing.stderr()).toContain('--token or --token-file is required');
    expect(missing.stderr()).toContain('usage: wpcp-agent enroll --server HOST:PORT');

    const unknown = runCli(['frob']);
    expect((await unknown.exited)[0]).toBe(2);
    expect(unknown.stderr()).toContain('unknown command "frob"');
  });

  it('exits 1 with a clear message when the state directory is not enrolled', async () => {
    const run = runCli(['run', '--state-dir', '/nonexistent/wpcp-state']);
    expect((await run.exited)[0]).toBe(1);
    expect(run.stderr()).toContain('/nonexistent/wpcp-state is not enrolled; run: wpcp-agent enroll');
  });
});

describe('wpcp-agent enroll + run as processes', () => {
  let plane: FakeControlPlane;
  let parent: string;
  let stateDir: string;

  beforeAll(async () => {
    plane = await FakeControlPlane.start();
    parent = await mkdtemp(path.join(tmpdir(), 'wpcp-agent-cli-'));
    stateDir = path.join(parent, 'state');
  });
  afterAll(async () => {
    await plane.close();
    await rm(parent, { recursive: true, force: true });
  });

  async function runAgentProcess(nodeStreams: number): Promise<{ agent: Child; stream: FakeStream }> {
    const agent = runCli(['run', '--state-dir', stateDir], {
      env: {
        WPCP_AGENT_SITES_DIR: parent,
        WPCP_AGENT_RECONNECT_INITIAL_MS: '50',
        WPCP_AGENT_SHUTDOWN_GRACE_MS: '300',
      },
    });
    await plane.waitFor(() => plane.streams.length > nodeStreams, 15_000, 'the agent process to connect');
    const stream = plane.streams[nodeStreams] as FakeStream;
    await plane.waitFor(() => stream.of('heartbeat').length > 0, 5_000, 'a heartbeat');
    return { agent, stream };
  }

  it('enrolls with a token read from standard input', async () => {
    const enroll = runCli(
      ['enroll', '--server', `localhost:${plane.port}`, '--token-file', '-', '--state-dir', stateDir],
      {
        stdin: `${plane.createJoinToken('node-cli')}\n`,
      },
    );
    const [code] = await enroll.exited;
    expect(enroll.stderr()).toBe('');
    expect(code).toBe(0);
    expect(enroll.stdout()).toContain(`enrolled as node node-cli with localhost:${plane.port}`);
  });

  it('on SIGTERM cancels the running command, sends its result and exits 0', async () => {
    const { agent, stream } = await runAgentProcess(0);
    const command = noopCommand({ sleepMs: 60_000 });
    stream.send({ $case: 'command', value: command });
    await plane.waitFor(() => stream.of('commandProgress').length > 0, 5_000, 'the command to start');

    agent.child.kill('SIGTERM');
    const [code] = await agent.exited;
    expect(code).toBe(0);
    const result = stream.of('commandResult').find((r) => r.commandId === command.id);
    expect(result).toMatchObject({ status: CommandStatus.CANCELLED, errorCode: 'agent_shutdown' });
    // The logs are JSON lines, and the node's key never appears in them.
    const lines = agent.stdout().trim().split('\n');
    expect(lines.every((line) => JSON.parse(line).service === 'wpcp-agent')).toBe(true);
    expect(agent.stdout()).not.toContain('PRIVATE KEY');
  });

  it('after SIGKILL mid-command, the next agent reports it INTERRUPTED and never runs it again', async () => {
    const { agent, stream } = await runAgentProcess(1);
    const command = noopCommand({ sleepMs: 60_000 });
    stream.send({ $case: 'command', value: command });
    await plane.waitFor(() => stream.of('commandProgress').length > 0, 5_000, 'the command to start');
    agent.child.kill('SIGKILL');
    await agent.exited;
    expect(stream.of('commandResult').filter((r) => r.commandId === command.id)).toEqual([]);

    // A new agent on the same state directory (in-process, to count executions).
    const { handlers, executions } = countingHandlers();
    const restarted = await startAgent({
      config: testConfig(`localhost:${plane.port}`, stateDir),
      logger: testLogger,
      handlers,
      shutdownGraceMs: 100,
    });
    try {
      expect(restarted.recovered.map((r) => [r.commandId, r.status])).toEqual([[command.id, 'interrupted']]);
      await plane.waitFor(() => plane.streams.length > 2, 10_000, 'the new agent to connect');
      const s2 = plane.streams[2] as FakeStream;
      await plane.waitFor(() => s2.of('hello').length === 1, 5_000, 'hello');
      expect(s2.of('hello')[0]?.unacknowledgedResults).toMatchObject([
        { commandId: command.id, status: CommandStatus.INTERRUPTED, errorCode: 'agent_interrupted' },
      ]);
      expect(s2.of('hello')[0]?.runningCommandIds).toEqual([]);

      // The control plane redelivers it (say it had not seen the result yet): answered, not run.
      await plane.waitFor(() => s2.of('heartbeat').length > 0, 5_000, 'welcome');
      s2.send({ $case: 'command', value: command });
      await plane.waitFor(
        () => s2.of('commandResult').some((r) => r.commandId === command.id),
        5_000,
        'the answer to the redelivery',
      );
      expect(s2.of('commandResult').find((r) => r.commandId === command.id)?.status).toBe(
        CommandStatus.INTERRUPTED,
      );
      expect(executions.get(command.id)).toBeUndefined();
    } finally {
      await restarted.stop();
    }
  });
});
