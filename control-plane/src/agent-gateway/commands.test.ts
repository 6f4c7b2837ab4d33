import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { CommandResult, CommandStatus, LogStream } from '@wpcp/shared/agent-protocol';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { JobCatalogue } from '../jobs/job-definition.ts';
import {
  type AgentIdentity,
  createNode,
  enrollAgent,
  nodeCommandJob,
  startTestControlPlane,
  TestAgentStream,
  type TestControlPlane,
  waitFor,
} from '../testing/index.ts';
import { commandId } from './commands.ts';

let cp: TestControlPlane;
let auth: string;
const streams: TestAgentStream[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    catalogue: new JobCatalogue().register(nodeCommandJob({ retryLimit: 1 })),
    env: {
      WPCP_COMMAND_POLL_MS: '200',
      WPCP_COMMAND_RESULT_GRACE_SECONDS: '1',
      WPCP_JOB_LOG_MAX_LINES: '40',
    },
  });
  auth = await cp.login();
});
afterAll(async () => {
  for (const stream of streams) stream.close();
  await cp?.destroy();
});

let nodeCount = 0;
async function enrolledNode(): Promise<AgentIdentity> {
  const node = await createNode(cp, auth, `cmd-node-${++nodeCount}`);
  return enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
}

async function connect(identity: AgentIdentity, hello: Parameters<TestAgentStream['open']>[0] = {}) {
  const stream = new TestAgentStream(cp.grpcAddress, identity);
  streams.push(stream);
  await stream.open(hello);
  return stream;
}

const runJob = (payload: Record<string, unknown>) =>
  cp.enqueuer.enqueue({ type: 'test-node-command', payload });

async function getJob(id: string) {
  return (
    await cp.app.inject({ method: 'GET', url: `/api/jobs/${id}`, headers: { authorization: auth } })
  ).json();
}

function jobEnds(id: string, timeoutMs = 20_000) {
  return waitFor(
    async () => {
      const job = await getJob(id);
      return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : undefined;
    },
    timeoutMs,
    `job ${id} to end`,
  );
}

const commandRow = (id: string) =>
  cp.db.selectFrom('agent_commands').selectAll().where('id', '=', id).executeTakeFirst();

async function waitForCommandStatus(id: string, status: string) {
  return waitFor(
    async () => ((await commandRow(id))?.status === status ? true : undefined),
    5_000,
    `${id} ${status}`,
  );
}

