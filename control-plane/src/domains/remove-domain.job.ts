import { AppError } from '@wpcp/shared/errors';
import { configureNginx, serverBlockHostnames } from '../environments/environment-steps.ts';
import { defineJob } from '../jobs/job-definition.ts';
import { assertEnvironmentActive, DomainJobPayload, loadDomain } from './domain-jobs.ts';
import { deleteDomain, setDomainStatus } from './domains.queries.ts';

export const REMOVE_DOMAIN_JOB = 'remove-domain';

/**
 * Takes a custom hostname off an environment (`DELETE /api/domains/{id}`). The request marked the
 * domain `removing`; it is served until the server block without it is in place.
 *
 * 1. check-domain   still neither the default nor the primary hostname (a job ahead of this one
 *                   may have made it primary)
 * 2. write-nginx    the server block with the other served hostnames
 * 3. delete-domain  the row goes; the hostname is free again
 *
 * On failure the domain is `active` again (and the server block written with it, if it was
 * already without it).
 */
export const removeDomainJob = defineJob({
  type: REMOVE_DOMAIN_JOB,
  payload: DomainJobPayload,
  steps: [
    {
      name: 'check-domain',
      run: async (ctx) => {
        const { loaded, domain } = await loadDomain(ctx);
        assertEnvironmentActive(loaded);
        if (domain.is_default) {
          throw new AppError(
            'default_domain',
            `${domain.hostname} is the default hostname and cannot be deleted`,
          );
        }
        if (domain.is_primary) {
          throw new AppError(
            'primary_domain',
            `${domain.hostname} is the primary hostname and cannot be deleted`,
          );
        }
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
          serverBlockHostnames(loaded.domains, { exclude: domain.id }),
        );
      },
      undo: async (ctx) => {
        const { loaded } = await loadDomain(ctx);
        await configureNginx(ctx, 'undo-write-nginx', loaded, serverBlockHostnames(loaded.domains));
      },
    },
    {
      name: 'delete-domain',
      run: async (ctx) => {
        await deleteDomain(ctx.db, ctx.payload.domain_id);
      },
    },
  ],
  output: () => ({}),
  onFailure: async (ctx) => {
    await setDomainStatus(ctx.db, ctx.payload.domain_id, ['removing'], 'active');
  },
});
