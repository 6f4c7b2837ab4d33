import { AppError } from '@wpcp/shared/errors';
import { Kysely, PostgresDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { migrationProvider } from './migrations/index.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

// Return bigint columns (job seq, counts) as strings, never as lossy numbers; timestamps as Dates.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => value);

const guardedClients = new WeakSet<pg.PoolClient>();

export function createDb(connectionString: string, options: { maxConnections?: number } = {}): Db {
  const pool = new pg.Pool({
    connectionString,
    max: options.maxConnections ?? 10,
    // A dead database must surface as `database_unavailable` quickly, not hang requests.
    connectionTimeoutMillis: 5_000,
  });
  // An idle client losing its connection emits 'error' on the pool; without a listener Node
  // would crash the process. The next query reports the outage instead.
  pool.on('error', () => {});
  // A connection that cannot be had means the database is out of reach, whatever pg says why.
  const reportingPool = {
    connect: async () => {
      const client = await pool.connect().catch((error: unknown) => {
        throw new AppError('database_unavailable', 'cannot connect to the database', { cause: error });
      });
      // pg-pool listens for errors only on idle clients. A backend that dies while kysely holds
      // the client emits 'error' too (besides failing the query); unheard, that would crash the
      // process. The failed query already reports it, so the listener has nothing else to do.
      if (!guardedClients.has(client)) {
        guardedClients.add(client);
        client.on('error', () => {});
      }
      return client;
    },
    end: () => pool.end(),
    options: pool.options,
  };
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: reportingPool }) });
}

/** Brings the schema to the latest migration. Safe to run on every start: a second run is a no-op. */
export async function migrateToLatest(db: Db): Promise<{ applied: string[] }> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed`, { cause: error });
  }
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}
