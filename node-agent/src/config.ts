// Agent settings: defaults, overridden by an optional JSON config file (`--config FILE`, or the
// WPCP_AGENT_CONFIG environment variable), overridden by WPCP_AGENT_* environment variables.
// Parsed once at start-up; any problem is one ConfigError whose message names the bad setting and
// where its value came from. Every setting is documented in node-agent/README.md.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function intSetting(min: number, max: number, defaultValue: number) {
  const error = `must be an integer between ${min} and ${max}`;
  return z.int({ error }).min(min, { error }).max(max, { error }).default(defaultValue);
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6_IN_BRACKETS = /^\[[0-9A-Fa-f:.]+\]$/;

/** `host:port`, `a.b.c.d:port` or `[ipv6]:port`, with a port from 1 to 65535. */
export function isHostPort(value: string): boolean {
  const colon = value.lastIndexOf(':');
  if (colon <= 0) return false;
  const host = value.slice(0, colon);
  const port = value.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65_535) return false;
  return HOSTNAME.test(host) || IPV6_IN_BRACKETS.test(host);
}

export const DEFAULT_STATE_DIR = '/var/lib/wpcp-agent';

/** A path that ends up in nginx, PHP-FPM and cron files: a normalised path of plain characters. */
const SAFE_PATH = /^\/[A-Za-z0-9._/-]*$/;
const safePathError =
  "must be a normalised absolute path of letters, digits, '.', '_', '-' and '/' (it is written into nginx, PHP-FPM and cron files)";
export function isSafePath(value: string): boolean {
  return (
    SAFE_PATH.test(value) &&
    path.posix.normalize(value) === value &&
    !value.split('/').includes('..') &&
    (value.length === 1 || !value.endsWith('/'))
  );
}
function safePath(defaultValue: string) {
  return z
    .string({ error: safePathError })
    .refine(isSafePath, { error: safePathError })
    .default(defaultValue);
}
/** A safe path, or '' for "not set". */
function optionalSafePath(defaultValue: string) {
  const error = `${safePathError}, or empty`;
  return z
    .string({ error })
    .refine((value) => value === '' || isSafePath(value), { error })
    .default(defaultValue);
}

const argvError =
  'must be a JSON array of strings: an absolute program path, then its arguments (no shell is involved)';
/** A command as an argv array: never a string handed to a shell. */
function argvSetting(defaultValue: readonly string[]) {
  return z
    .array(z.string({ error: argvError }), { error: argvError })
    .refine(
      (argv) =>
        argv.length >= 1 &&
        argv.every((arg) => !arg.includes('\0')) &&
        path.isAbsolute(argv[0] ?? '') &&
        path.posix.normalize(argv[0] ?? '') === argv[0],
      { error: argvError },
    )
    .default([...defaultValue]);
}

const LISTEN =
  /^(?:(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|\[[0-9a-f:]{2,39}\]):)?([0-9]{1,5})$/;
/** `port`, `a.b.c.d:port` or `[ipv6]:port`, as nginx's `listen` takes it. */
export function isListenAddress(value: string): boolean {
  const match = LISTEN.exec(value);
  const port = Number(match?.[1]);
  return match !== null && port >= 1 && port <= 65_535;
}
const listenError =
  'must be a JSON array of nginx listen addresses: "80", "127.0.0.1:8080" or "[::]:80" (at least one)';

const NAME_ERROR = 'must be a Linux user name';
const LINUX_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const HOST_ERROR = 'must be a host name or an IP address';
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[?[0-9A-Fa-f:.]+\]?)$/;
const DB_HOST_ERROR =
  'must be what WordPress takes as DB_HOST: host, host:port or localhost:/path/to/socket (no quotes or spaces)';
const DB_HOST = /^[A-Za-z0-9.\-[\]:]+(?::\/[A-Za-z0-9._/-]+)?$/;
const ACCOUNT_HOST_ERROR =
  'must be localhost, an IP address or a host name (the host part of the MariaDB account)';
const ACCOUNT_HOST = /^(localhost|[0-9.]+|[0-9a-f:]+|[A-Za-z0-9.-]{1,60})$/;

const WP_CLI_ERROR = `${safePathError.replace(' (it is', ', or a command name looked up in the PATH (it is')}`;
const BARE_COMMAND = /^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,63}$/;

const DATABASE_SOCKET = '/run/mysqld/mysqld.sock';
const DATABASE_CONNECTION = ['--protocol=socket', `--socket=${DATABASE_SOCKET}`, '--user=root'];

