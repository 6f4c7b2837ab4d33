/**
 * Wire conformance of the generated code: the ts-proto side talks over a real grpc-js connection to a
 * side built by @grpc/proto-loader (protobufjs, reading the .proto at run time), in both roles. The
 * proto-loader fixtures below are written by hand from the .proto, so a wrong field number, type or
 * name in the generated code (or a stale generation) shows up as a mismatch.
 *
 * Insecure credentials on 127.0.0.1 in this test only; TLS is tested in src/pki/.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AgentMessage,
  AgentServiceClient,
  type AgentServiceServer,
  AgentServiceService,
  CommandStatus,
  type ControlMessage,
  type EnrollRequest,
  type EnrollResponse,
  LogStream,
  PROTOCOL_VERSION,
  protobufPackage,
} from './index.ts';

const protoRoot = fileURLToPath(new URL('../../../proto', import.meta.url));

/** proto-loader options chosen to differ from ts-proto's representation where they can. */
const loaderOptions: protoLoader.Options = {
  includeDirs: [protoRoot],
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The methods of a proto-loader client (untyped: proto-loader builds them at run time). */
interface LoaderClientMethods {
  Enroll(request: unknown, callback: (error: grpc.ServiceError | null, response: unknown) => void): unknown;
  Connect(): MessageStream;
}

function loadLoaderService(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync('wpcp/agent/v1/agent.proto', loaderOptions);
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    wpcp: { agent: { v1: { AgentService: grpc.ServiceClientConstructor } } };
  };
  return root.wpcp.agent.v1.AgentService;
}

// ---------------------------------------------------------------------------------------------
// Fixtures: the same conversation twice, once as ts-proto values, once as proto-loader objects.
// Every field has a non-default value somewhere, 64-bit values exceed 32 bits.
// ---------------------------------------------------------------------------------------------

type AgentKey = 'hello' | 'heartbeat' | 'ack' | 'progress' | 'log' | 'result' | 'renew';
type ControlKey = 'welcome' | 'commandNoop' | 'commandPing' | 'cancel' | 'resultAck' | 'renewed';

const agentKeys: AgentKey[] = ['hello', 'heartbeat', 'ack', 'progress', 'log', 'result', 'renew'];
const controlKeys: ControlKey[] = ['welcome', 'commandNoop', 'commandPing', 'cancel', 'resultAck', 'renewed'];

const csrPem = '-----BEGIN CERTIFICATE REQUEST-----\nMIIBfake\n-----END CERTIFICATE REQUEST-----\n';
const certPem = '-----BEGIN CERTIFICATE-----\nMIICfake\n-----END CERTIFICATE-----\n';

const agentTs: Record<AgentKey, AgentMessage> = {
  hello: {
    message: {
      $case: 'hello',
      value: {
        agentVersion: '0.3.1',
        hostname: 'node-1.example.test',
        capabilities: ['noop', 'ping'],
        unacknowledgedResults: [
          {
            commandId: 'cmd-old',
            status: CommandStatus.INTERRUPTED,
            errorCode: 'worker_lost',
            errorMessage: 'the agent restarted while the command ran',
            outputJson: '{"partial":true}',
          },
        ],
        runningCommandIds: ['cmd-running'],
      },
    },
  },
  heartbeat: {
    message: {
      $case: 'heartbeat',
      value: {
        load1: 0.25,
        load5: 1.5,
        load15: 2.75,
        memTotalBytes: 17_179_869_184,
        memAvailableBytes: 8_589_934_593,
        diskTotalBytes: 8_796_093_022_208,
        diskFreeBytes: 4_398_046_511_105,
        runningCommandIds: ['cmd-running', 'cmd-1'],
        agentVersion: '0.3.1',
        sentAtUnixMs: 1_767_225_600_123,
      },
    },
  },
  ack: { message: { $case: 'commandAck', value: { commandId: 'cmd-1' } } },
  progress: {
    message: {
      $case: 'commandProgress',
      value: { commandId: 'cmd-1', step: 'sleep', percent: 42, message: 'sleeping — 42 %' },
    },
  },
  log: {
    message: {
      $case: 'commandLog',
      value: { commandId: 'cmd-1', stream: LogStream.STDERR, line: 'warning: ünïcödé ✓' },
    },
  },
  result: {
    message: {
      $case: 'commandResult',
      value: {
        commandId: 'cmd-1',
        status: CommandStatus.FAILED,
        errorCode: 'job_failed',
        errorMessage: 'asked to fail',
        outputJson: '{"slept_ms":5}',
      },
    },
  },
  renew: { message: { $case: 'renewCertificateRequest', value: { csrPem } } },
};

