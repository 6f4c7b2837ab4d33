import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

/**
 * The OpenAPI 3 document is generated from the same zod schemas that validate requests. It is
 * served at /api/openapi.json (behind a session, like all of /api) and, for a browser, at /docs
 * with its own copy at /docs/json (public: it describes the API, it holds no data).
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'wpcp control plane API',
        version: '1',
        description:
          'Every mutation that touches a node or a site answers 202 { job_id }; follow it at /api/jobs/{id}.',
      },
      components: {
        securitySchemes: {
          session: { type: 'http', scheme: 'bearer', description: 'session_token from POST /api/login' },
        },
      },
      security: [{ session: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiHooks: {} });
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
