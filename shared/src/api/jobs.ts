import { z } from 'zod';
import { Uuid } from '../validation/index.ts';
import { ListQuery } from './pagination.ts';

export const JobStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type JobStatus = z.infer<typeof JobStatus>;

/** The latest progress a node reported for the command of a running step. */
export const StepProgress = z.object({
  /** Machine-readable phase inside the command, e.g. `dump_database`. */
  phase: z.string(),
  percent: z.number().int().min(0).max(100),
  message: z.string(),
});

export const JobStep = z.object({
  name: z.string(),
  status: z.enum(['pending', 'running', 'succeeded', 'failed', 'skipped']),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  /** Only on `GET /api/jobs/{id}`, while the step waits for a command running on a node. */
  progress: StepProgress.optional(),
});

export const Job = z
  .object({
    id: Uuid,
    type: z.string(),
    status: JobStatus,
    target: z.object({ type: z.string(), id: Uuid }).nullable(),
    attempt: z.number().int(),
    max_attempts: z.number().int(),
    steps: z.array(JobStep),
    output: z.unknown().nullable(),
    error_code: z.string().nullable(),
    error_message: z.string().nullable(),
    cancel_requested: z.boolean(),
    created_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
  })
  .meta({ id: 'Job' });
export type Job = z.infer<typeof Job>;

export const JobListQuery = ListQuery.extend({
  status: JobStatus.optional(),
  type: z
    .string()
    .regex(/^[a-z0-9-]{1,64}$/)
    .optional(),
  target_type: z
    .string()
    .regex(/^[a-z0-9-]{1,64}$/)
    .optional(),
  target_id: Uuid.optional(),
});
export type JobListQuery = z.infer<typeof JobListQuery>;

/** Every mutation that touches a node or a site answers 202 with this. */
export const JobAccepted = z.object({ job_id: Uuid }).meta({ id: 'JobAccepted' });

export const JobLogStream = z.enum(['stdout', 'stderr', 'agent', 'progress']);

/** One line of output of a job's node commands; secrets are redacted before it is stored. */
export const JobLogLine = z
  .object({
    command_id: z.string().nullable(),
    stream: JobLogStream,
    line: z.string(),
    created_at: z.string(),
  })
  .meta({ id: 'JobLogLine' });
export type JobLogLine = z.infer<typeof JobLogLine>;

/** Oldest first; `next_cursor` continues after the last line returned. */
export const JobLogsQuery = ListQuery.extend({
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});
export type JobLogsQuery = z.infer<typeof JobLogsQuery>;
