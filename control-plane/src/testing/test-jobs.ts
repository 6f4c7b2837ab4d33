import { setTimeout as sleep } from 'node:timers/promises';
import { AppError, isErrorCode } from '@wpcp/shared/errors';
import { Uuid } from '@wpcp/shared/validation';
import { z } from 'zod';
import { runNodeCommand } from '../agent-gateway/commands.ts';
import { defineJob, JobCatalogue } from '../jobs/job-definition.ts';

/**
 * A job type only the test suite registers, to prove the job machinery before real job types
 * exist: three named steps whose behaviour the payload scripts (fail at a step, on which
 * attempts, with which code; wait; hang until cancelled). Every step and undo it runs is
 * recorded in `journal`, so a test can tell exactly what ran.
 */
export const ScriptedPayload = z.strictObject({
  fail_at: z.enum(['prepare', 'apply', 'verify']).optional(),
  /** Fail only on these attempts (1-based); absent = every attempt. */
  fail_on_attempts: z.array(z.number().int().positive()).optional(),
  fail_code: z.string().default('job_failed'),
  wait_ms: z.number().int().min(0).max(60_000).default(0),
  /** Run until cancelled (or until the signal aborts). */
  hang_at: z.enum(['prepare', 'apply', 'verify']).optional(),
  /** Hang only on these attempts (1-based); absent = every attempt. */
  hang_on_attempts: z.array(z.number().int().positive()).optional(),
});

export const journal: { jobId: string; event: string; attempt: number }[] = [];

export function scriptedJob(
  options: { retryLimit?: number; heartbeatSeconds?: number; expireInSeconds?: number } = {},
) {
  const step = (name: 'prepare' | 'apply' | 'verify') => ({
    name,
    run: async ({ jobId, attempt, payload, signal, state }: Parameters<StepRun>[0]) => {
      journal.push({ jobId, event: `run:${name}`, attempt });
      if (payload.wait_ms) await sleep(payload.wait_ms, undefined, { signal });
      if (
        payload.hang_at === name &&
        (!payload.hang_on_attempts || payload.hang_on_attempts.includes(attempt))
      ) {
        await sleep(120_000, undefined, { signal });
      }
      if (
        payload.fail_at === name &&
        (!payload.fail_on_attempts || payload.fail_on_attempts.includes(attempt))
      ) {
        const code = isErrorCode(payload.fail_code) ? payload.fail_code : 'job_failed';
        throw new AppError(code, `scripted failure at ${name} on attempt ${attempt}`);
      }
      state[name] = attempt;
    },
    undo: async ({ jobId, attempt }: Parameters<StepRun>[0]) => {
      journal.push({ jobId, event: `undo:${name}`, attempt });
    },
  });
  return defineJob({
    type: 'test-scripted',
    payload: ScriptedPayload,
    steps: [step('prepare'), step('apply'), step('verify')],
    retryLimit: options.retryLimit ?? 2,
    retryDelaySeconds: 1,
    heartbeatSeconds: options.heartbeatSeconds ?? 30,
    expireInSeconds: options.expireInSeconds ?? 60,
    output: (state) => ({ completed_steps: Object.keys(state) }),
  });
}

type StepRun = ReturnType<typeof defineJob<typeof ScriptedPayload>>['steps'][number]['run'];

export function scriptedCatalogue(options?: Parameters<typeof scriptedJob>[0]): JobCatalogue {
  return new JobCatalogue().register(scriptedJob(options));
}

/**
 * A job type only the test suite registers: one step that runs one command on a node, with the
 * deadline, retry declaration and payload the test chooses. Its output is the command's output.
 */
export const NodeCommandPayload = z.strictObject({
  node_id: Uuid,
  command: z.enum(['noop', 'ping']).default('noop'),
  sleep_ms: z.number().int().min(0).default(0),
  deadline_ms: z.number().int().positive().optional(),
  safe_to_retry: z.boolean().default(false),
  environment_key: z.string().optional(),
  /** After the command succeeded, fail the step (retryably) on these attempts. */
  fail_after_on_attempts: z.array(z.number().int().positive()).default([]),
});

export function nodeCommandJob(options: { retryLimit?: number; heartbeatSeconds?: number } = {}) {
  return defineJob({
    type: 'test-node-command',
    payload: NodeCommandPayload,
    retryLimit: options.retryLimit ?? 0,
    heartbeatSeconds: options.heartbeatSeconds ?? 30,
    retryDelaySeconds: 1,
    expireInSeconds: 120,
    steps: [
      {
        name: 'run',
        run: async (ctx) => {
          const { payload } = ctx;
          const outcome = await runNodeCommand(ctx, {
            nodeId: payload.node_id,
            step: 'run',
            payload:
              payload.command === 'ping'
                ? { $case: 'ping', value: {} }
                : { $case: 'noop', value: { sleepMs: payload.sleep_ms, fail: false, errorMessage: '' } },
            deadlineMs: payload.deadline_ms,
            safeToRetry: payload.safe_to_retry,
            environmentKey: payload.environment_key,
          });
          ctx.state.command_id = outcome.commandId;
          ctx.state.output = outcome.output;
          if (payload.fail_after_on_attempts.includes(ctx.attempt)) {
            throw new AppError(
              'internal_error',
              `scripted failure after the command on attempt ${ctx.attempt}`,
            );
          }
        },
      },
    ],
    output: (state) => state,
  });
}
