import type { Heartbeat } from '@wpcp/shared/agent-protocol';
import type { Logger } from 'pino';
import type { Db } from '../database/database.ts';
import { type HeartbeatRow, sweepLiveness, writeHeartbeats } from './gateway.queries.ts';

/**
 * Heartbeats are held in memory, only the latest per node, and written for all nodes at once
 * every flush interval (one statement per flush, not one per beat). A sweeper records when an
 * active node goes offline or comes back, and logs each change once across all replicas.
 */
export class HeartbeatWriter {
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #flushMs: number;
  readonly #sweepMs: number;
  readonly #offlineAfterMs: number;
  #held = new Map<
    string,
    { receivedAt: number; stats: Record<string, unknown>; agentVersion: string | null }
  >();
  #flushTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  /** Statements written and heartbeats in them, for tests and the benchmark. */
  readonly stats = { flushes: 0, heartbeatsWritten: 0 };

  constructor(deps: { db: Db; logger: Logger; flushMs: number; sweepMs: number; offlineAfterMs: number }) {
    this.#db = deps.db;
    this.#logger = deps.logger;
    this.#flushMs = deps.flushMs;
    this.#sweepMs = deps.sweepMs;
    this.#offlineAfterMs = deps.offlineAfterMs;
  }

  start(): void {
    this.#flushTimer = setInterval(() => void this.flush(), this.#flushMs);
    this.#flushTimer.unref();
    this.#sweepTimer = setInterval(() => void this.#sweep(), this.#sweepMs);
    this.#sweepTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#flushTimer);
    clearInterval(this.#sweepTimer);
    await this.flush();
  }

  record(nodeId: string, heartbeat: Heartbeat): void {
    this.#held.set(nodeId, {
      receivedAt: Date.now(),
      agentVersion: heartbeat.agentVersion || null,
      stats: {
        load1: heartbeat.load1,
        load5: heartbeat.load5,
        load15: heartbeat.load15,
        mem_total_bytes: heartbeat.memTotalBytes,
        mem_available_bytes: heartbeat.memAvailableBytes,
        disk_total_bytes: heartbeat.diskTotalBytes,
        disk_free_bytes: heartbeat.diskFreeBytes,
        running_command_ids: heartbeat.runningCommandIds.slice(0, 100),
        agent_time_ms: heartbeat.sentAtUnixMs,
      },
    });
  }

  /** Writes what is held; flushes never overlap, so a slow database cannot reorder them. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flushOnce());
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    if (this.#held.size === 0) return;
    const batch = this.#held;
    this.#held = new Map();
    const now = Date.now();
    const rows: HeartbeatRow[] = [...batch].map(([nodeId, held]) => ({
      nodeId,
      ageMs: Math.max(0, now - held.receivedAt),
      stats: held.stats,
      agentVersion: held.agentVersion,
    }));
    try {
      await writeHeartbeats(this.#db, rows);
      this.stats.flushes++;
      this.stats.heartbeatsWritten += rows.length;
    } catch (error) {
      // Keep what did not reach the database unless a newer beat replaced it meanwhile.
      for (const [nodeId, held] of batch) if (!this.#held.has(nodeId)) this.#held.set(nodeId, held);
      this.#logger.warn({ err: error, nodes: rows.length }, 'could not write heartbeats; will retry');
    }
  }

  async #sweep(): Promise<void> {
    try {
      for (const change of await sweepLiveness(this.#db, this.#offlineAfterMs)) {
        const fields = {
          node_id: change.id,
          node_name: change.name,
          last_heartbeat_at: change.last_heartbeat_at?.toISOString() ?? null,
        };
        if (change.liveness === 'offline') this.#logger.warn(fields, 'node is offline');
        else if (change.previous === 'offline') this.#logger.info(fields, 'node is back online');
        else this.#logger.info(fields, 'node is active');
      }
    } catch (error) {
      this.#logger.warn({ err: error }, 'could not check node liveness');
    }
  }
}
