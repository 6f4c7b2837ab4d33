// What the node-side handlers share: turning validation errors into REJECTED and every other
// failure into FAILED with the primitive's stable error code, and keeping secrets out of what
// leaves the node (registered with the context for log lines, scrubbed here from error messages
// and outputs).
import { ProvisioningError } from '../provisioning/errors.ts';
import { AGENT_ERROR_CODES, type CommandContext, type HandlerOutcome } from './types.ts';

export interface HandlerKit {
  readonly context: CommandContext;
  /** Never let `value` reach a log line, a progress message, an error or an output. */
  secret(value: string): void;
  /** A log line on the agent stream. */
  log(line: string): void;
  progress(step: string, percent: number, message?: string): void;
  /** Throws the command's cancellation when it was cancelled. */
  checkCancelled(): void;
}

export class CommandCancelledError extends Error {
  constructor() {
    super('the command was cancelled');
    this.name = 'CommandCancelledError';
  }
}

function scrub(text: string, secrets: readonly string[]): string {
  return secrets.reduce((out, secret) => out.split(secret).join('[redacted]'), text);
}

function scrubValue(value: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0 || value === undefined) return value;
  return JSON.parse(scrub(JSON.stringify(value), secrets)) as unknown;
}

/**
 * Runs a handler in two phases: `validate` (pure: a ProvisioningError `invalid_argument` thrown
 * there means nothing was done, answered REJECTED), then `run` (anything thrown is FAILED with the
 * error's code, `command_failed` when it has none).
 */
export async function handle<Input>(
  context: CommandContext,
  validate: () => Input,
  run: (input: Input, kit: HandlerKit) => Promise<unknown>,
): Promise<HandlerOutcome> {
  let input: Input;
  try {
    input = validate();
  } catch (err) {
    const code = err instanceof ProvisioningError ? err.code : 'invalid_argument';
    return { status: 'rejected', errorCode: code, errorMessage: (err as Error).message };
  }
  const secrets: string[] = [];
  const kit: HandlerKit = {
    context,
    secret(value) {
      if (value.length === 0) return;
      secrets.push(value);
      context.redact(value);
    },
    log(line) {
      context.log('agent', line);
    },
    progress(step, percent, message) {
      context.progress(step, percent, message);
    },
    checkCancelled() {
      if (context.signal.aborted) throw new CommandCancelledError();
    },
  };
  try {
    const output = await run(input, kit);
    return { status: 'succeeded', output: scrubValue(output, secrets) };
  } catch (err) {
    const message = scrub(err instanceof Error ? err.message : String(err), secrets);
    if (err instanceof CommandCancelledError || context.signal.aborted) {
      return { status: 'failed', errorCode: AGENT_ERROR_CODES.commandCancelled, errorMessage: message };
    }
    // ProvisioningError carries a stable code; an ExecError (a program that could not start) and
    // anything else is command_failed with its message.
    const code = err instanceof ProvisioningError ? err.code : AGENT_ERROR_CODES.commandFailed;
    context.log('agent', `failed: ${message}`);
    return { status: 'failed', errorCode: code, errorMessage: message };
  }
}
