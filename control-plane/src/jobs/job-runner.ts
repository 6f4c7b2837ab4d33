import { randomUUID } from 'node:crypto';
import { AppError, type ErrorCode, errorCatalogue, isErrorCode } from '@wpcp/shared/errors';
import { fromKysely, type Job, type PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type { CommandService } from '../agent-gateway/commands.ts';
import type { Db } from '../database/database.ts';
import type { JobRow, JobStep } from '../database/schema.ts';
import type { JobCatalogue, JobDefinition, JobSettings, StepContext } from './job-definition.ts';
import { DEAD_LETTER_QUEUE, type QueuedJobData, queueNameFor, wakeNextOfGroup } from './job-queue.ts';
import * as q from './jobs.queries.ts';

const CANCEL_POLL_MS = 1_000;
/**
 * How long a grouped job that waits for an earlier one is handed back for before it looks again
 * by itself. Normally it is woken sooner: when the earlier job finishes (wakeNextOfGroup).
 */
const GROUP_WAIT_SECONDS = 30;

class JobCancelled extends Error {}

/**
 * Runs jobs: takes each from pg-boss, walks its steps in order (skipping those an earlier
 * attempt finished), records every step on the job row, and settles the row. A retryable failure
 * with attempts left requeues; anything else runs the undos in reverse and fails the job.
 *
 * Ordering: a job with a group key (an environment id) starts only when every earlier job of its
 * group (lower `seq`) has finished. Until then it is handed back to pg-boss, without using an
 * attempt, and woken when the job ahead of it finishes. pg-boss's `groupConcurrency: 1` alone is
 * not enough: it is per queue (job type), and while an earlier job waits for its retry a later
 * one would be free to start.
 */
export class JobRunner {
  readonly #db: Db;
  readonly #boss: PgBoss;
  readonly #catalogue: JobCatalogue;
  readonly #logger: Logger;
  readonly #concurrency: number;
  readonly #commands: CommandService;
  readonly #settings: JobSettings;
  readonly #running = new Map<string, AbortController>();
  #cancelTimer: NodeJS.Timeout | undefined;

  constructor(deps: {
    db: Db;
    boss: PgBoss;
    catalogue: JobCatalogue;
    logger: Logger;
    concurrency: number;
    commands: CommandService;
    settings: JobSettings;
  }) {
    this.#db = deps.db;
    this.#boss = deps.boss;
    this.#catalogue = deps.catalogue;
    this.#logger = deps.logger;
    this.#concurrency = deps.concurrency;
    this.#commands = deps.commands;
    this.#settings = deps.settings;
  }

  async start(): Promise<void> {
    for (const definition of this.#catalogue.all()) {
      await this.#boss.work<QueuedJobData>(
        queueNameFor(definition.type),
        {
          batchSize: 1,
          localConcurrency: this.#concurrency,
          groupConcurrency: 1,
          // NOTIFY wakes workers for new jobs only; a retry coming due or a group freeing up is
          // found by polling, which pg-boss slows to 30 s when NOTIFY is on. Keep it short.
          notifyPollingIntervalSeconds: 2,
        },
        async ([job]) => {
          if (job) await this.#run(definition, job);
        },
      );
    }
    await this.#boss.work<QueuedJobData>(
      DEAD_LETTER_QUEUE,
      { batchSize: 1, notifyPollingIntervalSeconds: 2 },
      async ([job]) => {
        if (job) await this.#settleDeadLetter(job.data.jobId);
      },
    );
    this.#cancelTimer = setInterval(() => void this.#pollCancellations(), CANCEL_POLL_MS);
    this.#cancelTimer.unref();
  }

  stop(): void {
    clearInterval(this.#cancelTimer);
  }

  async #run(definition: JobDefinition, job: Job<QueuedJobData>): Promise<void> {
    const { jobId } = job.data;
    const row = await q.findJob(this.#db, jobId);
    if (!row || (row.status !== 'queued' && row.status !== 'running')) return;
    if (row.cancel_requested_at) {
      await this.#settleRecords(definition, row, { code: 'job_cancelled', message: 'the job was cancelled' });
      await q.finishJob(this.#db, jobId, cancelledOutcome(row.steps));
      await this.#wakeGroup(row.group_key);
      return;
    }
    if (row.group_key && row.attempt === 0 && (await this.#waitsForEarlierJob(definition, job, row))) return;

    const attempt = job.retryCount + 1;
    const steps: JobStep[] = definition.steps.map((step, i) => {
      const previous = row.steps[i];
      return previous?.status === 'succeeded'
        ? previous
        : { name: step.name, status: 'pending', started_at: null, finished_at: null };
    });
    if (!(await q.markJobRunning(this.#db, jobId, attempt, steps))) return;

    const controller = new AbortController();
    const onWorkerSignal = () => controller.abort(job.signal.reason);
    job.signal.addEventListener('abort', onWorkerSignal, { once: true });
    this.#running.set(jobId, controller);
    const log = this.#logger.child({ job_id: jobId, job_type: definition.type, attempt });
    const ctx: StepContext<unknown> = {
      jobId,
      attempt,
      payload: definition.payload.parse(row.payload),
      db: this.#db,
      signal: controller.signal,
      state: { ...row.state },
      log: (message) => log.info(message),
      commands: this.#commands,
      settings: this.#settings,
    };

    try {
      for (const [i, step] of definition.steps.entries()) {
        if (steps[i]?.status === 'succeeded') continue;
        if (controller.signal.aborted) throw abortReason(controller.signal);
        steps[i] = { name: step.name, status: 'running', started_at: now(), finished_at: null };
        await q.saveJobProgress(this.#db, jobId, steps, ctx.state);
        log.info({ step: step.name }, 'step started');
        try {
          await step.run(ctx);
        } catch (error) {
          steps[i] = { ...(steps[i] as JobStep), status: 'failed', finished_at: now() };
          throw controller.signal.aborted ? abortReason(controller.signal) : error;
        }
        steps[i] = { ...(steps[i] as JobStep), status: 'succeeded', finished_at: now() };
        await q.saveJobProgress(this.#db, jobId, steps, ctx.state);
      }
      const output = definition.output ? definition.output(ctx.state) : null;
      await q.finishJob(this.#db, jobId, { status: 'succeeded', steps, output });
      await this.#wakeGroup(row.group_key);
      log.info('job succeeded');
    } catch (error) {
      await this.#handleFailure(definition, row, ctx, steps, error, job.signal.aborted);
    } finally {
      job.signal.removeEventListener('abort', onWorkerSignal);
      this.#running.delete(jobId);
    }
  }

  async #handleFailure(
    definition: JobDefinition,
    row: JobRow,
    ctx: StepContext<unknown>,
    steps: JobStep[],
    error: unknown,
    workerStopping: boolean,
  ): Promise<void> {
    const log = this.#logger.child({ job_id: row.id, job_type: definition.type, attempt: ctx.attempt });
    if (error instanceof JobCancelled) {
      await this.#undo(definition, ctx, steps);
      await this.#settleRecords(definition, row, { code: 'job_cancelled', message: 'the job was cancelled' });
      await q.finishJob(this.#db, row.id, cancelledOutcome(steps));
      await this.#wakeGroup(row.group_key);
      log.info('job cancelled');
      return;
    }
    if (workerStopping) {
      // This process is shutting down or the attempt ran past its expiry: pg-boss retries it
      // elsewhere (or dead-letters it when no attempts are left).
      await q.requeueJob(
        this.#db,
        row.id,
        steps,
        'worker_lost',
        'the attempt was interrupted; it will be retried',
      );
      throw error;
    }
    const { code, message } = describeError(error);
    const retryable = errorCatalogue[code].retryable && !definition.permanentErrors?.includes(code);
    if (retryable && ctx.attempt < row.max_attempts) {
      await q.requeueJob(this.#db, row.id, steps, code, message);
      log.warn({ err: error, error_code: code }, 'job attempt failed; it will be retried');
      throw error;
    }
    await this.#undo(definition, ctx, steps);
    await this.#settleRecords(definition, row, { code, message });
    await q.finishJob(this.#db, row.id, { status: 'failed', steps, errorCode: code, errorMessage: message });
    await this.#wakeGroup(row.group_key);
    log.warn({ err: error, error_code: code }, 'job failed');
  }

  /** Undo what the steps did, newest first; an undo that fails is logged and the rest still run. */
  async #undo(definition: JobDefinition, ctx: StepContext<unknown>, steps: JobStep[]): Promise<void> {
    for (let i = definition.steps.length - 1; i >= 0; i--) {
      const step = definition.steps[i];
      const status = steps[i]?.status;
      if (!step?.undo || (status !== 'succeeded' && status !== 'failed')) continue;
      try {
        await step.undo({ ...ctx, signal: new AbortController().signal });
      } catch (error) {
        this.#logger.error({ err: error, job_id: ctx.jobId, step: step.name }, 'undo failed');
      }
    }
  }

  /**
   * The ordering rule. A job that has never started (attempt 0) while an earlier job of its group
   * has not finished is handed back: in one transaction a new pg-boss job carries it, due in
   * GROUP_WAIT_SECONDS, and the one that brought it here is completed. No attempt is used and no
   * retry delay applies. When the earlier job finishes it wakes this one at once
   * (wakeNextOfGroup); the delay is only the floor if that wake-up is lost. A job that has started
   * once never waits again: every earlier job had finished by then, and finished is final.
   */
  async #waitsForEarlierJob(
    definition: JobDefinition,
    job: Job<QueuedJobData>,
    row: JobRow,
  ): Promise<boolean> {
    const groupKey = row.group_key as string;
    const earlier = await q.earlierUnfinishedJobOfGroup(this.#db, groupKey, row.seq);
    if (!earlier) return false;
    const queue = queueNameFor(definition.type);
    const carrierId = randomUUID();
    await this.#db.transaction().execute(async (trx) => {
      const db = fromKysely(trx);
      await this.#boss.send(queue, { jobId: row.id } satisfies QueuedJobData, {
        db,
        id: carrierId,
        startAfter: GROUP_WAIT_SECONDS,
        group: { id: groupKey },
      });
      await this.#boss.complete(queue, { id: job.id, retryCount: job.retryCount }, null, { db });
      await q.setJobCarrier(trx, row.id, carrierId);
    });
    this.#logger.debug(
      { job_id: row.id, job_type: definition.type, waits_for: earlier.id },
      'job waits for an earlier job of its group',
    );
    // The earlier job may have finished (and found the old carrier active) while this one was
    // being handed back: look once more, now that the new carrier is visible to its wake-up.
    if (!(await q.earlierUnfinishedJobOfGroup(this.#db, groupKey, row.seq))) await this.#wakeGroup(groupKey);
    return true;
  }

  /** Wakes the next waiting job of the group; a failure only delays it to its own re-check. */
  async #wakeGroup(groupKey: string | null): Promise<void> {
    try {
      await wakeNextOfGroup(this.#db, this.#boss, groupKey);
    } catch (error) {
      this.#logger.warn({ err: error, group_key: groupKey }, 'could not wake the next job of the group');
    }
  }

  /** Runs the job type's `onFailure` (records back to a failed state); a failure of it is logged. */
  async #settleRecords(
    definition: JobDefinition,
    row: JobRow,
    error: { code: ErrorCode; message: string },
  ): Promise<void> {
    if (!definition.onFailure) return;
    try {
      await definition.onFailure(
        { jobId: row.id, payload: definition.payload.parse(row.payload), db: this.#db },
        error,
      );
    } catch (failure) {
      this.#logger.error({ err: failure, job_id: row.id, job_type: definition.type }, 'onFailure failed');
    }
  }

  /** A job pg-boss gave up on (worker died or expired on its last attempt). */
  async #settleDeadLetter(jobId: string): Promise<void> {
    const row = await q.findJob(this.#db, jobId);
    if (!row || (row.status !== 'queued' && row.status !== 'running')) return;
    const message = `the worker running this job stopped responding on attempt ${row.attempt} of ${row.max_attempts}`;
    const definition = this.#catalogue.all().find((d) => d.type === row.type);
    if (definition) await this.#settleRecords(definition, row, { code: 'worker_lost', message });
    await q.finishJob(this.#db, jobId, {
      status: 'failed',
      steps: row.steps.map((step) =>
        step.status === 'running' ? { ...step, status: 'failed', finished_at: now() } : step,
      ),
      errorCode: 'worker_lost',
      errorMessage: message,
    });
    await this.#wakeGroup(row.group_key);
    this.#logger.error({ job_id: jobId }, 'job failed: worker lost');
  }

  async #pollCancellations(): Promise<void> {
    if (this.#running.size === 0) return;
    try {
      for (const { id } of await q.jobsWithCancelRequested(this.#db, [...this.#running.keys()])) {
        this.#running.get(id)?.abort(new JobCancelled('cancelled by user'));
      }
    } catch (error) {
      this.#logger.warn({ err: error }, 'could not poll job cancellations');
    }
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

function now(): string {
  return new Date().toISOString();
}

function cancelledOutcome(steps: JobStep[]) {
  return {
    status: 'cancelled' as const,
    steps: steps.map((step) => (step.status === 'pending' ? { ...step, status: 'skipped' as const } : step)),
    errorCode: 'job_cancelled',
    errorMessage: 'the job was cancelled',
  };
}

function describeError(error: unknown): { code: ErrorCode; message: string } {
  if (error instanceof AppError) return { code: error.code, message: error.message };
  const code = (error as { code?: unknown })?.code;
  if (isErrorCode(code)) return { code, message: String((error as Error).message) };
  return { code: 'job_failed', message: error instanceof Error ? error.message : String(error) };
}
