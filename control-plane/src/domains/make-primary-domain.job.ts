import { AppError } from '@wpcp/shared/errors';
import { configureNginx, serverBlockHostnames, setSiteUrl } from '../environments/environment-steps.ts';
import { siteUrl } from '../environments/environment-view.ts';
import { defineJob } from '../jobs/job-definition.ts';
import { assertEnvironmentActive, DomainJobPayload, loadDomain } from './domain-jobs.ts';
import { makePrimary } from './domains.queries.ts';

export const MAKE_PRIMARY_DOMAIN_JOB = 'make-primary-domain';

/**
 * Makes a domain the environment's primary hostname (`POST /api/domains/{id}/primary`).
 *
 * 1. check-domain   the domain is still served (`active`) and not already primary
 * 2. write-nginx    the server block with this hostname first
 * 3. set-site-url   WordPress's `home` and `siteurl` point at it
 * 4. mark-primary   the flag moves to it
 *
 * Until the last step the old primary stays primary in the database, so each undo can write the
 * old state back: the server block with the old primary first, the old URL.
 */
export const makePrimaryDomainJob = defineJob({
  type: MAKE_PRIMARY_DOMAIN_JOB,
  payload: DomainJobPayload,
  steps: [
    {
      name: 'check-domain',
      run: async (ctx) => {
        const { loaded, domain } = await loadDomain(ctx);
        assertEnvironmentActive(loaded);
        if (domain.status !== 'active') {
          throw new AppError(
            'invalid_state',
            `${domain.hostname} is ${domain.status}; only an active domain can be primary`,
          );
        }
        if (domain.is_primary)
          throw new AppError('invalid_state', `${domain.hostname} is already the primary hostname`);
        ctx.state.previous_primary = loaded.domains.find((d) => d.is_primary)?.hostname ?? null;
      },
    },
    {
      name: 'write-nginx',
      run: async (ctx) => {
        const { loaded, domain } = await loadDomain(ctx);
        await configureNginx(
          ctx,
          'write-nginx',
          loaded,
          serverBlockHostnames(loaded.domains, { primaryId: domain.id }),
        );
      },
      undo: async (ctx) => {
        const { loaded } = await loadDomain(ctx);
        await configureNginx(ctx, 'undo-write-nginx', loaded, serverBlockHostnames(loaded.domains));
      },
    },
    {
      name: 'set-site-url',
      run: async (ctx) => {
        const { loaded, domain } = await loadDomain(ctx);
        const url = siteUrl(loaded.node, domain.hostname);
        ctx.state.url = url;
        await setSiteUrl(ctx, 'set-site-url', loaded, url);
      },
      undo: async (ctx) => {
        const { loaded } = await loadDomain(ctx);
        const primary = loaded.domains.find((d) => d.is_primary);
        if (primary)
          await setSiteUrl(ctx, 'undo-set-site-url', loaded, siteUrl(loaded.node, primary.hostname));
      },
    },
    {
      name: 'mark-primary',
      run: async (ctx) => {
        await ctx.db
          .transaction()
          .execute((trx) => makePrimary(trx, ctx.payload.environment_id, ctx.payload.domain_id));
      },
    },
  ],
  output: (state) => ({ previous_primary: state.previous_primary ?? null, url: state.url ?? null }),
});
