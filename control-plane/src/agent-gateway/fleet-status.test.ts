import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type AgentIdentity,
  createNode,
  enrollAgent,
  startTestControlPlane,
  TestAgentStream,
  type TestControlPlane,
  waitFor,
} from '../testing/index.ts';

let cp: TestControlPlane;
let auth: string;
const streams: TestAgentStream[] = [];

// Heartbeats every 300 ms: a node is offline after 900 ms without one.
const env = {
  WPCP_NODE_HEARTBEAT_INTERVAL_MS: '300',
  WPCP_HEARTBEAT_FLUSH_MS: '200',
  WPCP_COMMAND_POLL_MS: '200',
};

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), { env });
  auth = await cp.login();
});
afterAll(async () => {
  for (const stream of streams) stream.close();
  await cp?.destroy();
});

let count = 0;
async function enrolledNode(target: TestControlPlane = cp, token = auth): Promise<AgentIdentity> {
  const node = await createNode(target, token, `status-node-${++count}`);
  return enrollAgent(target.grpcAddress, target.agentCa.certPem, node.join_token);
}

function connect(identity: AgentIdentity, address = cp.grpcAddress) {
  const stream = new TestAgentStream(address, identity);
  streams.push(stream);
  return stream;
}

async function apiNode(id: string) {
  return (
    await cp.app.inject({ method: 'GET', url: `/api/nodes/${id}`, headers: { authorization: auth } })
  ).json();
}

const nodeRow = (id: string) =>
  cp.db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

describe('heartbeats', () => {
  it('are held in memory and written in batches, one statement per flush for all nodes', async () => {
    const nodes = await Promise.all([1, 2, 3, 4, 5].map(() => enrolledNode()));
    const agents = nodes.map((identity) => connect(identity));
    await Promise.all(agents.map((agent) => agent.open()));
    await sleep(300); // let the Hello-time writes settle
    const before = { ...cp.gateway.heartbeats.stats };
    for (let beat = 1; beat <= 5; beat++) {
      for (const agent of agents) agent.heartbeat({ load1: beat, runningCommandIds: [`cmd-${beat}`] });
    }
    await waitFor(
      async () => {
        const rows = await cp.db
          .selectFrom('nodes')
          .select('stats')
          .where(
            'id',
            'in',
            nodes.map((n) => n.nodeId),
          )
          .execute();
        return rows.every((row) => row.stats?.load1 === 5) ? true : undefined;
      },
      3_000,
      'the last beats to be written',
    );
    const flushes = cp.gateway.heartbeats.stats.flushes - before.flushes;
    const written = cp.gateway.heartbeats.stats.heartbeatsWritten - before.heartbeatsWritten;
    // 25 beats reached the gateway; only the latest per node is written, all nodes in one statement.
    expect(flushes).toBeGreaterThanOrEqual(1);
    expect(flushes).toBeLessThanOrEqual(4);
    expect(written).toBeLessThanOrEqual(5 * flushes);
    expect(written).toBeLessThan(25);

    const node = await apiNode(nodes[0]?.nodeId ?? '');
    expect(node).toMatchObject({
      status: 'active',
      agent_version: '0.0.0-test',
      stats: {
        load1: 5,
        load5: 0.25,
        load15: 0.125,
        mem_total_bytes: 8 * 2 ** 30,
        mem_available_bytes: 6 * 2 ** 30,
        disk_total_bytes: 100 * 2 ** 30,
        disk_free_bytes: 60 * 2 ** 30,
      },
    });
    expect(Date.now() - Date.parse(node.last_heartbeat_at)).toBeLessThan(2_000);
    for (const agent of agents) agent.close();
  });

  it('derive the status: active, offline after three missed intervals, active again; each change logged once', async () => {
    const identity = await enrolledNode();
    const agent = connect(identity);
    await agent.open();
    const beating = setInterval(() => agent.heartbeat(), 300);
    try {
      await waitFor(
        async () => ((await apiNode(identity.nodeId)).status === 'active' ? true : undefined),
        3_000,
        'active',
      );
      await sleep(1_200);
      expect((await apiNode(identity.nodeId)).status).toBe('active');
      const metrics = (
        await cp.app.inject({ method: 'GET', url: '/api/metrics', headers: { authorization: auth } })
      ).json();
      expect(metrics.nodes_active).toBeGreaterThanOrEqual(1);
    } finally {
      clearInterval(beating);
    }
    // The stream stays open but the heartbeats stop (a hung agent): offline within ~3 intervals.
    const stopped = Date.now();
    await waitFor(
      async () => ((await apiNode(identity.nodeId)).status === 'offline' ? true : undefined),
      5_000,
      'offline',
    );
    expect(Date.now() - stopped).toBeLessThan(4_000);
    const offline = (
      await cp.app.inject({
        method: 'GET',
        url: '/api/nodes?status=offline&limit=200',
        headers: { authorization: auth },
      })
    ).json();
    expect(offline.items.map((n: { id: string }) => n.id)).toContain(identity.nodeId);
    const logsOf = (msg: string) =>
      cp.logs.filter((line) => line.msg === msg && line.node_id === identity.nodeId);
    await waitFor(async () => (logsOf('node is offline').length ? true : undefined), 3_000, 'offline logged');

    agent.heartbeat();
    await waitFor(
      async () => ((await apiNode(identity.nodeId)).status === 'active' ? true : undefined),
      3_000,
      'active again',
    );
    await waitFor(
      async () => (logsOf('node is back online').length ? true : undefined),
      3_000,
      'back logged',
    );
    const again = setInterval(() => agent.heartbeat(), 300);
    await sleep(1_000);
    clearInterval(again);
    expect(logsOf('node is active')).toHaveLength(1);
    expect(logsOf('node is offline')).toHaveLength(1);
    expect(logsOf('node is back online')).toHaveLength(1);
    agent.close();
  });
});

