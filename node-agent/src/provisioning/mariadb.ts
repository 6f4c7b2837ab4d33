// The MariaDB database and user of one environment, through the `mysql` client spawned with an
// argv array; the SQL (passwords included) goes on stdin, never on a command line.
//
// Quoting, for MariaDB's default sql_mode (backslash escapes on):
// - identifiers in backticks with backticks doubled;
// - strings in single quotes with `\`, `'`, NUL, newline, carriage return and Ctrl-Z escaped;
// - a database name in GRANT ... ON `db`.* is a LIKE pattern: `_` and `%` are wildcards there and
//   are escaped with a backslash, so `wp_abc` grants on `wp_abc` only and not on `wpXabc`.
// Names are validated too (system names from names.ts), so quoting is a second line of defence.
import { randomBytes } from 'node:crypto';
import { type Command, describeFailure, runCommand } from './command.ts';
import { invalidArgument, ProvisioningError } from './errors.ts';

/** How to reach the server as an administrator (root over the unix socket on a node). */
export interface MysqlClient {
  /** The client program, `mysql` (or `mariadb`). */
  file: string;
  /** Connection options, e.g. `--no-defaults --protocol=socket --socket=/run/mysqld/mysqld.sock --user=root`. */
  args: readonly string[];
  timeoutMs?: number;
}

export interface DatabaseAccount {
  database: string;
  user: string;
  /** Host part of the account: `localhost` (socket connections) by default. */
  host?: string;
}

const NAME = /^[A-Za-z0-9_]{1,32}$/;
const HOST = /^(localhost|127\.0\.0\.1|::1|[A-Za-z0-9.%_-]{1,60})$/;

export function quoteIdentifier(name: string): string {
  if (name.length === 0 || name.includes('\0'))
    throw invalidArgument('identifier must be non-empty without NUL');
  return `\`${name.replace(/`/g, '``')}\``;
}

const SQL_STRING_ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  "'": "\\'",
  '\0': '\\0',
  '\n': '\\n',
  '\r': '\\r',
  '\u001a': '\\Z',
};

export function quoteString(value: string): string {
  let escaped = '';
  for (const c of value) escaped += SQL_STRING_ESCAPES[c] ?? c;
  return `'${escaped}'`;
}

/** The database part of `GRANT ... ON <here>.*`: quoted, with LIKE wildcards escaped. */
export function grantDatabasePattern(database: string): string {
  return quoteIdentifier(database.replace(/\\/g, '\\\\').replace(/[_%]/g, (c) => `\\${c}`));
}

function account(user: string, host: string): string {
  return `${quoteString(user)}@${quoteString(host)}`;
}

function validate(spec: DatabaseAccount): Required<DatabaseAccount> {
  const host = spec.host ?? 'localhost';
  if (!NAME.test(spec.database))
    throw invalidArgument(
      `database name must be 1-32 letters, digits or _: ${JSON.stringify(spec.database)}`,
    );
  if (!NAME.test(spec.user))
    throw invalidArgument(`database user must be 1-32 letters, digits or _: ${JSON.stringify(spec.user)}`);
  if (!HOST.test(host)) throw invalidArgument(`database user host is not valid: ${JSON.stringify(host)}`);
  return { database: spec.database, user: spec.user, host };
}

/** 32 characters of [A-Za-z0-9_-] (192 random bits): safe in SQL, PHP and shell-free configs alike. */
export function generateDatabasePassword(): string {
  return randomBytes(24).toString('base64url');
}

export function createSql(spec: DatabaseAccount, password: string): string {
  const { database, user, host } = validate(spec);
  return [
    `CREATE DATABASE ${quoteIdentifier(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`,
    `CREATE USER ${account(user, host)} IDENTIFIED BY ${quoteString(password)};`,
    `GRANT ALL PRIVILEGES ON ${grantDatabasePattern(database)}.* TO ${account(user, host)};`,
    '',
  ].join('\n');
}

export function dropSql(spec: DatabaseAccount): string {
  const { database, user, host } = validate(spec);
  return [
    `DROP DATABASE IF EXISTS ${quoteIdentifier(database)};`,
    `DROP USER IF EXISTS ${account(user, host)};`,
    '',
  ].join('\n');
}

export function existenceSql(spec: DatabaseAccount): string {
  const { database, user, host } = validate(spec);
  return [
    `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${quoteString(database)};`,
    `SELECT COUNT(*) FROM mysql.global_priv WHERE User = ${quoteString(user)} AND Host = ${quoteString(host)};`,
    '',
  ].join('\n');
}

/**
 * Runs SQL from stdin; resolves with the tab-separated rows (no column names). With `force` the
 * client goes on after a failing statement (it still exits non-zero).
 */
export async function runSql(
  client: MysqlClient,
  sql: string,
  options: { force?: boolean } = {},
): Promise<string> {
  const command: Command = {
    file: client.file,
    args: [...client.args, '--batch', '--skip-column-names', ...(options.force ? ['--force'] : [])],
  };
  const result = await runCommand(command, {
    stdin: sql,
    timeoutMs: client.timeoutMs ?? 60_000,
    maxOutputBytes: 1024 * 1024,
  });
  if (result.exitCode !== 0) {
    throw new ProvisioningError(
      'command_failed',
      `${client.file} ${describeFailure(result)}: ${(result.stderr || result.stdout).trim().slice(0, 2_000)}`,
    );
  }
  return result.stdout;
}

