import type { AddDomainRequest, DomainListQuery } from '@wpcp/shared/api';
import { AppError } from '@wpcp/shared/errors';
import type { Logger } from 'pino';
import type { Db } from '../database/database.ts';
import type { EnvironmentRow } from '../database/schema.ts';
import { uniqueViolation } from '../database/unique-violation.ts';
import { toApiDomain } from '../environments/environment-view.ts';
import { findEnvironment } from '../environments/environments.queries.ts';
import { decodeCursor, page } from '../http/pagination.ts';
import type { JobEnqueuer } from '../jobs/enqueue.ts';
import { ADD_DOMAIN_JOB } from './add-domain.job.ts';
import * as q from './domains.queries.ts';
import { MAKE_PRIMARY_DOMAIN_JOB } from './make-primary-domain.job.ts';
import { REMOVE_DOMAIN_JOB } from './remove-domain.job.ts';

/**
 * Domains of environments. Each change is checked against the environment's and the domain's
 * state at request time (409 and no job when it does not fit), then made by a job in the
 * environment's group, so it runs after every earlier job of that environment.
 */
export class DomainsService {
  readonly #db: Db;
  readonly #enqueuer: JobEnqueuer;
  readonly #logger: Logger;

  constructor(deps: { db: Db; enqueuer: JobEnqueuer; logger: Logger }) {
    this.#db = deps.db;
    this.#enqueuer = deps.enqueuer;
    this.#logger = deps.logger;
  }

  async list(environmentId: string, query: DomainListQuery) {
    await this.#environment(environmentId);
    const rows = await q.listDomains(this.#db, environmentId, {
      limit: query.limit,
      afterSeq: decodeCursor(query.cursor),
    });
    return page(rows, query.limit, toApiDomain);
  }

  /** A `pending` domain now (the unique index settles races), served once its job is done. */
  async add(environmentId: string, request: AddDomainRequest): Promise<{ job_id: string }> {
    const environment = await this.#environment(environmentId);
    assertActive(environment, 'add a domain to');
    const { hostname } = request;
    if (await q.domainWithHostname(this.#db, hostname)) throw hostnameTaken(hostname);
    const reserved = await q.baseDomainCovering(this.#db, hostname);
    if (reserved) {
      throw new AppError(
        'hostname_reserved',
        `${hostname} is under the base domain ${reserved.base_domain} of node ${reserved.name}, reserved for default hostnames`,
      );
    }
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const domain = await q.insertDomain(trx, {
          environmentId,
          hostname,
          isDefault: false,
          isPrimary: false,
          status: 'pending',
        });
        const jobId = await this.#enqueuer.enqueue(
          {
            type: ADD_DOMAIN_JOB,
            payload: { environment_id: environmentId, domain_id: domain.id },
            target: { type: 'domain', id: domain.id },
            groupKey: environmentId,
          },
          trx,
        );
        this.#logger.info(
          { environment_id: environmentId, domain_id: domain.id, hostname, job_id: jobId },
          'domain added',
        );
        return { job_id: jobId };
      });
    } catch (error) {
      if (uniqueViolation(error) === 'domains_hostname_key') throw hostnameTaken(hostname);
      throw error;
    }
  }

  /** Neither the default nor the primary hostname can go; the domain is `removing` until its job is done. */
  async remove(domainId: string): Promise<{ job_id: string }> {
    const domain = await this.#domain(domainId);
    if (domain.is_default) {
      throw new AppError(
        'default_domain',
        `${domain.hostname} is the environment's default hostname; it cannot be deleted`,
      );
    }
    if (domain.is_primary) {
      throw new AppError(
        'primary_domain',
        `${domain.hostname} is the environment's primary hostname; make another domain primary first`,
      );
    }
    const environment = await this.#environment(domain.environment_id);
    assertActive(environment, 'remove a domain of');
    return this.#db.transaction().execute(async (trx) => {
      if (!(await q.setDomainStatus(trx, domainId, ['active'], 'removing'))) {
        throw new AppError(
          'invalid_state',
          `domain ${domain.hostname} is ${domain.status}; only an active domain can be deleted`,
        );
      }
      const jobId = await this.#enqueuer.enqueue(
        {
          type: REMOVE_DOMAIN_JOB,
          payload: { environment_id: environment.id, domain_id: domainId },
          target: { type: 'domain', id: domainId },
          groupKey: environment.id,
        },
        trx,
      );
      return { job_id: jobId };
    });
  }

  async makePrimary(domainId: string): Promise<{ job_id: string }> {
    const domain = await this.#domain(domainId);
    const environment = await this.#environment(domain.environment_id);
    assertActive(environment, 'change the primary domain of');
    if (domain.status !== 'active') {
      throw new AppError(
        'invalid_state',
        `domain ${domain.hostname} is ${domain.status}; only an active domain can be primary`,
      );
    }
    if (domain.is_primary)
      throw new AppError('invalid_state', `${domain.hostname} is already the primary hostname`);
    const jobId = await this.#enqueuer.enqueue({
      type: MAKE_PRIMARY_DOMAIN_JOB,
      payload: { environment_id: environment.id, domain_id: domainId },
      target: { type: 'domain', id: domainId },
      groupKey: environment.id,
    });
    return { job_id: jobId };
  }

  async #environment(id: string): Promise<EnvironmentRow> {
    const environment = await findEnvironment(this.#db, id);
    if (!environment) throw new AppError('not_found', `environment ${id} does not exist`);
    return environment;
  }

  async #domain(id: string) {
    const domain = await q.findDomain(this.#db, id);
    if (!domain) throw new AppError('not_found', `domain ${id} does not exist`);
    return domain;
  }
}

function assertActive(environment: EnvironmentRow, action: string): void {
  if (environment.status !== 'active') {
    throw new AppError(
      'invalid_state',
      `environment ${environment.id} is ${environment.status}; cannot ${action} it until it is active`,
    );
  }
}

function hostnameTaken(hostname: string): AppError {
  return new AppError('hostname_taken', `${hostname} is already a domain of an environment`);
}
