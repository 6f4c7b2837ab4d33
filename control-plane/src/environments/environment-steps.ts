import { type EnvironmentStep, EnvironmentStepKind } from '@wpcp/shared/agent-protocol';
import { AppError } from '@wpcp/shared/errors';
import { runNodeCommand } from '../agent-gateway/commands.ts';
import type { DomainRow, EnvironmentRow } from '../database/schema.ts';
import { domainsOfEnvironment } from '../domains/domains.queries.ts';
import type { JobStepDefinition, StepContext } from '../jobs/job-definition.ts';
import { environmentSpec, type NodeReach, siteUrl } from './environment-view.ts';
import { findEnvironment } from './environments.queries.ts';

/**
 * The building blocks of the environment jobs: loading what a step needs, and the named steps
 * that send the protocol's environment commands. Every command of an environment carries its id
 * as `environmentKey`, so the node runs them one at a time, in order.
 */

export interface EnvironmentJobPayload {
  environment_id: string;
}

export interface LoadedEnvironment {
  environment: EnvironmentRow;
  node: NodeReach & { id: string; base_domain: string };
  domains: DomainRow[];
  site: { id: string; name: string; slug: string };
}

/** The environment a job works on, placed on its node. */
export async function loadEnvironment(
  ctx: Pick<StepContext<unknown>, 'db'>,
  environmentId: string,
): Promise<LoadedEnvironment> {
  const environment = await findEnvironment(ctx.db, environmentId);
  if (!environment) throw new AppError('not_found', `environment ${environmentId} no longer exists`);
  if (!environment.node_id) {
    throw new AppError('invalid_state', `environment ${environmentId} has not been placed on a node`);
  }
  const [node, domains, site] = await Promise.all([
    ctx.db
      .selectFrom('nodes')
      .select(['id', 'base_domain', 'public_scheme', 'public_port'])
      .where('id', '=', environment.node_id)
      .executeTakeFirstOrThrow(),
    domainsOfEnvironment(ctx.db, environmentId),
    ctx.db
      .selectFrom('sites')
      .select(['id', 'name', 'slug'])
      .where('id', '=', environment.site_id)
      .executeTakeFirstOrThrow(),
  ]);
  return { environment, node, domains, site };
}

/** The URL of the environment under its current primary hostname. */
export function primaryUrl(loaded: LoadedEnvironment): string {
  const primary = loaded.domains.find((d) => d.is_primary);
  if (!primary)
    throw new AppError('invalid_state', `environment ${loaded.environment.id} has no primary domain`);
  return siteUrl(loaded.node, primary.hostname);
}

/** The first WordPress administrator: the control plane's admin email when WordPress accepts it. */
export function wordpressAdmin(
  adminEmail: string,
  loaded: LoadedEnvironment,
): { user: string; email: string } {
  // WordPress's is_email() wants a dot in the domain (admin@localhost is refused).
  const domain = adminEmail.split('@')[1] ?? '';
  const email = domain.includes('.')
    ? adminEmail
    : `wpcp-admin@${loaded.domains.find((d) => d.is_default)?.hostname ?? 'example.invalid'}`;
  return { user: 'wpcp-admin', email };
}

/** The step names of the EnvironmentStep kinds, in the order provisioning runs them. */
export const ENVIRONMENT_STEP_NAMES = {
  'create-user': EnvironmentStepKind.CREATE_USER,
  'create-layout': EnvironmentStepKind.CREATE_LAYOUT,
  'create-php-pool': EnvironmentStepKind.CREATE_PHP_POOL,
  'create-database': EnvironmentStepKind.CREATE_DATABASE,
  'install-core': EnvironmentStepKind.INSTALL_CORE,
  'write-wp-config': EnvironmentStepKind.WRITE_WP_CONFIG,
  'install-wordpress': EnvironmentStepKind.INSTALL_WORDPRESS,
  'install-cron': EnvironmentStepKind.INSTALL_CRON,
} as const;
export type EnvironmentStepName = keyof typeof ENVIRONMENT_STEP_NAMES;

