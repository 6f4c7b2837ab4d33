import type { Metrics } from '@wpcp/shared/api';
import type { Db } from '../database/database.ts';
import { countJobsByStatus } from '../jobs/jobs.queries.ts';
import { countActiveNodes } from '../nodes/nodes.queries.ts';
import { countSites } from '../sites/sites.queries.ts';

/** Computed at request time from the primary database: no cache, so the numbers are never stale. */
export async function readMetrics(db: Db, options: { offlineAfterMs: number }): Promise<Metrics> {
  const jobs = await countJobsByStatus(db);
  const count = (status: string) => Number(jobs.find((row) => row.status === status)?.count ?? 0);
  return {
    jobs_running: count('running'),
    jobs_queued: count('queued'),
    // Enabled nodes whose heartbeats are recent (the same rule as status `active` in /api/nodes).
    nodes_active: await countActiveNodes(db, options.offlineAfterMs),
    // Every site, whatever its status (provisioning, active, failed).
    sites_total: await countSites(db),
  };
}
