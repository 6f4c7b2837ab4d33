import * as grpc from '@grpc/grpc-js';
import { CommandStatus } from '@wpcp/shared/agent-protocol';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { JobCatalogue } from '../jobs/job-definition.ts';
import {
  createNode,
  createTestDatabase,
  enrollAgent,
  nodeCommandJob,
  startTestControlPlane,
  TestAgentStream,
  type TestControlPlane,
  waitFor,
} from '../testing/index.ts';

/**
 * Two control planes on one database. The polling floor is 30 s, so anything that happens within
 * a few seconds went through NOTIFY. Only A runs the test job type: its commands are created on A
 * and must reach nodes connected to B.
 */
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let a: TestControlPlane;
let b: TestControlPlane;
let auth: string;
const streams: TestAgentStream[] = [];
const env = { WPCP_COMMAND_POLL_MS: '30000' };

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  const shared = { url: database.url, drop: async () => {} };
  a = await startTestControlPlane(inject('postgresAdminUrl'), {
    database: shared,
    catalogue: new JobCatalogue().register(nodeCommandJob()),
    env,
  });
  b = await startTestControlPlane(inject('postgresAdminUrl'), { database: shared, env });
  auth = await a.login();
});
afterAll(async () => {
  for (const stream of streams) stream.close();
  await b?.destroy();
  await a?.destroy();
  await database?.drop();
});

let count = 0;
async function nodeOnB() {
  const node = await createNode(a, auth, `replica-node-${++count}`);
  const identity = await enrollAgent(b.grpcAddress, b.agentCa.certPem, node.join_token);
  const stream = new TestAgentStream(b.grpcAddress, identity);
  streams.push(stream);
  await stream.open();
  return { identity, stream };
}

describe('several control-plane replicas on one database', () => {
  it('share one agent CA: a token from A enrolls on B', async () => {
    expect(b.agentCa.certPem).toBe(a.agentCa.certPem);
    const { identity } = await nodeOnB();
    expect(identity.caPem).toBe(a.agentCa.certPem);
  });

  it('deliver a command created on A to a node connected to B, and return its result to A', async () => {
    const { identity, stream } = await nodeOnB();
    expect(a.gateway.registry.get(identity.nodeId)).toBeUndefined();
    expect(b.gateway.registry.get(identity.nodeId)?.isOpen).toBe(true);
    stream.autoAnswer(() => ({ status: CommandStatus.SUCCEEDED, outputJson: '{"via": "b"}' }));
    const started = Date.now();
    const jobId = await a.enqueuer.enqueue({
      type: 'test-node-command',
      payload: { node_id: identity.nodeId },
    });
    const job = await waitFor(
      async () => {
        const row = await a.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
        return row?.status === 'succeeded' || row?.status === 'failed' ? row : undefined;
      },
      10_000,
      'the job to end',
    );
    expect(job).toMatchObject({ status: 'succeeded', output: { output: { via: 'b' } } });
    expect(Date.now() - started).toBeLessThan(5_000);
    const node = await a.db
      .selectFrom('nodes')
      .selectAll()
      .where('id', '=', identity.nodeId)
      .executeTakeFirstOrThrow();
    expect(node.stream_replica).toBe(b.gateway.replicaId);
  });

  it('answer the synchronous path from A through the stream on B', async () => {
    const { identity, stream } = await nodeOnB();
    stream.autoAnswer(() => ({ status: CommandStatus.SUCCEEDED, outputJson: '{"agent_time_ms": 7}' }));
    const outcome = await a.commands.sendAndWait(identity.nodeId, { $case: 'ping', value: {} }, 5_000);
    expect(outcome.output).toEqual({ agent_time_ms: 7 });
  });

  it('close the stream on B at once when the node is disabled through A', async () => {
    const { identity, stream } = await nodeOnB();
    const started = Date.now();
    const res = await a.app.inject({
      method: 'POST',
      url: `/api/nodes/${identity.nodeId}/disable`,
      headers: { authorization: auth },
    });
    expect(res.statusCode).toBe(200);
    expect((await stream.ended).code).toBe(grpc.status.PERMISSION_DENIED);
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
