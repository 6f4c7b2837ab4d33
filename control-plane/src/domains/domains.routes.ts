import {
  AddDomainRequest,
  Domain,
  DomainListQuery,
  ErrorResponse,
  JobAccepted,
  listResponse,
} from '@wpcp/shared/api';
import { IdParams } from '@wpcp/shared/validation';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { DomainsService } from './domains.service.ts';

export const domainsRoutes: FastifyPluginAsyncZod<{ domains: DomainsService }> = async (app, { domains }) => {
  app.get(
    '/api/environments/:id/domains',
    {
      schema: {
        tags: ['domains'],
        summary: "The environment's domains, oldest first (the default hostname first)",
        params: IdParams,
        querystring: DomainListQuery,
        response: { 200: listResponse(Domain), 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => domains.list(request.params.id, request.query),
  );

  app.post(
    '/api/environments/:id/domains',
    {
      schema: {
        tags: ['domains'],
        summary: 'Add a hostname to an environment (a job regenerates its nginx server block)',
        description:
          'The hostname is normalised (lowercase, IDNA to punycode, no trailing dot) and must be unique across the fleet (`409 hostname_taken`) and not under a node base domain (`409 hostname_reserved`). The environment must be active (`409 invalid_state`).',
        params: IdParams,
        body: AddDomainRequest,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(202).send(await domains.add(request.params.id, request.body)),
  );

  app.delete(
    '/api/domains/:id',
    {
      schema: {
        tags: ['domains'],
        summary: 'Remove a hostname from its environment (a job)',
        description:
          'The default hostname cannot be deleted (`409 default_domain`), nor the primary one (`409 primary_domain`): make another domain primary first.',
        params: IdParams,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(202).send(await domains.remove(request.params.id)),
  );

  app.post(
    '/api/domains/:id/primary',
    {
      schema: {
        tags: ['domains'],
        summary:
          "Make a domain the environment's primary hostname (a job: nginx, then WordPress home/siteurl)",
        params: IdParams,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(202).send(await domains.makePrimary(request.params.id)),
  );
};
