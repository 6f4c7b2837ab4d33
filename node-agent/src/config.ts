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

const serverError = 'must be host:port of the control plane gRPC listener (e.g. cp.example.com:7443)';

export const AgentConfig = z
  .strictObject({
    server: z.string({ error: serverError }).refine(isHostPort, { error: serverError }),
    stateDir: z
      .string({ error: 'must be an absolute path' })
      .refine((dir) => path.isAbsolute(dir) && !dir.includes('\0'), { error: 'must be an absolute path' })
      .default(DEFAULT_STATE_DIR),
    sitesDir: z
      .string({ error: 'must be an absolute path' })
      .refine((dir) => path.isAbsolute(dir) && !dir.includes('\0'), { error: 'must be an absolute path' })
      .default('/srv/wpcp'),
    heartbeatIntervalMs: intSetting(500, 60_000, 5_000),
    maxConcurrentCommands: intSetting(1, 64, 4),
    keepaliveTimeMs: intSetting(1_000, 3_600_000, 10_000),
    keepaliveTimeoutMs: intSetting(1_000, 60_000, 5_000),
    reconnectInitialMs: intSetting(10, 60_000, 1_000),
    reconnectMaxMs: intSetting(100, 600_000, 30_000),
    shutdownGraceMs: intSetting(0, 300_000, 10_000),
    logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
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
]);

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
    raw[setting] = NUMERIC_SETTINGS.has(setting) && /^[0-9]{1,15}$/.test(value) ? Number(value) : value;
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
