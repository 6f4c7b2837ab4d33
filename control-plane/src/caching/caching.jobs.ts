import { AppError } from '@wpcp/shared/errors';
import { Uuid } from '@wpcp/shared/validation';
import { z } from 'zod';
import { runNodeCommand } from '../agent-gateway/commands.ts';
import {
  configureNginx,
  type LoadedEnvironment,
  loadEnvironment,
  serverBlockHostnames,
} from '../environments/environment-steps.ts';
import { environmentSpec } from '../environments/environment-view.ts';
import { defineJob, type StepContext } from '../jobs/job-definition.ts';

export const SET_CACHE_JOB = 'set-environment-cache';
export const PURGE_CACHE_JOB = 'purge-environment-cache';

export const SetCacheJobPayload = z.strictObject({
  environment_id: Uuid,
  fastcgi_cache_enabled: z.boolean().optional(),
  redis_cache_enabled: z.boolean().optional(),
});
export type SetCacheJobPayload = z.infer<typeof SetCacheJobPayload>;

export const PurgeCacheJobPayload = z.strictObject({ environment_id: Uuid });

/** Cache changes need a provisioned environment; jobs ahead of this one may have changed it. */
export function assertCacheable(loaded: LoadedEnvironment): void {
  if (loaded.environment.status !== 'active') {
    throw new AppError(
      'invalid_state',
      `environment ${loaded.environment.id} is ${loaded.environment.status}; caches change only on an active environment`,
    );
  }
}

function setObjectCache(
  ctx: StepContext<unknown>,
  step: string,
  loaded: LoadedEnvironment,
  enabled: boolean,
) {
  return runNodeCommand(ctx, {
    nodeId: loaded.node.id,
    step,
    environmentKey: loaded.environment.id,
    // wp redis enable/disable is idempotent on the node.
    safeToRetry: true,
    payload: {
      $case: 'setObjectCache',
      value: { environment: environmentSpec(loaded.environment), enabled },
    },
  });
}

/**
 * Turns an environment's FastCGI page cache and/or Redis object cache on or off
 * (`PATCH /api/environments/{id}/cache`).
 *
 * 1. check-environment  still active
 * 2. write-nginx        (page cache in the request) the server block with the new flag, the
 *                       hostnames primary first: atomic write, `nginx -t`, reload, rollback
 * 3. set-object-cache   (object cache in the request) `wp redis enable|disable` on the node
 * 4. save-flags         the environment's flags change, only now that the node did it
 *
 * The undos write back what the database still says (the flags are saved last).
 */
export const setCacheJob = defineJob({
  type: SET_CACHE_JOB,
  payload: SetCacheJobPayload,
  steps: [
    {
      name: 'check-environment',
      run: async (ctx) => {
        assertCacheable(await loadEnvironment(ctx, ctx.payload.environment_id));
      },
    },
    {
      name: 'write-nginx',
      run: async (ctx) => {
        const enabled = ctx.payload.fastcgi_cache_enabled;
        if (enabled === undefined) return;
        const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
        const wanted = { ...loaded, environment: { ...loaded.environment, fastcgi_cache_enabled: enabled } };
        await configureNginx(ctx, 'write-nginx', wanted, serverBlockHostnames(loaded.domains));
      },
      undo: async (ctx) => {
        if (ctx.payload.fastcgi_cache_enabled === undefined) return;
        const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
        await configureNginx(ctx, 'undo-write-nginx', loaded, serverBlockHostnames(loaded.domains));
      },
    },
    {
      name: 'set-object-cache',
      run: async (ctx) => {
        const enabled = ctx.payload.redis_cache_enabled;
        if (enabled === undefined) return;
        const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
        await setObjectCache(ctx as StepContext<unknown>, 'set-object-cache', loaded, enabled);
      },
      undo: async (ctx) => {
        if (ctx.payload.redis_cache_enabled === undefined) return;
        const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
        await setObjectCache(
          ctx as StepContext<unknown>,
          'undo-set-object-cache',
          loaded,
          loaded.environment.redis_cache_enabled,
        );
      },
    },
    {
      name: 'save-flags',
      run: async (ctx) => {
        const { fastcgi_cache_enabled, redis_cache_enabled } = ctx.payload;
        const row = await ctx.db
          .updateTable('environments')
          .set({
            ...(fastcgi_cache_enabled === undefined ? {} : { fastcgi_cache_enabled }),
            ...(redis_cache_enabled === undefined ? {} : { redis_cache_enabled }),
            updated_at: new Date(),
          })
          .where('id', '=', ctx.payload.environment_id)
          .returning(['fastcgi_cache_enabled', 'redis_cache_enabled'])
          .executeTakeFirst();
        if (!row)
          throw new AppError('not_found', `environment ${ctx.payload.environment_id} no longer exists`);
        ctx.state.fastcgi_cache_enabled = row.fastcgi_cache_enabled;
        ctx.state.redis_cache_enabled = row.redis_cache_enabled;
      },
    },
  ],
  output: (state) => ({
    fastcgi_cache_enabled: state.fastcgi_cache_enabled ?? null,
    redis_cache_enabled: state.redis_cache_enabled ?? null,
  }),
});

function count(output: unknown, field: string): number {
  const value = (output as Record<string, unknown> | null)?.[field];
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : 0;
}

/**
 * Empties an environment's caches (`POST /api/environments/{id}/cache/purge`): the files of its
 * FastCGI cache zone and its Redis keys (SCAN + UNLINK over its literal prefix) on the node.
 * Output: `page_cache_files_removed`, `redis_keys_removed`.
 */
export const purgeCacheJob = defineJob({
  type: PURGE_CACHE_JOB,
  payload: PurgeCacheJobPayload,
  steps: [
    {
      name: 'purge-cache',
      run: async (ctx) => {
        const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
        assertCacheable(loaded);
        const { output } = await runNodeCommand(ctx as StepContext<unknown>, {
          nodeId: loaded.node.id,
          step: 'purge-cache',
          environmentKey: loaded.environment.id,
          safeToRetry: true,
          payload: { $case: 'purgeCache', value: { environment: environmentSpec(loaded.environment) } },
        });
        ctx.state.page_cache_files_removed = count(output, 'page_cache_files_removed');
        ctx.state.redis_keys_removed = count(output, 'redis_keys_removed');
      },
    },
  ],
  output: (state) => ({
    page_cache_files_removed: state.page_cache_files_removed ?? 0,
    redis_keys_removed: state.redis_keys_removed ?? 0,
  }),
});

/** Registered in control-plane.ts. */
export const CACHING_JOBS = [setCacheJob, purgeCacheJob];
