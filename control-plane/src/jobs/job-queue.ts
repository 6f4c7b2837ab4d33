import type { Transaction } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import type { Db } from '../database/database.ts';
import type { Database } from '../database/schema.ts';
import type { JobCatalogue, JobDefinition } from './job-definition.ts';
import { firstUnfinishedJobOfGroup } from './jobs.queries.ts';

/**
 * pg-boss is the transport; the `jobs` table is the truth the API shows. One pg-boss queue per
 * job type carries its retry, expiry and heartbeat options; jobs that exhaust their retries
 * (including by a dead worker) land in the dead-letter queue, which settles their row.
 */
export const DEAD_LETTER_QUEUE = 'job-dead-letter';

export function queueNameFor(type: string): string {
  return `job-${type}`;
}

export interface QueuedJobData {
  jobId: string;
}

export async function createJobQueues(boss: PgBoss, catalogue: JobCatalogue): Promise<void> {
  await ensureQueue(boss, DEAD_LETTER_QUEUE, { notify: true });
  for (const definition of catalogue.all()) {
    await ensureQueue(boss, queueNameFor(definition.type), queueOptions(definition));
  }
}

function queueOptions(definition: JobDefinition) {
  return {
    retryLimit: definition.retryLimit,
    retryDelay: definition.retryDelaySeconds,
    retryBackoff: true,
    expireInSeconds: definition.expireInSeconds,
    heartbeatSeconds: definition.heartbeatSeconds,
    deadLetter: DEAD_LETTER_QUEUE,
    notify: true,
  };
}

async function ensureQueue(boss: PgBoss, name: string, options: Record<string, unknown>): Promise<void> {
  if (await boss.getQueue(name)) {
    const { deadLetter: _deadLetter, heartbeatSeconds: _heartbeat, ...updatable } = options;
    await boss.updateQueue(name, updatable);
  } else {
    await boss.createQueue(name, options);
  }
}

/** Sends the pg-boss half of a job inside the caller's transaction (the row is the other half). */
export async function sendInTransaction(
  boss: PgBoss,
  trx: Transaction<Database>,
  job: { id: string; type: string; groupKey?: string },
): Promise<void> {
  await boss.send(queueNameFor(job.type), { jobId: job.id } satisfies QueuedJobData, {
    id: job.id,
    db: fromKysely(trx),
    ...(job.groupKey ? { group: { id: job.groupKey } } : {}),
  });
}

/**
 * After a job of a group finished: the next job of the group, if it never started and waits
 * (handed back to pg-boss until later), is made due now, and NOTIFY wakes a worker for it. Only
 * a hint: a waiting job looks again by itself after GROUP_WAIT_SECONDS.
 */
export async function wakeNextOfGroup(db: Db, boss: PgBoss, groupKey: string | null): Promise<void> {
  if (!groupKey) return;
  const next = await firstUnfinishedJobOfGroup(db, groupKey);
  if (next?.status !== 'queued' || next.attempt !== 0) return;
  await boss.update(queueNameFor(next.type), undefined, { id: next.carrier_id ?? next.id, startAfter: 0 });
}
