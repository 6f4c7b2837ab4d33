/**
 * A control plane in its own process, for the worker-crash test: it enqueues one scripted job
 * (payload from argv), prints the job id, and runs it until the test kills it with SIGKILL.
 */
import { startTestControlPlane } from './test-control-plane.ts';
import { scriptedCatalogue } from './test-jobs.ts';

const [adminUrl, databaseUrl, retryLimit, payload, dataDir] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const cp = await startTestControlPlane(adminUrl, {
  database: { url: databaseUrl, drop: async () => {} },
  catalogue: scriptedCatalogue({ retryLimit: Number(retryLimit), heartbeatSeconds: 10 }),
  // The test kills this process with SIGKILL: it owns the data dir and removes it.
  env: { WPCP_JOB_SUPERVISE_SECONDS: '2', WPCP_DATA_DIR: dataDir },
});
const id = await cp.enqueuer.enqueue({ type: 'test-scripted', payload: JSON.parse(payload) });
process.stdout.write(`JOB ${id}\n`);
