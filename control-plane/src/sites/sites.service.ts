import type {
  CreateEnvironmentRequest,
  CreateSiteRequest,
  DeletionQuery,
  EnvironmentListQuery,
  Site,
  SiteListQuery,
  SiteWithEnvironments,
} from '@wpcp/shared/api';
import { AppError } from '@wpcp/shared/errors';
import { environmentNodeNames, newShortId } from '@wpcp/shared/validation';
import type { Logger } from 'pino';
import type { Db } from '../database/database.ts';
import type { EnvironmentRow, EnvironmentType, PromotionPreset } from '../database/schema.ts';
import { uniqueViolation } from '../database/unique-violation.ts';
import { CLONE_ENVIRONMENT_JOB } from '../environments/clone-environment.job.ts';
import { DELETE_ENVIRONMENT_JOB } from '../environments/delete-environment.job.ts';
import { environmentViews } from '../environments/environment-view.ts';
import * as environments from '../environments/environments.queries.ts';
import { PROVISION_ENVIRONMENT_JOB } from '../environments/provision-environment.job.ts';
import { decodeCursor, encodeCursor, page } from '../http/pagination.ts';
import type { JobEnqueuer } from '../jobs/enqueue.ts';
import { DELETE_SITE_JOB } from './delete-site.job.ts';
import * as q from './sites.queries.ts';

/** The production environment every site is created with. */
const PRODUCTION = { name: 'Production', slug: 'production', type: 'production' } as const;

/**
 * Sites and the creation of their environments. Rows are written and the job enqueued in one
 * transaction; everything that touches a node happens in the job.
 */
export class SitesService {
  readonly #db: Db;
  readonly #enqueuer: JobEnqueuer;
  readonly #logger: Logger;

  constructor(deps: { db: Db; enqueuer: JobEnqueuer; logger: Logger }) {
    this.#db = deps.db;
    this.#enqueuer = deps.enqueuer;
    this.#logger = deps.logger;
  }

