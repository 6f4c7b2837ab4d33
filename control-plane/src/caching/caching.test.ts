import { CommandStatus } from '@wpcp/shared/agent-protocol';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type RecordedCommand,
  startTestControlPlane,
  startTestNode,
  type TestControlPlane,
  type TestNode,
  waitFor,
} from '../testing/index.ts';

// The caching API against an in-test agent that answers every command (or fails or holds the ones
// a test scripts): validation, invalid_state, the commands the jobs send, and the environment's
// flags changing only when a job succeeded. Tests run in order on one node and one control plane.

let cp: TestControlPlane;
let auth: string;
let web1: TestNode;

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    env: {
      WPCP_NODE_HEARTBEAT_INTERVAL_MS: '60000',
      WPCP_COMMAND_POLL_MS: '200',
      WPCP_COMMAND_RESULT_GRACE_SECONDS: '1',
    },
  });
  auth = await cp.login();
  web1 = await startTestNode(cp, auth, 'web1');
});
afterAll(async () => {
  web1?.close();
  await cp?.destroy();
});

const request = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) =>
  cp.app.inject({
    method,
    url,
    headers: { authorization: auth },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });

async function accepted(method: 'POST' | 'PATCH', url: string, payload?: object): Promise<string> {
  const res = await request(method, url, payload);
  expect(res.statusCode, res.body).toBe(202);
  expect(Object.keys(res.json())).toEqual(['job_id']);
  return res.json().job_id;
}

async function jobEnds(id: string) {
  return waitFor(
    async () => {
      const job = (await request('GET', `/api/jobs/${id}`)).json();
      return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : undefined;
    },
    20_000,
    `job ${id} to end`,
  );
}

