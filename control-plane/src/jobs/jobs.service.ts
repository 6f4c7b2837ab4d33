import type { Job, JobListQuery, JobLogLine, JobLogsQuery } from '@wpcp/shared/api';
import { AppError } from '@wpcp/shared/errors';
import type { PgBoss } from 'pg-boss';
import type { Db } from '../database/database.ts';
import type { JobRow } from '../database/schema.ts';
import { decodeCursor, page } from '../http/pagination.ts';
import type { JobCatalogue } from './job-definition.ts';
import { queueNameFor, wakeNextOfGroup } from './job-queue.ts';
import * as q from './jobs.queries.ts';

export class JobsService {
  readonly #db: Db;
  readonly #boss: PgBoss;
  readonly #catalogue: JobCatalogue | undefined;

  constructor(db: Db, boss: PgBoss, catalogue?: JobCatalogue) {
    this.#db = db;
    this.#boss = boss;
    this.#catalogue = catalogue;
  }

  async list(query: JobListQuery) {
    const rows = await q.listJobs(
      this.#db,
      { status: query.status, type: query.type, targetType: query.target_type, targetId: query.target_id },
      { limit: query.limit, beforeSeq: decodeCursor(query.cursor) },
    );
    return page(rows, query.limit, toApiJob);
  }

  /** One job; a running step that waits for a node command shows the command's latest progress. */
  async get(id: string): Promise<Job> {
    const row = await q.findJob(this.#db, id);
    if (!row) throw new AppError('not_found', `job ${id} does not exist`);
    const job = toApiJob(row);
    if (job.status === 'running') {
      const progress = (await q.progressOfOpenCommands(this.#db, id))[0]?.progress;
      const step = job.steps.find((s) => s.status === 'running');
      if (progress && step) step.progress = progress;
    }
    return job;
  }

  /** The output of a job's node commands, oldest first; secrets were redacted before storing. */
  async logs(id: string, query: JobLogsQuery) {
    if (!(await q.findJob(this.#db, id))) throw new AppError('not_found', `job ${id} does not exist`);
    const rows = await q.listJobLogs(this.#db, id, {
      limit: query.limit,
      afterSeq: decodeCursor(query.cursor),
    });
    return page(
      rows,
      query.limit,
      (row): JobLogLine => ({
        command_id: row.command_id,
        stream: row.stream,
        line: row.line,
        created_at: row.created_at.toISOString(),
      }),
    );
  }

  /**
   * A queued job is cancelled at once (its row and its pg-boss job, together); a running one is
   * asked to stop and ends `cancelled` when its current step returns. A finished one cannot be.
   */
  async cancel(id: string): Promise<Job> {
    const row = await q.findJob(this.#db, id);
    if (!row) throw new AppError('not_found', `job ${id} does not exist`);
    if (row.status === 'queued') {
      const cancelled = await this.#db.transaction().execute(async (trx) => {
        const done = await q.finishJob(trx, id, {
          status: 'cancelled',
          steps: row.steps.map((step) => ({ ...step, status: 'skipped' })),
          errorCode: 'job_cancelled',
          errorMessage: 'the job was cancelled before it started',
        });
        if (done) {
          await this.#boss.cancel(queueNameFor(row.type), row.carrier_id ?? id);
          // Records the job was to change go to their failed state with the job, in one transaction.
          const definition = this.#catalogue?.all().find((d) => d.type === row.type);
          await definition?.onFailure?.(
            { jobId: id, payload: definition.payload.parse(row.payload), db: trx },
            { code: 'job_cancelled', message: 'the job was cancelled before it started' },
          );
        }
        return done;
      });
      if (cancelled) {
        await wakeNextOfGroup(this.#db, this.#boss, row.group_key).catch(() => {});
        return this.get(id);
      }
    } else if (row.status === 'running' && (await q.requestJobCancel(this.#db, id))) {
      return this.get(id);
    }
    const current = await this.get(id);
    if (current.status === 'running' || current.status === 'cancelled') return current;
    throw new AppError('invalid_state', `job ${id} is already ${current.status}`);
  }
}

export function toApiJob(row: JobRow): Job {
  return {
    id: row.id,
    type: row.type,
    status: row.status,
    target: row.target_type && row.target_id ? { type: row.target_type, id: row.target_id } : null,
    attempt: row.attempt,
    max_attempts: row.max_attempts,
    steps: row.steps.map((step) => ({ ...step })),
    output: row.output ?? null,
    error_code: row.error_code,
    error_message: row.error_message,
    cancel_requested: row.cancel_requested_at !== null,
    created_at: row.created_at.toISOString(),
    started_at: row.started_at?.toISOString() ?? null,
    finished_at: row.finished_at?.toISOString() ?? null,
  };
}
