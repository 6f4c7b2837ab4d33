import { z } from 'zod';

export const Metrics = z.object({
  jobs_running: z.number().int(),
  jobs_queued: z.number().int(),
  nodes_active: z.number().int(),
  sites_total: z.number().int(),
});
export type Metrics = z.infer<typeof Metrics>;
