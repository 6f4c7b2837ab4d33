import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../database/embedded-postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL of the PostgreSQL server the tests create their databases on. */
    postgresAdminUrl: string;
  }
}

/**
 * One real PostgreSQL per test run: DATABASE_URL when set, otherwise an embedded cluster in a
 * temporary directory that is removed afterwards. Each test file then gets its own database.
 */
export default async function setup(project: TestProject) {
  if (process.env.DATABASE_URL) {
    const url = new URL(process.env.DATABASE_URL);
    url.pathname = '/postgres';
    project.provide('postgresAdminUrl', url.toString());
    return;
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wpcp-test-pg-'));
  const database = await startEmbeddedPostgres({ dataDir, port: await freePort(), databaseName: 'postgres' });
  project.provide('postgresAdminUrl', database.connectionString);
  return async () => {
    await database.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
