import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { type Config, loadConfig } from '../config.ts';
import { type ControlPlane, startControlPlane } from '../control-plane.ts';
import type { JobCatalogue } from '../jobs/job-definition.ts';
import { createLogger } from '../logger.ts';
import { createTestDatabase } from './test-database.ts';

export const TEST_ADMIN = { email: 'admin@example.test', password: 'correct horse battery staple' };

/**
 * One master key for every test control plane, as replicas sharing a database must have (the
 * agent CA's key is sealed with it). Never use it outside tests.
 */
export const TEST_MASTER_KEY = Buffer.alloc(32, 7).toString('base64');

export interface TestControlPlane extends ControlPlane {
  config: Config;
  /** `127.0.0.1:<port>` of the agent gateway (gRPC, TLS; its certificate names localhost and 127.0.0.1). */
  grpcAddress: string;
  /** Every log line written so far, parsed: tests assert on them (redaction, one line per request). */
  logs: Record<string, unknown>[];
  /** Logs in as the admin and returns the Authorization header value. */
  login(): Promise<string>;
  /** Stops the control plane, drops its database and removes its data dir. */
  destroy(): Promise<void>;
}

/**
 * A real control plane on its own database of the test PostgreSQL server, driven with
 * `app.inject` (no port) unless the test listens itself.
 */
export async function startTestControlPlane(
  adminUrl: string,
  options: {
    env?: Record<string, string>;
    catalogue?: JobCatalogue;
    database?: { url: string; drop(): Promise<void> };
  } = {},
): Promise<TestControlPlane> {
  const database = options.database ?? (await createTestDatabase(adminUrl));
  // A caller that will kill this control plane (SIGKILL leaves no chance to clean up) gives its
  // own WPCP_DATA_DIR and removes it itself.
  const ownDataDir = options.env?.WPCP_DATA_DIR === undefined;
  const dataDir = options.env?.WPCP_DATA_DIR ?? (await mkdtemp(path.join(tmpdir(), 'wpcp-test-data-')));
  const config = loadConfig({
    DATABASE_URL: database.url,
    WPCP_DATA_DIR: dataDir,
    WPCP_ADMIN_EMAIL: TEST_ADMIN.email,
    WPCP_ADMIN_PASSWORD: TEST_ADMIN.password,
    WPCP_MASTER_KEY: TEST_MASTER_KEY,
    WPCP_LOG_LEVEL: 'info',
    // The agent gateway listens on a port of its own per test control plane.
    WPCP_GRPC_HOST: '127.0.0.1',
    WPCP_GRPC_PORT: '0',
    WPCP_GRPC_PUBLIC_NAMES: 'localhost,127.0.0.1',
    ...options.env,
  });
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const controlPlane = await startControlPlane({
    config,
    logger: createLogger({ level: config.logLevel, destination }),
    catalogue: options.catalogue,
  });
  await controlPlane.app.ready();
  return {
    ...controlPlane,
    config,
    grpcAddress: `127.0.0.1:${controlPlane.gateway.port}`,
    logs,
    login: async () => {
      const response = await controlPlane.app.inject({
        method: 'POST',
        url: '/api/login',
        payload: TEST_ADMIN,
      });
      if (response.statusCode !== 200) throw new Error(`test login failed: ${response.body}`);
      return `Bearer ${response.json().session_token}`;
    },
    destroy: async () => {
      await controlPlane.close();
      if (!options.database) await database.drop();
      if (ownDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
