import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  type AgentMessage,
  Cancel,
  Command,
  type CommandProgress,
  type CommandResult,
  CommandStatus,
  type ControlMessage,
  type Hello,
  LogStream,
  RenewCertificateResponse,
  ResultAck,
  Welcome,
} from '@wpcp/shared/agent-protocol';
import { certificateInfo, InvalidCsrError, signCsr } from '@wpcp/shared/pki';
import type { Logger } from 'pino';
import type { Db } from '../database/database.ts';
import { CHANNELS, notify } from '../database/notifier.ts';
import type { AgentCommandRow, JobLogStream } from '../database/schema.ts';
import type { AgentCa } from './agent-ca.ts';
import * as cq from './commands.queries.ts';
import * as gq from './gateway.queries.ts';
import type { HeartbeatWriter } from './heartbeats.ts';
import { appendJobLogs, type LogLine, redactLine } from './job-logs.ts';
import type { RegisteredStream, StreamRegistry } from './stream-registry.ts';

export type AgentCall = grpc.ServerDuplexStream<AgentMessage, ControlMessage>;

export interface SessionSettings {
  heartbeatIntervalMs: number;
  maxConcurrentCommands: number;
  certificateValidityDays: number;
  jobLogMaxLines: number;
}

export interface SessionDeps {
  db: Db;
  ca: AgentCa;
  logger: Logger;
  heartbeats: HeartbeatWriter;
  registry: StreamRegistry<AgentSession>;
  replicaId: string;
  settings: SessionSettings;
}

const HELLO_TIMEOUT_MS = 15_000;
const LOG_FLUSH_MS = 250;
const LOG_FLUSH_LINES = 200;
const MAX_ERROR_MESSAGE = 2_000;

/**
 * One Connect stream of one node, from the certificate check to the last message. Messages are
 * handled strictly in order (a chain of promises), so a result is never persisted before the
 * log lines that came ahead of it, and the Hello is fully processed before anything else.
 */
export class AgentSession implements RegisteredStream {
  readonly sessionId = randomUUID();
  readonly nodeId: string;
  /** Resolves once the stream is gone and its row says so. */
  readonly done: Promise<void>;
  readonly #serial: string;
  readonly #call: AgentCall;
  readonly #deps: SessionDeps;
  readonly #log: Logger;
  #state: 'authorizing' | 'awaiting-hello' | 'open' | 'closed' = 'authorizing';
  #chain: Promise<void> = Promise.resolve();
  #deliveryQueued = false;
  readonly #cancelsSent = new Set<string>();
  /** command id → its job id (null: a synchronous command, no job log), or 'foreign'. */
  readonly #commandJobs = new Map<string, string | null | 'foreign'>();
  readonly #lastProgress = new Map<string, string>();
  #logs: (LogLine & { jobId: string })[] = [];
  #logTimer: NodeJS.Timeout | undefined;
  #helloTimer: NodeJS.Timeout | undefined;
  #resolveDone: () => void = () => {};

