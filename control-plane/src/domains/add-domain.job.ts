import { configureNginx, serverBlockHostnames } from '../environments/environment-steps.ts';
import { defineJob } from '../jobs/job-definition.ts';
import { assertEnvironmentActive, assertHostnameFree, DomainJobPayload, loadDomain } from './domain-jobs.ts';
import { deleteDomain, setDomainStatus } from './domains.queries.ts';

export const ADD_DOMAIN_JOB = 'add-domain';

/**
 * A custom hostname for an environment (`POST /api/environments/{id}/domains`). The domain row
 * exists from the request on (`pending`), so the unique index on hostnames already decided the
 * race between two requests; the job checks again all the same before nginx sees the name.
 *
 * 1. check-hostname  still unique across the fleet, not under a node's base domain
 * 2. write-nginx     the server block with every served hostname plus this one (primary first):
 *                    atomic write, `nginx -t`, reload, rollback on the node
 * 3. mark-active     the domain is served
 *
 * The primary hostname does not change, so WordPress's URLs stay as they are. On failure the
 * server block is written again without the hostname, and the domain row is deleted.
 */
export const addDomainJob = defineJob({
  type: ADD_DOMAIN_JOB,
  payload: DomainJobPayload,
  steps: [
    {
      name: 'check-hostname',
      run: async (ctx) => {
        const { loaded, domain } = await loadDomain(ctx);
        assertEnvironmentActive(loaded);
        await assertHostnameFree(ctx, domain);
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
          serverBlockHostnames(loaded.domains, { include: domain.id }),
        );
      },
      undo: async (ctx) => {
        const { loaded, domain } = await loadDomain(ctx);
        await configureNginx(
          ctx,
          'undo-write-nginx',
          loaded,
          serverBlockHostnames(loaded.domains, { exclude: domain.id }),
        );
      },
    },
    {
      name: 'mark-active',
      run: async (ctx) => {
        await setDomainStatus(ctx.db, ctx.payload.domain_id, ['pending'], 'active');
      },
    },
  ],
  output: () => ({}),
  onFailure: async (ctx) => {
    await deleteDomain(ctx.db, ctx.payload.domain_id, { status: 'pending' });
  },
});
