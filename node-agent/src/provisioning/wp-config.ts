// wp-config.php of one environment: database settings, fresh keys and salts, a literal Redis key
// prefix, WP-Cron off (the node runs it every minute as the site's user), and nothing else that a
// later `wp option update` would fight with (home and siteurl live in the database).
//
// Every value is written as a PHP single-quoted string literal, where only `\\` and `\'` are
// escapes: so any string, `?>`, `$var`, newlines and all, stays data. Constant names, the table
// prefix and the DB charset are checked against patterns instead.
import { randomBytes } from 'node:crypto';
import { invalidArgument } from './errors.ts';

export const SALT_NAMES = [
  'AUTH_KEY',
  'SECURE_AUTH_KEY',
  'LOGGED_IN_KEY',
  'NONCE_KEY',
  'AUTH_SALT',
  'SECURE_AUTH_SALT',
  'LOGGED_IN_SALT',
  'NONCE_SALT',
] as const;
export type SaltName = (typeof SALT_NAMES)[number];
export type WpSalts = Record<SaltName, string>;

/** WordPress's own alphabet for keys (wp_generate_password with special characters). */
const SALT_ALPHABET =
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*()-_ []{}<>~`+=,.;:/?|';
export const SALT_LENGTH = 64;

/** A random string over `alphabet`, without modulo bias (bytes past the last full cycle are redrawn). */
export function randomString(
  length: number,
  alphabet: string,
  random: (size: number) => Buffer = randomBytes,
): string {
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < length) {
    for (const byte of random(length * 2)) {
      if (byte >= limit) continue;
      out += alphabet[byte % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

export function generateSalts(random: (size: number) => Buffer = randomBytes): WpSalts {
  const salts = {} as WpSalts;
  for (const name of SALT_NAMES) salts[name] = randomString(SALT_LENGTH, SALT_ALPHABET, random);
  return salts;
}

/** A PHP single-quoted string literal holding exactly `value`. */
export function phpString(value: string): string {
  if (value.includes('\0')) throw invalidArgument('a PHP string in wp-config.php cannot hold a NUL byte');
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export type PhpScalar = string | number | boolean;

export function phpValue(value: PhpScalar): string {
  if (typeof value === 'string') return phpString(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (!Number.isFinite(value)) throw invalidArgument('numbers in wp-config.php must be finite');
  return String(value);
}

const CONSTANT_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;
const TABLE_PREFIX = /^[A-Za-z0-9_]{1,20}$/;
const CHARSET = /^[a-z0-9_]{1,32}$/;
const RESERVED_CONSTANTS = new Set<string>([
  ...SALT_NAMES,
  'DB_NAME',
  'DB_USER',
  'DB_PASSWORD',
  'DB_HOST',
  'DB_CHARSET',
  'DB_COLLATE',
  'WP_CACHE_KEY_SALT',
  'WP_REDIS_PREFIX',
  'WP_REDIS_SELECTIVE_FLUSH',
  'WP_REDIS_HOST',
  'WP_REDIS_PORT',
  'WP_REDIS_SCHEME',
  'WP_REDIS_PATH',
  'WP_REDIS_DATABASE',
  'DISABLE_WP_CRON',
  'FS_METHOD',
  'WP_ENVIRONMENT_TYPE',
  'ABSPATH',
]);

export interface RedisSettings {
  /** The literal key prefix of this environment (names.ts: `wpcp:<id>:`). */
  prefix: string;
  /** TCP address... */
  host?: string;
  port?: number;
  /** ...or a unix socket. */
  socketPath?: string;
  database?: number;
}

export interface WpConfigOptions {
  dbName: string;
  dbUser: string;
  dbPassword: string;
  /** `localhost:/run/mysqld/mysqld.sock` for a socket, `host:port` for TCP. */
  dbHost: string;
  tablePrefix?: string;
  dbCharset?: string;
  dbCollate?: string;
  /** Omitted: fresh ones are generated. */
  salts?: WpSalts;
  redis: RedisSettings;
  /** WP_ENVIRONMENT_TYPE: production, staging or development. */
  environmentType?: 'production' | 'staging' | 'development' | 'local';
  /** More constants; names of the ones above are refused. */
  extraConstants?: Readonly<Record<string, PhpScalar>>;
}

function define(name: string, value: PhpScalar): string {
  return `define( ${phpString(name)}, ${phpValue(value)} );`;
}

export function renderWpConfig(options: WpConfigOptions): string {
  const tablePrefix = options.tablePrefix ?? 'wp_';
  if (!TABLE_PREFIX.test(tablePrefix)) {
    throw invalidArgument('table prefix must be 1-20 letters, digits or underscores');
  }
  const dbCharset = options.dbCharset ?? 'utf8mb4';
  if (!CHARSET.test(dbCharset)) throw invalidArgument('DB charset must be lowercase letters, digits or _');
  const dbCollate = options.dbCollate ?? '';
  if (dbCollate !== '' && !CHARSET.test(dbCollate)) {
    throw invalidArgument('DB collation must be lowercase letters, digits or _');
  }
  if (options.redis.prefix.length === 0) throw invalidArgument('the Redis key prefix must not be empty');
  const salts = options.salts ?? generateSalts();
  for (const name of SALT_NAMES) {
    if (typeof salts[name] !== 'string' || salts[name].length < 32) {
      throw invalidArgument(`salt ${name} must be a string of at least 32 characters`);
    }
  }
  for (const name of Object.keys(options.extraConstants ?? {})) {
    if (!CONSTANT_NAME.test(name)) throw invalidArgument(`not a constant name: ${JSON.stringify(name)}`);
    if (RESERVED_CONSTANTS.has(name))
      throw invalidArgument(`${name} is set by wpcp and cannot be overridden`);
  }

  const redis: string[] = [define('WP_REDIS_PREFIX', options.redis.prefix)];
  redis.push(define('WP_CACHE_KEY_SALT', options.redis.prefix));
  // Flush only this prefix's keys: without it the Redis Object Cache plugin runs FLUSHDB.
  redis.push(define('WP_REDIS_SELECTIVE_FLUSH', true));
  if (options.redis.socketPath !== undefined) {
    redis.push(define('WP_REDIS_SCHEME', 'unix'), define('WP_REDIS_PATH', options.redis.socketPath));
  } else {
    redis.push(define('WP_REDIS_HOST', options.redis.host ?? '127.0.0.1'));
    const port = options.redis.port ?? 6379;
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw invalidArgument('Redis port out of range');
    redis.push(define('WP_REDIS_PORT', port));
  }
  if (options.redis.database !== undefined) {
    if (
      !Number.isInteger(options.redis.database) ||
      options.redis.database < 0 ||
      options.redis.database > 15
    ) {
      throw invalidArgument('Redis database must be 0-15');
    }
    redis.push(define('WP_REDIS_DATABASE', options.redis.database));
  }

  const extra = Object.entries(options.extraConstants ?? {}).map(([name, value]) => define(name, value));
  if (options.environmentType) extra.unshift(define('WP_ENVIRONMENT_TYPE', options.environmentType));

  return [
    '<?php',
    '/**',
    ' * Managed by the wpcp agent; changes are overwritten. Secrets below are unique to this',
    ' * environment and never leave the node.',
    ' */',
    '',
    '// Database.',
    define('DB_NAME', options.dbName),
    define('DB_USER', options.dbUser),
    define('DB_PASSWORD', options.dbPassword),
    define('DB_HOST', options.dbHost),
    define('DB_CHARSET', dbCharset),
    define('DB_COLLATE', dbCollate),
    '',
    '// Authentication keys and salts.',
    ...SALT_NAMES.map((name) => define(name, salts[name])),
    '',
    `$table_prefix = ${phpString(tablePrefix)};`,
    '',
    "// Object cache (Redis): this environment's keys only.",
    ...redis,
    '',
    '// WP-Cron runs from the node every minute as the site user, not on page views.',
    define('DISABLE_WP_CRON', true),
    '',
    "// Files belong to the site's user, who runs PHP: WordPress writes them directly.",
    define('FS_METHOD', 'direct'),
    ...(extra.length > 0 ? ['', ...extra] : []),
    '',
    "if ( ! defined( 'WP_DEBUG' ) ) {",
    "\tdefine( 'WP_DEBUG', false );",
    '}',
    '',
    "/* That's all, stop editing! Happy publishing. */",
    '',
    "if ( ! defined( 'ABSPATH' ) ) {",
    "\tdefine( 'ABSPATH', __DIR__ . '/' );",
    '}',
    '',
    "require_once ABSPATH . 'wp-settings.php';",
    '',
  ].join('\n');
}
