/**
 * Child process of the fleet benchmark: the REAL control plane (`startControlPlane`, embedded
 * PostgreSQL, agent gateway, command service, job runner), alone in its process so that its CPU
 * and RSS can be read from /proc. Driven by the parent over IPC (fleet-ipc.ts).
 *
 *   node fleet-control-plane.ts <run dir>
 */
import { createWriteStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { freePort } from '@wpcp/control-plane/testing';
import { certificateInfo, createKeyPairAndCsr } from '@wpcp/shared/pki';
import { consumeJoinToken } from '../../control-plane/src/agent-gateway/gateway.queries.ts';
import { loadConfig } from '../../control-plane/src/config.ts';
import { type ControlPlane, startControlPlane } from '../../control-plane/src/control-plane.ts';
import { createLogger } from '../../control-plane/src/logger.ts';
import { hashJoinToken } from '../../control-plane/src/nodes/join-token.ts';
import { serveRpc, takeLoopDelay } from './fleet-ipc.ts';
import type { SignReply, SignRequest } from './fleet-sign-worker.ts';
import { round, summarize } from './stats.ts';

const runDir = process.argv[2];
if (!runDir) throw new Error('usage: fleet-control-plane.ts <run dir>');
const dataDir = path.join(runDir, 'control-plane');

/** What the agent processes need to impersonate the nodes (written by setupNodes). */
export interface FleetIdentities {
  server: string;
  caPem: string;
  /** One key pair for every node: each node still has its own certificate (CN = node id, own serial). */
  keyPem: string;
  nodes: { id: string; certPem: string; notBefore: string; notAfter: string }[];
}

export type CommandRunSummary = {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  per_second: number;
  errors: number;
  error_kinds: string;
};

let cp: ControlPlane | undefined;
/** The heartbeat writer's counters at its latest flush, seen within 20 ms of it. */
let lastFlush = { at: performance.now(), flushes: 0, heartbeatsWritten: 0 };
let closing: Promise<void> | undefined;

function plane(): ControlPlane {
  if (!cp) throw new Error('the control plane is not started');
  return cp;
}

function close(): Promise<void> {
  closing ??= (async () => {
    await cp?.close();
  })();
  return closing;
}

function errorKind(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : error instanceof Error ? error.message.slice(0, 60) : 'error';
}

function countKinds(errors: Map<string, number>): string {
  return [...errors].map(([kind, n]) => `${kind}×${n}`).join(', ');
}

/** `count` tasks, `concurrency` at a time, stopping early at `maxMs`. */
async function runTimed(
  count: number,
  concurrency: number,
  maxMs: number,
  task: () => Promise<void>,
): Promise<CommandRunSummary> {
  const durations: number[] = [];
  const errors = new Map<string, number>();
  let next = 0;
  const started = performance.now();
  const deadline = started + maxMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count && performance.now() < deadline) {
        next++;
        const t0 = performance.now();
        try {
          await task();
          durations.push(performance.now() - t0);
        } catch (error) {
          const kind = errorKind(error);
          errors.set(kind, (errors.get(kind) ?? 0) + 1);
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
  return {
    ...summarize(durations),
    per_second: round(durations.length / seconds, 1),
    errors: errorCount,
    error_kinds: countKinds(errors),
  };
}

function randomConnectedNode(): string {
  const ids = plane().gateway.registry.nodeIds();
  const id = ids[Math.floor(Math.random() * ids.length)];
  if (!id) throw new Error('no connected node');
  return id;
}

/**
 * Nodes whose row says this replica holds their stream (`stream_session` set) while its stream
 * registry has none: a stream that ended without `endStream` (see the report of the fleet bench).
 */
async function staleStreams(): Promise<number> {
  const { db, gateway } = plane();
  const rows = await db.selectFrom('nodes').select('id').where('stream_session', 'is not', null).execute();
  const live = new Set(gateway.registry.nodeIds());
  return rows.filter((row) => !live.has(row.id)).length;
}

function ms(from: Date | null, to: Date | null): number | undefined {
  return from && to ? to.getTime() - from.getTime() : undefined;
}

const methods = {
  loopDelay: takeLoopDelay,

  async start(params: { logLevel: string }) {
    const t0 = performance.now();
    const logFile = path.join(runDir, 'control-plane.log');
    const config = loadConfig({
      WPCP_DATA_DIR: dataDir,
      WPCP_EMBEDDED_PG_PORT: String(await freePort()),
      WPCP_HTTP_PORT: '0',
      WPCP_ADMIN_PASSWORD: 'bench password 0123456789',
      WPCP_LOG_LEVEL: params.logLevel,
      WPCP_GRPC_HOST: '127.0.0.1',
      WPCP_GRPC_PORT: '0',
      WPCP_GRPC_PUBLIC_NAMES: 'localhost,127.0.0.1',
    });
    cp = await startControlPlane({
      config,
      logger: createLogger({ level: config.logLevel, destination: createWriteStream(logFile) }),
    });
    const heartbeats = cp.gateway.heartbeats;
    setInterval(() => {
      if (heartbeats.stats.flushes === lastFlush.flushes) return;
      lastFlush = { at: performance.now(), ...heartbeats.stats };
    }, 20).unref();
    return {
      pid: process.pid,
      grpcAddress: `127.0.0.1:${cp.gateway.port}`,
      logFile,
      postmasterPidFile: path.join(dataDir, 'postgres', 'postmaster.pid'),
      heartbeatIntervalMs: config.nodes.heartbeatIntervalMs,
      heartbeatFlushMs: config.nodes.heartbeatFlushMs,
      jobConcurrency: config.jobs.concurrency,
      startMs: Math.round(performance.now() - t0),
    };
  },

  /**
   * Creates `count` nodes and enrolls them the way `Enroll` does, minus gRPC: the product's
   * `NodesService.create` (row + join token), a certificate from the control plane's own CA
   * (`signCsr` in worker threads, CN = node id), and `consumeJoinToken` (the enrollment UPDATE that records the
   * serial the gateway checks). Writes what the agents need to a file.
   */
  async setupNodes(params: { count: number; grpcAddress: string }) {
    const { db, agentCa, nodes: nodesService } = plane();
    const t0 = performance.now();
    const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: 'wpcp-bench-node' });
    const nodes: FleetIdentities['nodes'] = [];
    // Signing is the slow part (~3-5 ms a certificate): two worker threads do it.
    const workers = [0, 1].map(() => new Worker(new URL('./fleet-sign-worker.ts', import.meta.url)));
    const sign = (worker: Worker, nodeIds: string[]) =>
      new Promise<string[]>((resolve, reject) => {
        const onError = (error: Error) => reject(error);
        worker.once('error', onError);
        worker.once('message', (reply: SignReply) => {
          worker.off('error', onError);
          if (reply.ok) resolve(reply.certs);
          else reject(new Error(`signing failed: ${reply.error}`));
        });
        const request: SignRequest = {
          caCertPem: agentCa.certPem,
          caKeyPem: agentCa.keyPem,
          csrPem,
          validityDays: 90,
          nodeIds,
        };
        worker.postMessage(request);
      });
    try {
      const batch = 200;
      for (let from = 0; from < params.count; from += batch) {
        const indexes = Array.from({ length: Math.min(batch, params.count - from) }, (_, i) => from + i);
        const created = await Promise.all(
          indexes.map((index) =>
            nodesService.create({ name: `bench-node-${String(index).padStart(5, '0')}` }),
          ),
        );
        const half = Math.ceil(created.length / 2);
        const certs = (
          await Promise.all([
            sign(
              workers[0] as Worker,
              created.slice(0, half).map((c) => c.id),
            ),
            sign(
              workers[1] as Worker,
              created.slice(half).map((c) => c.id),
            ),
          ])
        ).flat();
        const enrolled = await Promise.all(
          created.map(async (node, i) => {
            const certPem = certs[i] as string;
            const info = certificateInfo(certPem);
            const consumed = await consumeJoinToken(db, {
              nodeId: node.id,
              tokenHash: hashJoinToken(node.join_token),
              serial: info.serialHex,
              fingerprint: info.fingerprintSha256,
              notAfter: info.notAfter,
              agentVersion: '0.1.0',
              hostname: node.name,
            });
            if (!consumed) throw new Error(`the join token of ${node.id} was refused`);
            return {
              id: node.id,
              certPem,
              notBefore: info.notBefore.toISOString(),
              notAfter: info.notAfter.toISOString(),
            };
          }),
        );
        nodes.push(...enrolled);
      }
    } finally {
      await Promise.all(workers.map((worker) => worker.terminate()));
    }
    const file = path.join(runDir, 'identities.json');
    const identities: FleetIdentities = { server: params.grpcAddress, caPem: agentCa.certPem, keyPem, nodes };
    await writeFile(file, JSON.stringify(identities), { mode: 0o600 });
    return { file, ms: Math.round(performance.now() - t0) };
  },

  /**
   * Cheap figures, polled often: the stream registry and the heartbeat writer's counters as of its
   * latest flush (and when that flush was seen), so rates can be taken from flush to flush.
   */
  stats() {
    const { gateway } = plane();
    return { streams: gateway.registry.size, lastFlush: { ...lastFlush } };
  },

  /** This process's memory (bytes), after a full garbage collection when `collect` (needs --expose-gc). */
  memory(params: { collect: boolean }) {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (params.collect && gc) {
      gc();
      gc();
    }
    return { ...process.memoryUsage(), collected: Boolean(params.collect && gc) };
  },

  /** What the nodes table says (every replica's view). */
  async dbStats(params: { heartbeatIntervalMs: number }) {
    const { db } = plane();
    const count = async (build: (q: ReturnType<typeof nodes>) => ReturnType<typeof nodes>) =>
      Number((await build(nodes()).executeTakeFirstOrThrow()).n);
    const nodes = () => db.selectFrom('nodes').select((eb) => eb.fn.countAll<string>().as('n'));
    const now = Date.now();
    return {
      nodes: await count((q) => q),
      withStream: await count((q) => q.where('stream_session', 'is not', null)),
      staleStream: await staleStreams(),
      active: await count((q) => q.where('status', '=', 'active')),
      heartbeatWithinInterval: await count((q) =>
        q.where('last_heartbeat_at', '>', new Date(now - params.heartbeatIntervalMs)),
      ),
      heartbeatWithin3Intervals: await count((q) =>
        q.where('last_heartbeat_at', '>', new Date(now - 3 * params.heartbeatIntervalMs)),
      ),
    };
  },

  /** The synchronous path (`CommandService.sendAndWait`) with a `noop` (sleep 0) to random connected nodes. */
  syncCommands(params: { count: number; concurrency: number; maxMs: number }) {
    const { commands } = plane();
    return runTimed(params.count, params.concurrency, params.maxMs, async () => {
      await commands.sendAndWait(
        randomConnectedNode(),
        { $case: 'noop', value: { sleepMs: 0, fail: false, errorMessage: '' } },
        10_000,
      );
    });
  },

  /** Where the time of the synchronous commands since `sinceMs` went, from the database's own timestamps. */
  async commandBreakdown(params: { sinceMs: number }) {
    const rows = await plane()
      .db.selectFrom('agent_commands')
      .select(['created_at', 'delivered_at', 'acknowledged_at', 'finished_at'])
      .where('id', 'like', 'sync:%')
      .where('created_at', '>=', new Date(params.sinceMs))
      .where('status', '=', 'succeeded')
      .execute();
    const part = (pick: (r: (typeof rows)[number]) => number | undefined) =>
      summarize(rows.map(pick).filter((v): v is number => v !== undefined));
    return {
      'created → delivered (NOTIFY, claim, write)': part((r) => ms(r.created_at, r.delivered_at)),
      'delivered → result recorded (agent round trip)': part((r) => ms(r.delivered_at, r.finished_at)),
      'created → result recorded': part((r) => ms(r.created_at, r.finished_at)),
    };
  },

  /**
   * The job path: `node-ping` jobs (the product's own job, as `POST /api/nodes/:id/ping` enqueues
   * it: jobs row + pg-boss job, a worker, `runNodeCommand`, the agent, the result) to random
   * connected nodes, `concurrency` outstanding at a time. Latency is the job's created_at →
   * finished_at in the database; completion is noticed by polling the jobs table every 10 ms.
   */
  async pingJobs(params: { count: number; concurrency: number; maxMs: number }) {
    const { db, nodes } = plane();
    const started = performance.now();
    const deadline = started + params.maxMs;
    const outstanding = new Set<string>();
    const latencies: number[] = [];
    const roundTrips: number[] = [];
    const errors = new Map<string, number>();
    let sent = 0;
    let finished = 0;
    while ((sent < params.count || outstanding.size > 0) && performance.now() < deadline) {
      while (sent < params.count && outstanding.size < params.concurrency) {
        sent++;
        try {
          outstanding.add((await nodes.ping(randomConnectedNode())).job_id);
        } catch (error) {
          const kind = errorKind(error);
          errors.set(kind, (errors.get(kind) ?? 0) + 1);
        }
      }
      if (outstanding.size === 0) continue;
      const done = await db
        .selectFrom('jobs')
        .select(['id', 'status', 'error_code', 'created_at', 'finished_at', 'output'])
        .where('id', 'in', [...outstanding])
        .where('status', 'in', ['succeeded', 'failed', 'cancelled'])
        .execute();
      for (const job of done) {
        outstanding.delete(job.id);
        finished++;
        if (job.status === 'succeeded') {
          const latency = ms(job.created_at, job.finished_at);
          if (latency !== undefined) latencies.push(latency);
          const rtt = (job.output as { round_trip_ms?: unknown } | null)?.round_trip_ms;
          if (typeof rtt === 'number') roundTrips.push(rtt);
        } else {
          const kind = job.error_code ?? job.status;
          errors.set(kind, (errors.get(kind) ?? 0) + 1);
        }
      }
      if (done.length === 0) await sleep(10);
    }
    if (outstanding.size > 0) errors.set('unfinished at the time limit', outstanding.size);
    const seconds = (performance.now() - started) / 1000;
    const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
    return {
      jobs: {
        ...summarize(latencies),
        per_second: round(finished / seconds, 1),
        errors: errorCount,
        error_kinds: countKinds(errors),
      },
      commandInsideJob: summarize(roundTrips),
    };
  },

  /** Stops the control plane (streams, workers, database) and then this process. */
  async stop() {
    const t0 = performance.now();
    await close();
    setTimeout(() => process.exit(0), 100);
    return { ms: Math.round(performance.now() - t0) };
  },
};

export type ControlPlaneMethods = typeof methods;

serveRpc(methods);

// The parent went away (crashed or was killed): stop the database and remove the run directory.
process.on('disconnect', () => {
  void (async () => {
    const watchdog = setTimeout(() => process.exit(1), 60_000);
    watchdog.unref();
    await close().catch(() => {});
    await rm(runDir, { recursive: true, force: true }).catch(() => {});
    process.exit(1);
  })();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void close()
      .catch(() => {})
      .finally(() => process.exit(1));
  });
}
