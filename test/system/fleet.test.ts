import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase, waitFor } from '@wpcp/control-plane/testing';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  AgentUnderTest,
  apiClient,
  type ControlPlaneProcess,
  startControlPlaneProcess,
} from '../support/fleet.ts';

/**
 * The fleet end to end: control planes and real `wpcp-agent` processes talking gRPC with mutual
 * TLS over loopback, on one real PostgreSQL database.
 */
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: pg.Client;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await sql?.end();
  await database?.drop();
});

async function controlPlane(options: { env?: Record<string, string>; testJobs?: boolean } = {}) {
  // Some of these processes are killed with SIGKILL: the test owns their data dirs.
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wpcp-fleet-cp-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  options = { ...options, env: { WPCP_DATA_DIR: dataDir, ...options.env } };
  const cp = await startControlPlaneProcess({
    adminUrl: inject('postgresAdminUrl'),
    databaseUrl: database.url,
    ...options,
  });
  cleanups.push(() => cp.stop('SIGTERM'));
  return cp;
}

async function agent() {
  const a = await AgentUnderTest.create();
  cleanups.push(() => a.destroy());
  return a;
}

/** The gateway's certificate names localhost; agents dial it by that name. */
const server = (cp: ControlPlaneProcess) => cp.grpc.replace('127.0.0.1', 'localhost');

async function enrolledAgent(cp: ControlPlaneProcess, name: string) {
  const api = await apiClient(cp.http);
  const created = await api.post('/api/nodes', { name });
  expect(created.status).toBe(201);
  const a = await agent();
  const enrolled = await a.enroll(server(cp), created.body.join_token);
  expect(enrolled, enrolled.stderr).toMatchObject({ code: 0 });
  return { api, agent: a, nodeId: created.body.id as string, token: created.body.join_token as string };
}

function waitForNodeStatus(
  api: Awaited<ReturnType<typeof apiClient>>,
  nodeId: string,
  status: string,
  timeoutMs: number,
) {
  return waitFor(
    async () => {
      const node = await api.get(`/api/nodes/${nodeId}`);
      return node.body.status === status ? node.body : undefined;
    },
    timeoutMs,
    `node ${nodeId} to be ${status}`,
  );
}

function waitForJob(api: Awaited<ReturnType<typeof apiClient>>, jobId: string, timeoutMs: number) {
  return waitFor(
    async () => {
      const job = await api.get(`/api/jobs/${jobId}`);
      return ['succeeded', 'failed', 'cancelled'].includes(job.body.status as string) ? job.body : undefined;
    },
    timeoutMs,
    `job ${jobId} to finish`,
  );
}

