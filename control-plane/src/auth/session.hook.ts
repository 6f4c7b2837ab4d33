import type { FastifyInstance } from 'fastify';
import type { AuthService, Session } from './auth.service.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller's session; set on every /api route but the public ones. */
    session: Session;
  }
  interface FastifyContextConfig {
    /** A route reachable without a session (only POST /api/login under /api). */
    public?: boolean;
  }
}

/** Every `/api/*` request needs a live session unless its route is marked `config.public`. */
export function requireSessions(app: FastifyInstance, auth: AuthService): void {
  app.decorateRequest('session', undefined as unknown as Session);
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/api/') || request.routeOptions.config.public) return;
    const header = request.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
    request.session = await auth.authenticate(token);
  });
}