  constructor(call: AgentCall, identity: { nodeId: string; serial: string }, deps: SessionDeps) {
    this.#call = call;
    this.nodeId = identity.nodeId;
    this.#serial = identity.serial;
    this.#deps = deps;
    this.#log = deps.logger.child({ node_id: this.nodeId, session_id: this.sessionId });
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  start(): void {
    this.#enqueue(() => this.#authorize());
    this.#call.on('data', (message: AgentMessage) => this.#enqueue(() => this.#handle(message)));
    // The agent half-closed: it is going away on purpose; end our side too.
    this.#call.on('end', () => this.close(grpc.status.OK, 'stream closed by the node'));
    this.#call.on('cancelled', () => this.#gone('cancelled'));
    this.#call.on('error', () => this.#gone('error'));
    this.#call.on('close', () => this.#gone('closed'));
    this.#helloTimer = setTimeout(() => {
      if (this.#state !== 'open')
        this.close(grpc.status.INVALID_ARGUMENT, 'expected Hello as the first message');
    }, HELLO_TIMEOUT_MS);
    this.#helloTimer.unref();
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /** Ends the stream with a status (OK ends it normally) and forgets it. Safe to call twice. */
  close(code: grpc.status, reason: string): void {
    if (this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    if (code !== grpc.status.OK)
      this.#log.info({ grpc_code: grpc.status[code], reason }, 'closing node stream');
    const call = this.#call as AgentCall & { cancelled?: boolean };
    if (!call.destroyed && !call.cancelled && !call.writableEnded) {
      if (code === grpc.status.OK) call.end();
      else call.emit('error', Object.assign(new Error(reason), { code, details: reason }));
    }
    void this.#finish(wasOpen);
  }

  /** Asks the session to deliver pending commands (and cancels); coalesces bursts of requests. */
  requestDelivery(): void {
    if (this.#deliveryQueued || this.#state !== 'open') return;
    this.#deliveryQueued = true;
    this.#enqueue(async () => {
      this.#deliveryQueued = false;
      await this.#deliver(new Set(), false);
    });
  }

  #enqueue(task: () => Promise<void> | void): void {
    this.#chain = this.#chain.then(async () => {
      if (this.#state === 'closed') return;
      try {
        await task();
      } catch (error) {
        this.#log.error({ err: error }, 'node stream failed');
        this.close(grpc.status.UNAVAILABLE, 'the control plane could not process a message; reconnect');
      }
    });
  }

  #gone(why: string): void {
    if (this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    this.#log.debug({ why }, 'node stream ended');
    void this.#finish(wasOpen);
  }

  async #finish(wasOpen: boolean): Promise<void> {
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#logTimer);
    try {
      await this.#chain;
      await this.#flushLogs();
      this.#deps.registry.unregister(this);
      if (wasOpen) {
        await gq.endStream(this.#deps.db, this.nodeId, this.sessionId);
        this.#log.info('node disconnected');
      }
    } catch (error) {
      this.#log.warn({ err: error }, 'could not record the end of a node stream');
    } finally {
      this.#resolveDone();
    }
  }

  #send(message: ControlMessage): void {
    if (this.#state === 'closed') return;
    this.#call.write(message);
  }

  /** The certificate was verified by the gateway; the node must exist, be enabled and use a current certificate. */
  async #authorize(): Promise<void> {
    const node = await gq.findNodeIdentity(this.#deps.db, this.nodeId);
    if (!node) {
      this.close(grpc.status.UNAUTHENTICATED, 'unknown node');
    } else if (node.status === 'disabled') {
      this.close(grpc.status.PERMISSION_DENIED, 'the node is disabled');
    } else if (
      node.certificate_serial !== this.#serial &&
      node.previous_certificate_serial !== this.#serial
    ) {
      this.close(grpc.status.UNAUTHENTICATED, 'the client certificate is not the node’s current certificate');
    } else {
      this.#state = 'awaiting-hello';
    }
  }

  async #handle(message: AgentMessage): Promise<void> {
    const body = message.message;
    if (!body) return; // a case this control plane does not know (a newer agent): ignored
    if (body.$case === 'hello') {
      if (this.#state !== 'awaiting-hello') {
        this.close(grpc.status.INVALID_ARGUMENT, 'Hello must be sent once, first');
        return;
      }
      await this.#open(body.value);
      return;
    }
    if (this.#state !== 'open') {
      this.close(grpc.status.INVALID_ARGUMENT, 'expected Hello as the first message');
      return;
    }
    switch (body.$case) {
      case 'heartbeat':
        this.#deps.heartbeats.record(this.nodeId, body.value);
        return;
      case 'commandAck':
        await cq.markCommandsRunning(this.#deps.db, this.nodeId, [body.value.commandId]);
        return;
      case 'commandProgress':
        await this.#progress(body.value);
        return;
      case 'commandLog':
        await this.#logLine(body.value.commandId, streamName(body.value.stream), body.value.line);
        return;
      case 'commandResult':
        await this.#result(body.value);
        return;
      case 'renewCertificateRequest':
        await this.#renew(body.value.csrPem);
        return;
    }
  }

  async #open(hello: Hello): Promise<void> {
    clearTimeout(this.#helloTimer);
    this.#deps.registry.register(this, grpc.status.ABORTED);
    const started = await gq.startStream(this.#deps.db, {
      nodeId: this.nodeId,
      sessionId: this.sessionId,
      replicaId: this.#deps.replicaId,
      serial: this.#serial,
      agentVersion: clean(hello.agentVersion, 64),
      hostname: clean(hello.hostname, 253),
    });
    if (!started) {
      this.close(grpc.status.PERMISSION_DENIED, 'the node is disabled');
      return;
    }
    // The stream may have ended while the row was written; #finish saw it as never open, so the
    // stream record must be cleared here, or the node would look connected with no stream.
    if ((this.#state as string) === 'closed') {
      await gq.endStream(this.#deps.db, this.nodeId, this.sessionId);
      return;
    }
    this.#state = 'open';
    this.#send({
      message: {
        $case: 'welcome',
        value: Welcome.fromPartial({
          nodeId: this.nodeId,
          heartbeatIntervalMs: this.#deps.settings.heartbeatIntervalMs,
          maxConcurrentCommands: this.#deps.settings.maxConcurrentCommands,
          serverTimeMs: Date.now(),
        }),
      },
    });
    this.#log.info(
      { agent_version: hello.agentVersion, capabilities: hello.capabilities.slice(0, 50) },
      'node connected',
    );
    for (const result of hello.unacknowledgedResults) await this.#result(result);
    const running = new Set(hello.runningCommandIds);
    await cq.markCommandsRunning(this.#deps.db, this.nodeId, [...running]);
    await this.#deliver(running, true);
  }

  /**
   * Sends the node its work: on a new stream, first the commands an earlier stream handed over
   * without a result (the agent answers those from its journal, never running one twice), then
   * the pending ones, claimed as delivered before they are written. Then any cancellations.
   */
  async #deliver(runningOnNode: Set<string>, reconnecting: boolean): Promise<void> {
    const { db } = this.#deps;
    if (reconnecting) {
      for (const row of await cq.unfinishedDeliveredCommands(db, this.nodeId)) {
        if (!runningOnNode.has(row.id)) this.#sendCommand(row);
      }
    }
    for (const row of await cq.claimPendingCommands(db, this.nodeId)) this.#sendCommand(row);
    for (const { id } of await cq.commandsToCancel(db, this.nodeId)) {
      if (this.#cancelsSent.has(id)) continue;
      this.#cancelsSent.add(id);
      this.#send({ message: { $case: 'cancel', value: Cancel.fromPartial({ commandId: id }) } });
      this.#log.info({ command_id: id }, 'cancel sent to the node');
    }
  }

  #sendCommand(row: AgentCommandRow): void {
    this.#commandJobs.set(row.id, row.job_id);
    this.#send({
      message: {
        $case: 'command',
        value: Command.fromPartial({
          id: row.id,
          deadlineUnixMs: row.deadline_at.getTime(),
          environmentKey: row.environment_key ?? '',
          payload: row.payload as Command['payload'],
        }),
      },
    });
    this.#log.debug({ command_id: row.id, type: row.type }, 'command delivered');
  }

  /** The job a command of this node belongs to; 'foreign' if it is not this node's command. */
  async #jobOf(commandId: string): Promise<string | null | 'foreign'> {
    const known = this.#commandJobs.get(commandId);
    if (known !== undefined) return known;
    const owner = await cq.commandOwner(this.#deps.db, commandId);
    const job = !owner || owner.node_id !== this.nodeId ? 'foreign' : owner.job_id;
    this.#commandJobs.set(commandId, job);
    return job;
  }

  async #progress(progress: CommandProgress): Promise<void> {
    const value = {
      phase: clean(progress.step, 100) ?? '',
      percent: Math.min(100, Math.max(0, Math.round(progress.percent))),
      message: redactLine(clean(progress.message, 500) ?? ''),
    };
    const saved = await cq.saveCommandProgress(this.#deps.db, this.nodeId, progress.commandId, value);
    if (!saved?.job_id) return;
    const text = `[${value.percent}%] ${value.phase}${value.message ? `: ${value.message}` : ''}`;
    if (this.#lastProgress.get(progress.commandId) === text) return;
    this.#lastProgress.set(progress.commandId, text);
    await this.#logLine(progress.commandId, 'progress', text);
  }

  async #logLine(commandId: string, stream: JobLogStream, line: string): Promise<void> {
    const jobId = await this.#jobOf(commandId);
    if (jobId === null || jobId === 'foreign') return;
    this.#logs.push({ jobId, commandId, stream, line });
    if (this.#logs.length >= LOG_FLUSH_LINES) await this.#flushLogs();
    else if (!this.#logTimer) {
      this.#logTimer = setTimeout(() => {
        this.#logTimer = undefined;
        this.#enqueue(() => this.#flushLogs());
      }, LOG_FLUSH_MS);
      this.#logTimer.unref();
    }
  }

  async #flushLogs(): Promise<void> {
    clearTimeout(this.#logTimer);
    this.#logTimer = undefined;
    if (this.#logs.length === 0) return;
    const lines = this.#logs;
    this.#logs = [];
    const byJob = new Map<string, LogLine[]>();
    for (const line of lines) byJob.set(line.jobId, [...(byJob.get(line.jobId) ?? []), line]);
    for (const [jobId, jobLines] of byJob) {
      await appendJobLogs(this.#deps.db, jobId, jobLines, this.#deps.settings.jobLogMaxLines);
    }
  }

  /**
   * Persists a result, then acknowledges it (never the other way round, so a result is never
   * lost). A duplicate is acknowledged again; a result naming another node's command is refused.
   */
  async #result(result: CommandResult): Promise<void> {
    const { db } = this.#deps;
    const id = result.commandId;
    await this.#flushLogs();
    const recorded = await db.transaction().execute(async (trx) => {
      const row = await cq.recordCommandResult(trx, this.nodeId, id, toRecord(result));
      if (row) await notify(trx, CHANNELS.commandResults, id);
      return row;
    });
    if (!recorded) {
      const owner = await cq.commandOwner(db, id);
      if (owner && owner.node_id !== this.nodeId) {
        this.#log.warn(
          { command_id: id, owner_node_id: owner.node_id },
          'result refused: not a command of this node',
        );
        return;
      }
      if (!owner)
        this.#log.warn({ command_id: id }, 'result for an unknown command; acknowledged and dropped');
    } else {
      this.#log.info({ command_id: id, status: toRecord(result).status }, 'command result recorded');
    }
    this.#lastProgress.delete(id);
    this.#cancelsSent.delete(id);
    this.#send({ message: { $case: 'resultAck', value: ResultAck.fromPartial({ commandId: id }) } });
  }

  /** A new client certificate for the node of this stream; the CSR's subject is ignored. */
  async #renew(csrPem: string): Promise<void> {
    const { ca, db, settings } = this.#deps;
    let certificatePem: string;
    try {
      certificatePem = await signCsr({
        caCertPem: ca.certPem,
        caKeyPem: ca.keyPem,
        csrPem: csrPem.slice(0, 16_384),
        subjectCommonName: this.nodeId,
        validityDays: settings.certificateValidityDays,
        usage: 'client',
      });
    } catch (error) {
      if (!(error instanceof InvalidCsrError)) throw error;
      this.close(grpc.status.INVALID_ARGUMENT, `certificate renewal refused: ${error.message}`);
      return;
    }
    const info = certificateInfo(certificatePem);
    const recorded = await gq.recordRenewedCertificate(db, {
      nodeId: this.nodeId,
      sessionSerial: this.#serial,
      serial: info.serialHex,
      fingerprint: info.fingerprintSha256,
      notAfter: info.notAfter,
    });
    if (!recorded) {
      this.close(grpc.status.PERMISSION_DENIED, 'the node is disabled');
      return;
    }
    this.#send({
      message: {
        $case: 'renewCertificateResponse',
        value: RenewCertificateResponse.fromPartial({ certificatePem }),
      },
    });
    this.#log.info(
      { certificate_serial: info.serialHex, not_after: info.notAfter.toISOString() },
      'node certificate renewed',
    );
  }
}

