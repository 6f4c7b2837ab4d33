// `noop`: changes nothing. Waits `sleep_ms` (cancellable), then succeeds, or fails when asked.
// The system tests use it to exercise delivery, cancellation, deadlines and the journal.
import type { Noop } from '@wpcp/shared/agent-protocol';
import { AGENT_ERROR_CODES, type CommandHandler, sleep } from './types.ts';

export const runNoop: CommandHandler<Noop> = async (payload, context) => {
  context.progress('sleep', 0, `sleeping ${payload.sleepMs} ms`);
  context.log('agent', `noop: sleeping ${payload.sleepMs} ms`);
  const completed = await sleep(payload.sleepMs, context.signal);
  if (!completed) {
    // The executor turns an aborted command into CANCELLED whatever is returned here.
    return { status: 'failed', errorCode: AGENT_ERROR_CODES.commandCancelled, errorMessage: 'stopped' };
  }
  context.progress('sleep', 100, 'done');
  if (payload.fail) {
    return {
      status: 'failed',
      errorCode: AGENT_ERROR_CODES.commandFailed,
      errorMessage: payload.errorMessage || 'noop failed as requested',
    };
  }
  return { status: 'succeeded', output: { slept_ms: payload.sleepMs } };
};
