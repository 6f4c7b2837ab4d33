// The agent's environment commands against the hermetic stack: private MariaDB, Redis, PHP-FPM
// and nginx instances, WordPress core from Debian's packages and the WP-CLI double, wired into the
// agent's node-stack settings exactly as an operator would set them on a node, and a real
// CommandExecutor (journal, context, redaction, results) to run commands through.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Command, CommandStatus } from '@wpcp/shared/agent-protocol';
import { CommandExecutor, type OutgoingMessage } from '../../node-agent/src/commands/executor.ts';
import { type NodeStack, nodeStackFromConfig } from '../../node-agent/src/commands/node-stack.ts';
import { type CommandHandlers, createHandlers } from '../../node-agent/src/commands/registry.ts';
import { AgentConfig } from '../../node-agent/src/config.ts';
import { Journal } from '../../node-agent/src/journal/journal.ts';
import { testLogger } from '../../node-agent/src/testing/agent-harness.ts';
import { BINARIES } from './binaries.ts';
import { makeInstanceDir, removeInstanceDir } from './daemon.ts';
import { type MariaDbInstance, startMariaDb } from './mariadb.ts';
import { type NginxInstance, startNginx } from './nginx.ts';
import { type PhpFpmInstance, startPhpFpm } from './php-fpm.ts';
import { type RedisInstance, startRedis } from './redis.ts';
import { fetchWordPressCore, type WordPressCore } from './wordpress-core.ts';
import { WP_CLI_DOUBLE } from './wp-cli.ts';

export interface CommandOutcome {
  id: string;
  status: 'succeeded' | 'failed' | 'rejected' | 'cancelled' | 'interrupted';
  errorCode: string;
  errorMessage: string;
  output: Record<string, unknown>;
  /** Log lines and progress messages the command sent. */
  logs: string[];
}

export interface AgentStack {
  core: WordPressCore;
  db: MariaDbInstance;
  redis: RedisInstance;
  fpm: PhpFpmInstance;
  nginx: NginxInstance;
  sitesDir: string;
  stateDir: string;
  cronDir: string;
  settings: AgentConfig;
  stack: NodeStack;
  /** Runs one command payload through the executor; resolves with its result. */
  run(payload: NonNullable<Command['payload']>): Promise<CommandOutcome>;
  /** The same with other handlers (e.g. from settings changed for one test). */
  runWith(handlers: CommandHandlers, payload: NonNullable<Command['payload']>): Promise<CommandOutcome>;
  stop(): Promise<void>;
}

const STATUS: Record<number, CommandOutcome['status']> = {
  [CommandStatus.SUCCEEDED]: 'succeeded',
  [CommandStatus.FAILED]: 'failed',
  [CommandStatus.REJECTED]: 'rejected',
  [CommandStatus.CANCELLED]: 'cancelled',
  [CommandStatus.INTERRUPTED]: 'interrupted',
};

let sequence = 0;

export async function startAgentStack(): Promise<AgentStack> {
  const [core, db, redis, fpm, nginx, sitesDir, stateDir, cronDir] = await Promise.all([
    fetchWordPressCore(),
    startMariaDb(),
    startRedis(),
    startPhpFpm(),
    startNginx(),
    makeInstanceDir('sites'),
    mkdtemp(path.join(tmpdir(), 'wpcp-agent-state-')),
    makeInstanceDir('cron'),
  ]);
  const settings = AgentConfig.parse({
    server: 'localhost:1',
    stateDir,
    sitesDir,
    nginxSitesDir: nginx.sitesDir,
    nginxTestArgv: nginx.testArgv,
    nginxReloadArgv: nginx.reloadArgv,
    nginxListen: [nginx.listen],
    publicPort: nginx.port,
    phpFpmPoolDir: fpm.poolDir,
    phpFpmTestArgv: fpm.testArgv,
    phpFpmReloadArgv: fpm.reloadArgv,
    phpFpmSocketDir: fpm.dir,
    databaseAdminArgv: [BINARIES.mysql, ...db.clientArgs],
    databaseDumpArgv: [BINARIES.mariadbDump, ...db.clientArgs],
    databaseHost: `localhost:${db.socketPath}`,
    redisHost: redis.host,
    redisPort: redis.port,
    wpCli: WP_CLI_DOUBLE,
    phpCli: BINARIES.php,
    wpCoreSource: core.dir,
    cronDir,
  });
  const stack = nodeStackFromConfig(settings);
  const handlers = createHandlers(stack);
  const journal = await Journal.open(stateDir);
  const sent: OutgoingMessage[] = [];
  const waiters = new Map<string, () => void>();
  const executors = new Map<CommandHandlers, CommandExecutor>();
  const executorFor = (chosen: CommandHandlers): CommandExecutor => {
    let executor = executors.get(chosen);
    if (!executor) {
      executor = new CommandExecutor({
        journal,
        logger: testLogger,
        maxConcurrentCommands: 4,
        handlers: chosen,
      });
      executor.attach({
        send: (message) => {
          sent.push(message);
          if (message.$case === 'commandResult') waiters.get(message.value.commandId)?.();
        },
      });
      executors.set(chosen, executor);
    }
    return executor;
  };

  const runWith = async (
    chosen: CommandHandlers,
    payload: NonNullable<Command['payload']>,
  ): Promise<CommandOutcome> => {
    const id = `stack-${process.pid}-${++sequence}-${payload.$case}`;
    const done = new Promise<void>((resolve) => waiters.set(id, resolve));
    await executorFor(chosen).receive({ id, deadlineUnixMs: 0, environmentKey: '', payload });
    await done;
    waiters.delete(id);
    const result = sent.find((m) => m.$case === 'commandResult' && m.value.commandId === id);
    if (result?.$case !== 'commandResult') throw new Error(`no result for ${id}`);
    const logs = sent.flatMap((m) => {
      if (m.$case === 'commandLog' && m.value.commandId === id) return [m.value.line];
      if (m.$case === 'commandProgress' && m.value.commandId === id) return [m.value.message];
      return [];
    });
    return {
      id,
      status: STATUS[result.value.status] ?? 'failed',
      errorCode: result.value.errorCode,
      errorMessage: result.value.errorMessage,
      output: result.value.outputJson ? (JSON.parse(result.value.outputJson) as Record<string, unknown>) : {},
      logs,
    };
  };

  return {
    core,
    db,
    redis,
    fpm,
    nginx,
    sitesDir,
    stateDir,
    cronDir,
    settings,
    stack,
    run: (payload) => runWith(handlers, payload),
    runWith,
    async stop() {
      for (const executor of executors.values()) await executor.shutdown(1_000, 1_000);
      await nginx.stop();
      await fpm.stop();
      await Promise.all([db.stop(), redis.stop()]);
      await removeInstanceDir(sitesDir);
      await removeInstanceDir(cronDir);
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
