// The agent as a library (`@wpcp/node-agent`), for the system tests and the fleet benchmark: the
// same connection and command code the `wpcp-agent` binary runs.
export { type RunningAgent, type StartAgentOptions, startAgent } from './agent.ts';
export { CommandExecutor, type Outbox } from './commands/executor.ts';
export { type NodeStack, nodeStackFromConfig } from './commands/node-stack.ts';
export { type CommandHandlers, capabilities, createHandlers, defaultHandlers } from './commands/registry.ts';
export type { CommandContext, CommandHandler, HandlerOutcome } from './commands/types.ts';
export { type AgentConfig, loadConfig } from './config.ts';
export { heartbeatFromStats } from './connection/heartbeat.ts';
export {
  AgentSession,
  type SessionExecutor,
  type SessionOptions,
  type StreamEnd,
} from './connection/stream.ts';
export { EnrollError, type EnrollOptions, type EnrollOutcome, enroll } from './enroll/enroll.ts';
export { parseJoinToken } from './enroll/join-token.ts';
export { Journal } from './journal/journal.ts';
export { createLogger } from './logger.ts';
export { type Identity, loadIdentity } from './state/identity.ts';
export { agentVersion, collectStats } from './system/stats.ts';
