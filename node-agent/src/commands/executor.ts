// The agent side of "at most once" (proto Command, architecture section 4). Every Command goes
// through this state machine:
//
//   received ──▶ known to the journal? ── yes ──▶ answer from the journal (Ack + stored result), never run
//      │ no
//      ▼
//   journaled "started" (durably, before anything else) ──▶ Ack
//      │
//      ├─ no known payload case ─────────▶ result REJECTED unsupported_command
//      ├─ deadline already past ─────────▶ result REJECTED deadline_exceeded
//      ▼
//   queued (CommandScheduler: node limit, one at a time per environment) ── Cancel ──▶ CANCELLED
//      ▼
//   running ── Cancel / deadline / shutdown ──▶ aborted ──▶ CANCELLED
//      ▼
//   result journaled ──▶ sent ──▶ resent in every Hello until ResultAck ──▶ tombstone
//
// A command the agent was running when it died stays "started" in the journal; at the next start
// Journal.recoverAfterCrash() turns it into INTERRUPTED, which is then reported like any result.
import type { AgentMessage, Command, CommandResult as WireResult } from '@wpcp/shared/agent-protocol';
import { CommandStatus, LogStream } from '@wpcp/shared/agent-protocol';
import type { Logger } from 'pino';
import { runProcess } from '../exec/run.ts';
import {
  type CommandResult,
  isValidCommandId,
  type Journal,
  JournalError,
  type ResultStatus,
} from '../journal/journal.ts';
import { CommandScheduler, QueuedCommandRemovedError } from './concurrency.ts';
import { type CommandHandlers, defaultHandlers, prepareCommand } from './registry.ts';
import { AGENT_ERROR_CODES, type CommandContext, type HandlerOutcome, type LogStreamName } from './types.ts';

export type OutgoingMessage = NonNullable<AgentMessage['message']>;

/** Where the executor's messages go: the live stream, when there is one. */
export interface Outbox {
  /** `droppable` messages (progress, log lines) may be dropped under back-pressure. */
  send(message: OutgoingMessage, droppable: boolean): void;
}

export interface CommandExecutorOptions {
  journal: Journal;
  logger: Logger;
  maxConcurrentCommands: number;
  handlers?: CommandHandlers;
  /** Log lines forwarded per command; later lines are dropped (one notice says so). */
  maxLogLinesPerCommand?: number;
  /** Longer log lines are cut to this many characters. */
  maxLogLineLength?: number;
}

type AbortReason = 'cancel' | 'deadline' | 'shutdown';

interface ActiveCommand {
  id: string;
  state: 'journaling' | 'queued' | 'running';
  /** Resolves true once the command is durably journaled (false: it was refused before that). */
  journaled: Promise<boolean>;
  controller: AbortController;
  abortReason?: AbortReason;
  deadlineTimer?: NodeJS.Timeout;
  /** Resolves when the result is journaled and handed to the outbox. */
  finished: Promise<void>;
}

type RegisteredCommand = ActiveCommand & {
  markJournaled: (journaled: boolean) => void;
  markFinished: () => void;
};

const MAX_TIMER_MS = 2_147_483_647;

const STATUS_TO_WIRE: Record<ResultStatus, CommandStatus> = {
  succeeded: CommandStatus.SUCCEEDED,
  failed: CommandStatus.FAILED,
  interrupted: CommandStatus.INTERRUPTED,
  cancelled: CommandStatus.CANCELLED,
  rejected: CommandStatus.REJECTED,
};

/** The journal's form of a result as the protocol sends it. */
export function toWireResult(result: CommandResult): WireResult {
  return {
    commandId: result.commandId,
    status: STATUS_TO_WIRE[result.status],
    errorCode: result.errorCode ?? '',
    errorMessage: result.errorMessage ?? '',
    outputJson: result.output === undefined ? '' : JSON.stringify(result.output),
  };
}

function abortedResult(id: string, reason: AbortReason, finishedAt: string): CommandResult {
  const detail = {
    cancel: [AGENT_ERROR_CODES.commandCancelled, 'cancelled by the control plane'],
    deadline: [AGENT_ERROR_CODES.deadlineExceeded, 'stopped at its deadline'],
    shutdown: [AGENT_ERROR_CODES.agentShutdown, 'stopped because the agent was shutting down'],
  } as const;
  const [errorCode, errorMessage] = detail[reason];
  return { commandId: id, status: 'cancelled', errorCode, errorMessage, finishedAt };
}

