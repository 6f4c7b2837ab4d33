import { sql } from 'kysely';
import type { Db } from '../database/database.ts';
import type { JobStatus, JobStep, NewJob } from '../database/schema.ts';

export function insertJob(db: Db, job: NewJob) {
  return db.insertInto('jobs').values(job).returning('id').executeTakeFirstOrThrow();
}

export function findJob(db: Db, id: string) {
  return db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface JobFilter {
  status?: JobStatus;
  type?: string;
  targetType?: string;
  targetId?: string;
}

/** Newest first, keyset-paginated on `seq` (strictly below the cursor's seq). */
export function listJobs(db: Db, filter: JobFilter, page: { limit: number; beforeSeq?: string }) {
  let query = db
    .selectFrom('jobs')
    .selectAll()
    .orderBy('seq', 'desc')
    .limit(page.limit + 1);
  if (filter.status) query = query.where('status', '=', filter.status);
  if (filter.type) query = query.where('type', '=', filter.type);
  if (filter.targetType) query = query.where('target_type', '=', filter.targetType);
  if (filter.targetId) query = query.where('target_id', '=', filter.targetId);
  if (page.beforeSeq) query = query.where('seq', '<', page.beforeSeq);
  return query.execute();
}

export function markJobRunning(db: Db, id: string, attempt: number, steps: JobStep[]) {
  return db
    .updateTable('jobs')
    .set({
      status: 'running',
      attempt,
      steps: JSON.stringify(steps),
      started_at: sql`coalesce(started_at, now())`,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'running'])
    .returning('id')
    .executeTakeFirst();
}

export function saveJobProgress(db: Db, id: string, steps: JobStep[], state: Record<string, unknown>) {
  return db
    .updateTable('jobs')
    .set({ steps: JSON.stringify(steps), state: JSON.stringify(state), updated_at: sql`now()` })
    .where('id', '=', id)
    .execute();
}

export function finishJob(
  db: Db,
  id: string,
  outcome: {
    status: Extract<JobStatus, 'succeeded' | 'failed' | 'cancelled'>;
    steps?: JobStep[];
    output?: unknown;
    errorCode?: string;
    errorMessage?: string;
  },
) {
  return db
    .updateTable('jobs')
    .set({
      status: outcome.status,
      ...(outcome.steps ? { steps: JSON.stringify(outcome.steps) } : {}),
      output: outcome.output === undefined ? null : JSON.stringify(outcome.output),
      error_code: outcome.errorCode ?? null,
      error_message: outcome.errorMessage ?? null,
      finished_at: sql`now()`,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'running'])
    .returning('id')
    .executeTakeFirst();
}

/** A failed attempt that will be retried: the job waits as `queued`, showing why and which attempt. */
export function requeueJob(db: Db, id: string, steps: JobStep[], errorCode: string, errorMessage: string) {
  return db
    .updateTable('jobs')
    .set({
      status: 'queued',
      steps: JSON.stringify(steps),
      error_code: errorCode,
      error_message: errorMessage,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('status', '=', 'running')
    .execute();
}

export function requestJobCancel(db: Db, id: string) {
  return db
    .updateTable('jobs')
    .set({ cancel_requested_at: sql`coalesce(cancel_requested_at, now())`, updated_at: sql`now()` })
    .where('id', '=', id)
    .where('status', '=', 'running')
    .returning('id')
    .executeTakeFirst();
}

export function jobsWithCancelRequested(db: Db, ids: string[]) {
  return db
    .selectFrom('jobs')
    .select('id')
    .where('id', 'in', ids)
    .where('cancel_requested_at', 'is not', null)
    .execute();
}

export function countJobsByStatus(db: Db) {
  return db
    .selectFrom('jobs')
    .select(['status', sql<string>`count(*)`.as('count')])
    .where('status', 'in', ['queued', 'running'])
    .groupBy('status')
    .execute();
}

/** A job's log lines, oldest first, keyset-paginated on `seq` (strictly after the cursor's seq). */
export function listJobLogs(db: Db, jobId: string, page: { limit: number; afterSeq?: string }) {
  let query = db
    .selectFrom('job_logs')
    .select(['seq', 'command_id', 'stream', 'line', 'created_at'])
    .where('job_id', '=', jobId)
    .orderBy('seq', 'asc')
    .limit(page.limit + 1);
  if (page.afterSeq) query = query.where('seq', '>', page.afterSeq);
  return query.execute();
}

/** The latest progress of the job's commands that are out on a node right now. */
export function progressOfOpenCommands(db: Db, jobId: string) {
  return db
    .selectFrom('agent_commands')
    .select(['step', 'progress'])
    .where('job_id', '=', jobId)
    .where('status', 'in', ['delivered', 'running'])
    .where('progress', 'is not', null)
    .orderBy('seq', 'desc')
    .execute();
}

/** Serialises enqueues of one job group until the transaction ends (a transaction-level advisory lock). */
export async function lockJobGroup(db: Db, groupKey: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`wpcp-job-group:${groupKey}`}, 0))`.execute(db);
}

/** The earliest job of the group that has not finished (the one that may run next, or runs). */
export function firstUnfinishedJobOfGroup(db: Db, groupKey: string) {
  return db
    .selectFrom('jobs')
    .select(['id', 'type', 'status', 'attempt', 'carrier_id'])
    .where('group_key', '=', groupKey)
    .where('status', 'in', ['queued', 'running'])
    .orderBy('seq', 'asc')
    .limit(1)
    .executeTakeFirst();
}

export function setJobCarrier(db: Db, id: string, carrierId: string) {
  return db.updateTable('jobs').set({ carrier_id: carrierId }).where('id', '=', id).execute();
}

/** The earliest job of the group, older than `seq`, that has not finished (queued or running). */
export function earlierUnfinishedJobOfGroup(db: Db, groupKey: string, seq: string) {
  return db
    .selectFrom('jobs')
    .select(['id', 'type', 'status'])
    .where('group_key', '=', groupKey)
    .where('seq', '<', seq)
    .where('status', 'in', ['queued', 'running'])
    .orderBy('seq', 'asc')
    .limit(1)
    .executeTakeFirst();
}