describe('a node and its agent', () => {
  it('enrolls with the join token, is active within seconds, offline within 20 s of stopping, active again', async () => {
    const cp = await controlPlane();
    const { api, agent: a, nodeId, token } = await enrolledAgent(cp, 'web-1');

    const started = Date.now();
    a.start();
    const active = await waitForNodeStatus(api, nodeId, 'active', 10_000);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(active).toMatchObject({ id: nodeId, name: 'web-1' });
    expect(active.agent_version).toMatch(/^\d+\.\d+\.\d+/);
    expect(active.last_heartbeat_at).toBeTruthy();

    // The token was one-time: a second enrollment with it is refused, and nothing is written.
    const other = await agent();
    const reused = await other.enroll(server(cp), token);
    expect(reused.code).toBe(1);
    expect(reused.stderr).toMatch(/token/i);

    // Stop the agent: offline after three missed heartbeat intervals (5 s each by default).
    expect(await a.stop('SIGTERM')).toBe(0);
    const stopped = Date.now();
    await waitForNodeStatus(api, nodeId, 'offline', 20_000);
    expect(Date.now() - stopped).toBeLessThan(20_000);

    a.start();
    await waitForNodeStatus(api, nodeId, 'active', 10_000);
    const metrics = await api.get('/api/metrics');
    expect(metrics.body.nodes_active).toBe(1);
  });

  it('runs a command sent while the node was offline once it returns, and a disabled node is cut off', async () => {
    const cp = await controlPlane({ env: { WPCP_NODE_HEARTBEAT_INTERVAL_MS: '1000' } });
    const { api, agent: a, nodeId } = await enrolledAgent(cp, 'web-2');

    const ping = await api.post(`/api/nodes/${nodeId}/ping`);
    expect(ping.status).toBe(202);
    // Nobody there yet: the job waits for the node.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await api.get(`/api/jobs/${ping.body.job_id}`)).body.status).toBe('running');

    a.start();
    const job = await waitForJob(api, ping.body.job_id as string, 20_000);
    expect(job.status).toBe('succeeded');
    expect(job.output.round_trip_ms).toBeGreaterThanOrEqual(0);

    const disabled = await api.post(`/api/nodes/${nodeId}/disable`);
    expect(disabled.status).toBe(200);
    expect(disabled.body.status).toBe('disabled');
    // Its stream is closed at once and its certificate refused when it reconnects.
    await waitFor(
      async () => (/PERMISSION_DENIED|disabled/i.test(a.process?.stdout() ?? '') ? true : undefined),
      10_000,
      'the agent to be refused',
    );
    const afterDisable = await api.post(`/api/nodes/${nodeId}/ping`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await api.get(`/api/jobs/${afterDisable.body.job_id}`)).body.status).not.toBe('succeeded');

    await api.post(`/api/nodes/${nodeId}/enable`);
    await waitForNodeStatus(api, nodeId, 'active', 30_000);
  });
});

describe('control planes that die or come in pairs', () => {
  it('loses nothing when the control plane is killed mid-command: the job completes after restart, the command ran once', async () => {
    const env = {
      WPCP_NODE_HEARTBEAT_INTERVAL_MS: '1000',
      WPCP_JOB_SUPERVISE_SECONDS: '2',
      WPCP_GRPC_PORT: '0',
    };
    const first = await controlPlane({ env, testJobs: true });
    const { agent: a, nodeId } = await enrolledAgent(first, 'web-3');
    // The restarted control plane must answer on the same gRPC port the agent knows.
    const grpcPort = first.grpc.split(':')[1] as string;
    a.start({ WPCP_AGENT_RECONNECT_MAX_MS: '2000' });

    const jobId = await first.enqueue({ node_id: nodeId, command: 'noop', sleep_ms: 4000 });
    await waitFor(
      async () => {
        const { rows } = await sql.query('select status from agent_commands where job_id = $1', [jobId]);
        return rows[0]?.status === 'running' ? true : undefined;
      },
      15_000,
      'the command to run on the node',
    );
    expect(await first.stop('SIGKILL')).toBeNull();

    const second = await controlPlane({ env: { ...env, WPCP_GRPC_PORT: grpcPort }, testJobs: true });
    const api = await apiClient(second.http);
    const job = await waitForJob(api, jobId, 60_000);
    expect(job.status).toBe('succeeded');
    expect(job.attempt).toBeGreaterThanOrEqual(2);
    const { rows } = await sql.query('select id, status from agent_commands where job_id = $1', [jobId]);
    expect(rows).toEqual([{ id: `${jobId}:run`, status: 'succeeded' }]);
  });

  it('delivers a command created on replica A to a node connected to replica B', async () => {
    const env = { WPCP_NODE_HEARTBEAT_INTERVAL_MS: '1000', WPCP_COMMAND_POLL_MS: '30000' };
    const a = await controlPlane({ env, testJobs: true });
    const b = await controlPlane({ env, testJobs: false });
    const { api, agent: node, nodeId } = await enrolledAgent(b, 'web-4');
    node.start();
    await waitForNodeStatus(api, nodeId, 'active', 10_000);

    // Only A runs test-node-command jobs, so the command row is written by A; the stream is on B.
    const jobId = await a.enqueue({ node_id: nodeId, command: 'ping' });
    const job = await waitForJob(api, jobId, 15_000);
    expect(job.status).toBe('succeeded');
    expect(job.output.output.hostname).toBeTruthy();
  });
});
