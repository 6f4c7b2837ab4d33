import * as grpc from '@grpc/grpc-js';
import {
  type AgentMessage,
  AgentServiceClient,
  CommandResult,
  CommandStatus,
  type ControlMessage,
  type ControlMessageCase,
  type EnrollRequest,
  type EnrollResponse,
  Heartbeat,
  Hello,
  type OneofValue,
} from '@wpcp/shared/agent-protocol';
import { createKeyPairAndCsr } from '@wpcp/shared/pki';

/**
 * A minimal agent for the control plane's own tests: enrollment and a Connect stream driven
 * message by message with the generated client. It shares no code with node-agent/ on purpose:
 * these tests pin the control plane's side of the protocol.
 */

/** SNI must be a name (RFC 6066); the test gateway's certificate names localhost and 127.0.0.1. */
const CHANNEL_OPTIONS = { 'grpc.ssl_target_name_override': 'localhost' };

export interface AgentIdentity {
  nodeId: string;
  keyPem: string;
  certPem: string;
  caPem: string;
}

/** Calls Enroll without a client certificate; rejects with the gRPC error. */
export function callEnroll(
  address: string,
  caPem: string,
  request: Partial<EnrollRequest>,
): Promise<EnrollResponse> {
  const client = new AgentServiceClient(
    address,
    grpc.credentials.createSsl(Buffer.from(caPem)),
    CHANNEL_OPTIONS,
  );
  return new Promise<EnrollResponse>((resolve, reject) => {
    client.enroll(
      { joinToken: '', csrPem: '', agentVersion: '0.0.0-test', hostname: 'test-node', ...request },
      new grpc.Metadata(),
      { deadline: new Date(Date.now() + 10_000) },
      (error, response) => (error ? reject(error) : resolve(response)),
    );
  }).finally(() => client.close());
}

/** Makes a key, enrolls with the join token and returns the node's identity. */
export async function enrollAgent(address: string, caPem: string, joinToken: string): Promise<AgentIdentity> {
  const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: 'test-node' });
  const response = await callEnroll(address, caPem, { joinToken, csrPem });
  return {
    nodeId: response.nodeId,
    keyPem,
    certPem: response.certificatePem,
    caPem: response.caCertificatePem,
  };
}

type Received<Case extends ControlMessageCase> = OneofValue<ControlMessage['message'], Case>;

export interface StreamStatus {
  code: grpc.status;
  details: string;
}

export class TestAgentStream {
  readonly received: ControlMessage[] = [];
  /** Resolves with the status the stream ended with. */
  readonly ended: Promise<StreamStatus>;
  readonly #client: AgentServiceClient;
  readonly #call: grpc.ClientDuplexStream<AgentMessage, ControlMessage>;
  readonly #waiters = new Set<() => void>();
  #status: StreamStatus | undefined;

  /** Opens Connect with the node's certificate (or with `identity.keyPem/certPem` absent: none). */
  constructor(address: string, identity: { caPem: string; keyPem?: string; certPem?: string }) {
    const credentials = grpc.credentials.createSsl(
      Buffer.from(identity.caPem),
      identity.keyPem ? Buffer.from(identity.keyPem) : null,
      identity.certPem ? Buffer.from(identity.certPem) : null,
    );
    this.#client = new AgentServiceClient(address, credentials, CHANNEL_OPTIONS);
    this.#call = this.#client.connect();
    this.#call.on('data', (message: ControlMessage) => {
      this.received.push(message);
      this.#notify();
    });
    this.ended = new Promise((resolve) => {
      this.#call.on('status', (status: grpc.StatusObject) => {
        this.#status = { code: status.code, details: status.details };
        this.#notify();
        resolve(this.#status);
      });
    });
    this.#call.on('error', () => {}); // the status event carries it
  }

  get status(): StreamStatus | undefined {
    return this.#status;
  }

  send(message: NonNullable<AgentMessage['message']>): void {
    this.#call.write({ message });
  }

  hello(hello: Partial<Hello> = {}): void {
    this.send({
      $case: 'hello',
      value: Hello.fromPartial({
        agentVersion: '0.0.0-test',
        hostname: 'test-node',
        capabilities: ['noop', 'ping'],
        ...hello,
      }),
    });
  }

  heartbeat(heartbeat: Partial<Heartbeat> = {}): void {
    this.send({
      $case: 'heartbeat',
      value: Heartbeat.fromPartial({
        load1: 0.5,
        load5: 0.25,
        load15: 0.125,
        memTotalBytes: 8 * 2 ** 30,
        memAvailableBytes: 6 * 2 ** 30,
        diskTotalBytes: 100 * 2 ** 30,
        diskFreeBytes: 60 * 2 ** 30,
        agentVersion: '0.0.0-test',
        sentAtUnixMs: Date.now(),
        ...heartbeat,
      }),
    });
  }

  ack(commandId: string): void {
    this.send({ $case: 'commandAck', value: { commandId } });
  }

  result(commandId: string, status: CommandStatus, extra: Partial<CommandResult> = {}): void {
    this.send({ $case: 'commandResult', value: CommandResult.fromPartial({ commandId, status, ...extra }) });
  }

  /** Hello, then waits for Welcome. */
  async open(hello: Partial<Hello> = {}, timeoutMs = 5_000): Promise<Received<'welcome'>> {
    this.hello(hello);
    return this.next('welcome', () => true, timeoutMs);
  }

  /**
   * The first message of that case, received so far or later, that matches; it is removed from
   * `received` so the next call finds the next one.
   */
  async next<Case extends ControlMessageCase>(
    messageCase: Case,
    matches: (value: Received<Case>) => boolean = () => true,
    timeoutMs = 5_000,
  ): Promise<Received<Case>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex(
        (m) => m.message?.$case === messageCase && matches(m.message.value as Received<Case>),
      );
      if (index >= 0) {
        const [message] = this.received.splice(index, 1);
        return message?.message?.value as Received<Case>;
      }
      if (this.#status) {
        throw new Error(
          `stream ended (${grpc.status[this.#status.code]}: ${this.#status.details}) before ${messageCase}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${messageCase} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        const waiters = this.#waiters;
        function done() {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  /** Answers every command with an ack and the given result (by default succeeded, `{}`). */
  autoAnswer(
    answer: (command: Received<'command'>) => Partial<CommandResult> | undefined = () => ({
      status: CommandStatus.SUCCEEDED,
      outputJson: '{"agent_time_ms": 1}',
    }),
  ): void {
    this.#call.on('data', (message: ControlMessage) => {
      if (message.message?.$case !== 'command') return;
      const command = message.message.value;
      this.ack(command.id);
      const result = answer(command);
      if (result) this.result(command.id, result.status ?? CommandStatus.SUCCEEDED, result);
    });
  }

  /** Half-closes and cancels the call, like an agent going away. */
  close(): void {
    this.#call.end();
    this.#call.cancel();
    this.#client.close();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

/** Creates a node through the API and returns the answer (id, name, join_token, ...). */
export async function createNode(
  cp: {
    app: { inject: (options: object) => Promise<{ statusCode: number; body: string; json: () => unknown }> };
  },
  authorization: string,
  name: string,
): Promise<{ id: string; name: string; join_token: string; join_token_expires_at: string }> {
  const res = await cp.app.inject({
    method: 'POST',
    url: '/api/nodes',
    headers: { authorization },
    payload: { name },
  });
  if (res.statusCode !== 201) throw new Error(`creating node ${name} failed: ${res.body}`);
  return res.json() as { id: string; name: string; join_token: string; join_token_expires_at: string };
}
