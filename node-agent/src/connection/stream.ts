// The session loop: one Connect stream at a time, reopened forever.
//
//   load identity ─▶ new mTLS channel ─▶ Connect ─▶ Hello ─▶ Welcome ─▶ heartbeats, commands...
//        ▲                                                                        │ stream ends
//        └──────────── wait: capped exponential backoff, full jitter ◀────────────┘
//
// - grpc-js only reconnects channels; a Connect call that fails stays failed. This loop opens a new
//   channel and a new stream after every end (clean end, error status, or a keepalive timeout that
//   killed the connection), so a silently dead stream is replaced within keepalive time + timeout.
// - The backoff starts over after a stream that stayed up at least `stableAfterMs` past Welcome; a
//   server that accepts and drops at once is retried ever more slowly, never in a tight loop.
// - Each connection loads the identity from disk, so a renewed certificate is used at the next one.
// - Results are never lost to a dead stream: they are in the journal and resent in every Hello
//   until ResultAck. Messages the executor emits between Hello and Welcome wait for Welcome.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import {
  type AgentMessage,
  CommandResult,
  type ControlMessage,
  type Heartbeat,
  type Welcome,
} from '@wpcp/shared/agent-protocol';
import type { Logger } from 'pino';
import type { CommandExecutor, Outbox, OutgoingMessage } from '../commands/executor.ts';
import { type Identity, loadIdentity } from '../state/identity.ts';
import { parseServerAddress } from './address.ts';
import { Backoff } from './backoff.ts';
import { createAgentClient, describeGrpcError, grpcCode } from './channel.ts';
import { type HeartbeatTimer, startHeartbeats } from './heartbeat.ts';
import { CertificateRenewal } from './renewal.ts';

/** Queued droppable messages (logs, progress, heartbeats) above which new ones are dropped. */
const MAX_BUFFERED_DROPPABLE = 1_000;
/**
 * Encoded size of the results carried in Hello; the rest follow as CommandResult messages after
 * Welcome. Keeps Hello well under gRPC's default 4 MiB message limit however large the backlog.
 */
const MAX_HELLO_RESULTS_BYTES = 1_000_000;
const MIN_HEARTBEAT_MS = 100;
const MAX_HEARTBEAT_MS = 600_000;
const MAX_CONCURRENCY = 64;

/** What the session needs of the executor (benchmarks can pass a lighter one). */
export type SessionExecutor = Pick<
  CommandExecutor,
  | 'attach'
  | 'detach'
  | 'setClockSkew'
  | 'setMaxConcurrent'
  | 'activeIds'
  | 'unacknowledgedResults'
  | 'receive'
  | 'cancel'
  | 'acknowledge'
>;

export interface SessionOptions {
  stateDir: string;
  /** `host:port` of the control plane. */
  server: string;
  executor: SessionExecutor;
  logger: Logger;
  /** Used until Welcome says otherwise. */
  heartbeatIntervalMs: number;
  maxConcurrentCommands: number;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  hostname: string;
  agentVersion: string;
  capabilities: string[];
  /** Heartbeat figures (running command ids and time are filled in here). */
  collectHeartbeat: () => Promise<Heartbeat>;
  /** A stream that lived this long after Welcome resets the backoff (default 10 s). */
  stableAfterMs?: number;
  /** A stream without Welcome after this long is abandoned (default 15 s). */
  welcomeTimeoutMs?: number;
  renewAtFraction?: number;
  renewRetryIntervalMs?: number;
  /** Random source of the backoff jitter (tests). */
  random?: () => number;
  /** Extra grpc-js channel options (tests). */
  channelOptions?: grpc.ChannelOptions;
  /** Where each connection gets its identity (default: loadIdentity(stateDir); benchmarks share one). */
  loadIdentity?: () => Promise<Identity>;
}

export interface StreamEnd {
  welcomed: boolean;
  /** How long the stream lived after Welcome, in ms (0 without Welcome). */
  welcomedForMs: number;
  code?: number;
  reason: string;
}

