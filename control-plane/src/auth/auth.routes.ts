import { ErrorResponse, LoginRequest, LoginResponse, LogoutResponse } from '@wpcp/shared/api';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuthService } from './auth.service.ts';

export const authRoutes: FastifyPluginAsyncZod<{ auth: AuthService }> = async (app, { auth }) => {
  app.post(
    '/api/login',
    {
      config: { public: true },
      schema: {
        tags: ['auth'],
        summary: 'Exchange the admin email and password for a session token',
        security: [],
        body: LoginRequest,
        response: { 200: LoginResponse, 401: ErrorResponse, 429: ErrorResponse },
      },
    },
    async (request) => ({
      session_token: await auth.login(request.body.email, request.body.password, request.ip),
    }),
  );

  app.post(
    '/api/logout',
    {
      schema: {
        tags: ['auth'],
        summary: 'Revoke the session token used for this request',
        response: { 200: LogoutResponse, 401: ErrorResponse },
      },
    },
    async (request) => {
      await auth.logout(request.session);
      return { success: true as const };
    },
  );
};