const serverError = 'must be host:port of the control plane gRPC listener (e.g. cp.example.com:7443)';

export const AgentConfig = z
  .strictObject({
    server: z.string({ error: serverError }).refine(isHostPort, { error: serverError }),
    stateDir: z
      .string({ error: 'must be an absolute path' })
      .refine((dir) => path.isAbsolute(dir) && !dir.includes('\0'), { error: 'must be an absolute path' })
      .default(DEFAULT_STATE_DIR),
    sitesDir: safePath('/srv/wpcp'),
    heartbeatIntervalMs: intSetting(500, 60_000, 5_000),
    maxConcurrentCommands: intSetting(1, 64, 4),
    keepaliveTimeMs: intSetting(1_000, 3_600_000, 10_000),
    keepaliveTimeoutMs: intSetting(1_000, 60_000, 5_000),
    reconnectInitialMs: intSetting(10, 60_000, 1_000),
    reconnectMaxMs: intSetting(100, 600_000, 30_000),
    shutdownGraceMs: intSetting(0, 300_000, 10_000),
    logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    // The node stack (see README "Node stack settings"): Debian 12 as deploy/node/bootstrap.sh sets it up.
    nginxSitesDir: safePath('/etc/nginx/sites-enabled'),
    nginxCacheDir: safePath('/var/cache/nginx/wpcp'),
    nginxTestArgv: argvSetting(['/usr/sbin/nginx', '-t', '-q']),
    nginxReloadArgv: argvSetting(['/usr/sbin/nginx', '-s', 'reload']),
    nginxListen: z
      .array(z.string({ error: listenError }), { error: listenError })
      .refine((list) => list.length >= 1 && list.length <= 8 && list.every(isListenAddress), {
        error: listenError,
      })
      .default(['80', '[::]:80']),
    publicScheme: z.enum(['http', 'https'], { error: 'must be http or https' }).default('http'),
    publicPort: intSetting(1, 65_535, 80),
    webUser: z.string({ error: NAME_ERROR }).regex(LINUX_NAME, { error: NAME_ERROR }).default('www-data'),
    phpFpmPoolDir: safePath('/etc/php/8.2/fpm/pool.d'),
    phpFpmTestArgv: argvSetting(['/usr/sbin/php-fpm8.2', '-t']),
    phpFpmReloadArgv: argvSetting(['/usr/sbin/service', 'php8.2-fpm', 'reload']),
    phpFpmSocketDir: safePath('/run/php'),
    databaseAdminArgv: argvSetting(['/usr/bin/mariadb', ...DATABASE_CONNECTION]),
    databaseDumpArgv: argvSetting(['/usr/bin/mariadb-dump', ...DATABASE_CONNECTION]),
    databaseHost: z
      .string({ error: DB_HOST_ERROR })
      .regex(DB_HOST, { error: DB_HOST_ERROR })
      .default(`localhost:${DATABASE_SOCKET}`),
    databaseAccountHost: z
      .string({ error: ACCOUNT_HOST_ERROR })
      .regex(ACCOUNT_HOST, { error: ACCOUNT_HOST_ERROR })
      .default('localhost'),
    redisHost: z.string({ error: HOST_ERROR }).regex(HOST, { error: HOST_ERROR }).default('127.0.0.1'),
    redisPort: intSetting(1, 65_535, 6379),
    wpCli: z
      .string({ error: WP_CLI_ERROR })
      .refine((value) => isSafePath(value) || BARE_COMMAND.test(value), { error: WP_CLI_ERROR })
      .default('/usr/local/bin/wp'),
    phpCli: optionalSafePath('/usr/bin/php'),
    wpCoreSource: optionalSafePath(''),
    cronDir: safePath('/etc/cron.d'),
  })
  .check((ctx) => {
    if (ctx.value.reconnectMaxMs < ctx.value.reconnectInitialMs) {
      ctx.issues.push({
        code: 'custom',
        input: ctx.value.reconnectMaxMs,
        path: ['reconnectMaxMs'],
        message: `must not be lower than reconnectInitialMs (${ctx.value.reconnectInitialMs})`,
      });
    }
  });
export type AgentConfig = z.infer<typeof AgentConfig>;

export type SettingName = keyof AgentConfig;

