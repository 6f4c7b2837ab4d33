import type { Metrics } from '@wpcp/shared/api';
import type { Db } from '../database/database.ts';
import { countJobsByStatus } from '../jobs/jobs.queries.ts';

/** Computed at request time from the primary database: no cache, so the numbers are never stale. */
export async function readMetrics(db: Db): Promise<Metrics> {
  const jobs = await countJobsByStatus(db);
  const count = (status: string) => Number(jobs.find((row) => row.status === status)?.count ?? 0);
  return {
    jobs_running: count('running'),
    jobs_queued: count('queued'),
    // Nodes and sites arrive with the fleet and sites features; until their tables exist there are none.
    nodes_active: 0,
    sites_total: 0,
  };
}
