import { isIP } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { BaseDomain } from '@wpcp/shared/validation';
import { z } from 'zod';

/**
 * Every setting of the control plane, read once from the environment at start. A bad value stops
 * the process with one line naming the variable (see `loadConfig`). docs/configuration.md lists
 * the same variables: keep the two in step.
 */
const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

const environmentSchema = z.object({
  INIT_CWD: z.string().optional(),
  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  WPCP_DATA_DIR: z.string().min(1).default('./.wpcp'),
  WPCP_EMBEDDED_PG_PORT: port.default(5433),
  WPCP_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  WPCP_HTTP_PORT: port.default(8080),
  WPCP_HTTP_TLS_CERT: optionalString,
  WPCP_HTTP_TLS_KEY: optionalString,
  WPCP_HTTP_BODY_LIMIT_BYTES: positiveInt.default(1_048_576),
  WPCP_TRUST_PROXY: bool.default(false),
  WPCP_ADMIN_EMAIL: z
    .string()
    .regex(/^[^\s@]+@[^\s@]+$/, 'must be an email address')
    .default('admin@localhost'),
  WPCP_ADMIN_PASSWORD: optionalString.pipe(z.string().min(12).optional()),
  WPCP_MASTER_KEY: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 random bytes, base64-encoded (openssl rand -base64 32)')
      .optional(),
  ),
  WPCP_SESSION_IDLE_SECONDS: positiveInt.default(12 * 3600),
  WPCP_SESSION_MAX_SECONDS: positiveInt.default(7 * 24 * 3600),
  WPCP_LOGIN_MAX_FAILURES: positiveInt.default(10),
  WPCP_LOGIN_WINDOW_SECONDS: positiveInt.default(15 * 60),
  WPCP_MAGIC_LOGIN_MAX_PER_WINDOW: positiveInt.default(10),
  WPCP_MAGIC_LOGIN_WINDOW_SECONDS: positiveInt.default(60),
  WPCP_JOB_CONCURRENCY: positiveInt.default(8),
  WPCP_JOB_SUPERVISE_SECONDS: positiveInt.default(10),
  WPCP_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  WPCP_GRPC_HOST: z.string().min(1).default('0.0.0.0'),
  WPCP_GRPC_PORT: port.default(8443),
  WPCP_GRPC_PUBLIC_NAMES: optionalString,
  WPCP_GRPC_MAX_CONNECTION_AGE_SECONDS: positiveInt.default(30 * 60),
  WPCP_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS: positiveInt.default(5 * 60),
  WPCP_JOIN_TOKEN_TTL_SECONDS: positiveInt.max(7 * 24 * 3600).default(3600),
  WPCP_NODE_CERT_VALIDITY_DAYS: positiveInt.max(3650).default(90),
  WPCP_NODE_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
  WPCP_NODE_MAX_CONCURRENT_COMMANDS: z.coerce.number().int().min(1).max(64).default(4),
  WPCP_HEARTBEAT_FLUSH_MS: z.coerce.number().int().min(50).max(60_000).default(2_000),
  WPCP_COMMAND_POLL_MS: z.coerce.number().int().min(50).max(60_000).default(2_000),
  WPCP_COMMAND_DEADLINE_SECONDS: positiveInt.max(7 * 24 * 3600).default(15 * 60),
  WPCP_COMMAND_RESULT_GRACE_SECONDS: positiveInt.max(24 * 3600).default(30),
  WPCP_JOB_LOG_MAX_LINES: positiveInt.max(1_000_000).default(2_000),
  WPCP_NODE_BASE_DOMAIN: optionalString.pipe(BaseDomain.optional()),
  WPCP_NODE_PUBLIC_SCHEME: z.enum(['http', 'https']).default('http'),
  WPCP_LOCAL_NODE: bool.default(false),
  WPCP_WP_CLI: optionalString,
  WPCP_WP_CORE_SOURCE: optionalString,
  WPCP_NODE_HTTP_PORT: optionalString.pipe(
    z
      .string()
      .regex(/^[0-9]{1,5}$/, 'must be a port number')
      .transform(Number)
      .pipe(z.number().int().min(1).max(65535))
      .optional(),
  ),
});

const dnsName = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * The names the gRPC server certificate is issued for. Set explicitly, each must be a DNS name or
 * an IP address; the default (this machine's hostname, localhost, 127.0.0.1) skips a hostname
 * that is not a valid DNS name rather than refusing to start.
 */
function publicNames(configured: string | undefined): { dnsNames: string[]; ipAddresses: string[] } {
  const names = (configured ?? `${hostname()},localhost,127.0.0.1`)
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const name of new Set(names)) {
    if (isIP(name)) ipAddresses.push(name);
    else if (dnsName.test(name)) dnsNames.push(name);
    else if (configured !== undefined) {
      throw new ConfigError(
        `invalid configuration: WPCP_GRPC_PUBLIC_NAMES: ${JSON.stringify(name)} is neither a DNS name nor an IP address`,
      );
    }
  }
  if (dnsNames.length + ipAddresses.length === 0) {
    throw new ConfigError('invalid configuration: WPCP_GRPC_PUBLIC_NAMES: needs at least one name');
  }
  return { dnsNames, ipAddresses };
}

export type Config = ReturnType<typeof toConfig>;