/** The environment variable for each setting. Numbers are given in decimal digits. */
export const ENV_VARS = {
  server: 'WPCP_AGENT_SERVER',
  stateDir: 'WPCP_AGENT_STATE_DIR',
  sitesDir: 'WPCP_AGENT_SITES_DIR',
  heartbeatIntervalMs: 'WPCP_AGENT_HEARTBEAT_INTERVAL_MS',
  maxConcurrentCommands: 'WPCP_AGENT_MAX_CONCURRENT_COMMANDS',
  keepaliveTimeMs: 'WPCP_AGENT_KEEPALIVE_TIME_MS',
  keepaliveTimeoutMs: 'WPCP_AGENT_KEEPALIVE_TIMEOUT_MS',
  reconnectInitialMs: 'WPCP_AGENT_RECONNECT_INITIAL_MS',
  reconnectMaxMs: 'WPCP_AGENT_RECONNECT_MAX_MS',
  shutdownGraceMs: 'WPCP_AGENT_SHUTDOWN_GRACE_MS',
  logLevel: 'WPCP_AGENT_LOG_LEVEL',
  nginxSitesDir: 'WPCP_AGENT_NGINX_SITES_DIR',
  nginxCacheDir: 'WPCP_AGENT_NGINX_CACHE_DIR',
  nginxTestArgv: 'WPCP_AGENT_NGINX_TEST_ARGV',
  nginxReloadArgv: 'WPCP_AGENT_NGINX_RELOAD_ARGV',
  nginxListen: 'WPCP_AGENT_NGINX_LISTEN',
  publicScheme: 'WPCP_AGENT_PUBLIC_SCHEME',
  publicPort: 'WPCP_AGENT_PUBLIC_PORT',
  webUser: 'WPCP_AGENT_WEB_USER',
  phpFpmPoolDir: 'WPCP_AGENT_PHP_FPM_POOL_DIR',
  phpFpmTestArgv: 'WPCP_AGENT_PHP_FPM_TEST_ARGV',
  phpFpmReloadArgv: 'WPCP_AGENT_PHP_FPM_RELOAD_ARGV',
  phpFpmSocketDir: 'WPCP_AGENT_PHP_FPM_SOCKET_DIR',
  databaseAdminArgv: 'WPCP_AGENT_DATABASE_ADMIN_ARGV',
  databaseDumpArgv: 'WPCP_AGENT_DATABASE_DUMP_ARGV',
  databaseHost: 'WPCP_AGENT_DATABASE_HOST',
  databaseAccountHost: 'WPCP_AGENT_DATABASE_ACCOUNT_HOST',
  redisHost: 'WPCP_AGENT_REDIS_HOST',
  redisPort: 'WPCP_AGENT_REDIS_PORT',
  wpCli: 'WPCP_AGENT_WP_CLI',
  phpCli: 'WPCP_AGENT_PHP_CLI',
  wpCoreSource: 'WPCP_AGENT_WP_CORE_SOURCE',
  cronDir: 'WPCP_AGENT_CRON_DIR',
} as const satisfies Record<SettingName, string>;

/** Alternative to `--config FILE` (the command line wins). */
export const CONFIG_FILE_ENV_VAR = 'WPCP_AGENT_CONFIG';

const ENV_PREFIX = 'WPCP_AGENT_';
const NUMERIC_SETTINGS = new Set<SettingName>([
  'heartbeatIntervalMs',
  'maxConcurrentCommands',
  'keepaliveTimeMs',
  'keepaliveTimeoutMs',
  'reconnectInitialMs',
  'reconnectMaxMs',
  'shutdownGraceMs',
  'publicPort',
  'redisPort',
]);
/** Settings whose environment variable holds a JSON array (`["/usr/sbin/nginx","-t"]`). */
const JSON_ARRAY_SETTINGS = new Set<SettingName>([
  'nginxTestArgv',
  'nginxReloadArgv',
  'nginxListen',
  'phpFpmTestArgv',
  'phpFpmReloadArgv',
  'databaseAdminArgv',
  'databaseDumpArgv',
]);

function envValue(setting: SettingName, value: string): unknown {
  if (NUMERIC_SETTINGS.has(setting) && /^[0-9]{1,15}$/.test(value)) return Number(value);
  if (JSON_ARRAY_SETTINGS.has(setting)) {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value; // reported by the schema, with the value and where it came from
    }
  }
  return value;
}

