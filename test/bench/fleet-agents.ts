/**
 * Child process of the fleet benchmark: a slice of the simulated fleet. Each simulated node is a
 * REAL `AgentSession` (node-agent/src/connection/stream.ts: its own mTLS channel, Connect stream,
 * Hello/Welcome, heartbeats, keepalive, reconnect loop with backoff), with its identity held in
 * memory and a no-op executor that acknowledges and answers every command at once. Sessions are
 * started at a paced, jittered rate. Driven by the parent over IPC (fleet-ipc.ts).
 *
 *   node fleet-agents.ts <run dir>
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AgentSession,
  agentVersion,
  createLogger,
  heartbeatFromStats,
  type Identity,
  type Outbox,
  type SessionExecutor,
} from '@wpcp/node-agent';
import type { CommandResult, Command as WireCommand } from '@wpcp/shared/agent-protocol';
import { CommandStatus } from '@wpcp/shared/agent-protocol';
import { caCertificateHash } from '@wpcp/shared/pki';
import type { FleetIdentities } from './fleet-control-plane.ts';
import { serveRpc, takeLoopDelay } from './fleet-ipc.ts';
import { summarize } from './stats.ts';

const runDir = process.argv[2];
if (!runDir) throw new Error('usage: fleet-agents.ts <run dir>');

const counters = {
  heartbeats: 0,
  commands: 0,
  welcomes: 0,
  disconnects: 0,
  failedAttempts: 0,
};
const reasons = new Map<string, number>();

/**
 * The lightest executor the session accepts: Ack and a SUCCEEDED result for every command, the
 * result kept until the control plane acknowledges it (and resent in Hello after a reconnect, as
 * the real executor's journal would).
 */
class NoopExecutor implements SessionExecutor {
  #outbox: Outbox | undefined;
  readonly #unacknowledged = new Map<string, CommandResult>();

  attach(outbox: Outbox): void {
    this.#outbox = outbox;
  }

