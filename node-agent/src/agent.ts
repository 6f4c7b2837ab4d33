// `wpcp-agent run` as a library: journal recovery, executor and session wired together. main.ts
// adds the process concerns (signals, exit codes); tests and the fleet benchmark call startAgent().
import os from 'node:os';
import type { Logger } from 'pino';
import { CommandExecutor } from './commands/executor.ts';
import { nodeStackFromConfig } from './commands/node-stack.ts';
import { type CommandHandlers, capabilities, createHandlers } from './commands/registry.ts';
import type { AgentConfig } from './config.ts';
import { heartbeatFromStats } from './connection/heartbeat.ts';
import { AgentSession, type SessionOptions } from './connection/stream.ts';
import { type CommandResult, Journal } from './journal/journal.ts';
import { type Identity, loadIdentity } from './state/identity.ts';
import { agentVersion, collectStats } from './system/stats.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface StartAgentOptions {
  /** Settings; `server` already resolved (config file, environment or enrollment state). */
  config: AgentConfig;
  logger: Logger;
  handlers?: CommandHandlers;
  /** Session options for tests and benchmarks (backoff randomness, channel options...). */
  session?: Partial<Omit<SessionOptions, 'executor' | 'logger' | 'stateDir' | 'server'>>;
  /** Overrides config.shutdownGraceMs (tests). */
  shutdownGraceMs?: number;
}

export interface RunningAgent {
  readonly identity: Identity;
  readonly journal: Journal;
  readonly executor: CommandExecutor;
  readonly session: AgentSession;
  /** Commands found interrupted at start-up (the previous agent died while running them). */
  readonly recovered: CommandResult[];
  /** Stop: let running commands finish (then cancel them), send their results, close the stream. Idempotent. */
  stop(): Promise<void>;
}

export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  const { config, logger } = options;
  const identity = await loadIdentity(config.stateDir);
  const log = logger.child({ nodeId: identity.state.nodeId });

  const journal = await Journal.open(config.stateDir);
  const recovered = await journal.recoverAfterCrash();
  for (const result of recovered) {
    log.warn(
      { commandId: result.commandId },
      'command was running when the agent stopped; reporting it interrupted (it is not run again)',
    );
  }
  const prune = (): void => {
    journal.pruneTombstones().then(
      (removed) => {
        if (removed > 0) log.info({ removed }, 'pruned old journal tombstones');
      },
      (err: unknown) => log.warn({ err }, 'cannot prune journal tombstones'),
    );
  };
  prune();
  const pruneTimer = setInterval(prune, DAY_MS);
  pruneTimer.unref();

  const handlers = options.handlers ?? createHandlers(nodeStackFromConfig(config));
  const executor = new CommandExecutor({
    journal,
    logger: log,
    maxConcurrentCommands: config.maxConcurrentCommands,
    handlers,
  });
  const session = new AgentSession({
    stateDir: config.stateDir,
    server: config.server,
    executor,
    logger: log,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    maxConcurrentCommands: config.maxConcurrentCommands,
    keepaliveTimeMs: config.keepaliveTimeMs,
    keepaliveTimeoutMs: config.keepaliveTimeoutMs,
    reconnectInitialMs: config.reconnectInitialMs,
    reconnectMaxMs: config.reconnectMaxMs,
    hostname: os.hostname(),
    agentVersion: agentVersion(),
    capabilities: capabilities(handlers),
    collectHeartbeat: async () => heartbeatFromStats(await collectStats({ stateDir: config.sitesDir }), []),
    ...options.session,
  });
  log.info(
    {
      server: config.server,
      stateDir: config.stateDir,
      certificateExpiresAt: identity.notAfter.toISOString(),
      agentVersion: agentVersion(),
    },
    'agent starting',
  );
  const running = session.start();

  let stopping: Promise<void> | undefined;
  return {
    identity,
    journal,
    executor,
    session,
    recovered,
    stop() {
      stopping ??= (async () => {
        clearInterval(pruneTimer);
        // Commands finish (or are cancelled) while the stream is still up, so their results go out.
        await executor.shutdown(options.shutdownGraceMs ?? config.shutdownGraceMs);
        await session.stop();
        await running;
        log.info('agent stopped');
      })();
      return stopping;
    },
  };
}