export class CommandExecutor {
  readonly #journal: Journal;
  readonly #logger: Logger;
  readonly #handlers: CommandHandlers;
  readonly #scheduler: CommandScheduler;
  readonly #active = new Map<string, ActiveCommand>();
  readonly #maxLogLines: number;
  readonly #maxLineLength: number;
  #outbox: Outbox | undefined;
  #clockSkewMs = 0;
  #accepting = true;
  /** Tail of the in-order intake (journal, then queue) of new commands. */
  #intake: Promise<void> = Promise.resolve();

  constructor(options: CommandExecutorOptions) {
    this.#journal = options.journal;
    this.#logger = options.logger;
    this.#handlers = options.handlers ?? defaultHandlers;
    this.#scheduler = new CommandScheduler({ maxConcurrent: options.maxConcurrentCommands });
    this.#maxLogLines = options.maxLogLinesPerCommand ?? 1_000;
    this.#maxLineLength = options.maxLogLineLength ?? 2_000;
  }

  get handlers(): CommandHandlers {
    return this.#handlers;
  }

  /** Messages go to this outbox from now on (a new stream). */
  attach(outbox: Outbox): void {
    this.#outbox = outbox;
  }

  /** The stream ended: messages are dropped until the next attach (results stay in the journal). */
  detach(outbox: Outbox): void {
    if (this.#outbox === outbox) this.#outbox = undefined;
  }

  /** Control-plane clock minus agent clock, from Welcome.server_time_ms (deadlines are in CP time). */
  setClockSkew(skewMs: number): void {
    this.#clockSkewMs = skewMs;
  }

  setMaxConcurrent(maxConcurrent: number): void {
    this.#scheduler.setMaxConcurrent(maxConcurrent);
  }

  /** Ids of the commands accepted and not finished (queued or running), for Hello and heartbeats. */
  activeIds(): string[] {
    return [...this.#active.keys()];
  }

  /** Every journaled result not yet acknowledged, oldest first, for Hello. */
  unacknowledgedResults(): WireResult[] {
    return this.#journal.unacknowledgedResults().map(toWireResult);
  }

  #send(message: OutgoingMessage, droppable = false): void {
    this.#outbox?.send(message, droppable);
  }

  #sendAck(id: string): void {
    this.#send({ $case: 'commandAck', value: { commandId: id } });
  }

