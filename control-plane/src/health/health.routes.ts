import { AppError } from '@wpcp/shared/errors';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { sql } from 'kysely';
import { z } from 'zod';
import type { Db } from '../database/database.ts';

const Health = z.object({ status: z.literal('ok') });

/** Liveness (the process answers) and readiness (the database answers), both without a session. */
export const healthRoutes: FastifyPluginAsyncZod<{ db: Db }> = async (app, { db }) => {
  app.get(
    '/healthz',
    { config: { public: true }, schema: { tags: ['health'], response: { 200: Health } } },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    { config: { public: true }, schema: { tags: ['health'], response: { 200: Health } } },
    async () => {
      try {
        await sql`select 1`.execute(db);
      } catch (error) {
        throw new AppError('database_unavailable', 'the database does not answer', { cause: error });
      }
      return { status: 'ok' as const };
    },
  );
};
