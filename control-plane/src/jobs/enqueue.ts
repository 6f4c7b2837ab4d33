import { randomUUID } from 'node:crypto';
import { AppError } from '@wpcp/shared/errors';
import type { Transaction } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { Db } from '../database/database.ts';
import type { Database } from '../database/schema.ts';
import type { JobCatalogue } from './job-definition.ts';
import { sendInTransaction } from './job-queue.ts';
import { insertJob, lockJobGroup } from './jobs.queries.ts';

export interface EnqueueRequest {
  type: string;
  payload: unknown;
  target?: { type: string; id: string };
  /** Jobs sharing a group key (an environment id) run one at a time, in the order they were enqueued. */
  groupKey?: string;
}

/**
 * The one way a mutation becomes a job: the `jobs` row and the pg-boss job are written in the
 * same transaction, so either both exist or neither does. Callers that write their own rows too
 * (a new site, say) pass their transaction; the route then answers `202 { job_id }`.
 */
export class JobEnqueuer {
  readonly #db: Db;
  readonly #boss: PgBoss;
  readonly #catalogue: JobCatalogue;

  constructor(db: Db, boss: PgBoss, catalogue: JobCatalogue) {
    this.#db = db;
    this.#boss = boss;
    this.#catalogue = catalogue;
  }

  async enqueue(request: EnqueueRequest, trx?: Transaction<Database>): Promise<string> {
    if (!trx) return this.#db.transaction().execute((own) => this.enqueue(request, own));
    const definition = this.#catalogue.get(request.type);
    const payload = definition.payload.safeParse(request.payload);
    if (!payload.success) {
      throw new AppError('validation_failed', `invalid ${request.type} payload`, { cause: payload.error });
    }
    const id = randomUUID();
    // Jobs of one group get their `seq` in the order their transactions commit: the runner's
    // ordering rule (job-runner.ts, `#waitsForEarlierJob`) relies on no earlier job of the group
    // becoming visible after a later one.
    if (request.groupKey) await lockJobGroup(trx, request.groupKey);
    await insertJob(trx, {
      id,
      type: request.type,
      status: 'queued',
      target_type: request.target?.type ?? null,
      target_id: request.target?.id ?? null,
      payload: JSON.stringify(payload.data),
      steps: JSON.stringify(
        definition.steps.map((step) => ({
          name: step.name,
          status: 'pending',
          started_at: null,
          finished_at: null,
        })),
      ),
      max_attempts: definition.retryLimit + 1,
      group_key: request.groupKey ?? null,
    });
    await sendInTransaction(this.#boss, trx, { id, type: request.type, groupKey: request.groupKey });
    return id;
  }
}