describe('command delivery and results', () => {
  it('delivers a command created while the node is offline as soon as it connects, and records the result before acknowledging it', async () => {
    const identity = await enrolledNode();
    const jobId = await runJob({ node_id: identity.nodeId, sleep_ms: 5 });
    const id = commandId(jobId, 'run', 0);
    expect(id).toBe(`${jobId}:run`);
    await waitForCommandStatus(id, 'pending');

    const stream = await connect(identity);
    const command = await stream.next('command');
    expect(command).toMatchObject({ id, payload: { $case: 'noop', value: { sleepMs: 5 } } });
    expect(command.deadlineUnixMs).toBeGreaterThan(Date.now() + 14 * 60_000);
    stream.ack(id);
    await waitForCommandStatus(id, 'running');
    stream.result(id, CommandStatus.SUCCEEDED, { outputJson: '{"slept_ms": 5}' });
    await stream.next('resultAck', (ack) => ack.commandId === id);
    // Acknowledged only once persisted.
    expect(await commandRow(id)).toMatchObject({ status: 'succeeded', output: { slept_ms: 5 } });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', output: { command_id: id, output: { slept_ms: 5 } } });
  });

  it('delivers a command to a connected node as soon as it is created (NOTIFY, not the poll)', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    stream.autoAnswer();
    const started = Date.now();
    const job = await jobEnds(await runJob({ node_id: identity.nodeId }));
    expect(job.status).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('re-attaches a retried step to its command instead of sending it again', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    const seen: string[] = [];
    stream.autoAnswer((command) => {
      seen.push(command.id);
      return { status: CommandStatus.SUCCEEDED, outputJson: '{"n": 1}' };
    });
    // The step fails after its command succeeded; the retry finds the command's result.
    const jobId = await runJob({ node_id: identity.nodeId, fail_after_on_attempts: [1] });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', attempt: 2, output: { command_id: `${jobId}:run` } });
    expect(seen).toEqual([`${jobId}:run`]);
    const rows = await cp.db.selectFrom('agent_commands').select('id').where('job_id', '=', jobId).execute();
    expect(rows).toHaveLength(1);
  });

  it('redelivers an unanswered command under the same id after a reconnect, and takes a result from Hello', async () => {
    const identity = await enrolledNode();
    const first = await connect(identity);
    const jobId = await runJob({ node_id: identity.nodeId });
    const id = `${jobId}:run`;
    await first.next('command', (c) => c.id === id);
    first.close(); // the stream dies before the agent acknowledged anything

    const second = await connect(identity);
    const again = await second.next('command', (c) => c.id === id);
    expect(again.id).toBe(id);
    second.ack(id);
    await waitForCommandStatus(id, 'running');
    second.close(); // dies again while the command runs; the agent keeps the result

    // The result produced while disconnected arrives in the next Hello; the command is not resent.
    const result = CommandResult.fromPartial({
      commandId: id,
      status: CommandStatus.SUCCEEDED,
      outputJson: '{}',
    });
    const third = new TestAgentStream(cp.grpcAddress, identity);
    streams.push(third);
    await third.open({ unacknowledgedResults: [result], runningCommandIds: [] });
    await third.next('resultAck', (ack) => ack.commandId === id);
    expect((await jobEnds(jobId)).status).toBe('succeeded');
    await sleep(300);
    expect(third.received.filter((m) => m.message?.$case === 'command')).toEqual([]);
  });

  it('does not resend a command the node reports running in its Hello', async () => {
    const identity = await enrolledNode();
    const first = await connect(identity);
    const jobId = await runJob({ node_id: identity.nodeId });
    const id = `${jobId}:run`;
    await first.next('command', (c) => c.id === id);
    first.close();
    const second = await connect(identity, { runningCommandIds: [id] });
    await waitForCommandStatus(id, 'running');
    await sleep(400);
    expect(second.received.filter((m) => m.message?.$case === 'command')).toEqual([]);
    second.result(id, CommandStatus.SUCCEEDED);
    expect((await jobEnds(jobId)).status).toBe('succeeded');
  });

  it('refuses a result for another node’s command, and acknowledges one for an unknown command', async () => {
    const owner = await enrolledNode();
    const other = await enrolledNode();
    const ownerStream = await connect(owner);
    const otherStream = await connect(other);
    const jobId = await runJob({ node_id: owner.nodeId });
    const id = `${jobId}:run`;
    await ownerStream.next('command', (c) => c.id === id);
    otherStream.result(id, CommandStatus.FAILED, { errorMessage: 'not yours' });
    await expect(otherStream.next('resultAck', () => true, 800)).rejects.toThrow(/no resultAck/);
    expect((await commandRow(id))?.status).toBe('delivered');
    expect(cp.logs.some((line) => line.msg === 'result refused: not a command of this node')).toBe(true);

    otherStream.result('no-such-command', CommandStatus.SUCCEEDED);
    await otherStream.next('resultAck', (ack) => ack.commandId === 'no-such-command');

    ownerStream.result(id, CommandStatus.SUCCEEDED, { outputJson: '{"mine": true}' });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', output: { output: { mine: true } } });
  });

  it('treats a duplicate result as a no-op and acknowledges it again', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    const jobId = await runJob({ node_id: identity.nodeId });
    const id = `${jobId}:run`;
    await stream.next('command');
    stream.result(id, CommandStatus.SUCCEEDED, { outputJson: '{"first": true}' });
    await stream.next('resultAck');
    stream.result(id, CommandStatus.FAILED, { errorMessage: 'late duplicate' });
    await stream.next('resultAck');
    expect(await commandRow(id)).toMatchObject({ status: 'succeeded', output: { first: true } });
    expect((await jobEnds(jobId)).status).toBe('succeeded');
  });
});