function toConfig(env: z.infer<typeof environmentSchema>) {
  // `npm start` runs in the workspace folder; a relative path means the folder npm was started in.
  const dataDir = path.resolve(env.INIT_CWD ?? process.cwd(), env.WPCP_DATA_DIR);
  return {
    databaseUrl: env.DATABASE_URL,
    dataDir,
    embeddedPostgresPort: env.WPCP_EMBEDDED_PG_PORT,
    http: {
      host: env.WPCP_HTTP_HOST,
      port: env.WPCP_HTTP_PORT,
      tls:
        env.WPCP_HTTP_TLS_CERT && env.WPCP_HTTP_TLS_KEY
          ? { certFile: env.WPCP_HTTP_TLS_CERT, keyFile: env.WPCP_HTTP_TLS_KEY }
          : undefined,
      bodyLimitBytes: env.WPCP_HTTP_BODY_LIMIT_BYTES,
      trustProxy: env.WPCP_TRUST_PROXY,
    },
    admin: { email: env.WPCP_ADMIN_EMAIL.toLowerCase(), password: env.WPCP_ADMIN_PASSWORD },
    masterKey: env.WPCP_MASTER_KEY,
    sessions: { idleSeconds: env.WPCP_SESSION_IDLE_SECONDS, maxSeconds: env.WPCP_SESSION_MAX_SECONDS },
    loginRateLimit: {
      maxFailures: env.WPCP_LOGIN_MAX_FAILURES,
      windowSeconds: env.WPCP_LOGIN_WINDOW_SECONDS,
    },
    /** Magic-login requests allowed per environment within the window (docs/security-and-secrets.md). */
    magicLoginRateLimit: {
      maxPerWindow: env.WPCP_MAGIC_LOGIN_MAX_PER_WINDOW,
      windowSeconds: env.WPCP_MAGIC_LOGIN_WINDOW_SECONDS,
    },
    jobs: { concurrency: env.WPCP_JOB_CONCURRENCY, superviseSeconds: env.WPCP_JOB_SUPERVISE_SECONDS },
    logLevel: env.WPCP_LOG_LEVEL,
    /**
     * Single-machine mode: the control plane also enrolls and runs an agent managing this machine
     * as the node `local`. The WP-CLI binary and the WordPress core source are that agent's.
     */
    localNode: env.WPCP_LOCAL_NODE
      ? { wpCli: env.WPCP_WP_CLI ?? 'wp', wpCoreSource: env.WPCP_WP_CORE_SOURCE }
      : undefined,
    grpc: {
      host: env.WPCP_GRPC_HOST,
      port: env.WPCP_GRPC_PORT,
      publicNames: publicNames(env.WPCP_GRPC_PUBLIC_NAMES),
      maxConnectionAgeMs: env.WPCP_GRPC_MAX_CONNECTION_AGE_SECONDS * 1000,
      maxConnectionAgeGraceMs: env.WPCP_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS * 1000,
    },
    nodes: {
      joinTokenTtlSeconds: env.WPCP_JOIN_TOKEN_TTL_SECONDS,
      certificateValidityDays: env.WPCP_NODE_CERT_VALIDITY_DAYS,
      heartbeatIntervalMs: env.WPCP_NODE_HEARTBEAT_INTERVAL_MS,
      /** A node is offline once its last heartbeat is older than three intervals. */
      offlineAfterMs: env.WPCP_NODE_HEARTBEAT_INTERVAL_MS * 3,
      maxConcurrentCommands: env.WPCP_NODE_MAX_CONCURRENT_COMMANDS,
      heartbeatFlushMs: env.WPCP_HEARTBEAT_FLUSH_MS,
      /**
       * Defaults of a new node's `base_domain`, `public_scheme` and `public_port` (POST /api/nodes
       * may set each). Without WPCP_NODE_BASE_DOMAIN a node's base domain is `<name>.wpcp.localhost`.
       */
      siteDefaults: {
        baseDomain: env.WPCP_NODE_BASE_DOMAIN,
        publicScheme: env.WPCP_NODE_PUBLIC_SCHEME,
        publicPort: env.WPCP_NODE_HTTP_PORT,
      },
    },
    commands: {
      pollMs: env.WPCP_COMMAND_POLL_MS,
      defaultDeadlineMs: env.WPCP_COMMAND_DEADLINE_SECONDS * 1000,
      resultGraceMs: env.WPCP_COMMAND_RESULT_GRACE_SECONDS * 1000,
      jobLogMaxLines: env.WPCP_JOB_LOG_MAX_LINES,
    },
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment; throws a ConfigError whose message is one line naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = environmentSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const config = toConfig(parsed.data);
  if (Boolean(env.WPCP_HTTP_TLS_CERT) !== Boolean(env.WPCP_HTTP_TLS_KEY)) {
    throw new ConfigError(
      'invalid configuration: WPCP_HTTP_TLS_CERT and WPCP_HTTP_TLS_KEY must be set together',
    );
  }
  if (config.sessions.idleSeconds > config.sessions.maxSeconds) {
    throw new ConfigError(
      'invalid configuration: WPCP_SESSION_IDLE_SECONDS must not exceed WPCP_SESSION_MAX_SECONDS',
    );
  }
  return config;
}
