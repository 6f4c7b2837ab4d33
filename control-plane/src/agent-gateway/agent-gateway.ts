import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  type AgentMessage,
  AgentServiceService,
  type ControlMessage,
  type EnrollRequest,
  type EnrollResponse,
} from '@wpcp/shared/agent-protocol';
import { certificateInfo, InvalidCsrError, signCsr } from '@wpcp/shared/pki';
import type { Logger } from 'pino';
import type { Db } from '../database/database.ts';
import { CHANNELS, type Notifier, notify } from '../database/notifier.ts';
import { hashJoinToken, looksLikeJoinToken } from '../nodes/join-token.ts';
import type { AgentCa } from './agent-ca.ts';
import { AgentSession, clean, type SessionSettings } from './agent-session.ts';
import * as cq from './commands.queries.ts';
import * as gq from './gateway.queries.ts';
import { HeartbeatWriter } from './heartbeats.ts';
import { StreamRegistry } from './stream-registry.ts';
import {
  issueServerIdentity,
  type ServerIdentity,
  StaticCertificateProvider,
  verifyPeerCertificate,
} from './tls.ts';

export interface GatewaySettings extends SessionSettings {
  host: string;
  port: number;
  publicNames: { dnsNames: string[]; ipAddresses: string[] };
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
  offlineAfterMs: number;
  heartbeatFlushMs: number;
  pollMs: number;
  resultGraceMs: number;
}

/**
 * Keepalive (architecture section 8). Agents ping every 10 s, also between calls; the server
 * pings its side every 30 s and drops a connection that does not answer within 10 s. Connections
 * are recycled after `maxConnectionAgeMs` (plus grpc-js's 10% jitter) so agents spread over the
 * replicas again; the grace lets a busy stream finish before it is cut.
 */
// grpc-js 1.14 servers enforce no ping policy (no too_many_pings GOAWAY): the two client-ping
// options below are set for servers that do, and to state the contract with agents.
const SERVER_KEEPALIVE_MS = 30_000;
const SERVER_KEEPALIVE_TIMEOUT_MS = 10_000;
const MIN_CLIENT_PING_INTERVAL_MS = 5_000;
const SERVER_CERT_CHECK_MS = 60 * 60 * 1000;
const SHUTDOWN_TIMEOUT_MS = 5_000;

/**
 * The gRPC endpoint agents talk to: `Enroll` (join token + CSR → certificate) and `Connect` (the
 * node's one long-lived stream), both on one TLS port. The client certificate is requested but
 * not required by TLS, so enrollment works without one; `Connect` checks it itself.
 */
export class AgentGateway {
  readonly replicaId = randomUUID();
  readonly registry = new StreamRegistry<AgentSession>();
  readonly heartbeats: HeartbeatWriter;
  readonly #db: Db;
  readonly #ca: AgentCa;
  readonly #notifier: Notifier;
  readonly #logger: Logger;
  readonly #settings: GatewaySettings;
  readonly #provider = new StaticCertificateProvider();
  readonly #sessions = new Set<AgentSession>();
  readonly #unsubscribe: (() => void)[] = [];
  #server: grpc.Server | undefined;
  #port = 0;
  #identity: ServerIdentity | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #certTimer: NodeJS.Timeout | undefined;
  #polling = false;

  constructor(deps: { db: Db; ca: AgentCa; notifier: Notifier; logger: Logger; settings: GatewaySettings }) {
    this.#db = deps.db;
    this.#ca = deps.ca;
    this.#notifier = deps.notifier;
    this.#logger = deps.logger.child({ component: 'agent-gateway' });
    this.#settings = deps.settings;
    this.heartbeats = new HeartbeatWriter({
      db: deps.db,
      logger: this.#logger,
      flushMs: deps.settings.heartbeatFlushMs,
      sweepMs: deps.settings.heartbeatIntervalMs,
      offlineAfterMs: deps.settings.offlineAfterMs,
    });
  }

  /** The port the listener is bound to (the configured one, or the one the OS chose for 0). */
  get port(): number {
    return this.#port;
  }

  get serverCertificatePem(): string | undefined {
    return this.#identity?.chainPem;
  }