export async function accountExists(
  client: MysqlClient,
  spec: DatabaseAccount,
): Promise<{ database: boolean; user: boolean }> {
  const rows = (await runSql(client, existenceSql(spec))).trim().split('\n');
  return { database: rows[0] === '1', user: rows[1] === '1' };
}

/**
 * Creates the database and a user with all privileges on it and nothing else. Refuses (database_exists,
 * database_user_exists) when either is already there: an existing database is never adopted. If
 * creation fails half-way, what was created is dropped again before the error is thrown.
 */
export async function createDatabaseAndUser(
  client: MysqlClient,
  spec: DatabaseAccount,
  password: string,
): Promise<void> {
  const valid = validate(spec);
  if (password.length < 16) throw invalidArgument('database password must be at least 16 characters');
  const exists = await accountExists(client, valid);
  if (exists.database) {
    throw new ProvisioningError('database_exists', `database ${valid.database} already exists`);
  }
  if (exists.user) {
    throw new ProvisioningError(
      'database_user_exists',
      `database user ${valid.user}@${valid.host} already exists`,
    );
  }
  try {
    await runSql(client, createSql(valid, password));
  } catch (err) {
    // Neither existed before this call, so whatever exists now is ours to remove.
    await runSql(client, dropSql(valid), { force: true }).catch(() => {});
    // A server error may quote the statement: never let the password reach a log or a job.
    if (err instanceof ProvisioningError) {
      throw new ProvisioningError(err.code, err.message.split(password).join('[redacted]'));
    }
    throw err;
  }
}

/**
 * Drops the user and the database (the undo of createDatabaseAndUser). Idempotent; each statement
 * is tried even when the other fails, and it only fails if something is still there afterwards.
 */
export async function dropDatabaseAndUser(client: MysqlClient, spec: DatabaseAccount): Promise<void> {
  try {
    await runSql(client, dropSql(spec), { force: true });
  } catch (err) {
    const left = await accountExists(client, spec).catch(() => ({ database: true, user: true }));
    if (left.database || left.user) throw err;
  }
}

/**
 * Creates whatever is missing of the database, the user (with this password) and its grant, and
 * sets the password again: for an account the agent made itself and holds the password of (a
 * retried CREATE_DATABASE, or one that crashed half-way). Never used to adopt a stranger's database.
 */
export function ensureSql(spec: DatabaseAccount, password: string): string {
  const { database, user, host } = validate(spec);
  return [
    `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`,
    `CREATE USER IF NOT EXISTS ${account(user, host)} IDENTIFIED BY ${quoteString(password)};`,
    `ALTER USER ${account(user, host)} IDENTIFIED BY ${quoteString(password)};`,
    `GRANT ALL PRIVILEGES ON ${grantDatabasePattern(database)}.* TO ${account(user, host)};`,
    '',
  ].join('\n');
}

export async function ensureDatabaseAndUser(
  client: MysqlClient,
  spec: DatabaseAccount,
  password: string,
): Promise<void> {
  if (password.length < 16) throw invalidArgument('database password must be at least 16 characters');
  try {
    await runSql(client, ensureSql(spec, password));
  } catch (err) {
    if (err instanceof ProvisioningError) {
      throw new ProvisioningError(err.code, err.message.split(password).join('[redacted]'));
    }
    throw err;
  }
}

export function listTablesSql(database: string): string {
  if (!NAME.test(database)) throw invalidArgument('database name must be 1-32 letters, digits or _');
  return `SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${quoteString(database)} ORDER BY TABLE_NAME;\n`;
}

export interface TableEntry {
  name: string;
  view: boolean;
}

/** The tables and views of a database; empty when it does not exist. */
export async function listTables(client: MysqlClient, database: string): Promise<TableEntry[]> {
  const rows = await runSql(client, listTablesSql(database));
  return rows
    .split('\n')
    .filter((row) => row.length > 0)
    .map((row) => {
      const [name = '', type = ''] = row.split('\t');
      return { name, view: type === 'VIEW' };
    });
}

export function dropTablesSql(database: string, tables: readonly TableEntry[]): string {
  if (!NAME.test(database)) throw invalidArgument('database name must be 1-32 letters, digits or _');
  const qualified = (entry: TableEntry) => `${quoteIdentifier(database)}.${quoteIdentifier(entry.name)}`;
  const views = tables.filter((entry) => entry.view).map(qualified);
  const bases = tables.filter((entry) => !entry.view).map(qualified);
  return [
    'SET FOREIGN_KEY_CHECKS = 0;',
    ...(views.length > 0 ? [`DROP VIEW IF EXISTS ${views.join(', ')};`] : []),
    ...(bases.length > 0 ? [`DROP TABLE IF EXISTS ${bases.join(', ')};`] : []),
    '',
  ].join('\n');
}

/** Empties a database (drops every table and view in it); the database and its user stay. */
export async function dropAllTables(client: MysqlClient, database: string): Promise<number> {
  const tables = await listTables(client, database);
  if (tables.length > 0) await runSql(client, dropTablesSql(database, tables));
  const left = await listTables(client, database);
  if (left.length > 0) {
    throw new ProvisioningError(
      'command_failed',
      `could not drop ${left.length} table(s) of ${database}: ${left
        .slice(0, 5)
        .map((entry) => entry.name)
        .join(', ')}`,
    );
  }
  return tables.length;
}