/**
 * Sends one EnvironmentStep command under the command step `step`: the environment's names, the
 * kind and `undo`, and whatever kind-specific `fields` (empty otherwise).
 */
export async function sendEnvironmentStep<P>(
  ctx: StepContext<P>,
  step: string,
  loaded: LoadedEnvironment,
  fields: Partial<EnvironmentStep> & Pick<EnvironmentStep, 'kind' | 'undo'>,
) {
  return runNodeCommand(ctx as StepContext<unknown>, {
    nodeId: loaded.node.id,
    step,
    environmentKey: loaded.environment.id,
    // Each kind is idempotent on the node (done twice changes nothing), so an interrupted
    // command may be sent again.
    safeToRetry: true,
    payload: {
      $case: 'environmentStep',
      value: {
        environment: environmentSpec(loaded.environment),
        siteUrl: '',
        siteTitle: '',
        adminUser: '',
        adminEmail: '',
        purgeBackups: false,
        ...fields,
      },
    },
  });
}

/**
 * One named job step per EnvironmentStep kind. Its undo sends the same kind with `undo: true`
 * under the command step `undo-<name>`. `extra` adds kind-specific fields; `onOutput` reads
 * what the node answered.
 */
export function environmentStep<P extends EnvironmentJobPayload>(
  name: EnvironmentStepName,
  options: {
    extra?: (ctx: StepContext<P>, loaded: LoadedEnvironment) => Partial<EnvironmentStep>;
    onOutput?: (ctx: StepContext<P>, output: unknown) => void;
  } = {},
): JobStepDefinition<P> {
  const kind = ENVIRONMENT_STEP_NAMES[name];
  return {
    name,
    run: async (ctx) => {
      const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
      const { output } = await sendEnvironmentStep(ctx, name, loaded, {
        kind,
        undo: false,
        ...options.extra?.(ctx, loaded),
      });
      options.onOutput?.(ctx, output);
    },
    undo: async (ctx) => {
      const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
      await sendEnvironmentStep(ctx, `undo-${name}`, loaded, { kind, undo: true });
    },
  };
}

/**
 * Writes the environment's nginx server block for `hostnames` (the primary first): atomic
 * write, `nginx -t`, reload, rollback on the node.
 */
export async function configureNginx<P>(
  ctx: StepContext<P>,
  step: string,
  loaded: LoadedEnvironment,
  hostnames: string[] | 'remove',
) {
  return runNodeCommand(ctx as StepContext<unknown>, {
    nodeId: loaded.node.id,
    step,
    environmentKey: loaded.environment.id,
    safeToRetry: true,
    payload: {
      $case: 'configureNginx',
      value: {
        environment: environmentSpec(loaded.environment),
        hostnames: hostnames === 'remove' ? [] : hostnames,
        fastcgiCache: loaded.environment.fastcgi_cache_enabled,
        remove: hostnames === 'remove',
      },
    },
  });
}

/** Points WordPress's `home` and `siteurl` at `url`. */
export async function setSiteUrl<P extends EnvironmentJobPayload>(
  ctx: StepContext<P>,
  step: string,
  loaded: LoadedEnvironment,
  url: string,
) {
  return runNodeCommand(ctx as StepContext<unknown>, {
    nodeId: loaded.node.id,
    step,
    environmentKey: loaded.environment.id,
    safeToRetry: true,
    payload: { $case: 'setSiteUrl', value: { environment: environmentSpec(loaded.environment), url } },
  });
}

/**
 * The hostnames a server block lists: the environment's served domains plus `include`, without
 * `exclude`, with `primaryId` (default: the current primary) first, then oldest first.
 */
export function serverBlockHostnames(
  domains: DomainRow[],
  options: { include?: string; exclude?: string; primaryId?: string } = {},
): string[] {
  const primaryId = options.primaryId ?? domains.find((d) => d.is_primary)?.id;
  return domains
    .filter((d) => d.id !== options.exclude)
    .filter((d) => d.status === 'active' || d.status === 'removing' || d.id === options.include)
    .sort((a, b) => Number(b.id === primaryId) - Number(a.id === primaryId) || Number(a.seq) - Number(b.seq))
    .map((d) => d.hostname);
}
