// Helpers for tests that run a real agent against the fake control plane.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from '@wpcp/shared/agent-protocol';
import pino from 'pino';
import { type CommandHandlers, defaultHandlers } from '../commands/registry.ts';
import { AgentConfig } from '../config.ts';
import { enroll } from '../enroll/enroll.ts';
import type { FakeControlPlane } from './fake-control-plane.ts';

/** Logs of the agent under test; set WPCP_TEST_LOGS=1 to see them. */
export const testLogger = pino({ level: process.env.WPCP_TEST_LOGS ? 'debug' : 'silent' });

/** A new temporary directory holding an enrolled `state` directory. */
export async function enrolledStateDir(
  plane: FakeControlPlane,
  nodeId?: string,
): Promise<{ parent: string; stateDir: string }> {
  const parent = await mkdtemp(path.join(tmpdir(), 'wpcp-agent-test-'));
  const stateDir = path.join(parent, 'state');
  try {
    await enroll({ server: `localhost:${plane.port}`, token: plane.createJoinToken(nodeId), stateDir });
  } catch (err) {
    await rm(parent, { recursive: true, force: true });
    throw err;
  }
  return { parent, stateDir };
}

export function testConfig(
  server: string,
  stateDir: string,
  overrides: Partial<AgentConfig> = {},
): AgentConfig {
  return {
    // The node-stack settings at their defaults (tests that run no environment command).
    ...AgentConfig.parse({ server }),
    server,
    stateDir,
    sitesDir: stateDir,
    heartbeatIntervalMs: 500,
    maxConcurrentCommands: 4,
    keepaliveTimeMs: 10_000,
    keepaliveTimeoutMs: 5_000,
    reconnectInitialMs: 20,
    reconnectMaxMs: 100,
    shutdownGraceMs: 100,
    logLevel: 'silent',
    ...overrides,
  };
}

/** Handlers (the default ones unless given), counting how many times each command id was executed. */
export function countingHandlers(base: CommandHandlers = defaultHandlers): {
  handlers: CommandHandlers;
  executions: Map<string, number>;
} {
  const executions = new Map<string, number>();
  const count = (id: string): void => {
    executions.set(id, (executions.get(id) ?? 0) + 1);
  };
  return {
    executions,
    handlers: {
      noop: (payload, context) => {
        count(context.commandId);
        return base.noop(payload, context);
      },
      ping: (payload, context) => {
        count(context.commandId);
        return base.ping(payload, context);
      },
      environmentStep: (payload, context) => {
        count(context.commandId);
        return base.environmentStep(payload, context);
      },
      configureNginx: (payload, context) => {
        count(context.commandId);
        return base.configureNginx(payload, context);
      },
      setSiteUrl: (payload, context) => {
        count(context.commandId);
        return base.setSiteUrl(payload, context);
      },
      cloneEnvironment: (payload, context) => {
        count(context.commandId);
        return base.cloneEnvironment(payload, context);
      },
      setObjectCache: (payload, context) => {
        count(context.commandId);
        return base.setObjectCache(payload, context);
      },
      purgeCache: (payload, context) => {
        count(context.commandId);
        return base.purgeCache(payload, context);
      },
      createMagicLogin: (payload, context) => {
        count(context.commandId);
        return base.createMagicLogin(payload, context);
      },
    },
  };
}

let counter = 0;

/** A noop Command with a fresh id. */
export function noopCommand(
  overrides: Partial<Command> & { sleepMs?: number; fail?: boolean } = {},
): Command {
  const { sleepMs = 0, fail = false, ...rest } = overrides;
  return {
    id: `cmd-${process.pid}-${++counter}`,
    deadlineUnixMs: 0,
    environmentKey: '',
    payload: { $case: 'noop', value: { sleepMs, fail, errorMessage: fail ? 'asked to fail' : '' } },
    ...rest,
  };
}