const agentLoader: Record<AgentKey, Record<string, unknown>> = {
  hello: {
    message: 'hello',
    hello: {
      agentVersion: '0.3.1',
      hostname: 'node-1.example.test',
      capabilities: ['noop', 'ping'],
      unacknowledgedResults: [
        {
          commandId: 'cmd-old',
          status: 'COMMAND_STATUS_INTERRUPTED',
          errorCode: 'worker_lost',
          errorMessage: 'the agent restarted while the command ran',
          outputJson: '{"partial":true}',
        },
      ],
      runningCommandIds: ['cmd-running'],
    },
  },
  heartbeat: {
    message: 'heartbeat',
    heartbeat: {
      load1: 0.25,
      load5: 1.5,
      load15: 2.75,
      memTotalBytes: '17179869184',
      memAvailableBytes: '8589934593',
      diskTotalBytes: '8796093022208',
      diskFreeBytes: '4398046511105',
      runningCommandIds: ['cmd-running', 'cmd-1'],
      agentVersion: '0.3.1',
      sentAtUnixMs: '1767225600123',
    },
  },
  ack: { message: 'commandAck', commandAck: { commandId: 'cmd-1' } },
  progress: {
    message: 'commandProgress',
    commandProgress: { commandId: 'cmd-1', step: 'sleep', percent: 42, message: 'sleeping — 42 %' },
  },
  log: {
    message: 'commandLog',
    commandLog: { commandId: 'cmd-1', stream: 'LOG_STREAM_STDERR', line: 'warning: ünïcödé ✓' },
  },
  result: {
    message: 'commandResult',
    commandResult: {
      commandId: 'cmd-1',
      status: 'COMMAND_STATUS_FAILED',
      errorCode: 'job_failed',
      errorMessage: 'asked to fail',
      outputJson: '{"slept_ms":5}',
    },
  },
  renew: { message: 'renewCertificateRequest', renewCertificateRequest: { csrPem } },
};

const controlTs: Record<ControlKey, ControlMessage> = {
  welcome: {
    message: {
      $case: 'welcome',
      value: {
        nodeId: 'node-7f3a',
        heartbeatIntervalMs: 5000,
        maxConcurrentCommands: 4,
        serverTimeMs: 1_767_225_600_000,
      },
    },
  },
  commandNoop: {
    message: {
      $case: 'command',
      value: {
        id: 'cmd-1',
        deadlineUnixMs: 1_767_225_610_000,
        environmentKey: 'env-42',
        payload: { $case: 'noop', value: { sleepMs: 5, fail: true, errorMessage: 'asked to fail' } },
      },
    },
  },
  commandPing: {
    message: {
      $case: 'command',
      value: {
        id: 'cmd-2',
        deadlineUnixMs: 1_767_225_620_000,
        environmentKey: '',
        payload: { $case: 'ping', value: {} },
      },
    },
  },
  cancel: { message: { $case: 'cancel', value: { commandId: 'cmd-2' } } },
  resultAck: { message: { $case: 'resultAck', value: { commandId: 'cmd-1' } } },
  renewed: { message: { $case: 'renewCertificateResponse', value: { certificatePem: certPem } } },
};

