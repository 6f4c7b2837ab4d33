import type { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type { AuthService } from '../auth/auth.service.ts';

const QUEUE = 'housekeeping';

/**
 * Periodic chores on pg-boss directly (a cron schedule, one run across all replicas). They are
 * not user jobs and never appear in /api/jobs.
 */
export async function startHousekeeping(deps: {
  boss: PgBoss;
  auth: AuthService;
  logger: Logger;
}): Promise<void> {
  if (!(await deps.boss.getQueue(QUEUE))) await deps.boss.createQueue(QUEUE, { retryLimit: 0 });
  await deps.boss.schedule(QUEUE, '*/10 * * * *');
  await deps.boss.work(QUEUE, async () => {
    const pruned = await deps.auth.prune();
    deps.logger.info({ pruned }, 'housekeeping done');
  });
}
