import { ErrorResponse, Metrics } from '@wpcp/shared/api';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Db } from '../database/database.ts';
import { readMetrics } from './metrics.queries.ts';

export const metricsRoutes: FastifyPluginAsyncZod<{ db: Db; offlineAfterMs: number }> = async (
  app,
  { db, offlineAfterMs },
) => {
  app.get(
    '/api/metrics',
    {
      schema: {
        tags: ['metrics'],
        summary: 'Point-in-time counters from the primary database',
        response: { 200: Metrics, 401: ErrorResponse },
      },
    },
    async () => readMetrics(db, { offlineAfterMs }),
  );
};