  /**
   * A site (status `provisioning`, listed at once) and its production environment, provisioned
   * by a `provision-environment` job whose target is the site.
   */
  async create(request: CreateSiteRequest): Promise<{ job_id: string }> {
    if (await q.siteSlugExists(this.#db, request.slug)) throw slugTaken(request.slug);
    try {
      const result = await this.#db.transaction().execute(async (trx) => {
        const site = await q.insertSite(trx, request);
        const environmentId = await insertEnvironmentRow(trx, {
          siteId: site.id,
          siteSlug: site.slug,
          ...PRODUCTION,
          promotionPreset: 'code-only',
          nodeId: null,
          sourceEnvironmentId: null,
        });
        const jobId = await this.#enqueuer.enqueue(
          {
            type: PROVISION_ENVIRONMENT_JOB,
            payload: { environment_id: environmentId },
            target: { type: 'site', id: site.id },
            groupKey: environmentId,
          },
          trx,
        );
        return { siteId: site.id, environmentId, jobId };
      });
      this.#logger.info(
        { site_id: result.siteId, environment_id: result.environmentId, job_id: result.jobId },
        'site created',
      );
      return { job_id: result.jobId };
    } catch (error) {
      if (uniqueViolation(error) === 'sites_slug_key') throw slugTaken(request.slug);
      throw error;
    }
  }

  async list(query: SiteListQuery) {
    const rows = await q.listSites(
      this.#db,
      { status: query.status },
      { limit: query.limit, beforeSeq: decodeCursor(query.cursor) },
    );
    return page(rows, query.limit, toApiSite);
  }

  async get(id: string): Promise<SiteWithEnvironments> {
    const site = await q.findSite(this.#db, id);
    if (!site) throw new AppError('not_found', `site ${id} does not exist`);
    const rows = await environments.allEnvironmentsOfSite(this.#db, id);
    return { ...toApiSite(site), environments: await environmentViews(this.#db, rows) };
  }

  /** Oldest first: production, created with the site, comes first. */
  async listEnvironments(siteId: string, query: EnvironmentListQuery) {
    if (!(await q.findSite(this.#db, siteId)))
      throw new AppError('not_found', `site ${siteId} does not exist`);
    const rows = await environments.listEnvironmentsOfSite(this.#db, siteId, {
      limit: query.limit,
      afterSeq: decodeCursor(query.cursor),
    });
    const items = rows.slice(0, query.limit);
    const last = items.at(-1);
    return {
      items: await environmentViews(this.#db, items),
      next_cursor: rows.length > query.limit && last ? encodeCursor(last.seq) : null,
    };
  }

  /**
   * Another environment of an active site: a fresh install (`provision-environment`), or with
   * `source_environment_id` a clone of an active environment of the same site
   * (`clone-environment`, on the source's node). The job's target is the new environment.
   */
  async createEnvironment(siteId: string, request: CreateEnvironmentRequest): Promise<{ job_id: string }> {
    const site = await q.findSite(this.#db, siteId);
    if (!site) throw new AppError('not_found', `site ${siteId} does not exist`);
    if (site.status !== 'active') {
      throw new AppError(
        'invalid_state',
        `site ${siteId} is ${site.status}; environments are added to active sites`,
      );
    }
    if (request.type === 'production' && (await environments.productionEnvironmentOf(this.#db, siteId))) {
      throw productionExists(site.slug);
    }
    if (await environments.environmentSlugExists(this.#db, siteId, request.slug)) {
      throw slugTaken(request.slug, site.slug);
    }
    let nodeId: string | null = null;
    if (request.source_environment_id) {
      nodeId = await this.#cloneSourceNode(siteId, request.source_environment_id);
    }
    const clone = request.source_environment_id !== undefined;
    try {
      return await this.#db.transaction().execute(async (trx) => {
        // Checked again under a share lock: a deletion of the site (or of the clone source) that
        // commits first is seen here, and one that comes later waits for this environment.
        const locked = await q.lockSiteForShare(trx, siteId);
        if (locked?.status !== 'active') {
          throw new AppError(
            'invalid_state',
            `site ${siteId} is ${locked?.status ?? 'gone'}; environments are added to active sites`,
          );
        }
        if (request.source_environment_id) {
          const source = await environments.lockEnvironmentForShare(trx, request.source_environment_id);
          if (source?.status !== 'active') {
            throw new AppError(
              'invalid_state',
              `source environment ${request.source_environment_id} is ${source?.status ?? 'gone'}; only an active one can be cloned`,
            );
          }
        }
        const environmentId = await insertEnvironmentRow(trx, {
          siteId,
          siteSlug: site.slug,
          name: request.name,
          slug: request.slug,
          type: request.type,
          promotionPreset: request.promotion_preset,
          nodeId,
          sourceEnvironmentId: request.source_environment_id ?? null,
        });
        const jobId = await this.#enqueuer.enqueue(
          {
            type: clone ? CLONE_ENVIRONMENT_JOB : PROVISION_ENVIRONMENT_JOB,
            payload: clone
              ? { environment_id: environmentId, source_environment_id: request.source_environment_id }
              : { environment_id: environmentId },
            target: { type: 'environment', id: environmentId },
            groupKey: environmentId,
          },
          trx,
        );
        this.#logger.info(
          { site_id: siteId, environment_id: environmentId, job_id: jobId, clone },
          'environment created',
        );
        return { job_id: jobId };
      });
    } catch (error) {
      const constraint = uniqueViolation(error);
      if (constraint === 'environments_one_production_idx') throw productionExists(site.slug);
      if (constraint === 'environments_site_slug_key' || constraint === 'environments_node_name_key') {
        throw slugTaken(request.slug, site.slug);
      }
      throw error;
    }
  }

  /**
   * `DELETE /api/environments/{id}`: a `delete-environment` job in the environment's group. Not a
   * production environment (`production_with_site`: it goes with its site), only from `active` or
   * `failed` (anything else has a job of its own running: `invalid_state`), and not while another
   * environment is being cloned from it. The environment is `deleting` from the request on.
   */
  async deleteEnvironment(environmentId: string, query: DeletionQuery): Promise<{ job_id: string }> {
    const environment = await environments.findEnvironment(this.#db, environmentId);
    if (!environment) throw new AppError('not_found', `environment ${environmentId} does not exist`);
    if (environment.type === 'production') {
      throw new AppError(
        'production_with_site',
        `environment ${environment.node_name} is its site's production environment; delete the site (DELETE /api/sites/${environment.site_id}) to delete it`,
      );
    }
    const jobId = await this.#db.transaction().execute(async (trx) => {
      await markDeleting(trx, environment);
      const clones = await environments.provisioningClonesOf(trx, environmentId);
      if (clones.length > 0) {
        throw new AppError(
          'invalid_state',
          `environment ${environment.node_name} is being cloned into ${clones.map((c) => c.node_name).join(', ')}; delete it when that is done`,
        );
      }
      return this.#enqueuer.enqueue(
        {
          type: DELETE_ENVIRONMENT_JOB,
          payload: { environment_id: environmentId, purge_backups: query.purge_backups === 'true' },
          target: { type: 'environment', id: environmentId },
          groupKey: environmentId,
        },
        trx,
      );
    });
    this.#logger.info(
      { environment_id: environmentId, job_id: jobId, purge_backups: query.purge_backups === 'true' },
      'environment deletion requested',
    );
    return { job_id: jobId };
  }

  /**
   * `DELETE /api/sites/{id}`: the site (`active` or `failed`) and every environment (each `active`
   * or `failed`) become `deleting`, and in the same transaction one `delete-environment` job per
   * non-production environment (in its group) and the `delete-site` job (in production's group,
   * the answer's `job_id`), which waits for those, then deletes production and the site.
   */
  async delete(siteId: string, query: DeletionQuery): Promise<{ job_id: string }> {
    const site = await q.findSite(this.#db, siteId);
    if (!site) throw new AppError('not_found', `site ${siteId} does not exist`);
    const purgeBackups = query.purge_backups === 'true';
    const result = await this.#db.transaction().execute(async (trx) => {
      if (!(await q.setSiteStatus(trx, siteId, ['active', 'failed'], 'deleting'))) {
        const now = await q.findSite(trx, siteId);
        throw new AppError(
          'invalid_state',
          `site ${site.slug} is ${now?.status ?? 'gone'}; only an active or failed site can be deleted`,
        );
      }
      const rows = await environments.allEnvironmentsOfSite(trx, siteId);
      for (const environment of rows) await markDeleting(trx, environment);
      const production = rows.find((e) => e.type === 'production');
      const environmentJobIds: string[] = [];
      for (const environment of rows.filter((e) => e !== production)) {
        environmentJobIds.push(
          await this.#enqueuer.enqueue(
            {
              type: DELETE_ENVIRONMENT_JOB,
              payload: { environment_id: environment.id, purge_backups: purgeBackups },
              target: { type: 'environment', id: environment.id },
              groupKey: environment.id,
            },
            trx,
          ),
        );
      }
      const jobId = await this.#enqueuer.enqueue(
        {
          type: DELETE_SITE_JOB,
          payload: {
            site_id: siteId,
            environment_id: production?.id ?? null,
            purge_backups: purgeBackups,
            environment_job_ids: environmentJobIds,
          },
          target: { type: 'site', id: siteId },
          // A site without production left (an earlier deletion removed it) has no group to join.
          groupKey: production?.id ?? siteId,
        },
        trx,
      );
      return { jobId, environmentJobIds };
    });
    this.#logger.info(
      {
        site_id: siteId,
        job_id: result.jobId,
        environment_job_ids: result.environmentJobIds,
        purge_backups: purgeBackups,
      },
      'site deletion requested',
    );
    return { job_id: result.jobId };
  }

  /** The node a clone goes to: its source's, which must be an active environment of the same site. */
  async #cloneSourceNode(siteId: string, sourceId: string): Promise<string> {
    const source = await environments.findEnvironment(this.#db, sourceId);
    if (!source) throw new AppError('not_found', `source environment ${sourceId} does not exist`);
    if (source.site_id !== siteId) {
      throw new AppError('validation_failed', `source environment ${sourceId} belongs to another site`, {
        details: [{ path: 'body.source_environment_id', message: 'must be an environment of the same site' }],
      });
    }
    if (source.status !== 'active' || !source.node_id) {
      throw new AppError(
        'invalid_state',
        `source environment ${sourceId} is ${source.status}; only an active one can be cloned`,
      );
    }
    const node = await this.#db
      .selectFrom('nodes')
      .select('status')
      .where('id', '=', source.node_id)
      .executeTakeFirstOrThrow();
    if (node.status === 'disabled') {
      throw new AppError('node_disabled', `node ${source.node_id} of the source environment is disabled`);
    }
    return source.node_id;
  }
}