  #sendResult(result: CommandResult): void {
    this.#send({ $case: 'commandResult', value: toWireResult(result) });
  }

  #controlPlaneNow(): number {
    return Date.now() + this.#clockSkewMs;
  }

  /** Handle one Command from the control plane. Resolves once it is answered or queued. */
  async receive(command: Command): Promise<void> {
    const id = command.id;
    if (!isValidCommandId(id)) {
      // Cannot be journaled (the id names a file), so it cannot run: refuse without a record.
      this.#logger.warn({ commandId: String(id).slice(0, 80) }, 'refusing a command with an invalid id');
      this.#send({
        $case: 'commandResult',
        value: {
          commandId: id,
          status: CommandStatus.REJECTED,
          errorCode: AGENT_ERROR_CODES.invalidCommand,
          errorMessage: 'the command id must match [A-Za-z0-9:_-]{1,200}',
          outputJson: '',
        },
      });
      return;
    }

    const active = this.#active.get(id);
    if (active) {
      // Redelivered while we hold it (a reconnect before the result): acknowledge again, once it is
      // durably journaled, and keep it running.
      this.#logger.info({ commandId: id, state: active.state }, 'redelivered command is already in progress');
      if (await active.journaled) this.#sendAck(id);
      return;
    }

    const entry = this.#journal.lookup(id);
    if (entry.state !== 'none') {
      await this.#answerFromJournal(entry);
      return;
    }
    if (!this.#accepting) {
      // Not journaled, not acknowledged: the control plane redelivers it after the restart.
      this.#logger.info({ commandId: id }, 'ignoring a command received while shutting down');
      return;
    }
    // Registered at once (a Cancel or a redelivery right behind it finds it), then journaled and
    // queued strictly in arrival order: commands of one environment must run in the order sent.
    const record = this.#register(id);
    const accepted = this.#intake.then(() => this.#accept(command, record));
    this.#intake = accepted.catch(() => {});
    await accepted;
  }

  #register(id: string): RegisteredCommand {
    let markJournaled!: (value: boolean) => void;
    let markFinished!: () => void;
    const active: ActiveCommand = {
      id,
      state: 'journaling',
      journaled: new Promise((resolve) => {
        markJournaled = resolve;
      }),
      finished: new Promise((resolve) => {
        markFinished = resolve;
      }),
      controller: new AbortController(),
    };
    this.#active.set(id, active);
    return Object.assign(active, { markJournaled, markFinished });
  }

  async #answerFromJournal(entry: ReturnType<Journal['lookup']>): Promise<void> {
    switch (entry.state) {
      case 'none':
        return;
      case 'result':
        this.#logger.info(
          { commandId: entry.commandId, status: entry.result.status },
          'redelivered command answered from the journal; not run again',
        );
        this.#sendAck(entry.commandId);
        this.#sendResult(entry.result);
        return;
      case 'acknowledged':
        this.#logger.info(
          { commandId: entry.commandId, status: entry.status },
          'redelivered command was already acknowledged; not run again',
        );
        this.#sendAck(entry.commandId);
        this.#sendResult({
          commandId: entry.commandId,
          status: entry.status,
          ...(entry.status === 'succeeded'
            ? {}
            : {
                errorCode: 'result_already_acknowledged',
                errorMessage: `this command ended ${entry.status} and its result was acknowledged at ${entry.acknowledgedAt}; it was not run again`,
              }),
          finishedAt: entry.finishedAt,
        });
        return;
      case 'started': {
        // Journaled as started, not running in this process and without a result: whatever ran
        // it is gone (a result that could not be journaled). It must never run again.
        const result: CommandResult = {
          commandId: entry.commandId,
          status: 'interrupted',
          errorCode: AGENT_ERROR_CODES.agentInterrupted,
          errorMessage: 'the command stopped without a recorded result; it was not run again',
          finishedAt: new Date().toISOString(),
        };
        this.#logger.warn(
          { commandId: entry.commandId },
          'journaled command has no result; reporting it interrupted',
        );
        this.#sendAck(entry.commandId);
        await this.#recordAndSend(result);
        return;
      }
    }
  }

  async #accept(command: Command, active: RegisteredCommand): Promise<void> {
    const id = command.id;
    const { markJournaled, markFinished } = active;
    const prepared = prepareCommand(command, this.#handlers);
    const log = this.#logger.child({
      commandId: id,
      type: prepared.supported ? prepared.type : 'unsupported',
    });

    try {
      await this.#journal.recordStarted(id, {
        type: prepared.supported ? prepared.type : 'unsupported',
        environmentKey: command.environmentKey,
        deadlineUnixMs: command.deadlineUnixMs,
      });
    } catch (err) {
      // Not journaled means not run: refuse, without a record (a redelivery may try again).
      log.error({ err }, 'cannot journal the command; refusing it');
      this.#active.delete(id);
      markJournaled(false);
      markFinished();
      this.#send({
        $case: 'commandResult',
        value: {
          commandId: id,
          status: CommandStatus.REJECTED,
          errorCode: AGENT_ERROR_CODES.journalUnavailable,
          errorMessage: `the agent could not journal the command, so it did not run it: ${(err as Error).message}`,
          outputJson: '',
        },
      });
      return;
    }
    markJournaled(true);
    this.#sendAck(id);

    const finish = async (result: CommandResult): Promise<void> => {
      clearTimeout(active.deadlineTimer);
      try {
        await this.#recordAndSend(result);
      } finally {
        this.#active.delete(id);
        markFinished();
      }
      log.info(
        { status: result.status, errorCode: result.errorCode },
        `command ${result.status}${result.errorMessage ? `: ${result.errorMessage}` : ''}`,
      );
    };
    const now = (): string => new Date().toISOString();

    if (!prepared.supported) {
      await finish({
        commandId: id,
        status: 'rejected',
        errorCode: AGENT_ERROR_CODES.unsupportedCommand,
        errorMessage: 'this agent does not implement the command (no known payload case); nothing was run',
        finishedAt: now(),
      });
      return;
    }
    if (command.deadlineUnixMs > 0 && command.deadlineUnixMs <= this.#controlPlaneNow()) {
      await finish({
        commandId: id,
        status: 'rejected',
        errorCode: AGENT_ERROR_CODES.deadlineExceeded,
        errorMessage: `the deadline ${new Date(command.deadlineUnixMs).toISOString()} had passed when the command arrived; nothing was run`,
        finishedAt: now(),
      });
      return;
    }
    if (active.abortReason) {
      // Cancelled (or shut down) while it was being journaled.
      await finish(abortedResult(id, active.abortReason, now()));
      return;
    }
    if (command.deadlineUnixMs > 0) this.#armDeadline(active, command.deadlineUnixMs);

    active.state = 'queued';
    log.info({ environmentKey: command.environmentKey || undefined }, 'command accepted');
    this.#scheduler
      .submit({
        id,
        environmentKey: command.environmentKey,
        // The result is journaled before the slot is released: the next command of the same
        // environment starts only once this one's outcome is durable.
        run: async () => {
          active.state = 'running';
          let outcome: HandlerOutcome | undefined;
          try {
            if (!active.controller.signal.aborted) outcome = await prepared.run(this.#context(active, log));
          } catch (err) {
            log.error({ err }, 'command handler threw');
            await finish({
              commandId: id,
              status: 'failed',
              errorCode: AGENT_ERROR_CODES.commandFailed,
              errorMessage: err instanceof Error ? err.message : String(err),
              finishedAt: now(),
            });
            return;
          }
          await finish(this.#resultOf(active, outcome, now()));
        },
      })
      .catch((err: unknown) => {
        if (err instanceof QueuedCommandRemovedError) {
          return finish(abortedResult(id, active.abortReason ?? 'cancel', now()));
        }
        log.error({ err }, 'cannot record the command result');
      })
      .catch((err: unknown) => log.error({ err }, 'cannot record the command result'));
  }

  #resultOf(active: ActiveCommand, outcome: HandlerOutcome | undefined, finishedAt: string): CommandResult {
    const id = active.id;
    // A handler that completed its work reports it, even if a Cancel arrived meanwhile.
    if (outcome?.status === 'succeeded') {
      return {
        commandId: id,
        status: 'succeeded',
        ...(outcome.output === undefined ? {} : { output: outcome.output }),
        finishedAt,
      };
    }
    if (active.abortReason) return abortedResult(id, active.abortReason, finishedAt);
    if (!outcome) {
      return {
        commandId: id,
        status: 'failed',
        errorCode: AGENT_ERROR_CODES.commandFailed,
        errorMessage: 'no outcome',
        finishedAt,
      };
    }
    if (outcome.status === 'rejected') {
      return {
        commandId: id,
        status: 'rejected',
        errorCode: outcome.errorCode,
        errorMessage: outcome.errorMessage,
        finishedAt,
      };
    }
    return {
      commandId: id,
      status: 'failed',
      errorCode: outcome.errorCode,
      errorMessage: outcome.errorMessage,
      ...(outcome.output === undefined ? {} : { output: outcome.output }),
      finishedAt,
    };
  }

  async #recordAndSend(result: CommandResult): Promise<void> {
    try {
      await this.#journal.recordResult(result.commandId, result);
    } catch (err) {
      if (!(err instanceof JournalError && err.code === 'result_exists')) {
        // Still send it: the control plane should learn the outcome even if the disk failed.
        this.#logger.error({ err, commandId: result.commandId }, 'cannot journal the command result');
      }
    }
    this.#sendResult(result);
  }

  #armDeadline(active: ActiveCommand, deadlineUnixMs: number): void {
    const delay = deadlineUnixMs - this.#controlPlaneNow();
    active.deadlineTimer = setTimeout(
      () => {
        if (deadlineUnixMs - this.#controlPlaneNow() > 0) {
          this.#armDeadline(active, deadlineUnixMs); // a deadline beyond setTimeout's range
          return;
        }
        this.#abort(active, 'deadline');
      },
      Math.min(Math.max(delay, 0), MAX_TIMER_MS),
    );
    active.deadlineTimer.unref();
  }

  #abort(active: ActiveCommand, reason: AbortReason): void {
    if (active.abortReason) return;
    active.abortReason = reason;
    active.controller.abort(reason);
    // A queued command never started: take it out of the queue (its promise rejects → CANCELLED).
    if (active.state === 'queued') this.#scheduler.remove(active.id);
  }

  /** Cancel from the control plane. Unknown or finished ids are ignored (their result stands). */
  cancel(id: string): void {
    const active = this.#active.get(id);
    if (!active) {
      this.#logger.info({ commandId: id }, 'cancel for a command that is not running; ignored');
      return;
    }
    this.#logger.info({ commandId: id, state: active.state }, 'cancelling command');
    this.#abort(active, 'cancel');
  }

  /** ResultAck: the control plane persisted the result; keep only a tombstone. */
  async acknowledge(id: string): Promise<void> {
    try {
      await this.#journal.markAcknowledged(id);
    } catch (err) {
      if (
        err instanceof JournalError &&
        (err.code === 'unknown_command' || err.code === 'invalid_command_id')
      ) {
        this.#logger.warn(
          { commandId: String(id).slice(0, 80) },
          'ResultAck for an unknown command; ignored',
        );
        return;
      }
      this.#logger.error({ err, commandId: id }, 'cannot record a ResultAck');
    }
  }

  #context(active: ActiveCommand, log: Logger): CommandContext {
    const secrets: string[] = [];
    let lines = 0;
    const redact = (line: string): string =>
      secrets.reduce((text, secret) => text.split(secret).join('[redacted]'), line);
    const context: CommandContext = {
      commandId: active.id,
      signal: active.controller.signal,
      progress: (step, percent, message = '') => {
        this.#send(
          {
            $case: 'commandProgress',
            value: {
              commandId: active.id,
              step,
              percent: Math.max(0, Math.min(100, Math.round(percent))),
              message: redact(message).slice(0, this.#maxLineLength),
            },
          },
          true,
        );
      },
      log: (stream: LogStreamName, line: string) => {
        lines += 1;
        if (lines > this.#maxLogLines + 1) return;
        const text =
          lines > this.#maxLogLines
            ? `[log truncated: more than ${this.#maxLogLines} lines]`
            : redact(line).slice(0, this.#maxLineLength);
        const wireStream =
          lines > this.#maxLogLines || stream === 'agent'
            ? LogStream.AGENT
            : stream === 'stdout'
              ? LogStream.STDOUT
              : LogStream.STDERR;
        this.#send(
          { $case: 'commandLog', value: { commandId: active.id, stream: wireStream, line: text } },
          true,
        );
      },
      redact: (secret: string) => {
        if (secret.length > 0) secrets.push(secret);
      },
      exec: ({ signal, logOutput = true, ...options }) => {
        log.debug({ file: options.file, argc: options.args.length }, 'running a process');
        return runProcess({
          ...options,
          signal: signal ? AbortSignal.any([active.controller.signal, signal]) : active.controller.signal,
          ...(logOutput ? { onLine: (stream, line) => context.log(stream, line) } : {}),
        });
      },
    };
    return context;
  }

  /**
   * Stop accepting commands; cancel the queued ones; give the running ones `graceMs` to finish, then
   * abort them (CANCELLED, agent_shutdown) and wait up to `abortWaitMs` for their results.
   */
  async shutdown(graceMs: number, abortWaitMs = 7_000): Promise<void> {
    this.#accepting = false;
    for (const active of this.#active.values()) {
      if (active.state !== 'running') this.#abort(active, 'shutdown');
    }
    const allFinished = (): Promise<void> =>
      Promise.all([...this.#active.values()].map((active) => active.finished)).then(() => {});
    const timeout = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());
    await Promise.race([allFinished(), timeout(graceMs)]);
    if (this.#active.size === 0) return;
    this.#logger.warn({ commandIds: this.activeIds() }, 'stopping commands still running at shutdown');
    for (const active of this.#active.values()) this.#abort(active, 'shutdown');
    await Promise.race([allFinished(), timeout(abortWaitMs)]);
  }
}