describe('command failures', () => {
  it('withdraws a command at its deadline when the node never connects: node_unreachable, and it never runs', async () => {
    const identity = await enrolledNode();
    const jobId = await runJob({ node_id: identity.nodeId, deadline_ms: 1_000 });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'failed', error_code: 'node_unreachable', attempt: 2 });
    expect(job.error_message).toMatch(/withdrawn/);
    // It never reached the node, so the retry could safely send it again under a new id (and that expired too).
    const rows = await cp.db
      .selectFrom('agent_commands')
      .select(['id', 'status', 'delivered_at'])
      .where('job_id', '=', jobId)
      .orderBy('generation')
      .execute();
    expect(rows).toEqual([
      { id: `${jobId}:run`, status: 'expired', delivered_at: null },
      { id: `${jobId}:run:1`, status: 'expired', delivered_at: null },
    ]);

    const stream = await connect(identity);
    await sleep(500);
    expect(stream.received.filter((m) => m.message?.$case === 'command')).toEqual([]);
  });

  it('fails with node_unreachable when a delivered command reports no result past its deadline and grace', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    const jobId = await runJob({ node_id: identity.nodeId, deadline_ms: 800 });
    await stream.next('command');
    const job = await jobEnds(jobId);
    // The retry re-attached to the delivered command (never sending a second one) and gave up too.
    expect(job).toMatchObject({ status: 'failed', error_code: 'node_unreachable', attempt: 2 });
    expect(job.error_message).toMatch(/outcome is unknown/);
    const rows = await cp.db
      .selectFrom('agent_commands')
      .select(['id', 'status'])
      .where('job_id', '=', jobId)
      .execute();
    expect(rows).toEqual([{ id: `${jobId}:run`, status: 'delivered' }]);
    expect(stream.received.filter((m) => m.message?.$case === 'command')).toEqual([]);
  });

  it('fails with command_interrupted when the agent died while running it', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    stream.autoAnswer(() => ({ status: CommandStatus.INTERRUPTED, errorMessage: 'agent restarted' }));
    const job = await jobEnds(await runJob({ node_id: identity.nodeId }));
    expect(job).toMatchObject({ status: 'failed', error_code: 'command_interrupted', attempt: 1 });
  });

  it('sends an interrupted command again under a new id when the step is safe to retry', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    const seen: string[] = [];
    stream.autoAnswer((command) => {
      seen.push(command.id);
      return seen.length === 1
        ? { status: CommandStatus.INTERRUPTED }
        : { status: CommandStatus.SUCCEEDED, outputJson: '{"second": true}' };
    });
    const jobId = await runJob({ node_id: identity.nodeId, safe_to_retry: true });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', output: { command_id: `${jobId}:run:1` } });
    expect(seen).toEqual([`${jobId}:run`, `${jobId}:run:1`]);
  });

  it('maps FAILED to command_failed and REJECTED to command_rejected, with the node’s reason', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    let answer: Partial<CommandResult> = {
      status: CommandStatus.FAILED,
      errorCode: 'nginx_test_failed',
      errorMessage: 'nginx -t said no; password=hunter2',
    };
    stream.autoAnswer(() => answer);
    const failed = await jobEnds(await runJob({ node_id: identity.nodeId }));
    expect(failed).toMatchObject({ status: 'failed', error_code: 'command_failed', attempt: 1 });
    expect(failed.error_message).toContain('nginx_test_failed');
    expect(failed.error_message).toContain('nginx -t said no');
    expect(failed.error_message).not.toContain('hunter2');

    answer = {
      status: CommandStatus.REJECTED,
      errorCode: 'unsupported_command',
      errorMessage: 'unknown payload',
    };
    const rejected = await jobEnds(await runJob({ node_id: identity.nodeId }));
    expect(rejected).toMatchObject({ status: 'failed', error_code: 'command_rejected' });
    expect(rejected.error_message).toContain('unsupported_command');
  });

  it('withdraws the pending commands of a node that is disabled: node_disabled', async () => {
    const identity = await enrolledNode();
    const jobId = await runJob({ node_id: identity.nodeId });
    await waitForCommandStatus(`${jobId}:run`, 'pending');
    await cp.app.inject({
      method: 'POST',
      url: `/api/nodes/${identity.nodeId}/disable`,
      headers: { authorization: auth },
    });
    const job = await jobEnds(jobId, 5_000);
    expect(job).toMatchObject({ status: 'failed', error_code: 'node_disabled' });
  });
});

