import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '@wpcp/shared/errors';
import { Uuid } from '@wpcp/shared/validation';
import { z } from 'zod';
import {
  checkDeleting,
  deletionOutput,
  environmentDeletionSteps,
  markDeletionFailed,
} from '../environments/delete-environment.job.ts';
import { findEnvironment } from '../environments/environments.queries.ts';
import { defineJob, type StepContext } from '../jobs/job-definition.ts';
import { deleteEmptySite, findSite, setSiteStatus } from './sites.queries.ts';

export const DELETE_SITE_JOB = 'delete-site';

/** How often the site's job looks at its environments' deletion jobs while it waits for them. */
const WAIT_POLL_MS = 500;

export const DeleteSitePayload = z.strictObject({
  site_id: Uuid,
  /** The production environment, deleted by this job; null when an earlier attempt removed it. */
  environment_id: Uuid.nullable(),
  purge_backups: z.boolean(),
  /** The `delete-environment` jobs of the site's other environments, enqueued with this one. */
  environment_job_ids: z.array(Uuid),
});
type Payload = z.infer<typeof DeleteSitePayload>;

/**
 * Deletes a site with all its environments (`DELETE /api/sites/{id}`). The request made the site
 * and every environment `deleting` and enqueued, in one transaction, one `delete-environment` job
 * per non-production environment (each in its environment's group, so it runs after that
 * environment's earlier jobs) and this job, in the production environment's group (so it runs
 * after production's earlier jobs):
 *
 * 1. check                    the site and its production environment are still `deleting`
 * 2. wait-for-environments    the other environments' deletion jobs have all succeeded (a job
 *                             waits for jobs of its own group only, so this looks at theirs)
 * 3. remove-nginx …           production removed from its node like any environment
 *    undo-create-user,        (environmentDeletionSteps): the server block first, then the
 *    delete-environment       provisioning steps undone newest first, then its row
 * 4. delete-site              the site's row, once it has no environment left
 *
 * Production goes last: the site stays whole and reachable until everything else is gone. If an
 * environment's deletion fails, this job fails with `deletion_failed` before touching production;
 * the site and its remaining environments are `failed`, and `DELETE /api/sites/{id}` again
 * finishes the job (every step is idempotent on the node).
 */
export const deleteSiteJob = defineJob({
  type: DELETE_SITE_JOB,
  payload: DeleteSitePayload,
  // The other environments' deletions are waited for inside this job's time.
  expireInSeconds: 2 * 60 * 60,
  steps: [
    {
      name: 'check',
      run: async (ctx) => {
        const site = await findSite(ctx.db, ctx.payload.site_id);
        if (!site) throw new AppError('not_found', `site ${ctx.payload.site_id} no longer exists`);
        if (site.status !== 'deleting') {
          throw new AppError('invalid_state', `site ${site.slug} is ${site.status}, not deleting`);
        }
        ctx.state.site_id = site.id;
        if (ctx.payload.environment_id) await checkDeleting(ctx, ctx.payload.environment_id);
      },
    },
    { name: 'wait-for-environments', run: waitForEnvironmentJobs },
    ...environmentDeletionSteps<Payload>(),
    {
      name: 'delete-site',
      run: async (ctx) => {
        const result = await ctx.db.transaction().execute((trx) => deleteEmptySite(trx, ctx.payload.site_id));
        if (!result.gone) {
          throw new AppError(
            'invalid_state',
            `site ${ctx.payload.site_id} still has environments (${result.remaining.join(', ')}); delete it again`,
          );
        }
      },
    },
  ],
  output: (state) => ({
    site_id: state.site_id ?? null,
    environment_job_ids: state.environment_job_ids ?? [],
    production: deletionOutput(state),
  }),
  onFailure: async (ctx) => {
    await markDeletionFailed(ctx, ctx.payload.environment_id);
    await setSiteStatus(ctx.db, ctx.payload.site_id, 'deleting', 'failed');
  },
});

/**
 * Waits until every `delete-environment` job of the request has ended: all succeeded, or the
 * first one that did not fails this job (nothing of production has been touched yet). They run
 * in their own environments' groups, where this job cannot queue, hence the polling; none of them
 * waits for this job, so the wait always ends (at the latest when they fail or expire).
 */
async function waitForEnvironmentJobs(ctx: StepContext<Payload>): Promise<void> {
  const ids = ctx.payload.environment_job_ids;
  ctx.state.environment_job_ids = ids;
  if (ids.length === 0) return;
  for (;;) {
    const jobs = await ctx.db
      .selectFrom('jobs')
      .select(['id', 'status', 'error_code', 'error_message', 'target_id'])
      .where('id', 'in', ids)
      .execute();
    const unsuccessful = jobs.find((job) => job.status === 'failed' || job.status === 'cancelled');
    if (unsuccessful) {
      const environment = unsuccessful.target_id
        ? await findEnvironment(ctx.db, unsuccessful.target_id)
        : undefined;
      const reason = unsuccessful.error_code
        ? `, ${unsuccessful.error_code}: ${unsuccessful.error_message}`
        : '';
      throw new AppError(
        'deletion_failed',
        `environment ${environment?.node_name ?? unsuccessful.target_id} could not be deleted (job ${unsuccessful.id} ${unsuccessful.status}${reason})`,
      );
    }
    if (jobs.length === ids.length && jobs.every((job) => job.status === 'succeeded')) return;
    await sleep(WAIT_POLL_MS, undefined, { signal: ctx.signal });
  }
}
