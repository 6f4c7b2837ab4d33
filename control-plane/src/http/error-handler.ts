import { AppError, type ErrorCode, errorCatalogue } from '@wpcp/shared/errors';
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/**
 * Every failure leaves as `{ code, message }` (plus `details` for validation problems) with the
 * status the catalogue gives the code. 5xx answers never carry internals: the log has them,
 * under the request id.
 */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send({ code: 'not_found', message: `no route for ${request.method} ${request.url.split('?')[0]}` });
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const answer = toAnswer(error);
    if (answer.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ error_code: answer.body.code }, answer.body.message);
    reply.headers(answer.headers).code(answer.status).send(answer.body);
  });
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: { code: ErrorCode; message: string; details?: { path: string; message: string }[] };
}

function answer(
  code: ErrorCode,
  message: string,
  extra: { status?: number; details?: Answer['body']['details'] } = {},
): Answer {
  return {
    status: extra.status ?? errorCatalogue[code].status,
    headers: {},
    body: { code, message, ...(extra.details ? { details: extra.details } : {}) },
  };
}

/** 5xx codes whose message is the node's own (already scrubbed of secrets by the agent): shown. */
const NODE_MESSAGE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['wp_cli_error']);

function toAnswer(error: FastifyError): Answer {
  if (error instanceof AppError) {
    const details = Array.isArray(error.details) ? (error.details as Answer['body']['details']) : undefined;
    const message =
      error.status >= 500 && !NODE_MESSAGE_CODES.has(error.code)
        ? errorCatalogue[error.code].meaning
        : error.message;
    return {
      status: error.status,
      headers: { ...error.headers },
      body: { code: error.code, message, details },
    };
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const details = error.validation.map((issue) => ({
      path: [error.validationContext, ...issue.instancePath.split('/').filter(Boolean)].join('.'),
      message: issue.message ?? 'invalid',
    }));
    const summary = details.map((d) => `${d.path}: ${d.message}`).join('; ');
    return answer('validation_failed', `invalid request: ${summary}`, { details });
  }
  if (isDatabaseOutage(error))
    return answer('database_unavailable', errorCatalogue.database_unavailable.meaning);
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return answer('unsupported_media_type', 'the request body must be application/json');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return answer('payload_too_large', 'the request body is too large');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return answer('validation_failed', 'the request body is not valid JSON');
  }
  if (error.statusCode === 405) return answer('method_not_allowed', error.message);
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    // Other client errors Fastify detects itself (malformed JSON, bad content length, ...).
    return answer('validation_failed', error.message, { status: error.statusCode });
  }
  return answer('internal_error', errorCatalogue.internal_error.meaning);
}

const OUTAGE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  '57P01',
  '57P02',
  '57P03',
  '08006',
  '08001',
  '08003',
]);

function isDatabaseOutage(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && OUTAGE_CODES.has(code)) return true;
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|timeout exceeded when trying to connect/i.test(message);
}