const controlLoader: Record<ControlKey, Record<string, unknown>> = {
  welcome: {
    message: 'welcome',
    welcome: {
      nodeId: 'node-7f3a',
      heartbeatIntervalMs: 5000,
      maxConcurrentCommands: 4,
      serverTimeMs: '1767225600000',
    },
  },
  commandNoop: {
    message: 'command',
    command: {
      id: 'cmd-1',
      deadlineUnixMs: '1767225610000',
      environmentKey: 'env-42',
      payload: 'noop',
      noop: { sleepMs: 5, fail: true, errorMessage: 'asked to fail' },
    },
  },
  commandPing: {
    message: 'command',
    command: { id: 'cmd-2', deadlineUnixMs: '1767225620000', environmentKey: '', payload: 'ping', ping: {} },
  },
  cancel: { message: 'cancel', cancel: { commandId: 'cmd-2' } },
  resultAck: { message: 'resultAck', resultAck: { commandId: 'cmd-1' } },
  renewed: { message: 'renewCertificateResponse', renewCertificateResponse: { certificatePem: certPem } },
};

const enrollRequestTs: EnrollRequest = {
  joinToken: 'jt_abc.def',
  csrPem,
  agentVersion: '0.3.1',
  hostname: 'node-1.example.test',
};
const enrollRequestLoader = { ...enrollRequestTs };
const enrollResponseTs: EnrollResponse = {
  certificatePem: certPem,
  caCertificatePem: certPem,
  nodeId: 'node-7f3a',
};
const enrollResponseLoader = { ...enrollResponseTs };

// ---------------------------------------------------------------------------------------------
// The two roles, written once: they react to the case name of what they receive, which is the
// same string on both sides (`$case` for ts-proto, the virtual oneof field for proto-loader).
// ---------------------------------------------------------------------------------------------

interface MessageStream {
  write(message: unknown): boolean;
  end(): void;
  on(event: 'data', listener: (message: unknown) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}
type CaseOf = (message: unknown) => string | undefined;

const tsCase: CaseOf = (message) => (message as { message?: { $case: string } }).message?.$case;
const loaderCase: CaseOf = (message) => (message as { message?: string }).message;

/** The control plane's side of the conversation; resolves with what it received. */
function playControl(
  call: MessageStream,
  send: Record<ControlKey, unknown>,
  caseOf: CaseOf,
): Promise<unknown[]> {
  const received: unknown[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (message) => {
      received.push(message);
      switch (caseOf(message)) {
        case 'hello':
          for (const key of ['welcome', 'commandNoop', 'commandPing', 'cancel'] as const)
            call.write(send[key]);
          break;
        case 'commandResult':
          call.write(send.resultAck);
          break;
        case 'renewCertificateRequest':
          call.write(send.renewed);
          break;
      }
    });
    call.on('end', () => {
      call.end();
      resolve(received);
    });
    call.on('error', reject);
  });
}

/** The agent's side of the conversation; resolves with what it received. */
function playAgent(call: MessageStream, send: Record<AgentKey, unknown>, caseOf: CaseOf): Promise<unknown[]> {
  const received: unknown[] = [];
  let commands = 0;
  return new Promise((resolve, reject) => {
    call.on('data', (message) => {
      received.push(message);
      switch (caseOf(message)) {
        case 'welcome':
          call.write(send.heartbeat);
          break;
        case 'command':
          commands += 1;
          if (commands === 1)
            for (const key of ['ack', 'progress', 'log', 'result'] as const) call.write(send[key]);
          break;
        case 'resultAck':
          call.write(send.renew);
          break;
        case 'renewCertificateResponse':
          call.end();
          break;
      }
    });
    call.on('end', () => resolve(received));
    call.on('error', reject);
    call.write(send.hello);
  });
}

// ---------------------------------------------------------------------------------------------

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function startServer(
  service: grpc.ServiceDefinition,
  implementation: grpc.UntypedServiceImplementation,
): Promise<string> {
  const server = new grpc.Server();
  server.addService(service, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, boundPort) =>
      error ? reject(error) : resolve(boundPort),
    ),
  );
  cleanups.push(() => server.forceShutdown());
  return `127.0.0.1:${port}`;
}

