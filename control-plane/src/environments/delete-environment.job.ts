import { AppError } from '@wpcp/shared/errors';
import { Uuid } from '@wpcp/shared/validation';
import { z } from 'zod';
import { domainsOfEnvironment } from '../domains/domains.queries.ts';
import {
  defineJob,
  type FailureContext,
  type JobStepDefinition,
  type StepContext,
} from '../jobs/job-definition.ts';
import {
  configureNginx,
  ENVIRONMENT_STEP_NAMES,
  type EnvironmentStepName,
  type LoadedEnvironment,
  loadEnvironment,
  sendEnvironmentStep,
} from './environment-steps.ts';
import * as q from './environments.queries.ts';

export const DELETE_ENVIRONMENT_JOB = 'delete-environment';

export const DeleteEnvironmentPayload = z.strictObject({
  environment_id: Uuid,
  /** Remove `backups/` too (CREATE_LAYOUT's undo with `purgeBackups`); kept otherwise. */
  purge_backups: z.boolean(),
});
type Payload = z.infer<typeof DeleteEnvironmentPayload>;

/**
 * What the deletion steps read from a job's payload. `environment_id` is null for a site whose
 * production environment an earlier, failed deletion of the site already removed.
 */
export interface DeletionPayload {
  environment_id: string | null;
  purge_backups: boolean;
}

/** The provisioning steps undone by a deletion, newest first (CREATE_USER last, after its files). */
export const UNDO_ORDER: readonly EnvironmentStepName[] = [
  'install-cron',
  'install-wordpress',
  'write-wp-config',
  'install-core',
  'create-database',
  'create-php-pool',
  'create-layout',
  'create-user',
];

/**
 * Deletes an environment that is not its site's production (`DELETE /api/environments/{id}`, and
 * each non-production environment of `DELETE /api/sites/{id}`). The request made it `deleting`.
 *
 *  1. check                    still `deleting`, not production; what it has (node, hostnames)
 *  2. remove-nginx             ConfigureNginx `remove`: its hostnames stop being served first
 *  3. undo-install-cron …      the provisioning steps undone newest first, one EnvironmentStep
 *     undo-create-user         command each with `undo: true` (CREATE_LAYOUT's carries
 *                              `purgeBackups`); see environmentDeletionSteps
 *  4. delete-environment       its row and its domains go: slug and hostnames are free again
 *
 * Every undo is idempotent on the node (undoing what was never made succeeds), so a retried
 * attempt, or a second DELETE after a failed one, sends them all again safely. There are no undos
 * of the deletion: a deletion that finally fails (or is cancelled) leaves the environment
 * `failed`, partly removed, and `DELETE` again finishes it.
 */
export const deleteEnvironmentJob = defineJob({
  type: DELETE_ENVIRONMENT_JOB,
  payload: DeleteEnvironmentPayload,
  expireInSeconds: 60 * 60,
  steps: [
    {
      name: 'check',
      run: async (ctx) => {
        const environment = await checkDeleting(ctx, ctx.payload.environment_id);
        if (environment.type === 'production') {
          throw new AppError(
            'production_with_site',
            `environment ${environment.node_name} is its site's production environment; it is deleted only with its site`,
          );
        }
      },
    },
    ...environmentDeletionSteps<Payload>(),
  ],
  output: deletionOutput,
  onFailure: async (ctx) => {
    await markDeletionFailed(ctx, ctx.payload.environment_id);
  },
});

/**
 * The `check` of a deletion: the environment exists and is `deleting` (as the request left it;
 * jobs ahead of this one cannot have changed that, since nothing else starts on a `deleting`
 * environment). Records what the output reports.
 */
export async function checkDeleting(ctx: StepContext<DeletionPayload>, environmentId: string) {
  const environment = await q.findEnvironment(ctx.db, environmentId);
  if (!environment) throw new AppError('not_found', `environment ${environmentId} no longer exists`);
  if (environment.status !== 'deleting') {
    throw new AppError(
      'invalid_state',
      `environment ${environment.node_name} is ${environment.status}, not deleting`,
    );
  }
  const domains = await domainsOfEnvironment(ctx.db, environmentId);
  ctx.state.environment_id = environment.id;
  ctx.state.node_id = environment.node_id;
  ctx.state.hostnames = domains.map((d) => d.hostname);
  ctx.state.backups_purged = ctx.payload.purge_backups;
  return environment;
}

/**
 * The node-side removal and the records, as named job steps, shared by `delete-environment` and
 * `delete-site` (which runs them for the production environment):
 *
 * - `remove-nginx`: ConfigureNginx with `remove` (file removed, `nginx -t`, reload);
 * - `undo-<step>` for each provisioning step, newest first (UNDO_ORDER): the same
 *   EnvironmentStep kind with `undo: true`, the command step of the same name;
 * - `delete-environment`: the row (and, by foreign key, its domains).
 *
 * An environment that was never placed on a node (placement failed) has nothing there: its node
 * steps do nothing.
 */
export function environmentDeletionSteps<P extends DeletionPayload>(): JobStepDefinition<P>[] {
  return [
    onNode<P>('remove-nginx', (ctx, loaded) => configureNginx(ctx, 'remove-nginx', loaded, 'remove')),
    ...UNDO_ORDER.map((name) =>
      onNode<P>(`undo-${name}`, (ctx, loaded) =>
        sendEnvironmentStep(ctx, `undo-${name}`, loaded, {
          kind: ENVIRONMENT_STEP_NAMES[name],
          undo: true,
          purgeBackups: name === 'create-layout' && ctx.payload.purge_backups,
        }),
      ),
    ),
    {
      name: 'delete-environment',
      run: async (ctx) => {
        const id = ctx.payload.environment_id;
        if (!id) return;
        if (!(await q.deleteDeletingEnvironment(ctx.db, id))) {
          const environment = await q.findEnvironment(ctx.db, id);
          // Gone already: an earlier attempt deleted it just before it was interrupted.
          if (environment) {
            throw new AppError('invalid_state', `environment ${id} is ${environment.status}, not deleting`);
          }
        }
        ctx.log(`environment ${id} deleted; its hostnames are free again`);
      },
    },
  ];
}

/** A step that sends one command for the environment, when it was placed on a node. */
function onNode<P extends DeletionPayload>(
  name: string,
  send: (ctx: StepContext<P>, loaded: LoadedEnvironment) => Promise<unknown>,
): JobStepDefinition<P> {
  return {
    name,
    run: async (ctx) => {
      const id = ctx.payload.environment_id;
      if (!id) return;
      const environment = await q.findEnvironment(ctx.db, id);
      if (!environment) throw new AppError('not_found', `environment ${id} no longer exists`);
      if (!environment.node_id) {
        if (name === 'remove-nginx')
          ctx.log(`environment ${id} was never placed on a node: nothing to remove there`);
        return;
      }
      await send(ctx, await loadEnvironment(ctx, id));
    },
  };
}

/** The output of a deletion: what was removed, and whether `backups/` went too. */
export function deletionOutput(state: Record<string, unknown>) {
  return {
    environment_id: state.environment_id ?? null,
    node_id: state.node_id ?? null,
    hostnames_freed: state.hostnames ?? [],
    backups_purged: state.backups_purged ?? false,
  };
}

/** On final failure (or cancellation): a `deleting` environment becomes `failed`. */
export async function markDeletionFailed(ctx: FailureContext<unknown>, environmentId: string | null) {
  if (environmentId) await q.setEnvironmentStatus(ctx.db, environmentId, ['deleting'], 'failed');
}