  detach(outbox: Outbox): void {
    if (this.#outbox === outbox) this.#outbox = undefined;
  }

  setClockSkew(): void {}

  setMaxConcurrent(): void {}

  activeIds(): string[] {
    return [];
  }

  unacknowledgedResults(): CommandResult[] {
    return [...this.#unacknowledged.values()];
  }

  async receive(command: WireCommand): Promise<void> {
    counters.commands++;
    let result = this.#unacknowledged.get(command.id);
    if (!result) {
      const output = command.payload?.$case === 'ping' ? { agent_time_ms: Date.now() } : { slept_ms: 0 };
      result = {
        commandId: command.id,
        status: CommandStatus.SUCCEEDED,
        errorCode: '',
        errorMessage: '',
        outputJson: JSON.stringify(output),
      };
      this.#unacknowledged.set(command.id, result);
    }
    this.#outbox?.send({ $case: 'commandAck', value: { commandId: command.id } }, false);
    this.#outbox?.send({ $case: 'commandResult', value: result }, false);
  }

  cancel(): void {}

  async acknowledge(id: string): Promise<void> {
    this.#unacknowledged.delete(id);
  }
}

interface Agent {
  session: AgentSession;
  startedAt?: number;
  firstWelcomeMs?: number;
}

const agents: Agent[] = [];
let pacing: Promise<void> | undefined;
let stopping = false;
let started = 0;
let pacingStartedAt = 0;
let pacingEndedAt: number | undefined;
/** Sessions welcomed at least once, and how long the in-flight limit held the pacing back. */
let firstWelcomes = 0;
let heldMs = 0;

const stats = heartbeatFromStats(
  {
    agentVersion: agentVersion(),
    cpuCount: 2,
    load1: 0.25,
    load5: 0.2,
    load15: 0.15,
    memoryTotalBytes: 8 * 2 ** 30,
    memoryAvailableBytes: 6 * 2 ** 30,
    diskTotalBytes: 100 * 2 ** 30,
    diskFreeBytes: 60 * 2 ** 30,
  },
  [],
);

/**
 * A real agent has one channel per process. Thousands of channels in one process must not share
 * grpc-js's global subchannel pool: every new channel scans all pooled subchannels to the same
 * target (`channelOptionsEqual` sorts both option-key lists for each one), O(N) per connection
 * and O(N²) per fleet, which alone saturates an agents process during a reconnect storm.
 */
const LOCAL_SUBCHANNEL_POOL = { 'grpc.use_local_subchannel_pool': 1 };

function reasonKey(reason: string): string {
  return reason.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '<id>').slice(0, 120);
}

const methods = {
  loopDelay: takeLoopDelay,

  /** Creates (without starting them) sessions for nodes [from, to) of the identities file. */
  async prepare(params: { identitiesFile: string; from: number; to: number; logLevel: string }) {
    const identities = JSON.parse(await readFile(params.identitiesFile, 'utf8')) as FleetIdentities;
    const caHash = caCertificateHash(identities.caPem);
    const logger = createLogger({
      level: params.logLevel,
      base: { pid: process.pid },
    });
    const collectHeartbeat = async () => {
      counters.heartbeats++;
      return { ...stats, sentAtUnixMs: Date.now() };
    };
    for (const node of identities.nodes.slice(params.from, params.to)) {
      const identity: Identity = {
        state: {
          version: 1,
          nodeId: node.id,
          server: identities.server,
          caHash,
          enrolledAt: new Date().toISOString(),
        },
        keyPem: identities.keyPem,
        certPem: node.certPem,
        caPem: identities.caPem,
        notBefore: new Date(node.notBefore),
        notAfter: new Date(node.notAfter),
      };
      const session = new AgentSession({
        // Only certificate renewal uses the state dir, and 90-day certificates are not renewed here.
        stateDir: path.join(runDir, 'agent-state-unused'),
        server: identities.server,
        executor: new NoopExecutor(),
        logger,
        // The agent's defaults (node-agent/src/config.ts); Welcome sets the heartbeat interval.
        heartbeatIntervalMs: 5_000,
        maxConcurrentCommands: 4,
        keepaliveTimeMs: 10_000,
        keepaliveTimeoutMs: 5_000,
        reconnectInitialMs: 1_000,
        reconnectMaxMs: 30_000,
        hostname: `bench-${node.id.slice(0, 8)}`,
        agentVersion: agentVersion(),
        capabilities: ['noop', 'ping'],
        collectHeartbeat,
        loadIdentity: async () => identity,
        channelOptions: LOCAL_SUBCHANNEL_POOL,
      });
      const agent: Agent = { session };
      session.on('welcome', () => {
        counters.welcomes++;
        if (agent.firstWelcomeMs === undefined && agent.startedAt !== undefined) {
          agent.firstWelcomeMs = performance.now() - agent.startedAt;
          firstWelcomes++;
        }
      });
      session.on('disconnected', (end) => {
        if (stopping) return;
        counters.disconnects++;
        if (!end.welcomed) counters.failedAttempts++;
        const key = reasonKey(end.reason);
        reasons.set(key, (reasons.get(key) ?? 0) + 1);
      });
      agents.push(agent);
    }
    return { agents: agents.length, pid: process.pid };
  },

  /**
   * Starts the sessions paced at `ratePerSecond`, each start jittered by up to ± half an interval,
   * never with more than `maxInFlight` sessions started and not yet welcomed (0: no limit), so a
   * slow control plane slows the pacing instead of piling up handshakes. Returns at once.
   */
  go(params: { ratePerSecond: number; maxInFlight: number }) {
    pacingStartedAt = performance.now();
    const intervalMs = 1000 / params.ratePerSecond;
    const due = agents.map((_, i) => (i + Math.random() - 0.5) * intervalMs);
    due.sort((a, b) => a - b);
    const full = () => params.maxInFlight > 0 && started - firstWelcomes >= params.maxInFlight;
    pacing = (async () => {
      while (started < agents.length && !stopping) {
        const now = performance.now() - pacingStartedAt;
        let held = false;
        while (started < agents.length && (due[started] ?? 0) <= now) {
          if (full()) {
            held = true;
            break;
          }
          const agent = agents[started++] as Agent;
          agent.startedAt = performance.now();
          void agent.session.start();
        }
        const wait = held ? 5 : Math.max(1, Math.min(20, (due[started] ?? now) - now));
        if (held) heldMs += wait;
        await sleep(wait);
      }
      pacingEndedAt = performance.now();
    })();
    return { agents: agents.length, pid: process.pid };
  },

  stats() {
    let connected = 0;
    for (const agent of agents) if (agent.session.connected) connected++;
    return {
      pid: process.pid,
      agents: agents.length,
      started,
      connected,
      pacingMs: pacingEndedAt === undefined ? undefined : Math.round(pacingEndedAt - pacingStartedAt),
      heldMs: Math.round(heldMs),
      ...counters,
      reasons: Object.fromEntries(reasons),
    };
  },

  /** Start → first Welcome of each session that got one, in ms. */
  connectLatencies() {
    return summarize(agents.flatMap((a) => (a.firstWelcomeMs === undefined ? [] : [a.firstWelcomeMs])));
  },

  /** Ends every stream (half-close, then cancel) and stops reconnecting; bounded by `timeoutMs`. */
  async stop(params: { timeoutMs: number }) {
    stopping = true;
    const t0 = performance.now();
    await pacing;
    const all = Promise.all(agents.map((a) => a.session.stop()));
    await Promise.race([all, sleep(params.timeoutMs)]);
    setTimeout(() => process.exit(0), 100);
    return { ms: Math.round(performance.now() - t0) };
  },
};

export type AgentsMethods = typeof methods;

serveRpc(methods);

// The parent went away: the sockets close with the process.
process.on('disconnect', () => process.exit(1));
