import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Db } from '../database/database.ts';
import { findNodeByName } from '../nodes/nodes.queries.ts';
import type { NodesService } from '../nodes/nodes.service.ts';

/**
 * Single-machine mode (`WPCP_LOCAL_NODE=1`): the control plane also manages the machine it runs
 * on, as a node named `local`, so a newcomer can try the whole product on one Debian machine
 * after `deploy/node/bootstrap.sh`. It is the real path, not a shortcut: the node is created and
 * enrolled with a join token like any other, and a real `wpcp-agent run` child process talks to
 * the gateway over mutual TLS. The agent's state lives in `<WPCP_DATA_DIR>/agent`.
 */
export const LOCAL_NODE_NAME = 'local';
const AGENT_BIN = fileURLToPath(new URL('../../../node-agent/bin/wpcp-agent.js', import.meta.url));
const RESTART_DELAY_MS = 5_000;
const STOP_GRACE_MS = 20_000;

export interface LocalNode {
  nodeId: string;
  stop(): Promise<void>;
}

export async function startLocalNode(deps: {
  config: Config;
  db: Db;
  nodes: NodesService;
  gatewayPort: number;
  logger: Logger;
}): Promise<LocalNode> {
  const { config, logger } = deps;
  const local = config.localNode;
  if (!local) throw new Error('single-machine mode is not enabled (WPCP_LOCAL_NODE)');
  const log = logger.child({ component: 'local-node' });
  const stateDir = path.join(config.dataDir, 'agent');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const server = `localhost:${deps.gatewayPort}`;
  const env = agentEnvironment(config, local);

  let nodeId = (await findNodeByName(deps.db, LOCAL_NODE_NAME))?.id;
  if (!existsSync(path.join(stateDir, 'state.json'))) {
    if (nodeId) {
      throw new Error(
        `the node "${LOCAL_NODE_NAME}" exists but ${stateDir} holds no enrollment: remove the node or restore the directory`,
      );
    }
    const created = await deps.nodes.create({ name: LOCAL_NODE_NAME });
    nodeId = created.id;
    await enroll({ server, token: created.join_token, stateDir, env });
    log.info({ node_id: nodeId }, 'enrolled this machine as the node "local"');
  }

  let stopping = false;
  let child: ChildProcess | undefined;
  const supervise = async () => {
    while (!stopping) {
      child = spawn(process.execPath, [AGENT_BIN, 'run', '--state-dir', stateDir], {
        env,
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
      if (stopping) return;
      log.error({ code, signal }, `the local agent exited; restarting it in ${RESTART_DELAY_MS / 1000} s`);
      await sleep(RESTART_DELAY_MS);
    }
  };
  const supervision = supervise();

  return {
    nodeId: nodeId as string,
    stop: async () => {
      stopping = true;
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child?.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      await supervision;
    },
  };
}

/**
 * The agent's settings come from the node-side variables of the control plane's environment
 * (documented with the rest), and any `WPCP_AGENT_*` variable set for it is passed through.
 */
function agentEnvironment(config: Config, local: NonNullable<Config['localNode']>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: process.env.LANG };
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('WPCP_AGENT_')) env[name] = value;
  }
  env.WPCP_AGENT_WP_CLI ??= local.wpCli;
  if (local.wpCoreSource) env.WPCP_AGENT_WP_CORE_SOURCE ??= local.wpCoreSource;
  env.WPCP_AGENT_PUBLIC_SCHEME ??= config.nodes.siteDefaults.publicScheme;
  const port = config.nodes.siteDefaults.publicPort;
  if (port) env.WPCP_AGENT_PUBLIC_PORT ??= String(port);
  return env;
}

async function enroll(options: { server: string; token: string; stateDir: string; env: NodeJS.ProcessEnv }) {
  const child = spawn(
    process.execPath,
    [AGENT_BIN, 'enroll', '--server', options.server, '--token-file', '-', '--state-dir', options.stateDir],
    { env: options.env, stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  child.stdin?.end(options.token);
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`enrolling the local agent failed: ${stderr.trim()}`);
}
