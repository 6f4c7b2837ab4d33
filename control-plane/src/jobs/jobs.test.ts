import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  journal,
  scriptedCatalogue,
  startTestControlPlane,
  type TestControlPlane,
  waitFor,
} from '../testing/index.ts';

let cp: TestControlPlane;
let auth: string;

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    catalogue: scriptedCatalogue({ retryLimit: 2 }),
  });
  auth = await cp.login();
});
afterAll(() => cp?.destroy());
beforeEach(() => {
  journal.length = 0;
});

async function getJob(id: string) {
  const res = await cp.app.inject({
    method: 'GET',
    url: `/api/jobs/${id}`,
    headers: { authorization: auth },
  });
  expect(res.statusCode).toBe(200);
  return res.json();
}

function waitForStatus(id: string, statuses: string[], timeoutMs = 20_000) {
  return waitFor(
    async () => {
      const job = await getJob(id);
      return statuses.includes(job.status) ? job : undefined;
    },
    timeoutMs,
    `job ${id} to become ${statuses.join(' or ')}`,
  );
}

const enqueue = (payload: object, extra: { target?: { type: string; id: string }; groupKey?: string } = {}) =>
  cp.enqueuer.enqueue({ type: 'test-scripted', payload, ...extra });

const eventsOf = (jobId: string) =>
  journal.filter((entry) => entry.jobId === jobId).map((e) => `${e.event}@${e.attempt}`);

