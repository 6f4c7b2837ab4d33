// Process concerns only: parse the command line, run the command, map failures to exit statuses
// (0 success, 1 failure, 2 usage), and for `run` the signal handling with a hard-exit backstop.
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { startAgent } from './agent.ts';
import { type CliCommand, HELP, parseCli, USAGE, UsageError } from './cli.ts';
import { ConfigError, loadConfig } from './config.ts';
import { EnrollError, enroll } from './enroll/enroll.ts';
import { createLogger } from './logger.ts';
import { IdentityError, readEnrollmentStateSync } from './state/identity.ts';
import { agentVersion } from './system/stats.ts';

/** Added to shutdownGraceMs for the hard exit: the wait for cancelled commands (7 s) and margin. */
const HARD_EXIT_MARGIN_MS = 15_000;

function fail(message: string, status = 1): never {
  process.stderr.write(`wpcp-agent: ${message}\n`);
  process.exit(status);
}

async function readToken(token: { value: string } | { file: string }): Promise<string> {
  if ('value' in token) return token.value;
  try {
    return token.file === '-' ? await text(process.stdin) : await readFile(token.file, 'utf8');
  } catch (err) {
    return fail(
      `cannot read the join token from ${token.file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
}

async function runEnroll(command: Extract<CliCommand, { kind: 'enroll' }>): Promise<void> {
  try {
    const outcome = await enroll({
      server: command.server,
      token: await readToken(command.token),
      stateDir: command.stateDir,
      force: command.force,
    });
    process.stdout.write(
      `enrolled as node ${outcome.nodeId} with ${outcome.server}; identity stored in ${outcome.stateDir} ` +
        `(certificate valid until ${outcome.certificateExpiresAt.toISOString()})\n` +
        (outcome.archivedJournal
          ? `the previous node's command journal was moved to ${outcome.archivedJournal}\n`
          : '') +
        `start the agent with: wpcp-agent run --state-dir ${outcome.stateDir}\n`,
    );
  } catch (err) {
    if (err instanceof EnrollError) fail(`enrollment failed: ${err.message}`);
    throw err;
  }
}

async function runAgent(command: Extract<CliCommand, { kind: 'run' }>): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig({
      ...(command.configFile === undefined ? {} : { configFile: command.configFile }),
      overrides: command.stateDir === undefined ? {} : { stateDir: command.stateDir },
      defaultServer: (stateDir) => {
        const state = readEnrollmentStateSync(stateDir);
        if (state === undefined) {
          throw new IdentityError(
            `${stateDir} is not enrolled; run: wpcp-agent enroll --server HOST:PORT --token TOKEN --state-dir ${stateDir}`,
          );
        }
        return state.server;
      },
    });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof IdentityError) fail(err.message);
    throw err;
  }

  const logger = createLogger({ level: config.logLevel });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception; exiting (systemd restarts the agent)');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection; exiting (systemd restarts the agent)');
    process.exit(1);
  });

  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent({ config, logger });
  } catch (err) {
    logger.fatal({ err }, 'agent failed to start');
    fail(err instanceof IdentityError ? err.message : `failed to start: ${(err as Error).message}`);
  }

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.info({ signal }, 'already shutting down');
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // Backstop: a stuck shutdown must not keep the agent (and systemd) waiting forever. Commands
    // still running then are reported INTERRUPTED at the next start.
    setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownGraceMs + HARD_EXIT_MARGIN_MS).unref();
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

let command: CliCommand;
try {
  command = parseCli(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  fail(`${err.message}\n${err.usage}\nTry 'wpcp-agent --help'.`, 2);
}

switch (command.kind) {
  case 'help':
    process.stdout.write(command.topic === 'main' ? HELP : `${USAGE[command.topic]}\n\n${HELP}`);
    break;
  case 'version':
    process.stdout.write(`${agentVersion()}\n`);
    break;
  case 'enroll':
    await runEnroll(command);
    break;
  case 'run':
    await runAgent(command);
    break;
}