async function jobCount(): Promise<number> {
  const row = await cp.db.selectFrom('jobs').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

function commandsOf(jobId: string): RecordedCommand[] {
  return web1.commands.filter((c) => c.id.startsWith(`${jobId}:`));
}

const flags = async (id: string) => {
  const environment = (await request('GET', `/api/environments/${id}`)).json();
  return { fastcgi: environment.fastcgi_cache_enabled, redis: environment.redis_cache_enabled };
};

let environment: { id: string; on_node: Record<string, string> };
let spec: Record<string, string>;

describe('caching API', () => {
  it('sets up an active environment with two hostnames', async () => {
    const job = await jobEnds(
      await accepted('POST', '/api/sites', { name: 'Cache shop', slug: 'cacheshop' }),
    );
    expect(job.status).toBe('succeeded');
    const site = (await request('GET', `/api/sites/${job.target.id}`)).json();
    environment = site.environments[0];
    const domain = await jobEnds(
      await accepted('POST', `/api/environments/${environment.id}/domains`, {
        hostname: 'www.cache.example',
      }),
    );
    expect(domain.status).toBe('succeeded');
    spec = {
      name: environment.on_node.name as string,
      systemUser: environment.on_node.system_user as string,
      databaseName: environment.on_node.database_name as string,
      databaseUser: environment.on_node.database_user as string,
      redisPrefix: environment.on_node.redis_prefix as string,
    };
    expect(await flags(environment.id)).toEqual({ fastcgi: false, redis: false });
  });

  it('refuses bodies that are not one or two booleans (400, no job)', async () => {
    const before = await jobCount();
    for (const body of [
      {},
      { fastcgi_cache_enabled: 'true' },
      { redis_cache_enabled: 1 },
      { fastcgi_cache_enabled: null },
      { fastcgi_cache_enabled: true, other: true },
      [],
      { fastcgi_cache_enabled: [true] },
    ]) {
      const res = await request('PATCH', `/api/environments/${environment.id}/cache`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
    }
    expect(
      (await request('PATCH', '/api/environments/not-a-uuid/cache', { redis_cache_enabled: true }))
        .statusCode,
    ).toBe(400);
    expect(await jobCount()).toBe(before);
  });

  it('answers 404 for an unknown environment and 409 invalid_state when it is not active (no job)', async () => {
    const before = await jobCount();
    const unknown = '0b4c7c52-58a4-4a3a-9d51-5d1e8f7e2a10';
    expect(
      (await request('PATCH', `/api/environments/${unknown}/cache`, { redis_cache_enabled: true }))
        .statusCode,
    ).toBe(404);
    expect((await request('POST', `/api/environments/${unknown}/cache/purge`)).statusCode).toBe(404);
    await cp.db
      .updateTable('environments')
      .set({ status: 'failed' })
      .where('id', '=', environment.id)
      .execute();
    try {
      const patch = await request('PATCH', `/api/environments/${environment.id}/cache`, {
        fastcgi_cache_enabled: true,
      });
      expect(patch.statusCode).toBe(409);
      expect(patch.json().code).toBe('invalid_state');
      const purge = await request('POST', `/api/environments/${environment.id}/cache/purge`);
      expect(purge.statusCode).toBe(409);
      expect(purge.json().code).toBe('invalid_state');
    } finally {
      await cp.db
        .updateTable('environments')
        .set({ status: 'active' })
        .where('id', '=', environment.id)
        .execute();
    }
    expect(await jobCount()).toBe(before);
  });

  it('turns the page cache on: ConfigureNginx with the hostnames (primary first); the flag changes only on success', async () => {
    web1.holdWhen((c) => c.type === 'configureNginx');
    const jobId = await accepted('PATCH', `/api/environments/${environment.id}/cache`, {
      fastcgi_cache_enabled: true,
    });
    const held = await waitFor(async () => commandsOf(jobId)[0], 10_000, 'the nginx command');
    web1.holdWhen(undefined);
    expect(held.environmentKey).toBe(environment.id);
    expect(held.value).toEqual({
      environment: spec,
      hostnames: ['cacheshop--production.web1.test', 'www.cache.example'],
      fastcgiCache: true,
      remove: false,
    });
    // The node has not answered yet: the environment still says off.
    expect(await flags(environment.id)).toEqual({ fastcgi: false, redis: false });
    web1.stream.result(held.id, CommandStatus.SUCCEEDED, { outputJson: '{}' });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({
      status: 'succeeded',
      type: 'set-environment-cache',
      target: { type: 'environment', id: environment.id },
      output: { fastcgi_cache_enabled: true, redis_cache_enabled: false },
    });
    expect(commandsOf(jobId).map((c) => c.type)).toEqual(['configureNginx']);
    expect(await flags(environment.id)).toEqual({ fastcgi: true, redis: false });
  });

  it('keeps the page cache flag when a domain job regenerates nginx', async () => {
    const jobId = await accepted('POST', `/api/environments/${environment.id}/domains`, {
      hostname: 'shop.cache.example',
    });
    expect((await jobEnds(jobId)).status).toBe('succeeded');
    const nginx = commandsOf(jobId).filter((c) => c.type === 'configureNginx');
    expect(nginx.length).toBeGreaterThan(0);
    for (const command of nginx) expect(command.value.fastcgiCache).toBe(true);
  });

  it('a failed object-cache change leaves the flags as they were', async () => {
    web1.failWhen((c) => c.type === 'setObjectCache', 'wp redis enable: Error: scripted');
    const jobId = await accepted('PATCH', `/api/environments/${environment.id}/cache`, {
      redis_cache_enabled: true,
    });
    const job = await jobEnds(jobId);
    web1.failWhen(undefined);
    expect(job.status).toBe('failed');
    expect(commandsOf(jobId)[0]).toMatchObject({
      type: 'setObjectCache',
      environmentKey: environment.id,
      value: { environment: spec, enabled: true },
    });
    expect(await flags(environment.id)).toEqual({ fastcgi: true, redis: false });
  });

  it('changes both caches in one job: nginx without the page cache, then the object cache', async () => {
    const jobId = await accepted('PATCH', `/api/environments/${environment.id}/cache`, {
      fastcgi_cache_enabled: false,
      redis_cache_enabled: true,
    });
    const job = await jobEnds(jobId);
    expect(job.status).toBe('succeeded');
    const sent = commandsOf(jobId);
    expect(sent.map((c) => c.type)).toEqual(['configureNginx', 'setObjectCache']);
    expect(sent[0]?.value).toMatchObject({ fastcgiCache: false, hostnames: expect.any(Array) });
    expect(sent[1]?.value).toEqual({ environment: spec, enabled: true });
    expect(job.output).toEqual({ fastcgi_cache_enabled: false, redis_cache_enabled: true });
    expect(await flags(environment.id)).toEqual({ fastcgi: false, redis: true });
  });

  it('purges: one PurgeCache command; the job output has the counts the node reported', async () => {
    web1.holdWhen((c) => c.type === 'purgeCache');
    const jobId = await accepted('POST', `/api/environments/${environment.id}/cache/purge`);
    const held = await waitFor(async () => commandsOf(jobId)[0], 10_000, 'the purge command');
    web1.holdWhen(undefined);
    expect(held).toMatchObject({
      type: 'purgeCache',
      environmentKey: environment.id,
      value: { environment: spec },
    });
    web1.stream.result(held.id, CommandStatus.SUCCEEDED, {
      outputJson: JSON.stringify({ page_cache_files_removed: 7, redis_keys_removed: 42 }),
    });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({
      status: 'succeeded',
      type: 'purge-environment-cache',
      output: { page_cache_files_removed: 7, redis_keys_removed: 42 },
    });
  });
});