describe('streams', () => {
  it('lets the newest stream of a node win; a stale disconnect leaves the new one alone', async () => {
    const identity = await enrolledNode();
    const first = connect(identity);
    await first.open();
    const firstSession = (await nodeRow(identity.nodeId)).stream_session;
    const second = connect(identity);
    await second.open();
    expect((await first.ended).code).toBe(grpc.status.ABORTED);
    const row = await nodeRow(identity.nodeId);
    expect(row.stream_session).not.toBe(firstSession);
    expect(row.stream_session).toBe(cp.gateway.registry.get(identity.nodeId)?.sessionId);
    expect(row.stream_replica).toBe(cp.gateway.replicaId);
    first.close();
    await sleep(300);
    expect((await nodeRow(identity.nodeId)).stream_session).toBe(row.stream_session);
    expect(cp.gateway.registry.get(identity.nodeId)?.isOpen).toBe(true);
    await cp.commands.sendAndWait(identity.nodeId, { $case: 'ping', value: {} }, 300).catch(() => {});
    expect((await second.next('command')).payload?.$case).toBe('ping');

    second.close();
    await waitFor(
      async () => ((await nodeRow(identity.nodeId)).stream_session === null ? true : undefined),
      3_000,
      'the stream to be forgotten',
    );
    expect(cp.gateway.registry.get(identity.nodeId)).toBeUndefined();
  });

  it('hangs up every stream when the control plane stops, writing what it held', async () => {
    const other = await startTestControlPlane(inject('postgresAdminUrl'), { env });
    const token = await other.login();
    const identity = await enrolledNode(other, token);
    const agent = connect(identity, other.grpcAddress);
    await agent.open();
    agent.heartbeat({ load1: 7 });
    await sleep(50);
    const started = Date.now();
    const closing = other.close();
    expect((await agent.ended).code).toBe(grpc.status.UNAVAILABLE);
    await closing;
    expect(Date.now() - started).toBeLessThan(5_000);
    await other.destroy();
  });
});
