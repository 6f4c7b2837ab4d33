// What the node-side handlers need to know about the node: where things go and which programs
// check and reload what. Built once from the agent's settings (config.ts); the stack tests build it
// from their private nginx, PHP-FPM, MariaDB and Redis instances instead.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { AgentConfig } from '../config.ts';
import { MINIMAL_PATH } from '../exec/run.ts';
import { ConfigLock } from '../provisioning/atomic-config.ts';
import type { Command } from '../provisioning/command.ts';
import { DEFAULT_LINUX_USER_TOOLS, type LinuxUserTools } from '../provisioning/linux-user.ts';
import type { MysqlClient } from '../provisioning/mariadb.ts';
import type { ListenAddress } from '../provisioning/nginx-server-block.ts';
import type { WpCliSettings } from '../provisioning/wp-cli.ts';

export interface NodeStack {
  /** The agent's private state directory (database secrets live under secrets/). */
  stateDir: string;
  /** Root of the environments' directories (`<sitesDir>/<site>--<env>`). */
  sitesDir: string;
  /** The user (and group) nginx's workers run as: owner of pool sockets, group of the code. */
  webUser: string;
  nginx: {
    sitesDir: string;
    /** Root of the per-environment FastCGI cache directories. */
    cacheDir: string;
    check: Command;
    reload: Command;
    listen: ListenAddress[];
    publicScheme: 'http' | 'https';
    publicPort: number;
  };
  phpFpm: {
    poolDir: string;
    check: Command;
    reload: Command;
    socketDir: string;
  };
  database: {
    /** The admin client (root over the socket on a node). */
    admin: MysqlClient;
    /** mariadb-dump with the same connection. */
    dump: Command;
    /** DB_HOST in wp-config.php. */
    host: string;
    /** Host part of the environments' MariaDB accounts. */
    accountHost: string;
  };
  redis: { host: string; port: number };
  wp: WpCliSettings;
  /** WordPress core directory or archive on the node; '' for `wp core download`. */
  wpCoreSource: string;
  cronDir: string;
  linuxUserTools: LinuxUserTools;
  /** How long CREATE_PHP_POOL waits for the pool's socket after the reload. */
  poolReadyTimeoutMs: number;
  /** Serialise changes that share a checker or a system database (one set per agent). */
  locks: { nginx: ConfigLock; phpFpm: ConfigLock; users: ConfigLock };
}

function command(argv: readonly string[]): Command {
  const [file = '', ...args] = argv;
  return { file, args };
}

/** `80`, `127.0.0.1:8080`, `[::]:80` → nginx listen addresses. */
export function parseListen(value: string): ListenAddress {
  const colon = value.lastIndexOf(':');
  if (colon < 0) return { port: Number(value) };
  return { address: value.slice(0, colon), port: Number(value.slice(colon + 1)) };
}

/** A bare command name (`wp`) as an absolute path from the sandbox's PATH; unchanged when not found. */
export function resolveCommand(name: string, searchPath = MINIMAL_PATH): string {
  if (name.includes('/')) return name;
  for (const dir of searchPath.split(':')) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return name;
}

export type NodeStackSettings = Pick<
  AgentConfig,
  | 'stateDir'
  | 'sitesDir'
  | 'nginxSitesDir'
  | 'nginxCacheDir'
  | 'nginxTestArgv'
  | 'nginxReloadArgv'
  | 'nginxListen'
  | 'publicScheme'
  | 'publicPort'
  | 'webUser'
  | 'phpFpmPoolDir'
  | 'phpFpmTestArgv'
  | 'phpFpmReloadArgv'
  | 'phpFpmSocketDir'
  | 'databaseAdminArgv'
  | 'databaseDumpArgv'
  | 'databaseHost'
  | 'databaseAccountHost'
  | 'redisHost'
  | 'redisPort'
  | 'wpCli'
  | 'phpCli'
  | 'wpCoreSource'
  | 'cronDir'
>;

export function nodeStackFromConfig(
  config: NodeStackSettings,
  overrides: Partial<Pick<NodeStack, 'linuxUserTools' | 'poolReadyTimeoutMs'>> = {},
): NodeStack {
  return {
    stateDir: config.stateDir,
    sitesDir: config.sitesDir,
    webUser: config.webUser,
    nginx: {
      sitesDir: config.nginxSitesDir,
      cacheDir: config.nginxCacheDir,
      check: command(config.nginxTestArgv),
      reload: command(config.nginxReloadArgv),
      listen: config.nginxListen.map(parseListen),
      publicScheme: config.publicScheme,
      publicPort: config.publicPort,
    },
    phpFpm: {
      poolDir: config.phpFpmPoolDir,
      check: command(config.phpFpmTestArgv),
      reload: command(config.phpFpmReloadArgv),
      socketDir: config.phpFpmSocketDir,
    },
    database: {
      admin: { ...command(config.databaseAdminArgv), timeoutMs: 120_000 },
      dump: command(config.databaseDumpArgv),
      host: config.databaseHost,
      accountHost: config.databaseAccountHost,
    },
    redis: { host: config.redisHost, port: config.redisPort },
    wp: { wpCli: resolveCommand(config.wpCli), phpCli: config.phpCli },
    wpCoreSource: config.wpCoreSource,
    cronDir: config.cronDir,
    linuxUserTools: overrides.linuxUserTools ?? DEFAULT_LINUX_USER_TOOLS,
    poolReadyTimeoutMs: overrides.poolReadyTimeoutMs ?? 30_000,
    locks: { nginx: new ConfigLock(), phpFpm: new ConfigLock(), users: new ConfigLock() },
  };
}
