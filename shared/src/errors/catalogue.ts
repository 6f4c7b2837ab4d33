/**
 * The one catalogue of error codes. Every `{ code, message }` the API answers, and every
 * `error_code` a job ends with, is a key of this object. The HTTP status and the meaning live
 * here so the Fastify error handler, the job runner, the agent gateway and docs/errors.md all
 * read the same table.
 */
export interface ErrorDefinition {
  /** HTTP status when the code is answered by the API. */
  readonly status: number;
  /** What the code means, for the docs and for API clients. */
  readonly meaning: string;
  /** Whether the same request may succeed later without being changed. */
  readonly retryable: boolean;
}

export const errorCatalogue = {
  validation_failed: {
    status: 400,
    retryable: false,
    meaning:
      'The request is malformed: bad JSON, a wrong type, an unknown field or a value out of range. `details` lists each problem.',
  },
  unauthorized: {
    status: 401,
    retryable: false,
    meaning: 'No session token, or the token is unknown, expired or revoked.',
  },
  invalid_credentials: {
    status: 401,
    retryable: false,
    meaning: 'The email or the password is wrong (the answer does not say which).',
  },
  not_found: { status: 404, retryable: false, meaning: 'No such route, or no record with that id.' },
  method_not_allowed: {
    status: 405,
    retryable: false,
    meaning: 'The route exists but not for this HTTP method.',
  },
  name_taken: {
    status: 409,
    retryable: false,
    meaning: 'Another record of the same kind already has this name; names are unique.',
  },
  node_disabled: {
    status: 409,
    retryable: false,
    meaning:
      'The node is disabled: it cannot connect and gets no commands. Enable it (`POST /api/nodes/{id}/enable`) first.',
  },
  invalid_state: {
    status: 409,
    retryable: false,
    meaning:
      'The record is not in a state that allows this operation (for example cancelling a finished job).',
  },
  payload_too_large: {
    status: 413,
    retryable: false,
    meaning: 'The request body is larger than the server accepts.',
  },
  unsupported_media_type: {
    status: 415,
    retryable: false,
    meaning: 'The request body is not `application/json`.',
  },
  rate_limited: {
    status: 429,
    retryable: true,
    meaning: 'Too many attempts; wait for the number of seconds in the `Retry-After` header.',
  },
  internal_error: {
    status: 500,
    retryable: true,
    meaning: 'An unexpected failure on the server. The details are in the server log under the request id.',
  },
  database_unavailable: {
    status: 503,
    retryable: true,
    meaning: 'The control plane cannot reach its PostgreSQL database.',
  },
  node_unreachable: {
    status: 503,
    retryable: true,
    meaning:
      'The node has no live connection to the control plane, or did not answer in time: a queued command was withdrawn at its deadline (it will never run), or a delivered one reported no result. `error_message` says which.',
  },
  worker_lost: {
    status: 500,
    retryable: true,
    meaning: 'Job only: the process running the job stopped answering and the job ran out of retries.',
  },
  job_cancelled: { status: 409, retryable: false, meaning: 'Job only: the job was cancelled by a user.' },
  command_failed: {
    status: 500,
    retryable: false,
    meaning:
      'Job only: the command ran on the node and failed; `error_message` carries the reason the node gave (and its own error code).',
  },
  command_rejected: {
    status: 500,
    retryable: false,
    meaning:
      'Job only: the node refused to start the command (unsupported by its agent version, invalid input, or its deadline had passed). Nothing was changed on the node.',
  },
  command_interrupted: {
    status: 500,
    retryable: false,
    meaning:
      'Job only: the node agent stopped (crash, restart, power loss) while the command was running. It was not run again and its effect is unknown; check the node before retrying.',
  },
  command_cancelled: {
    status: 409,
    retryable: false,
    meaning:
      'Job only: the command was stopped on the node, because its job was cancelled or its deadline passed.',
  },
  job_failed: {
    status: 500,
    retryable: true,
    meaning: 'Job only: a step failed for a reason that has no more specific code; see `error_message`.',
  },
  slug_taken: {
    status: 409,
    retryable: false,
    meaning:
      'The slug is already used: site slugs are unique across the fleet, environment slugs within their site.',
  },
  production_exists: {
    status: 409,
    retryable: false,
    meaning: 'The site already has its production environment; a site has exactly one.',
  },
  production_with_site: {
    status: 409,
    retryable: false,
    meaning:
      'A production environment is deleted only with its site: `DELETE /api/sites/{id}` deletes the site and all its environments.',
  },
  hostname_taken: {
    status: 409,
    retryable: false,
    meaning:
      'Another domain (of any environment, on any node) already has this hostname; hostnames are unique.',
  },
  hostname_reserved: {
    status: 409,
    retryable: false,
    meaning:
      "The hostname is a node's base domain or under one: those names are reserved for default hostnames (`<site>--<env>.<base domain>`).",
  },
  primary_domain: {
    status: 409,
    retryable: false,
    meaning:
      'The domain is the primary hostname of its environment and cannot be deleted; make another domain primary first.',
  },
  default_domain: {
    status: 409,
    retryable: false,
    meaning: "The domain is the environment's permanent default hostname; it cannot be deleted.",
  },
  no_active_node: {
    status: 503,
    retryable: true,
    meaning:
      'Job only: there is no active node to place the environment on (none enrolled, all offline or disabled). The job fails at once; add or enable a node and try again.',
  },
  deletion_failed: {
    status: 500,
    retryable: false,
    meaning:
      "Job only: a site's deletion stopped because one of its environments could not be deleted (that environment's own job says why). The site and what is left of it are `failed`; delete the site again.",
  },
  environment_not_active: {
    status: 409,
    retryable: false,
    meaning:
      'The environment is not `active` (it is being provisioned, updated or deleted, or it failed): magic login needs a running WordPress.',
  },
  wp_cli_error: {
    status: 502,
    retryable: false,
    meaning:
      "The WordPress operation on the node failed (WP-CLI or the node's WordPress files); `message` carries the node's reason.",
  },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof errorCatalogue;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCatalogue, value);
}

/** The error every layer throws when it means a catalogued failure. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  /** Extra response headers, such as `Retry-After` for `rate_limited`. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }
}
