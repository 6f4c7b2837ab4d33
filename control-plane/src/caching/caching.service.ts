import { AppError } from '@wpcp/shared/errors';
import type { Logger } from 'pino';
import type { Db } from '../database/database.ts';
import type { EnvironmentRow } from '../database/schema.ts';
import { findEnvironment } from '../environments/environments.queries.ts';
import type { JobEnqueuer } from '../jobs/enqueue.ts';
import { PURGE_CACHE_JOB, SET_CACHE_JOB } from './caching.jobs.ts';
import type { CacheSettingsRequest } from './caching.routes.ts';

/**
 * An environment's page and object caches. Each request is checked against the environment's
 * state (404, or 409 `invalid_state` and no job when it is not active), then done by a job in the
 * environment's group, after every earlier job of that environment.
 */
export class CachingService {
  readonly #db: Db;
  readonly #enqueuer: JobEnqueuer;
  readonly #logger: Logger;

  constructor(deps: { db: Db; enqueuer: JobEnqueuer; logger: Logger }) {
    this.#db = deps.db;
    this.#enqueuer = deps.enqueuer;
    this.#logger = deps.logger;
  }

  async set(environmentId: string, request: CacheSettingsRequest): Promise<{ job_id: string }> {
    await this.#activeEnvironment(environmentId, 'change the caches of');
    const jobId = await this.#enqueuer.enqueue({
      type: SET_CACHE_JOB,
      payload: { environment_id: environmentId, ...request },
      target: { type: 'environment', id: environmentId },
      groupKey: environmentId,
    });
    this.#logger.info(
      { environment_id: environmentId, ...request, job_id: jobId },
      'cache settings requested',
    );
    return { job_id: jobId };
  }

  async purge(environmentId: string): Promise<{ job_id: string }> {
    await this.#activeEnvironment(environmentId, 'purge the caches of');
    const jobId = await this.#enqueuer.enqueue({
      type: PURGE_CACHE_JOB,
      payload: { environment_id: environmentId },
      target: { type: 'environment', id: environmentId },
      groupKey: environmentId,
    });
    this.#logger.info({ environment_id: environmentId, job_id: jobId }, 'cache purge requested');
    return { job_id: jobId };
  }

  async #activeEnvironment(id: string, action: string): Promise<EnvironmentRow> {
    const environment = await findEnvironment(this.#db, id);
    if (!environment) throw new AppError('not_found', `environment ${id} does not exist`);
    if (environment.status !== 'active') {
      throw new AppError(
        'invalid_state',
        `environment ${id} is ${environment.status}; cannot ${action} it until it is active`,
      );
    }
    return environment;
  }
}
