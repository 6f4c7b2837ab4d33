// Which handler runs which Command payload case. The switch is exhaustive: adding a case to the
// `.proto` (and regenerating) makes tsc fail here until the case has a handler, and the handler map
// type makes every case name a required key. A command with no known case (a newer control plane
// sent a case this agent does not have) is answered REJECTED / unsupported_command by the executor.
import type { Command, CommandPayloadCase } from '@wpcp/shared/agent-protocol';
import { runNoop } from './noop.ts';
import { runPing } from './ping.ts';
import type { CommandContext, CommandHandler, HandlerOutcome } from './types.ts';

type PayloadOf<C extends CommandPayloadCase> = Extract<
  NonNullable<Command['payload']>,
  { $case: C }
>['value'];

/** One handler per payload case. */
export type CommandHandlers = { [C in CommandPayloadCase]: CommandHandler<PayloadOf<C>> };

export const defaultHandlers: CommandHandlers = {
  noop: runNoop,
  ping: runPing,
};

/** Sent in Hello.capabilities: the payload cases this agent implements. */
export function capabilities(handlers: CommandHandlers = defaultHandlers): string[] {
  return Object.keys(handlers).sort();
}

export type PreparedCommand =
  | { supported: true; type: CommandPayloadCase; run: (context: CommandContext) => Promise<HandlerOutcome> }
  | { supported: false };

/** Bind a command's payload to its handler, without running it. */
export function prepareCommand(
  command: Command,
  handlers: CommandHandlers = defaultHandlers,
): PreparedCommand {
  const payload = command.payload;
  if (payload === undefined) return { supported: false };
  switch (payload.$case) {
    case 'noop':
      return { supported: true, type: 'noop', run: (context) => handlers.noop(payload.value, context) };
    case 'ping':
      return { supported: true, type: 'ping', run: (context) => handlers.ping(payload.value, context) };
    default: {
      // Compile-time exhaustiveness: a new case that is not handled above is a type error here.
      const unhandled: never = payload;
      void unhandled;
      return { supported: false };
    }
  }
}
