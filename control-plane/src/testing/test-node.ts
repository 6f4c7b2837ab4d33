import {
  type Command,
  type CommandResult,
  CommandStatus,
  EnvironmentStepKind,
} from '@wpcp/shared/agent-protocol';
import { type createNode, enrollAgent, TestAgentStream } from './test-agent.ts';
import type { TestControlPlane } from './test-control-plane.ts';

/**
 * An enrolled, connected node whose in-test agent answers every command at once: success with
 * the output a real agent gives (INSTALL_CORE reports a WordPress version), or the failure a
 * test scripts with `failWhen`. Every command it receives is kept in `commands`, in order.
 */
export interface RecordedCommand {
  id: string;
  environmentKey: string;
  /** The payload case: `environmentStep`, `configureNginx`, `setSiteUrl`, `cloneEnvironment`, ... */
  type: string;
  /** The payload value as the agent decoded it. */
  value: Record<string, unknown>;
  /** For environmentStep: `create-user`, `undo-create-user`, ...; otherwise the payload case. */
  label: string;
}

export interface TestNode {
  id: string;
  name: string;
  stream: TestAgentStream;
  commands: RecordedCommand[];
  /** Commands matching the predicate fail on the node with this message. */
  failWhen(predicate: ((command: RecordedCommand) => boolean) | undefined, message?: string): void;
  /** Commands matching the predicate are acknowledged and never answered (they hang). */
  holdWhen(predicate: ((command: RecordedCommand) => boolean) | undefined): void;
  /** A new stream (after the node was disabled and enabled again, say). */
  reconnect(): Promise<void>;
  close(): void;
}

export const WORDPRESS_VERSION = '6.1.9';

const KIND_LABELS: Record<number, string> = {
  [EnvironmentStepKind.CREATE_USER]: 'create-user',
  [EnvironmentStepKind.CREATE_LAYOUT]: 'create-layout',
  [EnvironmentStepKind.CREATE_PHP_POOL]: 'create-php-pool',
  [EnvironmentStepKind.CREATE_DATABASE]: 'create-database',
  [EnvironmentStepKind.INSTALL_CORE]: 'install-core',
  [EnvironmentStepKind.WRITE_WP_CONFIG]: 'write-wp-config',
  [EnvironmentStepKind.INSTALL_WORDPRESS]: 'install-wordpress',
  [EnvironmentStepKind.INSTALL_CRON]: 'install-cron',
};

function record(command: Command): RecordedCommand {
  const payload = command.payload;
  const type = payload?.$case ?? 'unknown';
  const value = (payload?.value ?? {}) as unknown as Record<string, unknown>;
  let label = type;
  if (payload?.$case === 'environmentStep') {
    const name = KIND_LABELS[payload.value.kind] ?? `kind-${payload.value.kind}`;
    label = payload.value.undo ? `undo-${name}` : name;
  }
  if (payload?.$case === 'configureNginx' && payload.value.remove) label = 'configureNginx:remove';
  return { id: command.id, environmentKey: command.environmentKey, type, value, label };
}

export async function startTestNode(
  cp: TestControlPlane,
  authorization: string,
  name: string,
  body: Record<string, unknown> = {},
): Promise<TestNode> {
  const res = await cp.app.inject({
    method: 'POST',
    url: '/api/nodes',
    headers: { authorization },
    payload: { name, base_domain: `${name}.test`, ...body },
  });
  if (res.statusCode !== 201) throw new Error(`creating node ${name} failed: ${res.body}`);
  const created = res.json() as Awaited<ReturnType<typeof createNode>>;
  const identity = await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, created.join_token);
  const commands: RecordedCommand[] = [];
  let failure: { predicate: (command: RecordedCommand) => boolean; message: string } | undefined;
  let hold: ((command: RecordedCommand) => boolean) | undefined;
  const connect = async () => {
    const stream = new TestAgentStream(cp.grpcAddress, identity);
    await stream.open({
      capabilities: [
        'noop',
        'ping',
        'environment_step',
        'configure_nginx',
        'set_site_url',
        'clone_environment',
      ],
    });
    stream.autoAnswer((command): Partial<CommandResult> | undefined => {
      const recorded = record(command);
      commands.push(recorded);
      if (hold?.(recorded)) return undefined;
      if (failure?.predicate(recorded)) {
        return { status: CommandStatus.FAILED, errorCode: 'command_failed', errorMessage: failure.message };
      }
      const output = recorded.label === 'install-core' ? { wordpress_version: WORDPRESS_VERSION } : {};
      return { status: CommandStatus.SUCCEEDED, outputJson: JSON.stringify(output) };
    });
    return stream;
  };
  const node: TestNode = {
    id: identity.nodeId,
    name,
    stream: await connect(),
    commands,
    failWhen(predicate, message = 'scripted failure on the node') {
      failure = predicate ? { predicate, message } : undefined;
    },
    holdWhen(predicate) {
      hold = predicate;
    },
    reconnect: async () => {
      node.stream.close();
      node.stream = await connect();
    },
    close: () => node.stream.close(),
  };
  return node;
}
