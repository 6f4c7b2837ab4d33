// Which handler runs which Command payload case. The switch is exhaustive: adding a case to the
// `.proto` (and regenerating) makes tsc fail here until the case has a handler, and the handler map
// type makes every case name a required key. A command with no known case (a newer control plane
// sent a case this agent does not have) is answered REJECTED / unsupported_command by the executor.
import type { Command, CommandPayloadCase } from '@wpcp/shared/agent-protocol';
import { AgentConfig } from '../config.ts';
import { cloneEnvironmentHandler } from './clone-environment.ts';
import { configureNginxHandler } from './configure-nginx.ts';
import { createMagicLoginHandler } from './create-magic-login.ts';
import { environmentStepHandler } from './environment-step.ts';
import { type NodeStack, nodeStackFromConfig } from './node-stack.ts';
import { runNoop } from './noop.ts';
import { runPing } from './ping.ts';
import { purgeCacheHandler } from './purge-cache.ts';
import { setObjectCacheHandler } from './set-object-cache.ts';
import { setSiteUrlHandler } from './set-site-url.ts';
import type { CommandContext, CommandHandler, HandlerOutcome } from './types.ts';

type PayloadOf<C extends CommandPayloadCase> = Extract<
  NonNullable<Command['payload']>,
  { $case: C }
>['value'];

/** One handler per payload case. */
export type CommandHandlers = { [C in CommandPayloadCase]: CommandHandler<PayloadOf<C>> };

/** The handlers of an agent managing `stack` (built from its settings: nodeStackFromConfig). */
export function createHandlers(stack: NodeStack): CommandHandlers {
  return {
    noop: runNoop,
    ping: runPing,
    environmentStep: environmentStepHandler(stack),
    configureNginx: configureNginxHandler(stack),
    setSiteUrl: setSiteUrlHandler(stack),
    cloneEnvironment: cloneEnvironmentHandler(stack),
    setObjectCache: setObjectCacheHandler(stack),
    purgeCache: purgeCacheHandler(stack),
    createMagicLogin: createMagicLoginHandler(stack),
  };
}

/** The handlers with the default settings (a Debian 12 node as bootstrap.sh sets it up). */
export const defaultHandlers: CommandHandlers = createHandlers(
  nodeStackFromConfig(AgentConfig.parse({ server: 'localhost:1' })),
);

/**
 * Sent in Hello.capabilities: the payload cases this agent implements, named as in the .proto
 * (`environment_step`, not the generated code's `environmentStep`).
 */
export function capabilities(handlers: CommandHandlers = defaultHandlers): string[] {
  return Object.keys(handlers)
    .map((name) => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`))
    .sort();
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
    case 'environmentStep':
      return {
        supported: true,
        type: 'environmentStep',
        run: (context) => handlers.environmentStep(payload.value, context),
      };
    case 'configureNginx':
      return {
        supported: true,
        type: 'configureNginx',
        run: (context) => handlers.configureNginx(payload.value, context),
      };
    case 'setSiteUrl':
      return {
        supported: true,
        type: 'setSiteUrl',
        run: (context) => handlers.setSiteUrl(payload.value, context),
      };
    case 'cloneEnvironment':
      return {
        supported: true,
        type: 'cloneEnvironment',
        run: (context) => handlers.cloneEnvironment(payload.value, context),
      };
    case 'setObjectCache':
      return {
        supported: true,
        type: 'setObjectCache',
        run: (context) => handlers.setObjectCache(payload.value, context),
      };
    case 'purgeCache':
      return {
        supported: true,
        type: 'purgeCache',
        run: (context) => handlers.purgeCache(payload.value, context),
      };
    case 'createMagicLogin':
      return {
        supported: true,
        type: 'createMagicLogin',
        run: (context) => handlers.createMagicLogin(payload.value, context),
      };
    default: {
      // Compile-time exhaustiveness: a new case that is not handled above is a type error here.
      const unhandled: never = payload;
      void unhandled;
      return { supported: false };
    }
  }
}
