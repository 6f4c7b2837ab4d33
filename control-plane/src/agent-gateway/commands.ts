import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from '@wpcp/shared/agent-protocol';
import { AppError, errorCatalogue, isErrorCode } from '@wpcp/shared/errors';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../database/database.ts';
import { CHANNELS, type Notifier, notify } from '../database/notifier.ts';
import type { AgentCommandRow } from '../database/schema.ts';
import type { StepContext } from '../jobs/job-definition.ts';
import * as q from './commands.queries.ts';

/** The typed payload of a command: one case of the `Command.payload` oneof. */
export type CommandPayload = NonNullable<Command['payload']>;

export interface NodeCommandRequest {
  nodeId: string;
  /**
   * Names the command inside its job step (usually the step's name). With the job id it makes the
   * command id, so a retried step re-attaches to the command it sent before. Lowercase letters,
   * digits, `-` and `_`.
   */
  step: string;
  payload: CommandPayload;
  /** Commands with the same key (an environment id) run one at a time on the node, in order. */
  environmentKey?: string;
  /** How long the command may wait for the node before it is withdrawn (default 15 minutes). */
  deadlineMs?: number;
  /**
   * The command can run again without harm after an agent died while running it: an
   * `interrupted` result then sends it again under a new id instead of failing the step.
   */
  safeToRetry?: boolean;
}

export interface CommandOutcome {
  commandId: string;
  /** The command's output (parsed from the agent's `output_json`), or null. */
  output: unknown;
}

export interface CommandSettings {
  pollMs: number;
  defaultDeadlineMs: number;
  resultGraceMs: number;
  offlineAfterMs: number;
}

const STEP_KEY = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_GENERATIONS = 100;

/** What a waiter does when its deadline has passed and the command is out on the node. */
type AfterDeadline = { kind: 'grace'; ms: number };

/**
 * The at-most-once command path between job steps and nodes. A command is a row in
 * `agent_commands` before it is anything else; the replica holding the node's stream delivers it
 * (woken by NOTIFY, or by its polling floor), and the caller waits for the row to reach a final
 * status (woken by NOTIFY on the results channel, or by polling).
 */
export class CommandService {
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #settings: CommandSettings;
  readonly #wakers = new Map<string, Set<() => void>>();

