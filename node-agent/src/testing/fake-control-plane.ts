// A minimal in-process control plane for the agent's tests: a CA, a server certificate sent with
// its chain (leaf + CA, as the real gateway must), an Enroll handler with one-time tokens, and a
// Connect handler that records every message and lets the test drive the stream. Not a model of the
// real gateway: no database, no command persistence.
import { randomBytes, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  type AgentMessage,
  type AgentMessageCase,
  type AgentServiceServer,
  AgentServiceService,
  type ControlMessage,
  type OneofValue,
  type Welcome,
} from '@wpcp/shared/agent-protocol';
import {
  type CertificateAuthority,
  caCertificateHash,
  createCertificateAuthority,
  createKeyPairAndCsr,
  InvalidCsrError,
  signCsr,
} from '@wpcp/shared/pki';

export interface FakeControlPlaneOptions {
  /** Host to bind (default 127.0.0.1). */
  bindHost?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /**
   * Send the CA certificate after the leaf (default true). False also stops requesting client
   * certificates (see below), so only Enroll works then.
   */
  sendChain?: boolean;
  /** Use this CA instead of a new one. */
  ca?: CertificateAuthority;
  /** Welcome fields (defaults: 200 ms heartbeats, 4 commands). */
  welcome?: Partial<Welcome>;
  /** Answer every CommandResult with ResultAck (default true). */
  autoAckResults?: boolean;
  /** Validity of issued client certificates; `issueAt` backdates them (renewal tests). */
  clientCertValidityDays?: number;
  issueAt?: () => Date;
}

type Waiter = { check: () => boolean; resolve: () => void };

/** One Connect stream as the server sees it. */
export class FakeStream {
  readonly nodeId: string;
  readonly certFingerprint: string;
  readonly received: AgentMessage[] = [];
  readonly receivedAt: number[] = [];
  ended = false;
  readonly #call: grpc.ServerDuplexStream<AgentMessage, ControlMessage>;
  readonly #plane: FakeControlPlane;

  constructor(
    call: grpc.ServerDuplexStream<AgentMessage, ControlMessage>,
    plane: FakeControlPlane,
    nodeId: string,
    certFingerprint: string,
  ) {
    this.#call = call;
    this.#plane = plane;
    this.nodeId = nodeId;
    this.certFingerprint = certFingerprint;
  }

  send(message: ControlMessage['message']): void {
    if (!this.ended) this.#call.write({ message });
  }

  /** Messages of one case, in arrival order. */
  of<C extends AgentMessageCase>($case: C): OneofValue<AgentMessage['message'], C>[] {
    const values: OneofValue<AgentMessage['message'], C>[] = [];
    for (const m of this.received) {
      if (m.message?.$case === $case) values.push(m.message.value as OneofValue<AgentMessage['message'], C>);
    }
    return values;
  }

  /** End the stream cleanly (status OK). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.#call.end();
  }

  /** End the stream with a status, as a gateway does on shutdown or when it refuses a node. */
  drop(code: grpc.status = grpc.status.UNAVAILABLE, details = 'dropped by the test'): void {
    if (this.ended) return;
    this.ended = true;
    this.#call.emit('error', { code, details });
  }

  record(message: AgentMessage): void {
    this.received.push(message);
    this.receivedAt.push(performance.now());
    this.#plane.notify();
  }
}

export class FakeControlPlane {
  readonly ca: CertificateAuthority;
  readonly port: number;
  /** `sha256:<hex>` */
  readonly caHash: string;
  readonly streams: FakeStream[] = [];
  readonly enrollRequests: { joinToken: string; hostname: string; agentVersion: string }[] = [];
  readonly options: FakeControlPlaneOptions;
  /** Whether Connect accepts streams (false: UNAVAILABLE at once). */
  accepting = true;
  readonly #server: grpc.Server;
  readonly #tokens = new Map<string, string>();
  readonly #waiters = new Set<Waiter>();
  #nodeCounter = 0;

  private constructor(
    server: grpc.Server,
    port: number,
    ca: CertificateAuthority,
    options: FakeControlPlaneOptions,
  ) {
    this.#server = server;
    this.port = port;
    this.ca = ca;
    this.caHash = caCertificateHash(ca.certPem);
    this.options = options;
  }