  async start(): Promise<void> {
    this.#identity = await issueServerIdentity(this.#ca, this.#settings.publicNames);
    this.#provider.setCa(this.#ca.certPem);
    this.#provider.setIdentity(this.#identity.chainPem, this.#identity.keyPem);

    const server = new grpc.Server({
      'grpc.keepalive_time_ms': SERVER_KEEPALIVE_MS,
      'grpc.keepalive_timeout_ms': SERVER_KEEPALIVE_TIMEOUT_MS,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': MIN_CLIENT_PING_INTERVAL_MS,
      'grpc.max_connection_age_ms': this.#settings.maxConnectionAgeMs,
      'grpc.max_connection_age_grace_ms': this.#settings.maxConnectionAgeGraceMs,
      'grpc.enable_channelz': 0,
    });
    server.addService(AgentServiceService, {
      enroll: (
        call: grpc.ServerUnaryCall<EnrollRequest, EnrollResponse>,
        callback: grpc.sendUnaryData<EnrollResponse>,
      ) => void this.#enroll(call, callback),
      connect: (call: grpc.ServerDuplexStream<AgentMessage, ControlMessage>) => this.#connect(call),
    });
    // One provider serves both roles (grpc-js's typings and implementation disagree on which
    // argument is which). `false`: a client certificate is requested, not required by TLS.
    const credentials = grpc.experimental.createCertificateProviderServerCredentials(
      this.#provider,
      this.#provider,
      false,
    );
    const host = this.#settings.host.includes(':') ? `[${this.#settings.host}]` : this.#settings.host;
    this.#port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:${this.#settings.port}`, credentials, (error, port) =>
        error
          ? reject(
              new Error(
                `cannot listen for agents on ${host}:${this.#settings.port} (WPCP_GRPC_HOST, WPCP_GRPC_PORT): ${error.message}`,
                { cause: error },
              ),
            )
          : resolve(port),
      ),
    );
    this.#server = server;

    this.#unsubscribe.push(
      this.#notifier.on(CHANNELS.agentCommands, (nodeId) => this.registry.get(nodeId)?.requestDelivery()),
      this.#notifier.on(CHANNELS.nodeDisabled, (nodeId) =>
        this.registry.get(nodeId)?.close(grpc.status.PERMISSION_DENIED, 'the node was disabled'),
      ),
      this.#notifier.onReconnect(() => void this.#poll()),
    );
    this.heartbeats.start();
    this.#pollTimer = setInterval(() => void this.#poll(), this.#settings.pollMs);
    this.#pollTimer.unref();
    this.#certTimer = setInterval(() => void this.#renewServerCertificate(), SERVER_CERT_CHECK_MS);
    this.#certTimer.unref();
    this.#logger.info(
      { host: this.#settings.host, port: this.#port, names: this.#settings.publicNames },
      'agent gateway listening',
    );
  }

  /** Hangs up every stream (agents reconnect elsewhere), writes held heartbeats, stops listening. */
  async stop(): Promise<void> {
    clearInterval(this.#pollTimer);
    clearInterval(this.#certTimer);
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.registry.closeAll(grpc.status.UNAVAILABLE, 'the control plane is shutting down');
    for (const session of this.#sessions)
      session.close(grpc.status.UNAVAILABLE, 'the control plane is shutting down');
    await withTimeout(Promise.all([...this.#sessions].map((s) => s.done)), SHUTDOWN_TIMEOUT_MS);
    await this.heartbeats.stop();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      const stopped = await withTimeout(
        new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true))),
        SHUTDOWN_TIMEOUT_MS,
      );
      if (!stopped) server.forceShutdown();
    }
  }

  #connect(call: grpc.ServerDuplexStream<AgentMessage, ControlMessage>): void {
    const identity = verifyPeerCertificate(call.getAuthContext().sslPeerCertificate, this.#ca);
    if (!identity.ok) {
      this.#logger.warn({ peer: call.getPeer(), reason: identity.reason }, 'node stream refused');
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: identity.reason });
      return;
    }
    const session = new AgentSession(call, identity, {
      db: this.#db,
      ca: this.#ca,
      logger: this.#logger,
      heartbeats: this.heartbeats,
      registry: this.registry,
      replicaId: this.replicaId,
      settings: this.#settings,
    });
    this.#sessions.add(session);
    void session.done.then(() => this.#sessions.delete(session));
    session.start();
  }

  /**
   * Join token + CSR → the node's certificate. The token is checked first (without consuming it),
   * then the CSR signed, then the token consumed and the certificate recorded in one conditional
   * UPDATE: a bad CSR leaves the token usable, and a token can never enroll twice.
   */
  async #enroll(
    call: grpc.ServerUnaryCall<EnrollRequest, EnrollResponse>,
    callback: grpc.sendUnaryData<EnrollResponse>,
  ): Promise<void> {
    const peer = call.getPeer();
    const refuse = (code: grpc.status, details: string) => {
      this.#logger.warn({ peer, reason: details }, 'enrollment refused');
      callback({ code, details });
    };
    const invalidToken = 'the join token is unknown, expired or already used';
    try {
      const { joinToken, csrPem, agentVersion, hostname } = call.request;
      if (!looksLikeJoinToken(joinToken)) return refuse(grpc.status.UNAUTHENTICATED, invalidToken);
      const tokenHash = hashJoinToken(joinToken);
      const node = await gq.findNodeByJoinToken(this.#db, tokenHash);
      if (!node?.token_usable) return refuse(grpc.status.UNAUTHENTICATED, invalidToken);
      if (node.status === 'disabled') return refuse(grpc.status.PERMISSION_DENIED, 'the node is disabled');
      let certificatePem: string;
      try {
        certificatePem = await signCsr({
          caCertPem: this.#ca.certPem,
          caKeyPem: this.#ca.keyPem,
          csrPem: csrPem.slice(0, 16_384),
          subjectCommonName: node.id,
          validityDays: this.#settings.certificateValidityDays,
          usage: 'client',
        });
      } catch (error) {
        if (error instanceof InvalidCsrError) return refuse(grpc.status.INVALID_ARGUMENT, error.message);
        throw error;
      }
      const info = certificateInfo(certificatePem);
      const consumed = await gq.consumeJoinToken(this.#db, {
        nodeId: node.id,
        tokenHash,
        serial: info.serialHex,
        fingerprint: info.fingerprintSha256,
        notAfter: info.notAfter,
        agentVersion: clean(agentVersion, 64),
        hostname: clean(hostname, 253),
      });
      if (!consumed) return refuse(grpc.status.UNAUTHENTICATED, invalidToken);
      this.#logger.info(
        {
          node_id: node.id,
          peer,
          certificate_serial: info.serialHex,
          not_after: info.notAfter.toISOString(),
        },
        'node enrolled',
      );
      callback(null, { certificatePem, caCertificatePem: this.#ca.certPem, nodeId: node.id });
    } catch (error) {
      this.#logger.error({ err: error, peer }, 'enrollment failed');
      callback({
        code: grpc.status.UNAVAILABLE,
        details: 'the control plane could not enroll the node; try again',
      });
    }
  }

  /**
   * The polling floor under NOTIFY: work for the nodes held here, nodes disabled meanwhile, and
   * pending commands that outlived their deadline with nobody waiting for them.
   */
  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      if (this.registry.size > 0) {
        for (const nodeId of await cq.nodesWithWork(this.#db)) this.registry.get(nodeId)?.requestDelivery();
        for (const { id } of await gq.disabledAmong(this.#db, this.registry.nodeIds())) {
          this.registry.get(id)?.close(grpc.status.PERMISSION_DENIED, 'the node was disabled');
        }
      }
      for (const { id } of await cq.expireOverdueCommands(this.#db, this.#settings.resultGraceMs)) {
        await notify(this.#db, CHANNELS.commandResults, id);
      }
    } catch (error) {
      this.#logger.warn({ err: error }, 'agent gateway poll failed');
    } finally {
      this.#polling = false;
    }
  }

  /** Issues a new server certificate at two-thirds of the current one's life; agents trust the CA. */
  async #renewServerCertificate(): Promise<void> {
    const current = this.#identity;
    if (!current) return;
    const renewAt =
      current.notBefore.getTime() + ((current.notAfter.getTime() - current.notBefore.getTime()) * 2) / 3;
    if (Date.now() < renewAt) return;
    try {
      const identity = await issueServerIdentity(this.#ca, this.#settings.publicNames);
      this.#identity = identity;
      this.#provider.setIdentity(identity.chainPem, identity.keyPem);
      this.#logger.info({ not_after: identity.notAfter.toISOString() }, 'gRPC server certificate renewed');
    } catch (error) {
      this.#logger.error({ err: error }, 'could not renew the gRPC server certificate');
    }
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
