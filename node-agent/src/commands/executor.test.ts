// The executor's state machine without a network: an outbox that records what would be sent.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CommandStatus, LogStream } from '@wpcp/shared/agent-protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Journal } from '../journal/journal.ts';
import { noopCommand, testLogger } from '../testing/agent-harness.ts';
import { CommandExecutor, type OutgoingMessage } from './executor.ts';
import { type CommandHandlers, defaultHandlers } from './registry.ts';
import { sleep } from './types.ts';

let dir: string;
let journal: Journal;
let sent: OutgoingMessage[];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wpcp-executor-'));
  journal = await Journal.open(dir);
  sent = [];
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function executor(
  options: { handlers?: Partial<CommandHandlers>; journal?: Journal; maxLogLines?: number } = {},
) {
  const ex = new CommandExecutor({
    journal: options.journal ?? journal,
    logger: testLogger,
    maxConcurrentCommands: 4,
    handlers: { ...defaultHandlers, ...options.handlers },
    ...(options.maxLogLines === undefined ? {} : { maxLogLinesPerCommand: options.maxLogLines }),
  });
  ex.attach({ send: (message) => sent.push(message) });
  return ex;
}

function results(id?: string) {
  return sent
    .filter((m) => m.$case === 'commandResult')
    .map((m) => m.value as { commandId: string; status: number; errorCode: string; errorMessage: string })
    .filter((r) => id === undefined || r.commandId === id);
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('CommandExecutor', () => {
  it('runs the commands of one environment one at a time, in the order received', async () => {
    const events: string[] = [];
    const ex = executor({
      handlers: {
        noop: async (payload, context) => {
          events.push(`start ${context.commandId}`);
          await sleep(payload.sleepMs, context.signal);
          events.push(`end ${context.commandId}`);
          return { status: 'succeeded' };
        },
      },
    });
    const commands = [30, 5, 15].map((sleepMs, i) =>
      noopCommand({ id: `env-order-${i}`, sleepMs, environmentKey: 'env-a' }),
    );
    for (const command of commands) void ex.receive(command);
    await until(() => results().length === 3);
    expect(events).toEqual([
      'start env-order-0',
      'end env-order-0',
      'start env-order-1',
      'end env-order-1',
      'start env-order-2',
      'end env-order-2',
    ]);
    expect(results().map((r) => r.commandId)).toEqual(['env-order-0', 'env-order-1', 'env-order-2']);
  });

  it('refuses an id that cannot be journaled, without running or journaling it', async () => {
    const ex = executor();
    await ex.receive(noopCommand({ id: '../../etc/passwd' }));
    expect(results()).toMatchObject([{ status: CommandStatus.REJECTED, errorCode: 'invalid_command' }]);
    expect(sent.some((m) => m.$case === 'commandAck')).toBe(false);
  });

  it('does not run a command it cannot journal', async () => {
    let ran = false;
    const broken = new Proxy(journal, {
      get(target, property) {
        if (property === 'recordStarted') return async () => Promise.reject(new Error('disk full'));
        const value = Reflect.get(target, property);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const ex = executor({
      journal: broken,
      handlers: {
        noop: async () => {
          ran = true;
          return { status: 'succeeded' };
        },
      },
    });
    await ex.receive(noopCommand({ id: 'no-disk' }));
    expect(ran).toBe(false);
    expect(results('no-disk')).toMatchObject([
      { status: CommandStatus.REJECTED, errorCode: 'journal_unavailable' },
    ]);
    expect(journal.lookup('no-disk').state).toBe('none');
  });

  it('answers a journaled command without result (and not running) as INTERRUPTED, never running it', async () => {
    let ran = false;
    const ex = executor({
      handlers: {
        noop: async () => {
          ran = true;
          return { status: 'succeeded' };
        },
      },
    });
    await journal.recordStarted('orphan', { type: 'noop' });
    await ex.receive(noopCommand({ id: 'orphan' }));
    expect(ran).toBe(false);
    expect(results('orphan')).toMatchObject([
      { status: CommandStatus.INTERRUPTED, errorCode: 'agent_interrupted' },
    ]);
    expect(journal.lookup('orphan').state).toBe('result');
  });

  it('answers a redelivery after ResultAck from the tombstone', async () => {
    const ex = executor();
    await ex.receive(noopCommand({ id: 'acked', fail: true }));
    await until(() => results('acked').length === 1);
    await ex.acknowledge('acked');
    expect(journal.lookup('acked').state).toBe('acknowledged');
    await ex.receive(noopCommand({ id: 'acked', fail: true }));
    expect(results('acked')[1]).toMatchObject({
      status: CommandStatus.FAILED,
      errorCode: 'result_already_acknowledged',
    });
    expect(ex.unacknowledgedResults()).toEqual([]);
  });

  it('caps and redacts log lines; processes run through the sandbox with the command signal', async () => {
    const ex = executor({
      maxLogLines: 3,
      handlers: {
        noop: async (_payload, context) => {
          context.redact('s3cr3t');
          const run = await context.exec({
            file: 'printf',
            args: ['one s3cr3t\\ntwo\\nthree\\nfour\\n'],
            timeoutMs: 5_000,
            maxOutputBytes: 10_000,
          });
          return { status: 'succeeded', output: { exitCode: run.exitCode } };
        },
      },
    });
    await ex.receive(noopCommand({ id: 'chatty' }));
    await until(() => results('chatty').length === 1);
    const logs = sent
      .filter((m) => m.$case === 'commandLog')
      .map((m) => m.value as { stream: number; line: string });
    expect(logs).toEqual([
      { commandId: 'chatty', stream: LogStream.STDOUT, line: 'one [redacted]' },
      { commandId: 'chatty', stream: LogStream.STDOUT, line: 'two' },
      { commandId: 'chatty', stream: LogStream.STDOUT, line: 'three' },
      { commandId: 'chatty', stream: LogStream.AGENT, line: '[log truncated: more than 3 lines]' },
    ]);
    expect(results('chatty')[0]).toMatchObject({
      status: CommandStatus.SUCCEEDED,
      outputJson: '{"exitCode":0}',
    });
  });

  it('on shutdown: cancels queued commands, lets running ones finish within the grace, ignores new ones', async () => {
    const ex = executor();
    ex.setMaxConcurrent(1);
    await ex.receive(noopCommand({ id: 'short', sleepMs: 100 }));
    await ex.receive(noopCommand({ id: 'waiting', sleepMs: 100 }));
    await ex.shutdown(2_000);
    expect(results('short')).toMatchObject([{ status: CommandStatus.SUCCEEDED }]);
    expect(results('waiting')).toMatchObject([
      { status: CommandStatus.CANCELLED, errorCode: 'agent_shutdown' },
    ]);
    const before = sent.length;
    await ex.receive(noopCommand({ id: 'too-late' }));
    expect(sent.length).toBe(before);
    expect(journal.lookup('too-late').state).toBe('none');
  });

  it('on shutdown: stops a command still running after the grace period', async () => {
    const ex = executor();
    await ex.receive(noopCommand({ id: 'long', sleepMs: 60_000 }));
    await until(() => sent.some((m) => m.$case === 'commandProgress'));
    await ex.shutdown(50);
    expect(results('long')).toMatchObject([{ status: CommandStatus.CANCELLED, errorCode: 'agent_shutdown' }]);
  });
});

describe('sleep', () => {
  it('waits longer than setTimeout can in one go, and ends on abort', async () => {
    const controller = new AbortController();
    let settled: boolean | undefined;
    const done = sleep(2 ** 32, controller.signal).then((value) => {
      settled = value;
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(settled).toBeUndefined();
    controller.abort();
    await done;
    expect(settled).toBe(false);
    expect(await sleep(5, new AbortController().signal)).toBe(true);
  });
});