  static async start(options: FakeControlPlaneOptions = {}): Promise<FakeControlPlane> {
    const ca =
      options.ca ?? (await createCertificateAuthority({ commonName: 'wpcp test CA', validityDays: 30 }));
    const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: 'control-plane' });
    const leafPem = await signCsr({
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      csrPem,
      subjectCommonName: 'control-plane',
      validityDays: 30,
      usage: 'server',
      dnsNames: options.dnsNames ?? ['localhost'],
      ipAddresses: options.ipAddresses ?? ['127.0.0.1'],
    });
    const chain = options.sendChain === false ? leafPem : `${leafPem.trim()}\n${ca.certPem.trim()}\n`;
    // Client certificates are requested but not required, so Enroll (no certificate yet) and
    // Connect (mutual TLS, checked in the handler) share one port.
    const update = {
      caCertificate: Buffer.from(ca.certPem),
      certificate: Buffer.from(chain),
      privateKey: Buffer.from(keyPem),
    };
    // grpc-js registers its watcher only after adding these listeners: answer asynchronously.
    const provider: grpc.experimental.CertificateProvider = {
      addCaCertificateListener: (listener) =>
        queueMicrotask(() => listener({ caCertificate: update.caCertificate })),
      removeCaCertificateListener: () => {},
      addIdentityCertificateListener: (listener) =>
        queueMicrotask(() => listener({ certificate: update.certificate, privateKey: update.privateKey })),
      removeIdentityCertificateListener: () => {},
    };
    // OpenSSL appends the CA to the chain it sends on its own when the CA is in the context's
    // store (here for client certificates): a leaf-only server must not request client certificates.
    const credentials = grpc.experimental.createCertificateProviderServerCredentials(
      provider,
      options.sendChain === false ? null : provider,
      false,
    );
    const server = new grpc.Server();
    const holder: { plane?: FakeControlPlane } = {};
    const implementation: AgentServiceServer = {
      enroll: (call, callback) => {
        holder.plane?.handleEnroll(call, callback).catch((err: unknown) => {
          callback({ code: grpc.status.INTERNAL, details: String(err) });
        });
      },
      connect: (call) => holder.plane?.handleConnect(call),
    };
    server.addService(AgentServiceService, implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${options.bindHost ?? '127.0.0.1'}:0`, credentials, (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
    const plane = new FakeControlPlane(server, port, ca, options);
    holder.plane = plane;
    return plane;
  }

  /** A one-time join token for a new node. */
  createJoinToken(nodeId = `node-${++this.#nodeCounter}`): string {
    const token = `wpcp1.${randomBytes(32).toString('base64url')}.${this.caHash.slice('sha256:'.length)}`;
    this.#tokens.set(token, nodeId);
    return token;
  }

  /** Resolves when `check()` is true (checked after every received message, and every 20 ms). */
  waitFor(check: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          clearInterval(poll);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        clearInterval(poll);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const poll = setInterval(() => this.notify(), 20);
      this.#waiters.add(waiter);
    });
  }

  /** The stream with this index, once open (0 = first stream ever). */
  async stream(index: number, timeoutMs = 10_000): Promise<FakeStream> {
    await this.waitFor(() => this.streams.length > index, timeoutMs, `stream #${index}`);
    return this.streams[index] as FakeStream;
  }

  get lastStream(): FakeStream | undefined {
    return this.streams.at(-1);
  }

  notify(): void {
    for (const waiter of [...this.#waiters]) {
      if (waiter.check()) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  async close(): Promise<void> {
    for (const stream of this.streams) stream.drop(grpc.status.UNAVAILABLE, 'server shutting down');
    this.#server.forceShutdown();
  }

  private async handleEnroll(
    call: grpc.ServerUnaryCall<
      { joinToken: string; csrPem: string; agentVersion: string; hostname: string },
      unknown
    >,
    callback: grpc.sendUnaryData<{ certificatePem: string; caCertificatePem: string; nodeId: string }>,
  ): Promise<void> {
    const request = call.request;
    this.enrollRequests.push({
      joinToken: request.joinToken,
      hostname: request.hostname,
      agentVersion: request.agentVersion,
    });
    const nodeId = this.#tokens.get(request.joinToken);
    if (nodeId === undefined) {
      callback({ code: grpc.status.UNAUTHENTICATED, details: 'unknown, used or expired join token' });
      return;
    }
    this.#tokens.delete(request.joinToken);
    try {
      const certificatePem = await this.issueClientCertificate(request.csrPem, nodeId);
      callback(null, { certificatePem, caCertificatePem: this.ca.certPem, nodeId });
    } catch (err) {
      if (err instanceof InvalidCsrError) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: err.message });
        return;
      }
      throw err;
    }
  }

  issueClientCertificate(csrPem: string, nodeId: string): Promise<string> {
    return signCsr({
      caCertPem: this.ca.certPem,
      caKeyPem: this.ca.keyPem,
      csrPem,
      subjectCommonName: nodeId,
      validityDays: this.options.clientCertValidityDays ?? 30,
      usage: 'client',
      ...(this.options.issueAt ? { now: this.options.issueAt() } : {}),
    });
  }

  private handleConnect(call: grpc.ServerDuplexStream<AgentMessage, ControlMessage>): void {
    const peer = call.getAuthContext().sslPeerCertificate;
    if (!this.accepting) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'not accepting streams' });
      return;
    }
    if (!peer?.raw) {
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'a client certificate is required' });
      return;
    }
    const cert = new X509Certificate(peer.raw);
    const ca = new X509Certificate(this.ca.certPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'certificate not issued by our CA' });
      return;
    }
    const nodeId = peer.subject.CN as string;
    const stream = new FakeStream(call, this, nodeId, cert.fingerprint256);
    this.streams.push(stream);
    call.on('data', (message: AgentMessage) => {
      stream.record(message);
      const payload = message.message;
      if (payload?.$case === 'hello') {
        stream.send({
          $case: 'welcome',
          value: {
            nodeId,
            heartbeatIntervalMs: 200,
            maxConcurrentCommands: 4,
            serverTimeMs: Date.now(),
            ...this.options.welcome,
          },
        });
        if (this.options.autoAckResults ?? true) {
          for (const result of payload.value.unacknowledgedResults) {
            stream.send({ $case: 'resultAck', value: { commandId: result.commandId } });
          }
        }
      } else if (payload?.$case === 'commandResult' && (this.options.autoAckResults ?? true)) {
        stream.send({ $case: 'resultAck', value: { commandId: payload.value.commandId } });
      } else if (payload?.$case === 'renewCertificateRequest') {
        this.issueClientCertificate(payload.value.csrPem, nodeId).then(
          (certificatePem) => stream.send({ $case: 'renewCertificateResponse', value: { certificatePem } }),
          () => stream.drop(grpc.status.INVALID_ARGUMENT, 'bad CSR'),
        );
      }
    });
    const onEnd = (): void => {
      if (!stream.ended) {
        stream.ended = true;
        call.end();
      }
      this.notify();
    };
    call.on('end', onEnd);
    call.on('error', () => {
      stream.ended = true;
      this.notify();
    });
    call.on('cancelled', () => {
      stream.ended = true;
      this.notify();
    });
    this.notify();
  }
}