function streamName(stream: LogStream): JobLogStream {
  if (stream === LogStream.STDOUT) return 'stdout';
  if (stream === LogStream.STDERR) return 'stderr';
  return 'agent';
}

/** Trims, bounds and strips control characters from a value a node reports; null when empty. */
export function clean(value: string, max: number): string | null {
  const text = value
    .replace(/\p{Cc}/gu, '')
    .trim()
    .slice(0, max);
  return text === '' ? null : text;
}

function parseOutput(json: string): unknown {
  if (json === '') return null;
  try {
    return JSON.parse(json);
  } catch {
    return { unparsed_output: json.slice(0, 4_096) };
  }
}

export function toRecord(result: CommandResult): cq.ResultToRecord {
  const message = (text: string) => (text ? redactLine(text).slice(0, MAX_ERROR_MESSAGE) : null);
  const agentCode = clean(result.errorCode, 100);
  switch (result.status) {
    case CommandStatus.SUCCEEDED:
      return {
        status: 'succeeded',
        output: parseOutput(result.outputJson),
        errorCode: null,
        errorMessage: null,
      };
    case CommandStatus.INTERRUPTED:
      return {
        status: 'interrupted',
        output: parseOutput(result.outputJson),
        errorCode: agentCode ?? 'command_interrupted',
        errorMessage: message(result.errorMessage),
      };
    case CommandStatus.CANCELLED:
      return {
        status: 'cancelled',
        output: parseOutput(result.outputJson),
        errorCode: agentCode ?? 'command_cancelled',
        errorMessage: message(result.errorMessage),
      };
    case CommandStatus.REJECTED:
      return {
        status: 'failed',
        output: parseOutput(result.outputJson),
        errorCode: 'command_rejected',
        errorMessage: message(agentCode ? `${agentCode}: ${result.errorMessage}` : result.errorMessage),
      };
    default:
      // FAILED, and UNSPECIFIED or an unknown status, which the protocol says to treat as FAILED.
      return {
        status: 'failed',
        output: parseOutput(result.outputJson),
        errorCode: agentCode ?? 'command_failed',
        errorMessage: message(result.errorMessage),
      };
  }
}