/** `active` or `failed` → `deleting`, or `409 invalid_state` naming the status it is in. */
async function markDeleting(trx: Db, environment: EnvironmentRow): Promise<void> {
  if (
    !(await environments.setEnvironmentStatus(
      trx,
      environment.id,
      [...environments.DELETABLE_STATUSES],
      'deleting',
    ))
  ) {
    const now = await environments.findEnvironment(trx, environment.id);
    throw new AppError(
      'invalid_state',
      `environment ${environment.node_name} is ${now?.status ?? 'gone'}; only an active or failed environment can be deleted (wait for its job to end)`,
    );
  }
}

/** An environment row with its node-side names derived from the slugs and a fresh short id. */
async function insertEnvironmentRow(
  trx: Db,
  environment: {
    siteId: string;
    siteSlug: string;
    name: string;
    slug: string;
    type: EnvironmentType;
    promotionPreset: PromotionPreset;
    nodeId: string | null;
    sourceEnvironmentId: string | null;
  },
): Promise<string> {
  const shortId = newShortId();
  const names = environmentNodeNames(environment.siteSlug, environment.slug, shortId);
  const row = await environments.insertEnvironment(trx, {
    site_id: environment.siteId,
    name: environment.name,
    slug: environment.slug,
    type: environment.type,
    status: 'provisioning',
    node_id: environment.nodeId,
    short_id: shortId,
    node_name: names.name,
    system_user: names.system_user,
    database_name: names.database_name,
    database_user: names.database_user,
    redis_prefix: names.redis_prefix,
    promotion_preset: environment.promotionPreset,
    source_environment_id: environment.sourceEnvironmentId,
  });
  return row.id;
}

function slugTaken(slug: string, siteSlug?: string): AppError {
  return new AppError(
    'slug_taken',
    siteSlug
      ? `site ${siteSlug} already has an environment with slug ${slug}`
      : `a site with slug ${slug} already exists`,
  );
}

function productionExists(siteSlug: string): AppError {
  return new AppError('production_exists', `site ${siteSlug} already has a production environment`);
}

export function toApiSite(row: q.SiteView): Site {
  return {
    id: row.id,
    name: row.name,
    slug: row.slug,
    status: row.status,
    production_environment_id: row.production_environment_id ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
