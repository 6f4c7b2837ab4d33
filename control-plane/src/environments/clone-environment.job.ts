import { AppError } from '@wpcp/shared/errors';
import { defaultHostname, Uuid } from '@wpcp/shared/validation';
import { z } from 'zod';
import { runNodeCommand } from '../agent-gateway/commands.ts';
import { defineJob, type StepContext } from '../jobs/job-definition.ts';
import { environmentStep, loadEnvironment, primaryUrl } from './environment-steps.ts';
import { environmentSpec } from './environment-view.ts';
import * as q from './environments.queries.ts';
import {
  insertDefaultDomain,
  markActive,
  markFailed,
  writeNginxForNewEnvironment,
} from './provision-environment.job.ts';

export const CLONE_ENVIRONMENT_JOB = 'clone-environment';

export const CloneEnvironmentPayload = z.strictObject({
  environment_id: Uuid,
  source_environment_id: Uuid,
});
type Payload = z.infer<typeof CloneEnvironmentPayload>;

/**
 * A new environment as a copy of another of the same site (`POST /api/sites/{id}/environments`
 * with `source_environment_id`):
 *
 * 1. place            on the source's node (the copy is local: files and database never cross
 *                     the network, and the protocol's CloneEnvironment is a same-node command);
 *                     the default hostname becomes its primary domain
 * 2. create-user      Linux user and group
 * 3. create-layout    its directory layout
 * 4. create-php-pool  its PHP-FPM pool
 * 5. create-database  its empty database and user
 * 6. clone            the source's current release, shared/ (uploads) and database copied in,
 *                     the source's URL rewritten to the new default URL (serialization-safe),
 *                     its own wp-config.php
 * 7. install-cron     WP-Cron from the node
 * 8. write-nginx      the server block for the default hostname
 * 9. mark-active      active, with the source's WordPress version and deployed ref
 *
 * Undos as for provisioning: newest first, so a failed clone leaves nothing behind.
 */
export const cloneEnvironmentJob = defineJob({
  type: CLONE_ENVIRONMENT_JOB,
  payload: CloneEnvironmentPayload,
  expireInSeconds: 2 * 60 * 60,
  steps: [
    { name: 'place', run: placeOnSourceNode },
    environmentStep<Payload>('create-user'),
    environmentStep<Payload>('create-layout'),
    environmentStep<Payload>('create-php-pool'),
    environmentStep<Payload>('create-database'),
    { name: 'clone', run: cloneFromSource },
    environmentStep<Payload>('install-cron'),
    writeNginxForNewEnvironment<Payload>(),
    {
      name: 'mark-active',
      run: async (ctx) => {
        const source = await q.findEnvironment(ctx.db, ctx.payload.source_environment_id);
        await markActive(ctx, {
          wordpressVersion: source?.wordpress_version ?? null,
          lastDeployedRef: source?.last_deployed_ref ?? null,
        });
      },
    },
  ],
  output: (state) => ({
    environment_id: state.environment_id ?? null,
    node_id: state.node_id ?? null,
    source_url: state.source_url ?? null,
    target_url: state.target_url ?? null,
  }),
  onFailure: markFailed,
});

async function placeOnSourceNode(ctx: StepContext<Payload>): Promise<void> {
  const { environment_id: id, source_environment_id: sourceId } = ctx.payload;
  const nodeId = await ctx.db.transaction().execute(async (trx) => {
    const [environment, source] = await Promise.all([
      q.findEnvironment(trx, id),
      q.findEnvironment(trx, sourceId),
    ]);
    if (!environment) throw new AppError('not_found', `environment ${id} no longer exists`);
    if (!source?.node_id) throw new AppError('not_found', `source environment ${sourceId} no longer exists`);
    if (source.status !== 'active') {
      throw new AppError('invalid_state', `source environment ${sourceId} is ${source.status}, not active`);
    }
    if (environment.node_id && environment.node_id !== source.node_id) {
      throw new AppError('invalid_state', `environment ${id} is on another node than its source`);
    }
    const node = await trx
      .selectFrom('nodes')
      .select(['id', 'base_domain'])
      .where('id', '=', source.node_id)
      .executeTakeFirstOrThrow();
    if (!environment.node_id) await q.assignNode(trx, id, node.id);
    await insertDefaultDomain(trx, id, defaultHostname(environment.node_name, node.base_domain));
    return node.id;
  });
  ctx.state.environment_id = id;
  ctx.state.node_id = nodeId;
}

/**
 * CloneEnvironment reads the source while it writes the target, so it is keyed on the SOURCE's
 * id: the node runs it in line with the source's own commands (a deploy, a backup), never beside
 * them. The target needs no key of its own here: its jobs wait for this one anyway.
 */
async function cloneFromSource(ctx: StepContext<Payload>): Promise<void> {
  const [target, source] = await Promise.all([
    loadEnvironment(ctx, ctx.payload.environment_id),
    loadEnvironment(ctx, ctx.payload.source_environment_id),
  ]);
  const sourceUrl = primaryUrl(source);
  const targetUrl = primaryUrl({
    ...target,
    domains: target.domains.map((d) => (d.is_default ? { ...d, is_primary: true } : d)),
  });
  ctx.state.source_url = sourceUrl;
  ctx.state.target_url = targetUrl;
  await runNodeCommand(ctx as StepContext<unknown>, {
    nodeId: target.node.id,
    step: 'clone',
    environmentKey: source.environment.id,
    safeToRetry: true,
    payload: {
      $case: 'cloneEnvironment',
      value: {
        source: environmentSpec(source.environment),
        target: environmentSpec(target.environment),
        sourceUrl,
        targetUrl,
      },
    },
  });
}
