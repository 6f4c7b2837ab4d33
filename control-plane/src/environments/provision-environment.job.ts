import { AppError } from '@wpcp/shared/errors';
import { defaultHostname, Uuid } from '@wpcp/shared/validation';
import { z } from 'zod';
import { activatePendingDomains, ensureDefaultDomain } from '../domains/domains.queries.ts';
import { defineJob, type FailureContext, type StepContext } from '../jobs/job-definition.ts';
import { setSiteStatus } from '../sites/sites.queries.ts';
import {
  configureNginx,
  environmentStep,
  loadEnvironment,
  primaryUrl,
  serverBlockHostnames,
  wordpressAdmin,
} from './environment-steps.ts';
import * as q from './environments.queries.ts';

export const PROVISION_ENVIRONMENT_JOB = 'provision-environment';

export const ProvisionEnvironmentPayload = z.strictObject({ environment_id: Uuid });
type Payload = z.infer<typeof ProvisionEnvironmentPayload>;

/**
 * A fresh WordPress environment, from nothing to served (`POST /api/sites` for a site's
 * production environment, `POST /api/sites/{id}/environments` for another one):
 *
 *  1. place              choose the active node with the fewest environments; the default
 *                        hostname `<site>--<env>.<node base domain>` becomes its primary domain
 *  2. create-user        Linux user and group
 *  3. create-layout      /srv/wpcp/<site>--<env>/{releases,current,shared,backups}
 *  4. create-php-pool    PHP-FPM pool as that user, on its own socket
 *  5. create-database    MariaDB database and user (password generated on the node)
 *  6. install-core       WordPress core into the first release (reports the version)
 *  7. write-wp-config    wp-config.php: salts, database, Redis prefix, DISABLE_WP_CRON
 *  8. install-wordpress  `wp core install` at the default hostname's URL
 *  9. install-cron       WP-Cron from the node every minute
 * 10. write-nginx        the server block for the default hostname
 * 11. mark-active        the environment (and a provisioning site) becomes active
 *
 * When the job finally fails, the undos run newest first (each sends the same command with
 * `undo: true`), so nothing half-made stays on the node; the environment, and the site if this
 * was its production environment, become `failed`.
 */
export const provisionEnvironmentJob = defineJob({
  type: PROVISION_ENVIRONMENT_JOB,
  payload: ProvisionEnvironmentPayload,
  // Nothing to wait for when no node is there: fail at once and say so.
  permanentErrors: ['no_active_node'],
  expireInSeconds: 60 * 60,
  steps: [
    { name: 'place', run: placeOnLeastLoadedNode },
    environmentStep<Payload>('create-user'),
    environmentStep<Payload>('create-layout'),
    environmentStep<Payload>('create-php-pool'),
    environmentStep<Payload>('create-database'),
    environmentStep<Payload>('install-core', {
      onOutput: (ctx, output) => {
        const version = (output as { wordpress_version?: unknown } | null)?.wordpress_version;
        ctx.state.wordpress_version = typeof version === 'string' ? version : null;
      },
    }),
    environmentStep<Payload>('write-wp-config'),
    environmentStep<Payload>('install-wordpress', {
      extra: (ctx, loaded) => {
        const admin = wordpressAdmin(ctx.settings.adminEmail, loaded);
        return {
          siteUrl: primaryUrl(loaded),
          siteTitle:
            loaded.environment.type === 'production'
              ? loaded.site.name
              : `${loaded.site.name} (${loaded.environment.name})`,
          adminUser: admin.user,
          adminEmail: admin.email,
        };
      },
    }),
    environmentStep<Payload>('install-cron'),
    writeNginxForNewEnvironment<Payload>(),
    {
      name: 'mark-active',
      run: async (ctx) => {
        const version = ctx.state.wordpress_version;
        await markActive(ctx, { wordpressVersion: typeof version === 'string' ? version : null });
      },
    },
  ],
  output: (state) => ({
    environment_id: state.environment_id ?? null,
    node_id: state.node_id ?? null,
    wordpress_version: state.wordpress_version ?? null,
  }),
  onFailure: markFailed,
});