describe('job lifecycle', () => {
  it('runs the named steps in order and records them on the job', async () => {
    const target = { type: 'site', id: '6f1c1d3e-8f6a-4c55-9c2a-1e1b1f1a1c1d' };
    const id = await enqueue({}, { target });
    const job = await waitForStatus(id, ['succeeded']);
    expect(job).toMatchObject({
      id,
      type: 'test-scripted',
      status: 'succeeded',
      target,
      attempt: 1,
      max_attempts: 3,
      error_code: null,
      error_message: null,
      output: { completed_steps: ['prepare', 'apply', 'verify'] },
    });
    expect(job.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
      'prepare:succeeded',
      'apply:succeeded',
      'verify:succeeded',
    ]);
    expect(Date.parse(job.finished_at)).toBeGreaterThanOrEqual(Date.parse(job.started_at));
    expect(eventsOf(id)).toEqual(['run:prepare@1', 'run:apply@1', 'run:verify@1']);
  });

  it('retries a retryable failure from the failed step, showing queued with the attempt count', async () => {
    const id = await enqueue({ fail_at: 'apply', fail_on_attempts: [1], fail_code: 'internal_error' });
    // Between the attempts the job waits as queued, showing the attempt that failed and why.
    const waiting = await waitFor(
      async () => {
        const job = await getJob(id);
        return job.status === 'succeeded' || (job.status === 'queued' && job.attempt === 1) ? job : undefined;
      },
      20_000,
      'the retry wait or the end',
    );
    if (waiting.status === 'queued') expect(waiting.error_code).toBe('internal_error');
    const job = await waitForStatus(id, ['succeeded']);
    expect(job.attempt).toBe(2);
    expect(eventsOf(id)).toEqual(['run:prepare@1', 'run:apply@1', 'run:apply@2', 'run:verify@2']);
  });

  it('fails at once on a permanent error and undoes what was done, newest first', async () => {
    const id = await enqueue({ fail_at: 'apply', fail_code: 'validation_failed' });
    const job = await waitForStatus(id, ['failed']);
    expect(job).toMatchObject({
      attempt: 1,
      error_code: 'validation_failed',
      error_message: 'scripted failure at apply on attempt 1',
    });
    expect(job.steps.map((s: { status: string }) => s.status)).toEqual(['succeeded', 'failed', 'pending']);
    expect(eventsOf(id)).toEqual(['run:prepare@1', 'run:apply@1', 'undo:apply@1', 'undo:prepare@1']);
  });

  it('fails after the last attempt when a retryable error persists', async () => {
    const id = await enqueue({ fail_at: 'verify', fail_code: 'internal_error' });
    const job = await waitForStatus(id, ['failed'], 30_000);
    expect(job.attempt).toBe(3);
    expect(job.error_code).toBe('internal_error');
    expect(eventsOf(id).filter((e) => e.startsWith('run:verify'))).toEqual([
      'run:verify@1',
      'run:verify@2',
      'run:verify@3',
    ]);
  });

  it('rejects a payload its job type does not accept, creating nothing', async () => {
    const before = await cp.db
      .selectFrom('jobs')
      .select(sql<string>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    await expect(enqueue({ wait_ms: 'soon' })).rejects.toMatchObject({ code: 'validation_failed' });
    const after = await cp.db
      .selectFrom('jobs')
      .select(sql<string>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
  });
});

describe('transactional enqueue', () => {
  it('leaves no job in either table when the surrounding transaction rolls back', async () => {
    let id = '';
    await expect(
      cp.db.transaction().execute(async (trx) => {
        id = await cp.enqueuer.enqueue({ type: 'test-scripted', payload: {} }, trx);
        throw new Error('something later in the same request failed');
      }),
    ).rejects.toThrow('something later');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(
      await cp.db.selectFrom('jobs').select('id').where('id', '=', id).executeTakeFirst(),
    ).toBeUndefined();
    const { rows } = await sql<{ n: string }>`select count(*) as n from pgboss.job where id = ${id}`.execute(
      cp.db,
    );
    expect(rows[0]?.n).toBe('0');
  });

  it('commits both halves together', async () => {
    const id = await cp.db
      .transaction()
      .execute((trx) => cp.enqueuer.enqueue({ type: 'test-scripted', payload: {} }, trx));
    const { rows } = await sql<{ n: string }>`select count(*) as n from pgboss.job where id = ${id}`.execute(
      cp.db,
    );
    expect(rows[0]?.n).toBe('1');
    await waitForStatus(id, ['succeeded']);
  });
});

describe('cancellation', () => {
  it('cancels a queued job at once and asks a running one to stop', async () => {
    const groupKey = 'env-cancel-test';
    const running = await enqueue({ hang_at: 'apply' }, { groupKey });
    await waitFor(
      async () => (eventsOf(running).includes('run:apply@1') ? true : undefined),
      10_000,
      'job to reach apply',
    );
    // Same group: waits behind the running job.
    const queued = await enqueue({}, { groupKey });
    expect((await getJob(queued)).status).toBe('queued');

    const cancelQueued = await cp.app.inject({
      method: 'POST',
      url: `/api/jobs/${queued}/cancel`,
      headers: { authorization: auth },
    });
    expect(cancelQueued.statusCode).toBe(200);
    expect(cancelQueued.json()).toMatchObject({ status: 'cancelled', error_code: 'job_cancelled' });

    const cancelRunning = await cp.app.inject({
      method: 'POST',
      url: `/api/jobs/${running}/cancel`,
      headers: { authorization: auth },
    });
    expect(cancelRunning.statusCode).toBe(200);
    expect(cancelRunning.json()).toMatchObject({ status: 'running', cancel_requested: true });
    const ended = await waitForStatus(running, ['cancelled']);
    expect(ended.steps.map((s: { status: string }) => s.status)).toEqual(['succeeded', 'failed', 'skipped']);
    expect(eventsOf(running)).toEqual(['run:prepare@1', 'run:apply@1', 'undo:apply@1', 'undo:prepare@1']);

    // The cancelled queued job never runs.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(eventsOf(queued)).toEqual([]);
    expect((await getJob(queued)).status).toBe('cancelled');

    const again = await cp.app.inject({
      method: 'POST',
      url: `/api/jobs/${running}/cancel`,
      headers: { authorization: auth },
    });
    expect(again.statusCode).toBe(200);
    const done = await enqueue({});
    await waitForStatus(done, ['succeeded']);
    const finished = await cp.app.inject({
      method: 'POST',
      url: `/api/jobs/${done}/cancel`,
      headers: { authorization: auth },
    });
    expect(finished.statusCode).toBe(409);
    expect(finished.json().code).toBe('invalid_state');
  });
});

describe('listing jobs', () => {
  it('lists newest first with filters and cursor pagination', async () => {
    const target = { type: 'environment', id: '0b4c7c52-58a4-4a3a-9d51-5d1e8f7e2a10' };
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await enqueue({}, { target }));
    await Promise.all(ids.map((id) => waitForStatus(id, ['succeeded'])));

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `target_type=environment&target_id=${target.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await cp.app.inject({
        method: 'GET',
        url: `/api/jobs?${query}`,
        headers: { authorization: auth },
      });
      expect(res.statusCode).toBe(200);
      const body: { items: { id: string }[]; next_cursor: string | null } = res.json();
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((job: { id: string }) => job.id));
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const failed = await cp.app.inject({
      method: 'GET',
      url: '/api/jobs?status=failed&limit=200',
      headers: { authorization: auth },
    });
    expect(failed.json().items.every((job: { status: string }) => job.status === 'failed')).toBe(true);
    const byType = await cp.app.inject({
      method: 'GET',
      url: '/api/jobs?type=nothing-like-this',
      headers: { authorization: auth },
    });
    expect(byType.json()).toEqual({ items: [], next_cursor: null });
  });

  it('counts running and queued jobs in the metrics', async () => {
    const groupKey = 'env-metrics-test';
    const running = await enqueue({ hang_at: 'prepare' }, { groupKey });
    await waitForStatus(running, ['running']);
    const queued = await enqueue({}, { groupKey });
    const metrics = await cp.app.inject({
      method: 'GET',
      url: '/api/metrics',
      headers: { authorization: auth },
    });
    expect(metrics.json()).toMatchObject({ jobs_running: 1, jobs_queued: 1 });
    for (const id of [queued, running]) {
      await cp.app.inject({
        method: 'POST',
        url: `/api/jobs/${id}/cancel`,
        headers: { authorization: auth },
      });
    }
    await waitForStatus(running, ['cancelled']);
  });
});