describe('cancellation, progress and logs', () => {
  it('sends Cancel to the node when the job is cancelled', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    const jobId = await runJob({ node_id: identity.nodeId, sleep_ms: 60_000 });
    const id = `${jobId}:run`;
    await stream.next('command');
    stream.ack(id);
    await waitForCommandStatus(id, 'running');
    const res = await cp.app.inject({
      method: 'POST',
      url: `/api/jobs/${jobId}/cancel`,
      headers: { authorization: auth },
    });
    expect(res.statusCode).toBe(200);
    const cancel = await stream.next('cancel', (c) => c.commandId === id, 5_000);
    expect(cancel.commandId).toBe(id);
    stream.result(id, CommandStatus.CANCELLED, { errorMessage: 'cancelled' });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'cancelled', error_code: 'job_cancelled' });
    expect((await commandRow(id))?.status).toBe('cancelled');
  });

  it('shows progress on the running step and stores log lines in order, redacted and bounded', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    const jobId = await runJob({ node_id: identity.nodeId });
    const id = `${jobId}:run`;
    await stream.next('command');
    stream.ack(id);
    stream.send({
      $case: 'commandProgress',
      value: { commandId: id, step: 'dump_database', percent: 40, message: 'dumping' },
    });
    stream.send({
      $case: 'commandLog',
      value: { commandId: id, stream: LogStream.STDOUT, line: 'first line' },
    });
    stream.send({
      $case: 'commandLog',
      value: {
        commandId: id,
        stream: LogStream.STDERR,
        line: "define( 'DB_PASSWORD', 's3cret' ); token=abc123",
      },
    });
    const running = await waitFor(
      async () => {
        const job = await getJob(jobId);
        return job.steps[0]?.progress ? job : undefined;
      },
      5_000,
      'progress on the step',
    );
    expect(running.steps[0].progress).toEqual({ phase: 'dump_database', percent: 40, message: 'dumping' });
    for (let i = 0; i < 50; i++) {
      stream.send({
        $case: 'commandLog',
        value: { commandId: id, stream: LogStream.STDOUT, line: `line ${i}` },
      });
    }
    stream.result(id, CommandStatus.SUCCEEDED);
    expect((await jobEnds(jobId)).status).toBe('succeeded');

    const lines: { stream: string; line: string; command_id: string | null }[] = [];
    let cursor: string | null = null;
    do {
      const res = await cp.app.inject({
        method: 'GET',
        url: `/api/jobs/${jobId}/logs?limit=15${cursor ? `&cursor=${cursor}` : ''}`,
        headers: { authorization: auth },
      });
      expect(res.statusCode).toBe(200);
      const body: { items: typeof lines; next_cursor: string | null } = res.json();
      lines.push(...body.items);
      cursor = body.next_cursor;
    } while (cursor);
    expect(lines.slice(0, 3)).toEqual([
      expect.objectContaining({ stream: 'progress', line: '[40%] dump_database: dumping', command_id: id }),
      expect.objectContaining({ stream: 'stdout', line: 'first line' }),
      expect.objectContaining({
        stream: 'stderr',
        line: "define( 'DB_PASSWORD', '[redacted]' ); token=[redacted]",
      }),
    ]);
    expect(lines[3]?.line).toBe('line 0');
    // Bounded at 40 lines, plus one marker saying so.
    expect(lines).toHaveLength(41);
    expect(lines.at(-1)?.line).toMatch(/log truncated/);
    expect(JSON.stringify(lines)).not.toContain('s3cret');

    const unknown = await cp.app.inject({
      method: 'GET',
      url: '/api/jobs/00000000-0000-4000-8000-000000000000/logs',
      headers: { authorization: auth },
    });
    expect(unknown.statusCode).toBe(404);
  });

  it('pings a node end to end through the API (node-ping job)', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    stream.autoAnswer((command) => {
      expect(command.payload?.$case).toBe('ping');
      return { status: CommandStatus.SUCCEEDED, outputJson: '{"agent_time_ms": 1730000000000}' };
    });
    const res = await cp.app.inject({
      method: 'POST',
      url: `/api/nodes/${identity.nodeId}/ping`,
      headers: { authorization: auth },
    });
    expect(res.statusCode).toBe(202);
    const job = await jobEnds(res.json().job_id);
    expect(job).toMatchObject({
      type: 'node-ping',
      status: 'succeeded',
      target: { type: 'node', id: identity.nodeId },
      output: { agent_time_ms: 1730000000000, round_trip_ms: expect.any(Number) },
    });
  });
});

describe('the synchronous path', () => {
  it('answers with the node’s result', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    stream.autoAnswer(() => ({ status: CommandStatus.SUCCEEDED, outputJson: '{"agent_time_ms": 42}' }));
    const outcome = await cp.commands.sendAndWait(identity.nodeId, { $case: 'ping', value: {} });
    expect(outcome).toEqual({
      commandId: expect.stringMatching(/^sync:[0-9a-f-]{36}$/),
      output: { agent_time_ms: 42 },
    });
  });

  it('fails fast with node_unreachable when the node has no live stream', async () => {
    const identity = await enrolledNode();
    const started = Date.now();
    await expect(
      cp.commands.sendAndWait(identity.nodeId, { $case: 'ping', value: {} }),
    ).rejects.toMatchObject({
      code: 'node_unreachable',
    });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('fails with node_unreachable at its timeout when a connected node never answers', async () => {
    const identity = await enrolledNode();
    const stream = await connect(identity);
    const started = Date.now();
    await expect(
      cp.commands.sendAndWait(identity.nodeId, { $case: 'ping', value: {} }, 2_000),
    ).rejects.toMatchObject({
      code: 'node_unreachable',
      message: expect.stringMatching(/did not answer within 2000 ms/),
    });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1_900);
    expect(elapsed).toBeLessThan(4_500);
    expect((await stream.next('command')).payload?.$case).toBe('ping');
    expect(stream.status?.code ?? grpc.status.OK).toBe(grpc.status.OK);
  });
});
