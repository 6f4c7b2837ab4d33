// What a command handler sees and returns. Handlers are plain async functions: the executor
// (executor.ts) does the journaling, the queueing, the deadline and the result.
import type { RunOptions, RunResult } from '../exec/run.ts';

/** `error_code` values the agent itself puts in a CommandResult (see README "Error codes"). */
export const AGENT_ERROR_CODES = {
  /** No payload case this agent knows (a newer control plane). Nothing ran. */
  unsupportedCommand: 'unsupported_command',
  /** The deadline had passed when the command arrived (REJECTED) or while it ran (CANCELLED). */
  deadlineExceeded: 'deadline_exceeded',
  /** Stopped by a Cancel from the control plane. */
  commandCancelled: 'command_cancelled',
  /** Stopped because the agent was shutting down. */
  agentShutdown: 'agent_shutdown',
  /** The command id is not acceptable (it names a journal file). Nothing ran. */
  invalidCommand: 'invalid_command',
  /** The journal could not record the command: it was not run. */
  journalUnavailable: 'journal_unavailable',
  /** The handler failed without a more specific code; see error_message. */
  commandFailed: 'command_failed',
  /** The agent died while the command was running (set by the journal's recovery). */
  agentInterrupted: 'agent_interrupted',
} as const;

export type LogStreamName = 'stdout' | 'stderr' | 'agent';

export interface CommandContext {
  readonly commandId: string;
  /** Aborted on Cancel, deadline or agent shutdown. Handlers must stop promptly when it fires. */
  readonly signal: AbortSignal;
  /** Report progress (may be dropped; for display only). */
  progress(step: string, percent: number, message?: string): void;
  /** A log line for the job's log (bounded per command; secrets registered with redact() are masked). */
  log(stream: LogStreamName, line: string): void;
  /** Mask this value in every later log line of the command. */
  redact(secret: string): void;
  /**
   * Run a process through the sandbox (exec/run.ts) with the command's cancellation and with its
   * output lines forwarded to log(). The only way a handler may start a process.
   */
  exec(options: ExecOptions): Promise<RunResult>;
}

export type ExecOptions = Omit<RunOptions, 'signal' | 'onLine'> & {
  /** Stops the process too (besides the command's own cancellation), e.g. the other end of a pipe. */
  signal?: AbortSignal;
  /**
   * Forward the output lines to log() (default true). False for a process whose output may hold a
   * secret the handler cannot register beforehand: the handler then reports what it needs itself.
   */
  logOutput?: boolean;
};

export type HandlerOutcome =
  | { status: 'succeeded'; output?: unknown }
  | { status: 'failed'; errorCode: string; errorMessage: string; output?: unknown }
  /** The payload was refused before anything was done (invalid input): REJECTED. */
  | { status: 'rejected'; errorCode: string; errorMessage: string };

export type CommandHandler<Payload> = (payload: Payload, context: CommandContext) => Promise<HandlerOutcome>;

/** setTimeout's ceiling; a longer delay would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** Sleep that ends early (resolving false) when the signal aborts. Any length (uint32 ms and more). */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const endsAt = Date.now() + ms;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const arm = (): void => {
      const left = endsAt - Date.now();
      if (left <= 0) {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
        return;
      }
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(arm, Math.min(ms, MAX_TIMER_MS));
  });
}