export interface LoadConfigOptions {
  /**
   * Command-line arguments holding only `--config FILE` / `--config=FILE` (the older entry point;
   * the CLI parses its flags itself and passes `configFile` and `overrides`).
   */
  argv?: readonly string[];
  /** The config file named on the command line (wins over WPCP_AGENT_CONFIG). */
  configFile?: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Values from command-line flags (e.g. `--state-dir`): they win over every other layer. */
  overrides?: Partial<Record<SettingName, string | number>>;
  /**
   * Supplies `server` when no layer sets it: the address stored at enrollment in the state
   * directory (called with the merged `stateDir`). Returns undefined when it has none.
   */
  defaultServer?: (stateDir: string) => string | undefined;
}

function configFileFromArgv(argv: readonly string[]): string | undefined {
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--config') {
      const next = argv[i + 1];
      if (next === undefined || next === '' || next.startsWith('--')) {
        throw new ConfigError('--config needs a file name (usage: wpcp-agent [--config FILE])');
      }
      file = next;
      i++;
    } else if (arg.startsWith('--config=')) {
      file = arg.slice('--config='.length);
      if (file === '')
        throw new ConfigError('--config needs a file name (usage: wpcp-agent [--config FILE])');
    } else {
      throw new ConfigError(`unknown argument ${JSON.stringify(arg)} (usage: wpcp-agent [--config FILE])`);
    }
  }
  return file;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(`cannot read config file ${file}: ${reason}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`config file ${file} must contain a JSON object`);
  }
  return data as Record<string, unknown>;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

/** Load, merge and validate the settings. Throws ConfigError (one line) on any problem. */
export function loadConfig(options: LoadConfigOptions = {}): AgentConfig {
  const env = options.env ?? process.env;
  const argvFile = options.configFile ?? configFileFromArgv(options.argv ?? []);
  const envFile = env[CONFIG_FILE_ENV_VAR] || undefined;
  const configFile = argvFile ?? envFile;

  const raw: Record<string, unknown> = {};
  const sources = new Map<string, string>();

  if (configFile !== undefined) {
    const resolved = path.resolve(configFile);
    const fromFile = readConfigFile(resolved);
    for (const [key, value] of Object.entries(fromFile)) {
      if (!Object.hasOwn(ENV_VARS, key)) {
        throw new ConfigError(`unknown setting ${JSON.stringify(key)} in config file ${resolved}`);
      }
      raw[key] = value;
      sources.set(key, `config file ${resolved}`);
    }
  }

  const known = new Set<string>([...Object.values(ENV_VARS), CONFIG_FILE_ENV_VAR]);
  for (const name of Object.keys(env)) {
    if (name.startsWith(ENV_PREFIX) && !known.has(name)) {
      throw new ConfigError(`unknown environment variable ${name} (known: ${[...known].sort().join(', ')})`);
    }
  }
  for (const [setting, name] of Object.entries(ENV_VARS) as Array<[SettingName, string]>) {
    const value = env[name];
    if (value === undefined || value === '') continue; // empty means unset, as systemd writes it
    raw[setting] = envValue(setting, value);
    sources.set(setting, `environment variable ${name}`);
  }

  for (const [setting, value] of Object.entries(options.overrides ?? {}) as Array<[SettingName, unknown]>) {
    if (value === undefined) continue;
    raw[setting] = value;
    sources.set(setting, 'command line');
  }
  if (raw.server === undefined && options.defaultServer) {
    const stateDir = typeof raw.stateDir === 'string' ? raw.stateDir : DEFAULT_STATE_DIR;
    if (path.isAbsolute(stateDir)) {
      const server = options.defaultServer(stateDir);
      if (server !== undefined) {
        raw.server = server;
        sources.set('server', `the enrollment state in ${stateDir}`);
      }
    }
  }

  const parsed = AgentConfig.safeParse(raw);
  if (parsed.success) return parsed.data;

  const issue = parsed.error.issues[0];
  if (!issue) throw new ConfigError('invalid configuration');
  const setting = issue.path[0];
  if (typeof setting !== 'string') throw new ConfigError(`invalid configuration: ${issue.message}`);
  if (!(setting in raw)) {
    if (setting === 'server') {
      throw new ConfigError(
        `missing setting server: set ${ENV_VARS.server} or "server" in the config file to the control plane's host:port, or enroll the node first (wpcp-agent enroll)`,
      );
    }
    throw new ConfigError(`invalid setting ${setting} (default): ${issue.message}`);
  }
  throw new ConfigError(
    `invalid setting ${setting} = ${show(raw[setting])} (from ${sources.get(setting) ?? 'unknown source'}): ${issue.message}`,
  );
}
