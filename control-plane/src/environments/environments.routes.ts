import { Environment, ErrorResponse } from '@wpcp/shared/api';
import { IdParams } from '@wpcp/shared/validation';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { EnvironmentsService } from './environments.service.ts';

export const environmentsRoutes: FastifyPluginAsyncZod<{ environments: EnvironmentsService }> = async (
  app,
  { environments },
) => {
  app.get(
    '/api/environments/:id',
    {
      schema: {
        tags: ['environments'],
        summary: 'One environment: status, type, node, hostnames, WordPress version, cache flags',
        params: IdParams,
        response: { 200: Environment, 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => environments.get(request.params.id),
  );
};