  constructor(deps: { db: Db; notifier: Notifier; logger: Logger; settings: CommandSettings }) {
    this.#db = deps.db;
    this.#logger = deps.logger.child({ component: 'commands' });
    this.#settings = deps.settings;
    deps.notifier.on(CHANNELS.commandResults, (id) => this.#wake(id));
    deps.notifier.onReconnect(() => {
      for (const id of this.#wakers.keys()) this.#wake(id);
    });
  }

  /**
   * Runs a command for a job step and returns its output, or throws the step's failure:
   * `node_unreachable` (withdrawn at its deadline, or no result), `node_disabled`,
   * `command_failed` / `command_rejected`, `command_interrupted`, `command_cancelled`.
   */
  async run(
    ctx: Pick<StepContext<unknown>, 'jobId' | 'signal'>,
    request: NodeCommandRequest,
  ): Promise<CommandOutcome> {
    if (!STEP_KEY.test(request.step))
      throw new Error(`bad command step key: ${JSON.stringify(request.step)}`);
    const deadlineMs = request.deadlineMs ?? this.#settings.defaultDeadlineMs;
    let row = await q.latestCommandOfStep(this.#db, ctx.jobId, request.step);
    for (;;) {
      if (!row || this.#mayReissue(row, request)) {
        const generation = row ? row.generation + 1 : 0;
        if (generation >= MAX_GENERATIONS)
          throw new AppError('job_failed', 'too many attempts at this command');
        await this.#assertNodeUsable(request.nodeId);
        row = await this.#create({
          id: commandId(ctx.jobId, request.step, generation),
          nodeId: request.nodeId,
          jobId: ctx.jobId,
          step: request.step,
          generation,
          type: request.payload.$case,
          payload: request.payload,
          environmentKey: request.environmentKey ?? null,
          deadlineMs,
        });
        this.#logger.debug(
          { command_id: row.id, node_id: row.node_id, job_id: ctx.jobId },
          'command created',
        );
      }
      const final = await this.#waitForFinal(row, ctx, {
        kind: 'grace',
        ms: this.#settings.resultGraceMs,
      });
      if (final.status === 'interrupted' && request.safeToRetry) {
        this.#logger.warn(
          { command_id: final.id, job_id: ctx.jobId },
          'command interrupted; sending it again',
        );
        row = final;
        continue;
      }
      return outcomeOf(final, ctx.signal);
    }
  }

  /**
   * The synchronous path (magic login and other queries): sends a command to a node that has a
   * live stream and waits up to `timeoutMs` for its result. `node_unreachable` when the node has
   * no live stream or does not answer in time; the command is withdrawn if it was not delivered.
   */
  async sendAndWait(nodeId: string, payload: CommandPayload, timeoutMs = 10_000): Promise<CommandOutcome> {
    const node = await this.#db
      .selectFrom('nodes')
      .select([
        'status',
        sql<boolean>`stream_session is not null and last_heartbeat_at >= now() - make_interval(secs => ${this.#settings.offlineAfterMs / 1000})`.as(
          'live',
        ),
      ])
      .where('id', '=', nodeId)
      .executeTakeFirst();
    if (!node) throw new AppError('not_found', `node ${nodeId} does not exist`);
    if (node.status === 'disabled') throw new AppError('node_disabled', `node ${nodeId} is disabled`);
    if (!node.live) throw new AppError('node_unreachable', `node ${nodeId} has no live connection`);
    const row = await this.#create({
      id: `sync:${randomUUID()}`,
      nodeId,
      jobId: null,
      step: null,
      generation: 0,
      type: payload.$case,
      payload,
      environmentKey: null,
      deadlineMs: timeoutMs,
    });
    const final = await this.#waitForFinal(
      row,
      { jobId: '', signal: new AbortController().signal },
      undefined,
    );
    if (final.status === 'delivered' || final.status === 'running') {
      throw new AppError('node_unreachable', `node ${nodeId} did not answer within ${timeoutMs} ms`);
    }
    return outcomeOf(final, undefined);
  }

  /** A command that certainly never ran (never delivered), or an interrupted one the step may repeat. */
  #mayReissue(row: AgentCommandRow, request: NodeCommandRequest): boolean {
    if ((row.status === 'expired' || row.status === 'cancelled') && row.delivered_at === null) return true;
    return row.status === 'interrupted' && request.safeToRetry === true;
  }

  async #assertNodeUsable(nodeId: string): Promise<void> {
    const node = await this.#db
      .selectFrom('nodes')
      .select('status')
      .where('id', '=', nodeId)
      .executeTakeFirst();
    if (!node) throw new AppError('not_found', `node ${nodeId} does not exist`);
    if (node.status === 'disabled') throw new AppError('node_disabled', `node ${nodeId} is disabled`);
  }

  /** Inserts the row and wakes the replica holding the node's stream, in one transaction. */
  async #create(command: q.NewCommand): Promise<AgentCommandRow> {
    await this.#db.transaction().execute(async (trx) => {
      await q.insertCommand(trx, command);
      await notify(trx, CHANNELS.agentCommands, command.nodeId);
    });
    const row = await q.findCommand(this.#db, command.id);
    if (!row) throw new Error(`command ${command.id} vanished`);
    return row;
  }

  /**
   * Waits until the command is final. At its deadline a command still pending is withdrawn (it
   * can never be delivered after that). One already handed to the node gets `afterDeadline`
   * more time to report (the agent itself stops it at the deadline); without it, the row is
   * returned as it stands.
   */
  async #waitForFinal(
    initial: AgentCommandRow,
    ctx: Pick<StepContext<unknown>, 'jobId' | 'signal'>,
    afterDeadline: AfterDeadline | undefined,
  ): Promise<AgentCommandRow> {
    const { id } = initial;
    const deadline = initial.deadline_at.getTime();
    let woken = false;
    let wake: () => void = () => {};
    const waker = () => {
      woken = true;
      wake();
    };
    let set = this.#wakers.get(id);
    if (!set) {
      set = new Set();
      this.#wakers.set(id, set);
    }
    set.add(waker);
    try {
      for (;;) {
        woken = false;
        const row = await q.findCommand(this.#db, id);
        if (!row) throw new Error(`command ${id} vanished`);
        if (q.isFinal(row.status)) return row;
        if (ctx.signal.aborted) return await this.#abandon(row, ctx);
        const now = Date.now();
        if (now >= deadline) {
          if (row.status === 'pending') {
            const withdrawn = await q.withdrawPendingCommand(this.#db, id, {
              status: 'expired',
              errorCode: 'node_unreachable',
              errorMessage: `the node did not take the command before its deadline (${new Date(deadline).toISOString()}); it was withdrawn and will never run`,
            });
            if (withdrawn) {
              await notify(this.#db, CHANNELS.commandResults, id);
              return withdrawn;
            }
            continue;
          }
          if (!afterDeadline) return row;
          if (now >= deadline + afterDeadline.ms) {
            throw new AppError(
              'node_unreachable',
              `the node took command ${id} but reported no result by ${new Date(deadline + afterDeadline.ms).toISOString()}; its outcome is unknown`,
            );
          }
        }
        const nextCheck = now < deadline ? deadline - now : deadline + (afterDeadline?.ms ?? 0) - now;
        if (woken) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(1, Math.min(this.#settings.pollMs, nextCheck)));
          const done = () => {
            clearTimeout(timer);
            ctx.signal.removeEventListener('abort', done);
            resolve();
          };
          wake = done;
          ctx.signal.addEventListener('abort', done, { once: true });
        });
        wake = () => {};
      }
    } finally {
      set.delete(waker);
      if (set.size === 0) this.#wakers.delete(id);
    }
  }

  /**
   * The step's signal fired. If a user cancelled the job, the command is withdrawn or the node is
   * told to stop it, and the step waits a little for the node to confirm. If the worker is only
   * stopping, the command is left alone: the retried job re-attaches to it.
   */
  async #abandon(row: AgentCommandRow, ctx: Pick<StepContext<unknown>, 'jobId' | 'signal'>): Promise<never> {
    const job = ctx.jobId
      ? await this.#db
          .selectFrom('jobs')
          .select('cancel_requested_at')
          .where('id', '=', ctx.jobId)
          .executeTakeFirst()
      : undefined;
    if (job?.cancel_requested_at) {
      const withdrawn = await q.withdrawPendingCommand(this.#db, row.id, {
        status: 'cancelled',
        errorCode: 'job_cancelled',
        errorMessage: 'the job was cancelled before the node took the command',
      });
      if (withdrawn) {
        await notify(this.#db, CHANNELS.commandResults, row.id);
      } else {
        const cancelled = await q.requestCommandCancel(this.#db, row.id);
        if (cancelled) {
          await notify(this.#db, CHANNELS.agentCommands, cancelled.node_id);
          this.#logger.info(
            { command_id: row.id, job_id: ctx.jobId },
            'asked the node to cancel the command',
          );
          await this.#waitForCancelled(row.id);
        }
      }
    }
    throw ctx.signal.reason ?? new Error('aborted');
  }

  async #waitForCancelled(id: string): Promise<void> {
    const until = Date.now() + this.#settings.resultGraceMs;
    while (Date.now() < until) {
      const row = await q.findCommand(this.#db, id);
      if (!row || q.isFinal(row.status)) return;
      await sleep(Math.min(this.#settings.pollMs, 250));
    }
  }

  #wake(id: string): void {
    for (const waker of this.#wakers.get(id) ?? []) waker();
  }
}

/** `<job id>:<step>`, then `<job id>:<step>:<n>` for the n-th re-issue. Matches the agent's id pattern. */
export function commandId(jobId: string, step: string, generation: number): string {
  return generation === 0 ? `${jobId}:${step}` : `${jobId}:${step}:${generation}`;
}

/** A final row as the step sees it: the output, or the error the job ends with. */
function outcomeOf(row: AgentCommandRow, signal: AbortSignal | undefined): CommandOutcome {
  const detail = row.error_message ?? '';
  switch (row.status) {
    case 'succeeded':
      return { commandId: row.id, output: row.output ?? null };
    case 'failed': {
      if (row.error_code === 'command_rejected') {
        throw new AppError('command_rejected', `the node refused command ${row.id}: ${detail}`);
      }
      // A catalogued, permanent code the agent chose is kept; anything else is command_failed.
      const code = row.error_code;
      if (code && isErrorCode(code) && !errorCatalogue[code].retryable && code !== 'command_failed') {
        throw new AppError(code, detail || `command ${row.id} failed`);
      }
      const named = code && code !== 'command_failed' ? ` (${code})` : '';
      throw new AppError('command_failed', `command ${row.id} failed on the node${named}: ${detail}`);
    }
    case 'interrupted':
      throw new AppError(
        'command_interrupted',
        `the node agent stopped while running command ${row.id}; it was not run again and its effect is unknown`,
      );
    case 'cancelled':
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      throw new AppError('command_cancelled', `command ${row.id} was stopped on the node: ${detail}`);
    case 'expired':
      throw new AppError(row.error_code === 'node_disabled' ? 'node_disabled' : 'node_unreachable', detail);
    default:
      throw new AppError('node_unreachable', `command ${row.id} has no result yet`);
  }
}

/** The helper job steps call: `await runNodeCommand(ctx, { nodeId, step, payload })`. */
export function runNodeCommand(
  ctx: StepContext<unknown>,
  request: NodeCommandRequest,
): Promise<CommandOutcome> {
  return ctx.commands.run(ctx, request);
}
