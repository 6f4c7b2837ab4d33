import {
  CreateEnvironmentRequest,
  CreateSiteRequest,
  DeletionQuery,
  Environment,
  EnvironmentListQuery,
  ErrorResponse,
  JobAccepted,
  listResponse,
  Site,
  SiteListQuery,
  SiteWithEnvironments,
} from '@wpcp/shared/api';
import { IdParams } from '@wpcp/shared/validation';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { SitesService } from './sites.service.ts';

export const sitesRoutes: FastifyPluginAsyncZod<{ sites: SitesService }> = async (app, { sites }) => {
  app.post(
    '/api/sites',
    {
      schema: {
        tags: ['sites'],
        summary: 'Create a site and provision its production environment (a job)',
        description:
          'The site is listed at once with status `provisioning`; the job (its target is the site) places the production environment on the least loaded active node and provisions it. `409 slug_taken` when the slug is used.',
        body: CreateSiteRequest,
        response: { 202: JobAccepted, 400: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(202).send(await sites.create(request.body)),
  );

  app.get(
    '/api/sites',
    {
      schema: {
        tags: ['sites'],
        summary: 'List sites, newest first',
        querystring: SiteListQuery,
        response: { 200: listResponse(Site), 400: ErrorResponse },
      },
    },
    async (request) => sites.list(request.query),
  );

  app.get(
    '/api/sites/:id',
    {
      schema: {
        tags: ['sites'],
        summary: 'One site with its environments',
        params: IdParams,
        response: { 200: SiteWithEnvironments, 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => sites.get(request.params.id),
  );

  app.delete(
    '/api/sites/:id',
    {
      schema: {
        tags: ['sites'],
        summary: 'Delete a site with all its environments (a job)',
        description:
          'The site and its environments are `deleting` at once. Each environment is removed from its node (server block first, then user, pool, database, files and cron), production last, then the site. `?purge_backups=true` removes the `backups/` directories too (kept by default). The site and every environment must be `active` or `failed` (`409 invalid_state`).',
        params: IdParams,
        querystring: DeletionQuery,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(202).send(await sites.delete(request.params.id, request.query)),
  );

  app.get(
    '/api/sites/:id/environments',
    {
      schema: {
        tags: ['environments'],
        summary: "The site's environments, oldest first",
        params: IdParams,
        querystring: EnvironmentListQuery,
        response: { 200: listResponse(Environment), 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => sites.listEnvironments(request.params.id, request.query),
  );

  app.post(
    '/api/sites/:id/environments',
    {
      schema: {
        tags: ['environments'],
        summary:
          'Create an environment: a fresh install, or a clone of another environment of the site (a job)',
        description:
          'Without `source_environment_id`: a fresh WordPress on the least loaded active node. With it: a copy of that active environment (files, database, URLs rewritten) on the same node. One production environment per site (`409 production_exists`); slugs unique within the site (`409 slug_taken`); the site must be active (`409 invalid_state`).',
        params: IdParams,
        body: CreateEnvironmentRequest,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) =>
      reply.code(202).send(await sites.createEnvironment(request.params.id, request.body)),
  );
};