function unary<Req, Res>(
  call: (request: Req, callback: (error: grpc.ServiceError | null, response: Res) => void) => unknown,
  request: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    call(request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

describe('agent protocol wire conformance', () => {
  it('names the protocol after the protobuf package', () => {
    expect(PROTOCOL_VERSION).toBe(protobufPackage);
  });

  it('ts-proto server <-> proto-loader client', async () => {
    let controlReceived: Promise<unknown[]> | undefined;
    let enrollReceived: EnrollRequest | undefined;
    const implementation: AgentServiceServer = {
      enroll(call, callback) {
        enrollReceived = call.request;
        callback(null, enrollResponseTs);
      },
      connect(call) {
        controlReceived = playControl(call, controlTs, tsCase);
      },
    };
    const address = await startServer(AgentServiceService, implementation);

    const LoaderClient = loadLoaderService();
    const client = new LoaderClient(address, grpc.credentials.createInsecure()) as unknown as grpc.Client &
      LoaderClientMethods;
    cleanups.push(() => client.close());

    const enrollResponse = await unary(
      (request, callback) => client.Enroll(request, callback),
      enrollRequestLoader,
    );
    expect(enrollReceived).toEqual(enrollRequestTs);
    expect(enrollResponse).toEqual(enrollResponseLoader);

    const agentReceived = await playAgent(client.Connect(), agentLoader, loaderCase);
    expect(agentReceived).toEqual(controlKeys.map((key) => controlLoader[key]));
    expect(await controlReceived).toEqual(agentKeys.map((key) => agentTs[key]));
  });

  it('proto-loader server <-> ts-proto client', async () => {
    let controlReceived: Promise<unknown[]> | undefined;
    let enrollReceived: unknown;
    const LoaderService = loadLoaderService();
    const implementation: grpc.UntypedServiceImplementation = {
      Enroll(call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
        enrollReceived = call.request;
        callback(null, enrollResponseLoader);
      },
      Connect(call: grpc.ServerDuplexStream<unknown, unknown>) {
        controlReceived = playControl(call, controlLoader, loaderCase);
      },
    };
    const address = await startServer(LoaderService.service, implementation);

    const client = new AgentServiceClient(address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());

    const enrollResponse = await unary<EnrollRequest, EnrollResponse>(
      (request, callback) => client.enroll(request, callback),
      enrollRequestTs,
    );
    expect(enrollReceived).toEqual(enrollRequestLoader);
    expect(enrollResponse).toEqual(enrollResponseTs);

    const agentReceived = await playAgent(client.connect(), agentTs, tsCase);
    expect(agentReceived).toEqual(controlKeys.map((key) => controlTs[key]));
    expect(await controlReceived).toEqual(agentKeys.map((key) => agentLoader[key]));
  });

  it('decodes an unknown oneof case as "no case set" (a newer peer)', () => {
    // Field 99 of ControlMessage, length-delimited, empty: what a future message type looks like.
    const decoded = AgentServiceService.connect.responseDeserialize(Buffer.from([0x9a, 0x06, 0x00]));
    expect(decoded.message).toBeUndefined();
  });
});

describe('generated code', () => {
  it("runs under Node's own type stripping (erasable syntax only, .ts import suffixes)", () => {
    const entry = new URL('./index.ts', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(entry)});
      const bytes = m.AgentMessage.encode(m.AgentMessage.fromPartial({ message: { $case: 'commandAck', value: { commandId: 'c' } } })).finish();
      process.stdout.write(JSON.stringify([m.PROTOCOL_VERSION, m.CommandStatus.REJECTED, m.AgentMessage.decode(bytes)]));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '--eval', script], {
      encoding: 'utf8',
    });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual([
      'wpcp.agent.v1',
      5,
      { message: { $case: 'commandAck', value: { commandId: 'c' } } },
    ]);
  });
});
