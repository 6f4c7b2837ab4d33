import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  createTestDatabase,
  journal,
  scriptedCatalogue,
  startTestControlPlane,
  type TestControlPlane,
  waitFor,
} from '../testing/index.ts';

const childScript = fileURLToPath(new URL('../testing/crash-worker-child.ts', import.meta.url));
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Starts a control plane in a child process that enqueues a job hanging in `apply` on attempt 1. */
async function startDoomedWorker(
  databaseUrl: string,
  retryLimit: number,
): Promise<{ child: ChildProcess; jobId: string }> {
  const payload = JSON.stringify({ hang_at: 'apply', hang_on_attempts: [1] });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wpcp-test-doomed-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const child = spawn(
    process.execPath,
    [childScript, inject('postgresAdminUrl'), databaseUrl, String(retryLimit), payload, dataDir],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  let output = '';
  const jobId = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (chunk) => {
      output += chunk;
      const match = /JOB ([0-9a-f-]{36})/.exec(output);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`worker process exited early (${code})`)));
  });
  return { child, jobId };
}

async function crashScenario(retryLimit: number): Promise<{ cp: TestControlPlane; jobId: string }> {
  const database = await createTestDatabase(inject('postgresAdminUrl'));
  cleanups.push(() => database.drop());
  const { child, jobId } = await startDoomedWorker(database.url, retryLimit);

  // Watch the job from a control plane that runs no workers of that type until the crash.
  const observer = await startTestControlPlane(inject('postgresAdminUrl'), {
    database: { url: database.url, drop: async () => {} },
  });
  await waitFor(
    async () => {
      const row = await observer.db
        .selectFrom('jobs')
        .select(['status', 'steps'])
        .where('id', '=', jobId)
        .executeTakeFirst();
      return row?.status === 'running' && row.steps[1]?.status === 'running' ? true : undefined;
    },
    20_000,
    'the worker process to be inside step apply',
  );
  await observer.destroy();

  child.kill('SIGKILL');
  await once(child, 'exit');

  const cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    database: { url: database.url, drop: async () => {} },
    catalogue: scriptedCatalogue({ retryLimit, heartbeatSeconds: 10 }),
    env: { WPCP_JOB_SUPERVISE_SECONDS: '2' },
  });
  cleanups.push(() => cp.destroy());
  return { cp, jobId };
}

describe('a worker that dies mid-job', () => {
  it('is detected by its missing heartbeat and the job is retried from the step it died in', async () => {
    journal.length = 0;
    const { cp, jobId } = await crashScenario(1);
    const job = await waitFor(
      async () => {
        const row = await cp.db
          .selectFrom('jobs')
          .selectAll()
          .where('id', '=', jobId)
          .executeTakeFirstOrThrow();
        return row.status === 'succeeded' || row.status === 'failed' ? row : undefined;
      },
      45_000,
      'the job to be retried and finish',
    );
    expect(job.status).toBe('succeeded');
    expect(job.attempt).toBe(2);
    // `prepare` finished in the dead process and is not run again; `apply` is.
    expect(journal.filter((e) => e.jobId === jobId).map((e) => `${e.event}@${e.attempt}`)).toEqual([
      'run:apply@2',
      'run:verify@2',
    ]);
  }, 60_000);

  it('fails the job with worker_lost when no attempts are left, never leaving it running', async () => {
    const { cp, jobId } = await crashScenario(0);
    const job = await waitFor(
      async () => {
        const row = await cp.db
          .selectFrom('jobs')
          .selectAll()
          .where('id', '=', jobId)
          .executeTakeFirstOrThrow();
        return row.status === 'failed' || row.status === 'succeeded' ? row : undefined;
      },
      45_000,
      'the job to fail',
    );
    expect(job).toMatchObject({ status: 'failed', error_code: 'worker_lost', attempt: 1 });
    expect(job.steps.map((s) => s.status)).toEqual(['succeeded', 'failed', 'pending']);
  }, 60_000);
});
