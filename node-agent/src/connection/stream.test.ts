// The session loop against the in-process fake control plane: Hello/Welcome, heartbeats, reconnects,
// at-most-once command execution, Cancel, deadlines, renewal and dead-connection detection.
import { readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { CommandStatus } from '@wpcp/shared/agent-protocol';
import { certificateInfo, createCertificateAuthority } from '@wpcp/shared/pki';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningAgent, type StartAgentOptions, startAgent } from '../agent.ts';
import type { AgentConfig } from '../config.ts';
import { CERT_FILE } from '../state/identity.ts';
import {
  countingHandlers,
  enrolledStateDir,
  noopCommand,
  testConfig,
  testLogger,
} from '../testing/agent-harness.ts';
import { FakeControlPlane, type FakeStream } from '../testing/fake-control-plane.ts';
import { splitResults } from './stream.ts';

let plane: FakeControlPlane;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  plane = await FakeControlPlane.start();
});
afterAll(async () => {
  await plane.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Started {
  agent: RunningAgent;
  executions: Map<string, number>;
  stateDir: string;
  /** Streams of this agent's node only (the fake is shared between tests). */
  streams: () => FakeStream[];
  stream: (index: number) => Promise<FakeStream>;
}

let nodeCounter = 0;

async function start(
  options: {
    on?: FakeControlPlane;
    server?: string;
    config?: Partial<AgentConfig>;
    session?: StartAgentOptions['session'];
  } = {},
): Promise<Started> {
  const on = options.on ?? plane;
  const nodeId = `node-s${++nodeCounter}`;
  const { parent, stateDir } = await enrolledStateDir(on, nodeId);
  cleanups.push(() => rm(parent, { recursive: true, force: true }));
  const { handlers, executions } = countingHandlers();
  const agent = await startAgent({
    config: testConfig(options.server ?? `localhost:${on.port}`, stateDir, options.config),
    logger: testLogger,
    handlers,
    shutdownGraceMs: 100,
    session: { stableAfterMs: 60_000, ...options.session },
  });
  cleanups.push(() => agent.stop());
  const streams = (): FakeStream[] => on.streams.filter((s) => s.nodeId === nodeId);
  return {
    agent,
    executions,
    stateDir,
    streams,
    stream: async (index) => {
      await on.waitFor(() => streams().length > index, 10_000, `stream #${index} of ${nodeId}`);
      return streams()[index] as FakeStream;
    },
  };
}

/** Wait until the stream received a message matching `check`. */
function waitOn(stream: FakeStream, what: string, check: (s: FakeStream) => boolean, timeoutMs = 10_000) {
  return plane.waitFor(() => check(stream), timeoutMs, what);
}

function resultsFor(stream: FakeStream, id: string) {
  return stream.of('commandResult').filter((r) => r.commandId === id);
}

describe('session: hello, welcome, heartbeats, reconnect', () => {
  it('says Hello first, then sends heartbeats at the interval the Welcome sets', async () => {
    const { stream } = await start();
    const s0 = await stream(0);
    await waitOn(s0, '4 heartbeats', (s) => s.of('heartbeat').length >= 4, 5_000);

    const first = s0.received[0]?.message;
    expect(first?.$case).toBe('hello');
    const hello = s0.of('hello')[0];
    expect(hello?.capabilities).toEqual([
      'clone_environment',
      'configure_nginx',
      'create_magic_login',
      'environment_step',
      'noop',
      'ping',
      'purge_cache',
      'set_object_cache',
      'set_site_url',
    ]);
    expect(hello?.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(hello?.unacknowledgedResults).toEqual([]);

    const beats = s0.received
      .map((m, i) => ({ m, at: s0.receivedAt[i] as number }))
      .filter(({ m }) => m.message?.$case === 'heartbeat');
    // The fake's Welcome says 200 ms (the agent's own setting is 500 ms).
    for (let i = 2; i < beats.length; i++) {
      const gap = (beats[i]?.at ?? 0) - (beats[i - 1]?.at ?? 0);
      expect(gap).toBeGreaterThan(120);
      expect(gap).toBeLessThan(450);
    }
    const heartbeat = s0.of('heartbeat')[0];
    expect(heartbeat?.memTotalBytes).toBeGreaterThan(0);
    expect(heartbeat?.diskTotalBytes).toBeGreaterThan(0);
    expect(heartbeat?.sentAtUnixMs).toBeGreaterThan(Date.now() - 10_000);
  });

  it('reopens the stream after the server drops it or ends it, and resets nothing it should keep', async () => {
    const { agent, stream } = await start();
    const disconnects: string[] = [];
    agent.session.on('disconnected', (end) => disconnects.push(end.reason));

    const s0 = await stream(0);
    await waitOn(s0, 'a heartbeat', (s) => s.of('heartbeat').length > 0);
    s0.drop();
    const s1 = await stream(1);
    await waitOn(s1, 'Hello on the new stream', (s) => s.of('hello').length === 1);
    s1.end();
    const s2 = await stream(2);
    await waitOn(s2, 'a heartbeat on the third stream', (s) => s.of('heartbeat').length > 0);
    expect(disconnects[0]).toMatch(/UNAVAILABLE: dropped by the test/);
    expect(disconnects[1]).toMatch(/ended the stream/);
    expect(agent.session.connected).toBe(true);
  });

  it('keeps retrying with backoff while the control plane refuses streams', async () => {
    plane.accepting = false;
    try {
      const { agent } = await start();
      const delays: number[] = [];
      agent.session.on('disconnected', (end) => delays.push(end.nextAttemptInMs));
      await plane.waitFor(() => delays.length >= 4, 5_000, '4 refused attempts');
      expect(Math.max(...delays)).toBeLessThanOrEqual(100); // reconnectMaxMs
    } finally {
      plane.accepting = true;
    }
  });

  it('detects a connection that went silent (keepalive) and opens a new one', async () => {
    // A TCP proxy that can freeze its connections: bytes stop flowing, sockets stay open.
    const sockets: net.Socket[] = [];
    const all: net.Socket[] = [];
    const proxy = net.createServer((client) => {
      const upstream = net.connect(plane.port, '127.0.0.1');
      sockets.push(client, upstream);
      all.push(client, upstream);
      client.pipe(upstream).pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', close);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const socket of all) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    });
    const port = (proxy.address() as net.AddressInfo).port;
    const { stream } = await start({
      server: `127.0.0.1:${port}`,
      config: { keepaliveTimeMs: 500, keepaliveTimeoutMs: 500 },
    });
    const s0 = await stream(0);
    await waitOn(s0, 'a heartbeat', (s) => s.of('heartbeat').length > 0);

    const frozenAt = performance.now();
    for (const socket of sockets.splice(0)) {
      socket.unpipe();
      socket.pause();
    }
    const s1 = await stream(1);
    await waitOn(s1, 'Hello after the freeze', (s) => s.of('hello').length === 1);
    expect(performance.now() - frozenAt).toBeLessThan(4_000);
  });
});

describe('commands: at most once', () => {
  it('runs a command once and resends its result after reconnecting until ResultAck', async () => {
    const quiet = await FakeControlPlane.start({ autoAckResults: false, ca: plane.ca });
    cleanups.push(() => quiet.close());
    const { agent, executions, streams } = await start({ on: quiet });
    const streamAt = async (i: number) => {
      await quiet.waitFor(() => streams().length > i, 10_000, `stream #${i}`);
      return streams()[i] as FakeStream;
    };
    const command = noopCommand({ sleepMs: 20 });

    const s0 = await streamAt(0);
    await quiet.waitFor(() => s0.of('heartbeat').length > 0, 5_000, 'welcome');
    s0.send({ $case: 'command', value: command });
    await quiet.waitFor(() => resultsFor(s0, command.id).length === 1, 5_000, 'the result');
    expect(s0.of('commandAck').map((a) => a.commandId)).toEqual([command.id]);
    expect(resultsFor(s0, command.id)[0]).toMatchObject({
      status: CommandStatus.SUCCEEDED,
      outputJson: JSON.stringify({ slept_ms: 20 }),
    });
    expect(s0.of('commandLog').map((l) => l.line)).toEqual(['noop: sleeping 20 ms']);
    expect(s0.of('commandProgress').map((p) => p.percent)).toEqual([0, 100]);

    // No ResultAck: the next Hello carries the result again, and again.
    s0.drop();
    const s1 = await streamAt(1);
    await quiet.waitFor(() => s1.of('hello').length === 1, 5_000, 'hello 1');
    expect(s1.of('hello')[0]?.unacknowledgedResults.map((r) => r.commandId)).toEqual([command.id]);
    s1.drop();
    const s2 = await streamAt(2);
    await quiet.waitFor(() => s2.of('hello').length === 1, 5_000, 'hello 2');
    expect(s2.of('hello')[0]?.unacknowledgedResults.map((r) => r.commandId)).toEqual([command.id]);

    // Acknowledged: it is no longer resent.
    s2.send({ $case: 'resultAck', value: { commandId: command.id } });
    await quiet.waitFor(() => agent.journal.lookup(command.id).state === 'acknowledged', 5_000, 'tombstone');
    s2.drop();
    const s3 = await streamAt(3);
    await quiet.waitFor(() => s3.of('hello').length === 1, 5_000, 'hello 3');
    expect(s3.of('hello')[0]?.unacknowledgedResults).toEqual([]);
    expect(executions.get(command.id)).toBe(1);
  });

  it('answers a redelivered command from the journal and never runs it twice', async () => {
    const { executions, stream } = await start();
    const command = noopCommand({ sleepMs: 300 });
    const s0 = await stream(0);
    await waitOn(s0, 'welcome', (s) => s.of('heartbeat').length > 0);

    // Delivered twice while it runs: acknowledged twice, run once, one result.
    s0.send({ $case: 'command', value: command });
    s0.send({ $case: 'command', value: command });
    await waitOn(s0, 'two acks', (s) => s.of('commandAck').length === 2);
    await waitOn(s0, 'the result', (s) => resultsFor(s, command.id).length === 1);

    // Redelivered after a reconnect (its result was acknowledged meanwhile): not run again.
    s0.drop();
    const s1 = await stream(1);
    await waitOn(s1, 'welcome', (s) => s.of('heartbeat').length > 0);
    s1.send({ $case: 'command', value: command });
    await waitOn(s1, 'the result again', (s) => resultsFor(s, command.id).length === 1);
    expect(resultsFor(s1, command.id)[0]?.status).toBe(CommandStatus.SUCCEEDED);
    expect(s1.of('commandAck').map((a) => a.commandId)).toEqual([command.id]);
    expect(executions.get(command.id)).toBe(1);
    // The second delivery on the first stream produced no second result either.
    expect(resultsFor(s0, command.id)).toHaveLength(1);
  });

  it('stops a running command on Cancel (CANCELLED) and takes a queued one out of the queue', async () => {
    const { executions, stream } = await start();
    const s0 = await stream(0);
    await waitOn(s0, 'welcome', (s) => s.of('heartbeat').length > 0);
    const running = noopCommand({ sleepMs: 30_000, environmentKey: 'env-1' });
    const queued = noopCommand({ sleepMs: 30_000, environmentKey: 'env-1' });
    s0.send({ $case: 'command', value: running });
    s0.send({ $case: 'command', value: queued });
    await waitOn(s0, 'two acks', (s) => s.of('commandAck').length === 2);
    await waitOn(s0, 'the first is running', () => executions.get(running.id) === 1);
    const heartbeatIds = () => s0.of('heartbeat').at(-1)?.runningCommandIds ?? [];
    await waitOn(s0, 'both in a heartbeat', () => heartbeatIds().length === 2);

    s0.send({ $case: 'cancel', value: { commandId: queued.id } });
    await waitOn(s0, 'queued cancelled', (s) => resultsFor(s, queued.id).length === 1);
    expect(resultsFor(s0, queued.id)[0]).toMatchObject({
      status: CommandStatus.CANCELLED,
      errorCode: 'command_cancelled',
    });
    expect(executions.get(queued.id)).toBeUndefined();

    const cancelledAt = performance.now();
    s0.send({ $case: 'cancel', value: { commandId: running.id } });
    await waitOn(s0, 'running cancelled', (s) => resultsFor(s, running.id).length === 1);
    expect(performance.now() - cancelledAt).toBeLessThan(1_000);
    expect(resultsFor(s0, running.id)[0]).toMatchObject({
      status: CommandStatus.CANCELLED,
      errorCode: 'command_cancelled',
    });
  });

  it('rejects a command whose deadline has passed, and stops one at its deadline', async () => {
    const { executions, stream } = await start();
    const s0 = await stream(0);
    await waitOn(s0, 'welcome', (s) => s.of('heartbeat').length > 0);

    const late = noopCommand({ deadlineUnixMs: Date.now() - 1_000 });
    s0.send({ $case: 'command', value: late });
    await waitOn(s0, 'rejection', (s) => resultsFor(s, late.id).length === 1);
    expect(resultsFor(s0, late.id)[0]).toMatchObject({
      status: CommandStatus.REJECTED,
      errorCode: 'deadline_exceeded',
    });
    expect(executions.get(late.id)).toBeUndefined();

    const slow = noopCommand({ sleepMs: 30_000, deadlineUnixMs: Date.now() + 300 });
    s0.send({ $case: 'command', value: slow });
    await waitOn(s0, 'stopped at the deadline', (s) => resultsFor(s, slow.id).length === 1);
    expect(resultsFor(s0, slow.id)[0]).toMatchObject({
      status: CommandStatus.CANCELLED,
      errorCode: 'deadline_exceeded',
    });
    expect(executions.get(slow.id)).toBe(1);
  });

  it('rejects a command without a payload case it knows (unsupported_command), and answers the same on redelivery', async () => {
    const { stream } = await start();
    const s0 = await stream(0);
    await waitOn(s0, 'welcome', (s) => s.of('heartbeat').length > 0);
    const unknown = noopCommand({ payload: undefined });
    s0.send({ $case: 'command', value: unknown });
    await waitOn(s0, 'rejection', (s) => resultsFor(s, unknown.id).length === 1);
    expect(resultsFor(s0, unknown.id)[0]).toMatchObject({
      status: CommandStatus.REJECTED,
      errorCode: 'unsupported_command',
    });
    s0.send({ $case: 'command', value: unknown });
    await waitOn(s0, 'second answer', (s) => resultsFor(s, unknown.id).length === 2);
    expect(resultsFor(s0, unknown.id)[1]?.status).toBe(CommandStatus.REJECTED);
  });

  it('answers ping with node facts and reports a failing noop as FAILED', async () => {
    const { stream } = await start();
    const s0 = await stream(0);
    await waitOn(s0, 'welcome', (s) => s.of('heartbeat').length > 0);
    const ping = { ...noopCommand(), payload: { $case: 'ping' as const, value: {} } };
    const failing = noopCommand({ fail: true });
    s0.send({ $case: 'command', value: ping });
    s0.send({ $case: 'command', value: failing });
    await waitOn(s0, 'two results', (s) => s.of('commandResult').length === 2);
    const output = JSON.parse(resultsFor(s0, ping.id)[0]?.outputJson ?? '{}');
    expect(output.agent_time_ms).toBeGreaterThan(Date.now() - 10_000);
    expect(output.agent_version).toMatch(/^\d+\./);
    expect(resultsFor(s0, failing.id)[0]).toMatchObject({
      status: CommandStatus.FAILED,
      errorCode: 'command_failed',
      errorMessage: 'asked to fail',
    });
  });
});

describe('certificate renewal', () => {
  it('renews at two-thirds of the lifetime and uses the new certificate on the next connection', async () => {
    // Certificates issued "20 hours ago" for one day: 83% of their lifetime is gone.
    const oldCa = await createCertificateAuthority({
      commonName: 'wpcp test CA',
      validityDays: 30,
      now: new Date(Date.now() - 2 * 24 * 3_600_000),
    });
    const aging = await FakeControlPlane.start({
      ca: oldCa,
      clientCertValidityDays: 1,
      issueAt: () => new Date(Date.now() - 20 * 3_600_000),
    });
    cleanups.push(() => aging.close());
    const { agent, streams, stateDir } = await start({ on: aging });
    const renewed = new Promise<Date>((resolve) => agent.session.once('renewed', (r) => resolve(r.notAfter)));
    await aging.waitFor(() => streams().length > 0, 10_000, 'stream 0');
    const s0 = streams()[0] as FakeStream;
    await aging.waitFor(() => s0.of('renewCertificateRequest').length === 1, 5_000, 'renewal request');
    await renewed;

    const newCert = await readFile(path.join(stateDir, CERT_FILE), 'utf8');
    expect(certificateInfo(newCert).fingerprintSha256).not.toBe(
      s0.certFingerprint.replaceAll(':', '').toLowerCase(),
    );
    s0.drop();
    await aging.waitFor(() => streams().length > 1, 10_000, 'stream 1');
    const s1 = streams()[1] as FakeStream;
    expect(s1.certFingerprint.replaceAll(':', '').toLowerCase()).toBe(
      certificateInfo(newCert).fingerprintSha256,
    );
    expect(s1.nodeId).toBe(s0.nodeId);
  });
});

describe('splitResults', () => {
  it('keeps Hello under its size budget and sends the rest after Welcome, oldest first', () => {
    const results = Array.from({ length: 5 }, (_, i) => ({
      commandId: `c${i}`,
      status: CommandStatus.SUCCEEDED,
      errorCode: '',
      errorMessage: '',
      outputJson: 'x'.repeat(1_000),
    }));
    const { inHello, afterWelcome } = splitResults(results, 2_500);
    expect(inHello.map((r) => r.commandId)).toEqual(['c0', 'c1']);
    expect(afterWelcome.map((r) => r.commandId)).toEqual(['c2', 'c3', 'c4']);
    expect(splitResults(results).afterWelcome).toEqual([]);
  });
});
