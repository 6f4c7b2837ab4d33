import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import { buildApp } from './app.ts';
import { type AdminBootstrap, ensureAdminUser } from './auth/admin-bootstrap.ts';
import { AuthService } from './auth/auth.service.ts';
import type { Config } from './config.ts';
import { createDb, type Db, migrateToLatest } from './database/database.ts';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './database/embedded-postgres.ts';
import { startHousekeeping } from './housekeeping/housekeeping.ts';
import { JobEnqueuer } from './jobs/enqueue.ts';
import { JobCatalogue } from './jobs/job-definition.ts';
import { createJobQueues } from './jobs/job-queue.ts';
import { JobRunner } from './jobs/job-runner.ts';
import { JobsService } from './jobs/jobs.service.ts';
import { type MasterKey, resolveMasterKey } from './secrets/master-key.ts';

export interface ControlPlane {
  app: FastifyInstance;
  db: Db;
  boss: PgBoss;
  enqueuer: JobEnqueuer;
  embedded?: EmbeddedDatabase;
  admin: AdminBootstrap;
  masterKey: MasterKey;
  migrationsApplied: string[];
  /** Stops accepting requests, finishes in-flight ones, stops workers, then the database. */
  close(): Promise<void>;
}

export interface StartOptions {
  config: Config;
  logger: Logger;
  /** Job types this process runs; the product's own are registered by their features. */
  catalogue?: JobCatalogue;
}

/**
 * Wires the control plane in the order a start needs: database, schema, secrets, admin user,
 * job transport and workers, then the HTTP API. The caller decides whether to listen.
 */
export async function startControlPlane({
  config,
  logger,
  catalogue = new JobCatalogue(),
}: StartOptions): Promise<ControlPlane> {
  const embedded = config.databaseUrl
    ? undefined
    : await startEmbeddedPostgres({
        dataDir: config.dataDir,
        port: config.embeddedPostgresPort,
        onLog: (line) => logger.debug({ component: 'postgres' }, line.trim()),
      });
  const connectionString = config.databaseUrl ?? (embedded as EmbeddedDatabase).connectionString;
  const db = createDb(connectionString);
  // Run in order at close: later additions are unshifted, so the HTTP server closes first and
  // the database last, after every client of it is gone.
  const cleanup: (() => Promise<unknown>)[] = [() => db.destroy(), async () => embedded?.stop()];
  try {
    const { applied } = await migrateToLatest(db);
    if (applied.length) logger.info({ migrations: applied }, 'database migrated');

    const masterKey = await resolveMasterKey(config.masterKey, config.dataDir);
    const admin = await ensureAdminUser(db, { ...config.admin, dataDir: config.dataDir });

    // Supervision finds jobs whose worker stopped heartbeating or ran past expiry; pg-boss's
    // default pass (60 s) would leave a dead worker's job looking `running` for too long.
    const boss = new PgBoss({
      connectionString,
      useListenNotify: true,
      max: 5,
      superviseIntervalSeconds: config.jobs.superviseSeconds,
      monitorIntervalSeconds: config.jobs.superviseSeconds,
    });
    boss.on('error', (error) => logger.error({ err: error }, 'pg-boss error'));
    await boss.start();
    cleanup.unshift(() => boss.stop({ graceful: true, timeout: 10_000 }));
    await createJobQueues(boss, catalogue);

    const auth = new AuthService(db, config);
    const runner = new JobRunner({ db, boss, catalogue, logger, concurrency: config.jobs.concurrency });
    await runner.start();
    cleanup.unshift(async () => runner.stop());
    await startHousekeeping({ boss, auth, logger });

    const https = config.http.tls
      ? { cert: await readFile(config.http.tls.certFile), key: await readFile(config.http.tls.keyFile) }
      : undefined;
    const app = await buildApp({ config, logger, db, auth, jobs: new JobsService(db, boss), https });
    cleanup.unshift(() => app.close());

    let closing: Promise<void> | undefined;
    return {
      app,
      db,
      boss,
      enqueuer: new JobEnqueuer(db, boss, catalogue),
      embedded,
      admin,
      masterKey,
      migrationsApplied: applied,
      close: () => {
        closing ??= runAll(cleanup);
        return closing;
      },
    };
  } catch (error) {
    await runAll(cleanup);
    throw error;
  }
}

async function runAll(steps: (() => Promise<unknown>)[]): Promise<void> {
  for (const step of steps) {
    await step().catch(() => {});
  }
}
