import { ErrorResponse, JobAccepted } from '@wpcp/shared/api';
import { IdParams } from '@wpcp/shared/validation';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { CachingService } from './caching.service.ts';

/** `PATCH /api/environments/:id/cache`: at least one flag, booleans only, nothing else. */
export const CacheSettingsRequest = z
  .strictObject({
    fastcgi_cache_enabled: z.boolean().optional(),
    redis_cache_enabled: z.boolean().optional(),
  })
  .refine((body) => body.fastcgi_cache_enabled !== undefined || body.redis_cache_enabled !== undefined, {
    error: 'at least one of fastcgi_cache_enabled and redis_cache_enabled is required',
  })
  .meta({ id: 'CacheSettingsRequest' });
export type CacheSettingsRequest = z.infer<typeof CacheSettingsRequest>;

export const cachingRoutes: FastifyPluginAsyncZod<{ caching: CachingService }> = async (app, { caching }) => {
  app.patch(
    '/api/environments/:id/cache',
    {
      schema: {
        tags: ['caching'],
        summary: "Turn the environment's FastCGI page cache and/or Redis object cache on or off (a job)",
        description:
          "The job regenerates the nginx server block (page cache) and installs or removes the object-cache drop-in with `wp redis enable|disable` (object cache). The environment's flags change only when the job succeeds. The environment must be active (`409 invalid_state`).",
        params: IdParams,
        body: CacheSettingsRequest,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(202).send(await caching.set(request.params.id, request.body)),
  );

  app.post(
    '/api/environments/:id/cache/purge',
    {
      schema: {
        tags: ['caching'],
        summary: "Empty the environment's page cache and delete its Redis keys (a job)",
        description:
          "The job output says how many page cache files and Redis keys were removed: `{ page_cache_files_removed, redis_keys_removed }`. Only keys under the environment's own prefix are deleted (never FLUSHDB). The environment must be active (`409 invalid_state`).",
        params: IdParams,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(202).send(await caching.purge(request.params.id)),
  );
};
