import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, scriptedCatalogue } from '@wpcp/control-plane/testing';
import { loadConfig } from '../../control-plane/src/config.ts';
import { startControlPlane } from '../../control-plane/src/control-plane.ts';
import { createLogger } from '../../control-plane/src/logger.ts';
import { timeEach } from './stats.ts';

/**
 * API latency baseline: an authenticated `GET /api/jobs` over real HTTP, and the enqueue path
 * every mutation takes (jobs row + pg-boss job in one transaction), on an embedded PostgreSQL.
 */
export async function benchApiLatency(options: { requests: number }) {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wpcp-bench-'));
  const password = 'bench password 0123456789';
  const config = loadConfig({
    WPCP_DATA_DIR: dataDir,
    WPCP_EMBEDDED_PG_PORT: String(await freePort()),
    WPCP_HTTP_PORT: '0',
    WPCP_ADMIN_PASSWORD: password,
    WPCP_LOG_LEVEL: 'warn',
  });
  const cp = await startControlPlane({
    config,
    logger: createLogger({ level: 'warn' }),
    catalogue: scriptedCatalogue(),
  });
  try {
    const base = await cp.app.listen({ host: '127.0.0.1', port: 0 });
    const login = await fetch(`${base}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: config.admin.email, password }),
    });
    const { session_token } = (await login.json()) as { session_token: string };
    const headers = { authorization: `Bearer ${session_token}` };

    // Seed a realistic first page: 200 finished jobs.
    for (let i = 0; i < 200; i++) await cp.enqueuer.enqueue({ type: 'test-scripted', payload: {} });

    const getJobs = async () => {
      const res = await fetch(`${base}/api/jobs?limit=50`, { headers });
      if (res.status !== 200) throw new Error(`GET /api/jobs answered ${res.status}`);
      await res.arrayBuffer();
    };
    await timeEach(50, 1, getJobs); // warm-up
    const listSequential = await timeEach(options.requests, 1, getJobs);
    const listConcurrent = await timeEach(options.requests, 8, getJobs);
    const enqueue = await timeEach(options.requests, 1, async () => {
      await cp.enqueuer.enqueue({ type: 'test-scripted', payload: {} });
    });
    return {
      'GET /api/jobs?limit=50 (1 client)': listSequential,
      'GET /api/jobs?limit=50 (8 clients)': listConcurrent,
      'enqueue (jobs row + pg-boss send, one transaction)': enqueue,
    };
  } finally {
    await cp.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