/**
 * Placement: the active node with the fewest environments (not counting failed ones), ties to
 * the oldest node. Recorded with the default domain in one transaction, so a retried job finds
 * its node again instead of choosing anew.
 */
async function placeOnLeastLoadedNode(ctx: StepContext<Payload>): Promise<void> {
  const id = ctx.payload.environment_id;
  const placed = await ctx.db.transaction().execute(async (trx) => {
    const environment = await q.findEnvironment(trx, id);
    if (!environment) throw new AppError('not_found', `environment ${id} no longer exists`);
    if (environment.node_id) return { nodeId: environment.node_id };
    const node = await q.leastLoadedActiveNode(trx, ctx.settings.offlineAfterMs);
    if (!node) {
      throw new AppError(
        'no_active_node',
        'no active node to place the environment on: every node is offline, disabled or not enrolled yet',
      );
    }
    await q.assignNode(trx, id, node.id);
    await insertDefaultDomain(trx, id, defaultHostname(environment.node_name, node.base_domain));
    return { nodeId: node.id, detail: `node ${node.name}, which had ${node.environments} environments` };
  });
  ctx.state.environment_id = id;
  ctx.state.node_id = placed.nodeId;
  ctx.log(`placed on ${placed.detail ?? `node ${placed.nodeId} (chosen by an earlier attempt)`}`);
}

/** The default domain, unique across the fleet like every hostname. */
export async function insertDefaultDomain(
  db: StepContext<unknown>['db'],
  environmentId: string,
  hostname: string,
): Promise<void> {
  try {
    await ensureDefaultDomain(db, environmentId, hostname);
  } catch (error) {
    if ((error as { code?: string }).code === '23505') {
      throw new AppError(
        'hostname_taken',
        `the default hostname ${hostname} is already used by another domain`,
      );
    }
    throw error;
  }
}

/** `write-nginx` for an environment whose only domain is its (pending) default hostname. */
export function writeNginxForNewEnvironment<P extends Payload>() {
  return {
    name: 'write-nginx',
    run: async (ctx: StepContext<P>) => {
      const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
      const defaultDomain = loaded.domains.find((d) => d.is_default);
      await configureNginx(
        ctx,
        'write-nginx',
        loaded,
        serverBlockHostnames(loaded.domains, { include: defaultDomain?.id }),
      );
    },
    undo: async (ctx: StepContext<P>) => {
      const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
      await configureNginx(ctx, 'undo-write-nginx', loaded, 'remove');
    },
  };
}

/** The environment and its domains become active; so does its site if it was provisioning. */
export async function markActive(
  ctx: StepContext<{ environment_id: string }>,
  facts: { wordpressVersion: string | null; lastDeployedRef?: string | null },
): Promise<void> {
  await ctx.db.transaction().execute(async (trx) => {
    const environment = await q.markEnvironmentActive(trx, ctx.payload.environment_id, facts);
    if (!environment) {
      throw new AppError(
        'invalid_state',
        `environment ${ctx.payload.environment_id} is no longer provisioning`,
      );
    }
    await activatePendingDomains(trx, environment.id);
    await setSiteStatus(trx, environment.site_id, 'provisioning', 'active');
  });
}

/** On final failure: the environment is `failed`, and so is its site if this was its production. */
export async function markFailed(ctx: FailureContext<{ environment_id: string }>): Promise<void> {
  const environment = await q.setEnvironmentStatus(
    ctx.db,
    ctx.payload.environment_id,
    ['provisioning'],
    'failed',
  );
  if (environment?.type === 'production') {
    await setSiteStatus(ctx.db, environment.site_id, 'provisioning', 'failed');
  }
}
