/**
 * A control plane in a process of its own, for system tests that kill it or run two of them
 * (replicas) on one database. Started with one JSON argument:
 *   { adminUrl, databaseUrl, env, testJobs }
 * It prints `READY {"http":…,"grpc":…}` once both listeners are up. On standard input it takes
 * lines `enqueue <json payload>` (a `test-node-command` job; needs testJobs) and answers
 * `JOB <id>`. SIGTERM stops it cleanly, leaving the database.
 */
import { createInterface } from 'node:readline';
import { nodeCommandJob, startTestControlPlane } from '@wpcp/control-plane/testing';
import { JobCatalogue } from '../../control-plane/src/jobs/job-definition.ts';

const options = JSON.parse(process.argv[2] ?? '{}') as {
  adminUrl: string;
  databaseUrl: string;
  env: Record<string, string>;
  testJobs: boolean;
};

const catalogue = new JobCatalogue();
if (options.testJobs) catalogue.register(nodeCommandJob({ retryLimit: 3, heartbeatSeconds: 10 }));
const cp = await startTestControlPlane(options.adminUrl, {
  database: { url: options.databaseUrl, drop: async () => {} },
  catalogue,
  env: { WPCP_LOG_LEVEL: 'warn', ...options.env },
});
const http = await cp.app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`READY ${JSON.stringify({ http, grpc: cp.grpcAddress })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  const match = /^enqueue (.+)$/.exec(line);
  if (!match?.[1]) return;
  cp.enqueuer.enqueue({ type: 'test-node-command', payload: JSON.parse(match[1]) }).then(
    (id) => process.stdout.write(`JOB ${id}\n`),
    (error: unknown) => process.stdout.write(`ERROR ${String(error)}\n`),
  );
});

process.once('SIGTERM', () => {
  cp.destroy().then(() => process.exit(0));
});