export interface AgentSessionEvents {
  welcome: [Welcome];
  disconnected: [StreamEnd & { nextAttemptInMs: number }];
  renewed: [{ notAfter: Date }];
}

type StreamCall = grpc.ClientDuplexStream<AgentMessage, ControlMessage>;

/** The oldest results that fit in Hello, and the rest. */
export function splitResults(
  results: CommandResult[],
  maxBytes = MAX_HELLO_RESULTS_BYTES,
): { inHello: CommandResult[]; afterWelcome: CommandResult[] } {
  let bytes = 0;
  let count = 0;
  for (const result of results) {
    bytes += CommandResult.encode(result).finish().length + 8;
    if (bytes > maxBytes) break;
    count += 1;
  }
  return { inHello: results.slice(0, count), afterWelcome: results.slice(count) };
}

/** Write side of one stream: buffers non-droppable messages until Welcome, drops when dead. */
class StreamOutbox implements Outbox {
  readonly #call: StreamCall;
  readonly #pending: OutgoingMessage[] = [];
  #open = true;
  #welcomed = false;
  dropped = 0;

  constructor(call: StreamCall) {
    this.#call = call;
  }

  send(message: OutgoingMessage, droppable: boolean): void {
    if (!this.#open) return;
    if (!this.#welcomed) {
      if (!droppable) this.#pending.push(message);
      return;
    }
    if (droppable && this.#call.writableLength > MAX_BUFFERED_DROPPABLE) {
      this.dropped += 1;
      return;
    }
    this.write(message);
  }

  /** Write now, whatever the Welcome state (Hello). */
  write(message: OutgoingMessage): void {
    if (!this.#open) return;
    try {
      this.#call.write({ message });
    } catch {
      // The call already ended; the end handler takes care of the rest.
    }
  }

  welcome(): void {
    this.#welcomed = true;
    for (const message of this.#pending.splice(0)) this.write(message);
  }

  close(): void {
    this.#open = false;
    this.#pending.length = 0;
  }
}

export class AgentSession extends EventEmitter<AgentSessionEvents> {
  readonly #options: SessionOptions;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #renewal: CertificateRenewal;
  #stopped = false;
  #wake: (() => void) | undefined;
  #endCurrent: ((reason: string) => void) | undefined;
  #running: Promise<void> | undefined;
  #connected = false;

  constructor(options: SessionOptions) {
    super();
    this.#options = options;
    this.#log = options.logger;
    parseServerAddress(options.server); // fail fast on a bad address
    this.#backoff = new Backoff({
      initialMs: options.reconnectInitialMs,
      maxMs: options.reconnectMaxMs,
      ...(options.random ? { random: options.random } : {}),
    });
    this.#renewal = new CertificateRenewal({
      stateDir: options.stateDir,
      logger: options.logger,
      ...(options.renewAtFraction === undefined ? {} : { renewAtFraction: options.renewAtFraction }),
      ...(options.renewRetryIntervalMs === undefined
        ? {}
        : { retryIntervalMs: options.renewRetryIntervalMs }),
    });
  }

  /** True between Welcome and the end of the stream. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Start the loop (idempotent). The promise settles after stop(). */
  start(): Promise<void> {
    this.#running ??= this.#loop();
    return this.#running;
  }

  /** End the current stream (half-close, then cancel) and stop reconnecting. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#endCurrent?.('agent stopping');
    this.#wake?.();
    await this.#running;
  }

  async #loop(): Promise<void> {
    const address = parseServerAddress(this.#options.server);
    while (!this.#stopped) {
      let end: StreamEnd;
      try {
        const identity = await (this.#options.loadIdentity?.() ?? loadIdentity(this.#options.stateDir));
        end = await this.#runStream(address, identity);
      } catch (err) {
        this.#log.error({ err }, 'cannot open a stream');
        end = { welcomed: false, welcomedForMs: 0, reason: (err as Error).message };
      }
      if (this.#stopped) break;
      if (end.welcomed && end.welcomedForMs >= (this.#options.stableAfterMs ?? 10_000)) this.#backoff.reset();
      const delay = this.#backoff.next();
      const level = end.welcomed ? 'warn' : this.#backoff.attempt > 3 ? 'error' : 'warn';
      this.#log[level](
        { reason: end.reason, code: end.code, nextAttemptInMs: delay, attempt: this.#backoff.attempt },
        end.welcomed
          ? 'stream to the control plane ended; reconnecting'
          : 'cannot connect to the control plane',
      );
      this.emit('disconnected', { ...end, nextAttemptInMs: delay });
      await this.#sleep(delay);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    }).finally(() => {
      this.#wake = undefined;
    });
  }

  #runStream(address: ReturnType<typeof parseServerAddress>, identity: Identity): Promise<StreamEnd> {
    const options = this.#options;
    const executor = options.executor;
    const nodeId = identity.state.nodeId;
    if (identity.notAfter.getTime() <= Date.now()) {
      this.#log.error(
        { notAfter: identity.notAfter.toISOString() },
        'the client certificate has expired: the control plane will refuse it; enroll the node again with a new join token',
      );
    }
    const client = createAgentClient({
      address,
      caPem: identity.caPem,
      keyPem: identity.keyPem,
      certPem: identity.certPem,
      keepaliveTimeMs: options.keepaliveTimeMs,
      keepaliveTimeoutMs: options.keepaliveTimeoutMs,
      ...(options.channelOptions ? { channelOptions: options.channelOptions } : {}),
    });
    const call: StreamCall = client.connect();
    const outbox = new StreamOutbox(call);
    let lifetime = { notBefore: identity.notBefore, notAfter: identity.notAfter };
    let welcomedAt: number | undefined;
    let heartbeats: HeartbeatTimer | undefined;

    return new Promise<StreamEnd>((resolve) => {
      let finished = false;
      const welcomeTimer = setTimeout(
        () => finish(`no Welcome within ${options.welcomeTimeoutMs ?? 15_000} ms`),
        options.welcomeTimeoutMs ?? 15_000,
      );

      const finish = (reason: string, code?: number): void => {
        if (finished) return;
        finished = true;
        clearTimeout(welcomeTimer);
        heartbeats?.stop();
        this.#connected = false;
        this.#endCurrent = undefined;
        executor.detach(outbox);
        outbox.close();
        if (outbox.dropped > 0)
          this.#log.warn({ dropped: outbox.dropped }, 'dropped log lines under back-pressure');
        call.removeAllListeners('data');
        call.on('error', () => {}); // late errors of a call we gave up on
        call.cancel();
        client.close();
        resolve({
          welcomed: welcomedAt !== undefined,
          welcomedForMs: welcomedAt === undefined ? 0 : performance.now() - welcomedAt,
          reason,
          ...(code === undefined ? {} : { code }),
        });
      };

      this.#endCurrent = (reason) => {
        // Half-close first so the server sees a clean end, then give up on the call.
        try {
          call.end();
        } catch {
          // already ended
        }
        setTimeout(() => finish(reason), 200).unref();
      };

      const maybeRenew = (): void => {
        this.#renewal.maybeCreateRequest(lifetime).then(
          (request) => {
            if (request && !finished) outbox.write({ $case: 'renewCertificateRequest', value: request });
          },
          (err: unknown) => this.#log.error({ err }, 'cannot create a certificate renewal request'),
        );
      };

      const onWelcome = (welcome: Welcome): void => {
        if (welcomedAt !== undefined) {
          this.#log.warn('second Welcome on one stream; ignored');
          return;
        }
        if (welcome.nodeId && welcome.nodeId !== nodeId) {
          this.#log.error(
            { welcomeNodeId: welcome.nodeId, nodeId },
            'the control plane welcomed another node id than the one in our certificate; closing the stream',
          );
          finish('node id mismatch in Welcome');
          return;
        }
        clearTimeout(welcomeTimer);
        welcomedAt = performance.now();
        this.#connected = true;
        const intervalMs =
          welcome.heartbeatIntervalMs > 0
            ? Math.min(MAX_HEARTBEAT_MS, Math.max(MIN_HEARTBEAT_MS, welcome.heartbeatIntervalMs))
            : options.heartbeatIntervalMs;
        const maxConcurrent =
          welcome.maxConcurrentCommands > 0
            ? Math.min(MAX_CONCURRENCY, welcome.maxConcurrentCommands)
            : options.maxConcurrentCommands;
        executor.setMaxConcurrent(maxConcurrent);
        const skewMs = welcome.serverTimeMs > 0 ? welcome.serverTimeMs - Date.now() : 0;
        executor.setClockSkew(skewMs);
        if (Math.abs(skewMs) > 5_000) {
          this.#log.warn({ skewMs }, 'the node clock differs from the control plane clock by more than 5 s');
        }
        outbox.welcome();
        this.#log.info(
          { nodeId, heartbeatIntervalMs: intervalMs, maxConcurrentCommands: maxConcurrent, skewMs },
          'connected to the control plane',
        );
        heartbeats = startHeartbeats({
          intervalMs,
          collect: async () => ({
            ...(await options.collectHeartbeat()),
            runningCommandIds: executor.activeIds(),
            sentAtUnixMs: Date.now(),
          }),
          send: (heartbeat) => outbox.send({ $case: 'heartbeat', value: heartbeat }, true),
          onTick: maybeRenew,
          onError: (err) => this.#log.warn({ err }, 'cannot collect heartbeat figures'),
        });
        this.emit('welcome', welcome);
      };

      const onMessage = (message: ControlMessage): void => {
        const payload = message.message;
        if (payload === undefined) {
          this.#log.debug('control message with no known case (newer control plane); ignored');
          return;
        }
        switch (payload.$case) {
          case 'welcome':
            onWelcome(payload.value);
            return;
          case 'command':
            executor
              .receive(payload.value)
              .catch((err: unknown) =>
                this.#log.error({ err, commandId: payload.value.id }, 'cannot handle a command'),
              );
            return;
          case 'cancel':
            executor.cancel(payload.value.commandId);
            return;
          case 'resultAck':
            void executor.acknowledge(payload.value.commandId);
            return;
          case 'renewCertificateResponse':
            this.#renewal.complete(payload.value.certificatePem, { caPem: identity.caPem, nodeId }).then(
              (renewed) => {
                if (!renewed) return;
                lifetime = renewed;
                this.emit('renewed', { notAfter: renewed.notAfter });
              },
              (err: unknown) => this.#log.error({ err }, 'cannot store the renewed certificate'),
            );
            return;
          default: {
            const unhandled: never = payload;
            void unhandled;
          }
        }
      };

      call.on('data', onMessage);
      call.on('error', (err) => finish(describeGrpcError(err), grpcCode(err)));
      call.on('end', () => finish('the control plane ended the stream', grpc.status.OK));
      call.on('status', (status) => {
        if (status.code !== grpc.status.OK) finish(describeGrpcError(status), status.code);
      });

      // Hello first; the executor's messages then flow through the outbox (held until Welcome).
      const { inHello, afterWelcome } = splitResults(executor.unacknowledgedResults());
      outbox.write({
        $case: 'hello',
        value: {
          agentVersion: options.agentVersion,
          hostname: options.hostname,
          capabilities: options.capabilities,
          unacknowledgedResults: inHello,
          runningCommandIds: executor.activeIds(),
        },
      });
      for (const result of afterWelcome) outbox.send({ $case: 'commandResult', value: result }, false);
      executor.attach(outbox);
      if (this.#stopped) this.#endCurrent('agent stopping');
    });
  }
}
