import type { ErrorCode } from '@wpcp/shared/errors';
import type { z } from 'zod';
import type { CommandService } from '../agent-gateway/commands.ts';
import type { Db } from '../database/database.ts';

/**
 * A job type reads like the runbook it replaces: a payload schema and a list of named steps, each
 * idempotent (a retried job re-runs the step that failed, never the ones that succeeded) and each
 * with an optional undo, run in reverse order when the job finally fails.
 */
export interface StepContext<Payload> {
  jobId: string;
  attempt: number;
  payload: Payload;
  db: Db;
  /** Aborted when a user cancels the job or the worker is stopping. */
  signal: AbortSignal;
  /** Data earlier steps handed on, and the job's output when it succeeds. */
  state: Record<string, unknown>;
  log: (message: string) => void;
  /** Sends commands to nodes; steps call it through `runNodeCommand(ctx, ...)`. */
  commands: CommandService;
  /** The settings job types read (from the control plane's configuration). */
  settings: JobSettings;
}

export interface JobSettings {
  /** A node without a heartbeat for this long is offline (placement skips it). */
  offlineAfterMs: number;
  /** The control plane's admin email, used as the first WordPress administrator's when it can be. */
  adminEmail: string;
}

/** What `onFailure` gets: enough to settle the job's records, nothing that reaches a node. */
export interface FailureContext<Payload> {
  jobId: string;
  payload: Payload;
  /** The database, or the transaction that settles the job (the two commit together). */
  db: Db;
}

export interface JobStepDefinition<Payload> {
  name: string;
  run: (ctx: StepContext<Payload>) => Promise<void>;
  undo?: (ctx: StepContext<Payload>) => Promise<void>;
}

export interface JobDefinition<Schema extends z.ZodType = z.ZodType> {
  type: string;
  payload: Schema;
  steps: JobStepDefinition<z.infer<Schema>>[];
  /** Attempts after the first when a step fails with a retryable error or the worker dies. */
  retryLimit: number;
  retryDelaySeconds: number;
  /** Longest one attempt may run before it counts as failed. */
  expireInSeconds: number;
  /** A worker that stops heartbeating this long is presumed dead (pg-boss minimum: 10). */
  heartbeatSeconds: number;
  /** The output stored on success, built from the state the steps left. */
  output?: (state: Record<string, unknown>) => unknown;
  /** Error codes that are never retried, whatever the catalogue says. */
  permanentErrors?: ErrorCode[];
  /**
   * Called once when the job ends `failed` or `cancelled` (after the undos, before the job row is
   * settled; also for a job cancelled before it ran and one whose worker was lost), to put the
   * records the job was changing into their failed state. It must not throw for records that are
   * gone, and must be idempotent.
   */
  onFailure?: (
    ctx: FailureContext<z.infer<Schema>>,
    error: { code: ErrorCode; message: string },
  ) => Promise<void>;
}

export function defineJob<Schema extends z.ZodType>(
  definition: Omit<
    JobDefinition<Schema>,
    'retryLimit' | 'retryDelaySeconds' | 'expireInSeconds' | 'heartbeatSeconds'
  > &
    Partial<JobDefinition<Schema>>,
): JobDefinition<Schema> {
  return {
    retryLimit: 2,
    retryDelaySeconds: 5,
    expireInSeconds: 15 * 60,
    heartbeatSeconds: 30,
    ...definition,
  };
}

/** The job types this process can run. Registration happens at start-up, before workers begin. */
export class JobCatalogue {
  readonly #definitions = new Map<string, JobDefinition>();

  register(definition: JobDefinition): this {
    if (!/^[a-z0-9-]{1,64}$/.test(definition.type)) throw new Error(`bad job type name: ${definition.type}`);
    if (this.#definitions.has(definition.type))
      throw new Error(`job type registered twice: ${definition.type}`);
    this.#definitions.set(definition.type, definition);
    return this;
  }

  get(type: string): JobDefinition {
    const definition = this.#definitions.get(type);
    if (!definition) throw new Error(`unknown job type: ${type}`);
    return definition;
  }

  all(): JobDefinition[] {
    return [...this.#definitions.values()];
  }
}
