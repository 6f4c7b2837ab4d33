// Periodic heartbeats on a live stream: one right after Welcome (so the node shows its figures at
// once), then one per interval. The schedule is anchored on the start of each beat, so a slow stats
// read does not make beats drift, and never overlaps: a beat waits for the previous one.
import type { Heartbeat } from '@wpcp/shared/agent-protocol';
import type { NodeStats } from '../system/stats.ts';

export interface HeartbeatOptions {
  intervalMs: number;
  /** Builds the heartbeat (stats, running command ids, time). */
  collect: () => Promise<Heartbeat>;
  send: (heartbeat: Heartbeat) => void;
  /** Called after each beat (sent or failed), e.g. to check the certificate lifetime. */
  onTick?: () => void;
  onError: (err: unknown) => void;
}

export interface HeartbeatTimer {
  stop(): void;
}

export function startHeartbeats(options: HeartbeatOptions): HeartbeatTimer {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const beat = async (): Promise<void> => {
    if (stopped) return;
    const startedAt = performance.now();
    try {
      const heartbeat = await options.collect();
      if (!stopped) options.send(heartbeat);
    } catch (err) {
      options.onError(err);
    }
    if (stopped) return;
    try {
      options.onTick?.();
    } catch (err) {
      options.onError(err);
    }
    const elapsed = performance.now() - startedAt;
    timer = setTimeout(beat, Math.max(0, options.intervalMs - elapsed));
  };
  void beat();

  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The Heartbeat message for a set of node figures. */
export function heartbeatFromStats(stats: NodeStats, runningCommandIds: string[]): Heartbeat {
  return {
    load1: stats.load1,
    load5: stats.load5,
    load15: stats.load15,
    memTotalBytes: stats.memoryTotalBytes,
    memAvailableBytes: stats.memoryAvailableBytes,
    diskTotalBytes: stats.diskTotalBytes,
    diskFreeBytes: stats.diskFreeBytes,
    runningCommandIds,
    agentVersion: stats.agentVersion,
    sentAtUnixMs: Date.now(),
  };
}
