import { ErrorResponse, ListQuery, listResponse } from '@wpcp/shared/api';
import { IdParams } from '@wpcp/shared/validation';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { MagicLoginService } from './magic-login.service.ts';

export const MagicLoginIssued = z.object({
  login_url: z.string(),
  expires_at: z.string(),
});

export const MagicLoginAudit = z.object({
  id: z.string(),
  environment_id: z.string(),
  node_id: z.string().nullable(),
  user_id: z.string().nullable(),
  user_email: z.string().nullable(),
  status: z.enum(['pending', 'issued', 'failed']),
  error_code: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
});

export const magicLoginRoutes: FastifyPluginAsyncZod<{ magicLogins: MagicLoginService }> = async (
  app,
  { magicLogins },
) => {
  app.post(
    '/api/environments/:id/magic-login',
    {
      schema: {
        tags: ['environments'],
        summary: 'A one-time WordPress admin login URL (valid 60 s, usable once)',
        description:
          'Synchronous: the node creates the token (10 s limit). `409 environment_not_active` unless the environment is `active`; `503 node_unreachable` when its node has no live connection or does not answer in time; `502 wp_cli_error` when the node-side WordPress operation fails; `429 rate_limited` (with `Retry-After`) beyond the per-environment limit. Every request is audited (never the URL): `GET /api/environments/{id}/magic-logins`.',
        params: IdParams,
        response: {
          200: MagicLoginIssued,
          400: ErrorResponse,
          404: ErrorResponse,
          409: ErrorResponse,
          429: ErrorResponse,
          502: ErrorResponse,
          503: ErrorResponse,
        },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return magicLogins.issue(request.params.id, request.session.userId);
    },
  );

  app.get(
    '/api/environments/:id/magic-logins',
    {
      schema: {
        tags: ['environments'],
        summary: 'The magic-login audit trail of an environment, newest first',
        params: IdParams,
        querystring: ListQuery,
        response: { 200: listResponse(MagicLoginAudit), 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => magicLogins.list(request.params.id, request.query),
  );
};
