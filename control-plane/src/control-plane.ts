import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import { type AgentCa, loadOrCreateAgentCa } from './agent-gateway/agent-ca.ts';
import { AgentGateway } from './agent-gateway/agent-gateway.ts';
import { CommandService } from './agent-gateway/commands.ts';
import { buildApp } from './app.ts';
import { type AdminBootstrap, ensureAdminUser } from './auth/admin-bootstrap.ts';
import { AuthService } from './auth/auth.service.ts';
import { CACHING_JOBS } from './caching/caching.jobs.ts';
import { CachingService } from './caching/caching.service.ts';
import type { Config } from './config.ts';
import { createDb, type Db, migrateToLatest } from './database/database.ts';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './database/embedded-postgres.ts';
import { Notifier } from './database/notifier.ts';
import { addDomainJob } from './domains/add-domain.job.ts';
import { DomainsService } from './domains/domains.service.ts';
import { makePrimaryDomainJob } from './domains/make-primary-domain.job.ts';
import { removeDomainJob } from './domains/remove-domain.job.ts';
import { cloneEnvironmentJob } from './environments/clone-environment.job.ts';
import { deleteEnvironmentJob } from './environments/delete-environment.job.ts';
import { EnvironmentsService } from './environments/environments.service.ts';
import { provisionEnvironmentJob } from './environments/provision-environment.job.ts';
import { startHousekeeping } from './housekeeping/housekeeping.ts';
import { JobEnqueuer } from './jobs/enqueue.ts';
import { JobCatalogue } from './jobs/job-definition.ts';
import { createJobQueues } from './jobs/job-queue.ts';
import { JobRunner } from './jobs/job-runner.ts';
import { JobsService } from './jobs/jobs.service.ts';
import { type LocalNode, startLocalNode } from './local-node/local-node.ts';
import { MagicLoginService } from './magic-login/magic-login.service.ts';
import { nodePingJob } from './nodes/node-ping.job.ts';
import { NodesService } from './nodes/nodes.service.ts';
import { type MasterKey, resolveMasterKey } from './secrets/master-key.ts';
import { SecretBox } from './secrets/secret-box.ts';
import { deleteSiteJob } from './sites/delete-site.job.ts';
import { SitesService } from './sites/sites.service.ts';

export interface ControlPlane {
  app: FastifyInstance;
  db: Db;
  boss: PgBoss;
  enqueuer: JobEnqueuer;
  embedded?: EmbeddedDatabase;
  admin: AdminBootstrap;
  masterKey: MasterKey;
  /** The agent CA every replica signs node certificates with; `pin` goes into join tokens. */
  agentCa: AgentCa;
  /** The gRPC endpoint of agents (Enroll and Connect on one TLS port). */
  gateway: AgentGateway;
  /** Sends commands to nodes (job steps, and the synchronous path). */
  commands: CommandService;
  nodes: NodesService;
  /** The node `local` in single-machine mode (WPCP_LOCAL_NODE). */
  localNode?: LocalNode;
  migrationsApplied: string[];
  /** Stops accepting requests, finishes in-flight ones, stops workers, then the database. */
  close(): Promise<void>;
}

export interface StartOptions {
  config: Config;
  logger: Logger;
  /** Extra job types this process runs (tests); the product's own are always registered. */
  catalogue?: JobCatalogue;
}

/** The product's own job types, registered by their features. */
const PRODUCT_JOBS = [
  nodePingJob,
  provisionEnvironmentJob,
  cloneEnvironmentJob,
  addDomainJob,
  removeDomainJob,
  makePrimaryDomainJob,
  deleteEnvironmentJob,
  deleteSiteJob,
  ...CACHING_JOBS,
];

/**
 * Wires the control plane in the order a start needs: database, schema, secrets, admin user,
 * agent CA, job transport and workers, the agent gateway (which listens at once), then the HTTP
 * API. The caller decides whether the HTTP API listens.
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
    const agentCa = await loadOrCreateAgentCa(db, new SecretBox(masterKey.key));

    const notifier = new Notifier(connectionString, logger);
    await notifier.start();
    cleanup.unshift(() => notifier.stop());
    const commands = new CommandService({
      db,
      notifier,
      logger,
      settings: { ...config.commands, offlineAfterMs: config.nodes.offlineAfterMs },
    });
    const jobTypes = new JobCatalogue();
    for (const definition of [...PRODUCT_JOBS, ...catalogue.all()]) jobTypes.register(definition);

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
    await createJobQueues(boss, jobTypes);

    const auth = new AuthService(db, config);
    const runner = new JobRunner({
      db,
      boss,
      catalogue: jobTypes,
      logger,
      concurrency: config.jobs.concurrency,
      commands,
      settings: { offlineAfterMs: config.nodes.offlineAfterMs, adminEmail: config.admin.email },
    });
    await runner.start();
    cleanup.unshift(async () => runner.stop());
    await startHousekeeping({ boss, auth, logger });

    const gateway = new AgentGateway({
      db,
      ca: agentCa,
      notifier,
      logger,
      settings: {
        ...config.grpc,
        ...config.nodes,
        pollMs: config.commands.pollMs,
        resultGraceMs: config.commands.resultGraceMs,
        jobLogMaxLines: config.commands.jobLogMaxLines,
      },
    });
    await gateway.start();
    cleanup.unshift(() => gateway.stop());
    const enqueuer = new JobEnqueuer(db, boss, jobTypes);
    const nodes = new NodesService({
      db,
      ca: agentCa,
      enqueuer,
      logger,
      settings: config.nodes,
    });

    const https = config.http.tls
      ? { cert: await readFile(config.http.tls.certFile), key: await readFile(config.http.tls.keyFile) }
      : undefined;
    const app = await buildApp({
      config,
      logger,
      db,
      auth,
      jobs: new JobsService(db, boss, jobTypes),
      nodes,
      sites: new SitesService({ db, enqueuer, logger }),
      environments: new EnvironmentsService({ db }),
      domains: new DomainsService({ db, enqueuer, logger }),
      caching: new CachingService({ db, enqueuer, logger }),
      magicLogins: new MagicLoginService({ db, commands, logger, settings: config.magicLoginRateLimit }),
      https,
    });
    cleanup.unshift(() => app.close());

    // Single-machine mode: this machine is also the node `local`; its agent stops first at close.
    const localNode = config.localNode
      ? await startLocalNode({ config, db, nodes, gatewayPort: gateway.port, logger })
      : undefined;
    if (localNode) cleanup.unshift(() => localNode.stop());

    let closing: Promise<void> | undefined;
    return {
      app,
      db,
      boss,
      enqueuer,
      embedded,
      admin,
      masterKey,
      agentCa,
      gateway,
      commands,
      nodes,
      localNode,
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
