import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { authRoutes } from './auth/auth.routes.ts';
import type { AuthService } from './auth/auth.service.ts';
import { requireSessions } from './auth/session.hook.ts';
import { cachingRoutes } from './caching/caching.routes.ts';
import type { CachingService } from './caching/caching.service.ts';
import type { Config } from './config.ts';
import type { Db } from './database/database.ts';
import { domainsRoutes } from './domains/domains.routes.ts';
import type { DomainsService } from './domains/domains.service.ts';
import { environmentsRoutes } from './environments/environments.routes.ts';
import type { EnvironmentsService } from './environments/environments.service.ts';
import { healthRoutes } from './health/health.routes.ts';
import { installErrorHandlers } from './http/error-handler.ts';
import { registerOpenApi } from './http/openapi.ts';
import { jobsRoutes } from './jobs/jobs.routes.ts';
import type { JobsService } from './jobs/jobs.service.ts';
import { magicLoginRoutes } from './magic-login/magic-login.routes.ts';
import type { MagicLoginService } from './magic-login/magic-login.service.ts';
import { metricsRoutes } from './metrics/metrics.routes.ts';
import { nodesRoutes } from './nodes/nodes.routes.ts';
import type { NodesService } from './nodes/nodes.service.ts';
import { sitesRoutes } from './sites/sites.routes.ts';
import type { SitesService } from './sites/sites.service.ts';

export interface AppDependencies {
  config: Pick<Config, 'http' | 'nodes'>;
  logger: Logger;
  db: Db;
  auth: AuthService;
  jobs: JobsService;
  nodes: NodesService;
  sites: SitesService;
  environments: EnvironmentsService;
  domains: DomainsService;
  caching: CachingService;
  /** One-time WordPress admin logins (absent: the routes are not registered). */
  magicLogins?: MagicLoginService;
  https?: { key: Buffer; cert: Buffer };
}

/** The HTTP API: conventions (errors, validation, sessions, request logs) first, then the routes. */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    // Fastify's own two lines per request are replaced by our one (logOneLinePerRequest).
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    trustProxy: deps.config.http.trustProxy,
    bodyLimit: deps.config.http.bodyLimitBytes,
    return503OnClosing: true,
    ...(deps.https ? { https: deps.https } : {}),
  }) as unknown as FastifyInstance;

  // JSON only: without this, Fastify would also accept text/plain bodies.
  app.removeContentTypeParser(['text/plain']);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandlers(app);
  logOneLinePerRequest(app);
  requireSessions(app, deps.auth);
  await registerOpenApi(app);

  await app.register(healthRoutes, { db: deps.db });
  await app.register(authRoutes, { auth: deps.auth });
  await app.register(jobsRoutes, { jobs: deps.jobs });
  await app.register(nodesRoutes, { nodes: deps.nodes });
  await app.register(sitesRoutes, { sites: deps.sites });
  await app.register(environmentsRoutes, { environments: deps.environments, sites: deps.sites });
  await app.register(domainsRoutes, { domains: deps.domains });
  await app.register(cachingRoutes, { caching: deps.caching });
  if (deps.magicLogins) await app.register(magicLoginRoutes, { magicLogins: deps.magicLogins });
  await app.register(metricsRoutes, { db: deps.db, offlineAfterMs: deps.config.nodes.offlineAfterMs });
  return app;
}

/** One JSON line per request, written when the answer has gone out, with the request id. */
function logOneLinePerRequest(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: request.url.split('?')[0],
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 10) / 10,
        client: request.ip,
      },
      'request',
    );
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
}
