import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  journal,
  scriptedJob,
  startTestControlPlane,
  type TestControlPlane,
  waitFor,
} from '../testing/index.ts';
import { defineJob, JobCatalogue } from './job-definition.ts';

// Jobs of one group (an environment) run one at a time AND in the order they were submitted,
// across job types and across retries: a job waiting for its retry keeps its place.

let cp: TestControlPlane;
let auth: string;

beforeAll(async () => {
  const catalogue = new JobCatalogue()
    .register(scriptedJob({ retryLimit: 2 }))
    // The same runbook under a second type: a second pg-boss queue, where pg-boss's own
    // groupConcurrency (per queue) would not hold jobs of the first back.
    .register(defineJob({ ...scriptedJob({ retryLimit: 2 }), type: 'test-scripted-b' }));
  cp = await startTestControlPlane(inject('postgresAdminUrl'), { catalogue });
  auth = await cp.login();
});
afterAll(() => cp?.destroy());

const enqueue = (type: 'test-scripted' | 'test-scripted-b', payload: object, groupKey?: string) =>
  cp.enqueuer.enqueue({ type, payload, ...(groupKey ? { groupKey } : {}) });

const row = (id: string) =>
  cp.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

function finished(id: string) {
  return waitFor(
    async () => {
      const job = await row(id);
      return job.status === 'succeeded' || job.status === 'failed' ? job : undefined;
    },
    20_000,
    `job ${id} to finish`,
  );
}

/** Index in the journal of each event of a job. */
const positions = (jobId: string) =>
  journal.flatMap((entry, index) =>
    entry.jobId === jobId ? [{ index, event: `${entry.event}@${entry.attempt}` }] : [],
  );

describe('per-environment ordering', () => {
  it('does not start a later job while an earlier one waits for its retry', async () => {
    const group = 'env-ordering-retry';
    const first = await enqueue(
      'test-scripted',
      { fail_at: 'apply', fail_on_attempts: [1], fail_code: 'internal_error' },
      group,
    );
    // The first job failed its first attempt and waits for the retry (pg-boss: 1-2 s away).
    const waiting = await waitFor(
      async () => {
        const job = await row(first);
        return job.status === 'queued' && job.attempt === 1 ? job : undefined;
      },
      10_000,
      'the first job to wait for its retry',
    );
    expect(waiting.error_code).toBe('internal_error');
    const second = await enqueue('test-scripted', {}, group);
    expect((await row(first)).status).toBe('queued'); // the race is real: submitted during the wait

    const [one, two] = [await finished(first), await finished(second)];
    expect(one).toMatchObject({ status: 'succeeded', attempt: 2 });
    // The later job used no attempt for waiting, and has no error from it.
    expect(two).toMatchObject({ status: 'succeeded', attempt: 1, max_attempts: 3, error_code: null });
    expect((two.started_at as Date).getTime()).toBeGreaterThanOrEqual((one.finished_at as Date).getTime());
    const lastOfFirst = Math.max(...positions(first).map((p) => p.index));
    const firstOfSecond = Math.min(...positions(second).map((p) => p.index));
    expect(firstOfSecond).toBeGreaterThan(lastOfFirst);
    expect(positions(first).map((p) => p.event)).toEqual([
      'run:prepare@1',
      'run:apply@1',
      'run:apply@2',
      'run:verify@2',
    ]);
  });

  it('holds jobs of other types in the same group back, and runs other groups beside them', async () => {
    const group = 'env-ordering-types';
    const slow = await enqueue('test-scripted', { wait_ms: 500 }, group);
    const sameGroup = await enqueue('test-scripted-b', {}, group);
    const otherGroup = await enqueue('test-scripted-b', {}, 'env-ordering-other');
    const [a, b, c] = [await finished(slow), await finished(sameGroup), await finished(otherGroup)];
    expect([a.status, b.status, c.status]).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect((b.started_at as Date).getTime()).toBeGreaterThanOrEqual((a.finished_at as Date).getTime());
    expect(Math.min(...positions(sameGroup).map((p) => p.index))).toBeGreaterThan(
      Math.max(...positions(slow).map((p) => p.index)),
    );
    // Another environment does not wait.
    expect((c.finished_at as Date).getTime()).toBeLessThan((a.finished_at as Date).getTime());
  });

  it('runs a group in submission order when several jobs queue up behind a running one', async () => {
    const group = 'env-ordering-queue';
    const ids = [await enqueue('test-scripted', { wait_ms: 200 }, group)];
    for (const type of ['test-scripted-b', 'test-scripted', 'test-scripted-b'] as const) {
      ids.push(await enqueue(type, {}, group));
    }
    const rows = [];
    for (const id of ids) rows.push(await finished(id));
    const starts = rows.map((r) => (r.started_at as Date).getTime());
    const ends = rows.map((r) => (r.finished_at as Date).getTime());
    for (let i = 1; i < rows.length; i++) {
      expect(starts[i], `job ${i} started after job ${i - 1} finished`).toBeGreaterThanOrEqual(
        ends[i - 1] as number,
      );
    }
    expect(rows.every((r) => r.attempt === 1)).toBe(true);
    // Each was woken when the one before it finished, not at its own re-check 30 s later.
    for (let i = 1; i < rows.length; i++)
      expect((starts[i] as number) - (ends[i - 1] as number)).toBeLessThan(5_000);
  });

  it('lets the next job go when an earlier one is cancelled', async () => {
    const group = 'env-ordering-cancel';
    const hanging = await enqueue('test-scripted', { hang_at: 'apply' }, group);
    await waitFor(
      async () => ((await row(hanging)).status === 'running' ? true : undefined),
      10_000,
      'running',
    );
    const next = await enqueue('test-scripted-b', {}, group);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await row(next)).status).toBe('queued');
    const cancel = await cp.app.inject({
      method: 'POST',
      url: `/api/jobs/${hanging}/cancel`,
      headers: { authorization: auth },
    });
    expect(cancel.statusCode).toBe(200);
    expect(await finished(next)).toMatchObject({ status: 'succeeded', attempt: 1 });
    expect((await row(hanging)).status).toBe('cancelled');
  });
});
