import { DeletionQuery, Environment, ErrorResponse, JobAccepted } from '@wpcp/shared/api';
import { IdParams } from '@wpcp/shared/validation';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { SitesService } from '../sites/sites.service.ts';
import type { EnvironmentsService } from './environments.service.ts';

export const environmentsRoutes: FastifyPluginAsyncZod<{
  environments: EnvironmentsService;
  /** Creating and deleting environments belongs to their site. */
  sites: SitesService;
}> = async (app, { environments, sites }) => {
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

  app.delete(
    '/api/environments/:id',
    {
      schema: {
        tags: ['environments'],
        summary: 'Delete an environment (a job): off its node, then its records and hostnames',
        description:
          'The environment is `deleting` at once; the job removes its nginx server block, then cron, WordPress, files, database, PHP-FPM pool and Linux user, then its row and domains (the hostnames are free again). `?purge_backups=true` removes its `backups/` directory too (kept by default). A production environment goes only with its site (`409 production_with_site`); the environment must be `active` or `failed` (`409 invalid_state`).',
        params: IdParams,
        querystring: DeletionQuery,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) =>
      reply.code(202).send(await sites.deleteEnvironment(request.params.id, request.query)),
  );
};
