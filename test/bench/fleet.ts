import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { setPriority, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentsMethods } from './fleet-agents.ts';
import type { ControlPlaneMethods } from './fleet-control-plane.ts';
import { RpcClient } from './fleet-ipc.ts';
import {
  ensureNofile,
  isAlive,
  machineTicks,
  openFds,
  processTree,
  sampleGroup,
  sampleProcess,
  ticksPerSecond,
  treeCpuTicks,
} from './proc.ts';
import { round } from './stats.ts';

/**
 * Agent-fleet benchmark. Three kinds of processes, so /proc tells their costs apart:
 *
 *   this process ─ fork ─▶ control plane (fleet-control-plane.ts: startControlPlane, gRPC gateway)
 *        │                      └─ spawns embedded PostgreSQL (postmaster + backends)
 *        └─ fork ×P ─▶ agents (fleet-agents.ts: N/P real AgentSessions with a no-op executor)
 *
 * Phases, each bounded in time: set up N nodes (rows + certificates from the control plane's CA),
 * connect them at a paced rate, let heartbeats settle, measure a steady-state window, then send
 * commands (synchronous path and node-ping jobs), then tear everything down.
 */

export interface FleetOptions {
  agents: number;
  /** Total TLS handshakes (session starts) per second, over all agent processes. */
  ratePerSecond: number;
  /** At most this many sessions started and not yet welcomed, over all agent processes (0: no limit). */
  maxInFlight: number;
  agentProcesses: number;
  /** Nice value of the agent processes (0: same priority as the control plane). */
  agentsNice: number;
  settleSeconds: number;
  steadySeconds: number;
  /** Sequential synchronous commands (latency). */
  sequentialCommands: number;
  /** Concurrent synchronous commands (throughput) and how many are outstanding at once. */
  concurrentCommands: number;
  concurrency: number;
  /** node-ping jobs: sequential, then with `concurrency` outstanding. */
  sequentialJobs: number;
  concurrentJobs: number;
  logLevel: string;
  /** Called with one line per phase, so a long run shows where it is. */
  progress: (line: string) => void;
}

type Row = Record<string, string | number | undefined>;

export interface FleetReport {
  processes: Row[];
  /** Warnings and errors the control plane logged, counted by message. */
  log: Row[];
  connect: Row;
  steady: Row;
  commands: Record<string, Row>;
  breakdown: Record<string, Row>;
  notes: string[];
}

const HERE = path.dirname(new URL(import.meta.url).pathname);
const EXEC_ARGV = ['--disable-warning=ExperimentalWarning', '--experimental-strip-types'];

/** What must go even if this process is interrupted (see emergencyCleanup). */
const live = {
  children: new Set<ChildProcess>(),
  postmasterPid: undefined as number | undefined,
  runDir: '',
};

/** Blocks this thread for `ms` (only in emergencyCleanup, which must be synchronous). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Synchronous last resort (signal, watchdog): kill by pid what this run started, remove its files. */
export function emergencyCleanup(): void {
  for (const child of live.children) if (child.pid && isAlive(child.pid)) child.kill('SIGKILL');
  let postmaster = live.postmasterPid;
  if (!postmaster && live.runDir) {
    try {
      const file = path.join(live.runDir, 'control-plane', 'postgres', 'postmaster.pid');
      postmaster = Number(readFileSync(file, 'utf8').split('\n')[0]) || undefined;
    } catch {
      // PostgreSQL never started
    }
  }
  if (postmaster && isAlive(postmaster)) {
    process.kill(postmaster, 'SIGQUIT'); // immediate shutdown: the postmaster stops its backends
    for (let i = 0; i < 50 && isAlive(postmaster); i++) sleepSync(100);
    if (isAlive(postmaster)) process.kill(postmaster, 'SIGKILL');
  }
  if (live.runDir) rmSync(live.runDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}

function forkChild(script: string, runDir: string, extraExecArgv: string[] = []): ChildProcess {
  const child = fork(path.join(HERE, script), [runDir], {
    execArgv: [...EXEC_ARGV, ...extraExecArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.children.add(child);
  child.on('exit', () => live.children.delete(child));
  return child;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function readPostmasterPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(file, 'utf8')).split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

const mb = (kb: number) => round(kb / 1024, 1);

/** The control plane's warnings and errors (pino JSON lines, level >= 40), counted by message. */
function summarizeLog(file: string): Row[] {
  const counts = new Map<string, Row>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  for (const line of text.split('\n')) {
    if (!line) continue;
    let entry: { level?: number; msg?: string; err?: { message?: string }; reason?: string };
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if ((entry.level ?? 0) < 40) continue;
    const detail = (entry.err?.message ?? entry.reason ?? '').replace(/[0-9a-f-]{36}/g, '<id>').slice(0, 100);
    const key = `${entry.level} ${entry.msg} ${detail}`;
    const row = counts.get(key) ?? {
      level: entry.level === 40 ? 'warn' : entry.level === 50 ? 'error' : 'fatal',
      message: entry.msg,
      detail,
      count: 0,
    };
    row.count = Number(row.count) + 1;
    counts.set(key, row);
  }
  return [...counts.values()].sort((a, b) => Number(b.count) - Number(a.count)).slice(0, 15);
}

/** CPU ticks of every process of the run at one instant. */
interface CpuSnapshot {
  at: number;
  cp: number;
  pg: number;
  agents: number[];
  machine: number;
}

export async function benchFleet(options: FleetOptions): Promise<FleetReport> {
  const { agents: n, progress } = options;
  const notes: string[] = [];
  const runDir = await mkdtemp(path.join(tmpdir(), 'wpcp-fleet-bench-'));
  live.runDir = runDir;
  // As root, PostgreSQL runs as `postgres`, which must be able to walk into its data dir below.
  if (process.getuid?.() === 0) await chmod(runDir, 0o711);
  // --expose-gc: the memory figures per stream are taken after a full collection.
  const cpChild = forkChild('fleet-control-plane.ts', runDir, ['--expose-gc']);
  const cp = new RpcClient<ControlPlaneMethods>(cpChild, 'control plane');
  const agentChildren: { child: ChildProcess; rpc: RpcClient<AgentsMethods>; from: number; to: number }[] =
    [];
  let failed = false;
  try {
    // 1. The control plane, and N nodes it would accept.
    await cp.ready(60_000);
    progress('starting the control plane (embedded PostgreSQL)...');
    const started = await cp.call('start', { logLevel: options.logLevel }, 180_000);
    const cpPid = started.pid;
    const postmasterPid = await readPostmasterPid(started.postmasterPidFile);
    live.postmasterPid = postmasterPid;
    // One socket per agent in the control plane (plus its own files, PostgreSQL and pg-boss
    // connections): above the soft limit of open files, raise it rather than fail with EMFILE.
    const cpNofile = ensureNofile(cpPid, n + 1_024, n + 100);
    if (cpNofile) notes.push(`control plane: ${cpNofile}`);
    if (n > 28_000) {
      notes.push(
        `${n} agents need more than the ~28,000 ephemeral ports (32768-60999) one destination address allows; expect EADDRNOTAVAIL`,
      );
    }
    progress(`creating ${n} nodes and signing their certificates...`);
    const setup = await cp.call(
      'setupNodes',
      { count: n, grpcAddress: started.grpcAddress },
      120_000 + n * 20,
    );

    const procs = Math.max(1, Math.min(options.agentProcesses, n));
    for (let p = 0; p < procs; p++) {
      const from = Math.floor((p * n) / procs);
      const to = Math.floor(((p + 1) * n) / procs);
      // grpc-js sets the TLS ServerName to the IP address the agents dial; Node warns once (DEP0123).
      const child = forkChild('fleet-agents.ts', runDir, [
        '--max-old-space-size=8192',
        '--disable-warning=DEP0123',
      ]);
      agentChildren.push({ child, rpc: new RpcClient<AgentsMethods>(child, `agents #${p + 1}`), from, to });
      if (options.agentsNice !== 0 && child.pid) setPriority(child.pid, options.agentsNice);
      const agentsNofile = child.pid
        ? ensureNofile(child.pid, to - from + 1_024, to - from + 100)
        : undefined;
      if (agentsNofile) notes.push(`agents #${p + 1}: ${agentsNofile}`);
    }
    await Promise.all(
      agentChildren.map(async ({ rpc, from, to }) => {
        await rpc.ready(60_000);
        await rpc.call('prepare', { identitiesFile: setup.file, from, to, logLevel: 'silent' }, 120_000);
      }),
    );
    const agentPids = agentChildren.map(({ child }) => child.pid as number);
    const tick = ticksPerSecond();
    const snapshot = (): CpuSnapshot => ({
      at: performance.now(),
      cp: sampleProcess(cpPid)?.cpuTicks ?? 0,
      pg: postmasterPid ? treeCpuTicks(postmasterPid) : 0,
      agents: agentPids.map((pid) => sampleProcess(pid)?.cpuTicks ?? 0),
      machine: machineTicks().busy,
    });
    /** CPU of each process since `from`, in % of one core (200 = both cores of this machine). */
    const cpuSince = (from: CpuSnapshot) => {
      const to = snapshot();
      const pct = (ticks: number) => round((ticks / tick / ((to.at - from.at) / 1000)) * 100, 1);
      const agents = to.agents.map((t, i) => t - (from.agents[i] ?? 0));
      const ours = to.cp - from.cp + (to.pg - from.pg) + agents.reduce((a, b) => a + b, 0);
      return {
        cp: pct(to.cp - from.cp),
        pg: pct(to.pg - from.pg),
        agents: agents.map(pct),
        machine: pct(to.machine - from.machine),
        others: pct(Math.max(0, to.machine - from.machine - ours)),
      };
    };
    const idle = sampleProcess(cpPid);
    const idleMemory = await cp.call('memory', { collect: true }, 60_000);

    // 2. Connect, paced.
    progress(`connecting ${n} agents at ${options.ratePerSecond} handshakes/s (jittered)...`);
    /** Asks every agent process; an overloaded one that does not answer in time yields undefined. */
    const agentsCall = <K extends 'stats' | 'connectLatencies' | 'loopDelay'>(method: K) =>
      Promise.all(
        agentChildren.map(({ rpc }) =>
          rpc.call(method, undefined as Parameters<AgentsMethods[K]>[0], 60_000).catch(() => {
            notes.push(`an agent process did not answer ${method} within 60 s (overloaded)`);
            return undefined;
          }),
        ),
      );
    const takeLoopDelays = async () => {
      const all = [await cp.call('loopDelay', undefined, 60_000), ...(await agentsCall('loopDelay'))];
      return all.map((d) => (d ? `${d.p99} / ${d.max}` : 'no answer'));
    };
    await takeLoopDelays();
    const connectCpu = snapshot();
    const connectStart = performance.now();
    await Promise.all(
      agentChildren.map(({ rpc }) =>
        rpc.call(
          'go',
          {
            ratePerSecond: options.ratePerSecond / procs,
            maxInFlight: Math.ceil(options.maxInFlight / procs),
          },
          30_000,
        ),
      ),
    );
    const connectDeadline = connectStart + ((n / options.ratePerSecond) * 1.5 + 60) * 1000;
    let streams = 0;
    let connectMs: number | undefined;
    let peakConnectRssKb = 0;
    let lastReport = connectStart;
    while (performance.now() < connectDeadline) {
      streams = (await cp.call('stats', undefined, 30_000)).streams;
      peakConnectRssKb = Math.max(peakConnectRssKb, sampleProcess(cpPid)?.rssKb ?? 0);
      if (streams >= n) {
        connectMs = performance.now() - connectStart;
        break;
      }
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        progress(`  ${streams}/${n} streams after ${Math.round((lastReport - connectStart) / 1000)} s`);
      }
      await sleep(100);
    }
    const connectUsage = cpuSince(connectCpu);
    const [cpConnectLoop, ...agentsConnectLoop] = await takeLoopDelays();
    const connectSeconds = (performance.now() - connectStart) / 1000;
    if (connectMs === undefined) {
      notes.push(
        `only ${streams} of ${n} agents were connected after ${Math.round(connectSeconds)} s (the connect phase's limit)`,
      );
    }
    const agentStats = await agentsCall('stats');
    const latencies = await agentsCall('connectLatencies');
    const connectReasons = new Map<string, number>();
    for (const a of agentStats)
      for (const [k, v] of Object.entries(a?.reasons ?? {}))
        connectReasons.set(k, (connectReasons.get(k) ?? 0) + v);
    const connect: Row = {
      'agents requested': n,
      'agent processes': procs,
      'node setup: rows + certificates signed by the CA (s)': round(setup.ms / 1000, 1),
      'paced start rate (handshakes/s, jittered)': options.ratePerSecond,
      'max handshakes in flight (started, not yet welcomed)': options.maxInFlight || 'no limit',
      'pacing: last session started after (s) / held back by the in-flight limit (s)': agentStats
        .map((a) =>
          a?.pacingMs === undefined ? '?' : `${round(a.pacingMs / 1000, 1)} / ${round(a.heldMs / 1000, 1)}`,
        )
        .join('  |  '),
      'streams connected (control plane registry)': streams,
      'time to connect all (s)': connectMs === undefined ? 'not reached' : round(connectMs / 1000, 1),
      'achieved connect rate (streams/s)':
        connectMs === undefined ? round(streams / connectSeconds, 1) : round(n / (connectMs / 1000), 1),
      'start → Welcome p50 / p99 / max (ms), per agent process': latencies
        .map((l) => (l ? `${l.p50} / ${l.p99} / ${l.max}` : 'no answer'))
        .join('  |  '),
      'failed attempts before Welcome': agentStats.reduce((s, a) => s + (a?.failedAttempts ?? 0), 0),
      'CPU during connect (% of one core): control plane / PostgreSQL / agents': `${connectUsage.cp} / ${connectUsage.pg} / ${connectUsage.agents.join(' + ')}`,
      'CPU during connect: machine busy / other processes (200 = both cores)': `${connectUsage.machine} / ${connectUsage.others}`,
      'event-loop delay p99 / max (ms): control plane': cpConnectLoop,
      'event-loop delay p99 / max (ms): agent processes': agentsConnectLoop.join('  |  '),
      'control plane RSS with 0 streams / peak during connect (MB)': `${idle ? mb(idle.rssKb) : '?'} / ${mb(peakConnectRssKb)}`,
    };
    if (connectReasons.size > 0) {
      connect['stream end reasons'] = [...connectReasons].map(([k, v]) => `${v}× ${k}`).join('; ');
    }

    // 3. Steady state.
    progress(
      `settling for ${options.settleSeconds} s, then measuring a ${options.steadySeconds} s window...`,
    );
    await sleep(options.settleSeconds * 1000);
    const statsBefore = await cp.call('stats', undefined, 30_000);
    const agentsBefore = await agentsCall('stats');
    await takeLoopDelays();
    const steadyCpu = snapshot();
    const windowStart = performance.now();
    const rss: number[] = [];
    const pgRss: number[] = [];
    const agentRss: number[][] = agentPids.map(() => []);
    while (performance.now() - windowStart < options.steadySeconds * 1000) {
      rss.push(sampleProcess(cpPid)?.rssKb ?? 0);
      pgRss.push(sampleGroup(postmasterPid ? processTree(postmasterPid) : []).rssKb);
      agentPids.forEach((pid, i) => {
        agentRss[i]?.push(sampleProcess(pid)?.rssKb ?? 0);
      });
      await sleep(1_000);
    }
    const steadyUsage = cpuSince(steadyCpu);
    const [cpSteadyLoop, ...agentsSteadyLoop] = await takeLoopDelays();
    const windowSeconds = (performance.now() - windowStart) / 1000;
    const statsAfter = await cp.call('stats', undefined, 30_000);
    const agentsAfter = await agentsCall('stats');
    const db = await cp.call('dbStats', { heartbeatIntervalMs: started.heartbeatIntervalMs }, 30_000);
    const steadyMemory = await cp.call('memory', { collect: true }, 60_000);
    const avg = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
    type AgentStats = NonNullable<(typeof agentsAfter)[number]>;
    /** Growth of an agent counter over the window (processes that did not answer both times are left out). */
    const delta = (pick: (a: AgentStats) => number) =>
      agentsAfter.reduce((s, after, i) => {
        const before = agentsBefore[i];
        return after && before ? s + pick(after) - pick(before) : s;
      }, 0);
    const cpRssAvg = avg(rss);
    const flushSpan = Math.max(0.001, (statsAfter.lastFlush.at - statsBefore.lastFlush.at) / 1000);
    const interval = started.heartbeatIntervalMs;
    const steady: Row = {
      'window (s)': round(windowSeconds, 1),
      'streams at start / end of the window (control plane registry)': `${statsBefore.streams} / ${statsAfter.streams}`,
      'nodes with a stream (nodes.stream_session) / active (nodes.status)': `${db.withStream} / ${db.active}`,
      'nodes.stream_session set but no stream in the registry': db.staleStream,
      [`nodes with last_heartbeat_at < ${interval} ms / < ${3 * interval} ms old`]: `${db.heartbeatWithinInterval} / ${db.heartbeatWithin3Intervals}`,
      'control plane RSS avg / max (MB)': `${mb(cpRssAvg)} / ${mb(Math.max(...rss))}`,
      'control plane RSS per stream over 0 streams (KB)':
        idle && n >= 1_000 ? round((cpRssAvg - idle.rssKb) / n, 1) : 'n/a below 1,000 agents',
      'control plane V8 heap used after full GC: 0 streams / N streams (MB)': `${mb(idleMemory.heapUsed / 1024)} / ${mb(steadyMemory.heapUsed / 1024)}`,
      'control plane heap + external + buffers per stream after full GC (KB)': round(
        (steadyMemory.heapUsed + steadyMemory.external - idleMemory.heapUsed - idleMemory.external) /
          1024 /
          n,
        1,
      ),
      'control plane CPU (% of one core)': steadyUsage.cp,
      'PostgreSQL CPU, all its processes (% of one core)': steadyUsage.pg,
      'PostgreSQL RSS sum (MB, shared memory counted per process)': mb(avg(pgRss)),
      'heartbeats written / s (gateway counter, flush to flush)': round(
        (statsAfter.lastFlush.heartbeatsWritten - statsBefore.lastFlush.heartbeatsWritten) / flushSpan,
        1,
      ),
      'heartbeat flushes (one UPDATE each) / s; heartbeats per flush': `${round(
        (statsAfter.lastFlush.flushes - statsBefore.lastFlush.flushes) / flushSpan,
        2,
      )}; ${Math.round(
        (statsAfter.lastFlush.heartbeatsWritten - statsBefore.lastFlush.heartbeatsWritten) /
          Math.max(1, statsAfter.lastFlush.flushes - statsBefore.lastFlush.flushes),
      )}`,
      'heartbeats sent by agents / s': round(delta((a) => a.heartbeats) / windowSeconds, 1),
      'stream ends during the window': delta((a) => a.disconnects),
      'open fds: control plane': openFds(cpPid),
      'event-loop delay p99 / max (ms): control plane': cpSteadyLoop,
      'event-loop delay p99 / max (ms): agent processes': agentsSteadyLoop.join('  |  '),
    };
    agentPids.forEach((pid, i) => {
      steady[`agents #${i + 1}: CPU (%) / RSS avg (MB) / open fds`] =
        `${steadyUsage.agents[i]} / ${mb(avg(agentRss[i] ?? []))} / ${openFds(pid)}`;
    });
    steady['machine CPU busy / other processes (% of one core; 200 = both cores)'] =
      `${steadyUsage.machine} / ${steadyUsage.others}`;

    // 4. Commands through the real command path.
    const commands: Record<string, Row> = {};
    const breakdown: Record<string, Row> = {};
    /** Runs one command phase and records its figures with the CPU it cost. */
    const phase = async <T>(label: string, run: () => Promise<T>, row: (result: T) => Row): Promise<T> => {
      progress(`commands: ${label}...`);
      const before = snapshot();
      const result = await run();
      const usage = cpuSince(before);
      commands[label] = { ...row(result), 'cp_cpu%': usage.cp, 'pg_cpu%': usage.pg };
      return result;
    };
    const addBreakdown = async (label: string, sinceMs: number) => {
      const parts = await cp.call('commandBreakdown', { sinceMs }, 60_000);
      for (const [part, summary] of Object.entries(parts)) breakdown[`${label}: ${part}`] = summary;
    };
    const same = (result: Row) => result;
    let since = Date.now();
    await phase(
      `${options.sequentialCommands} noop, sendAndWait, 1 at a time`,
      () =>
        cp.call(
          'syncCommands',
          { count: options.sequentialCommands, concurrency: 1, maxMs: 120_000 },
          180_000,
        ),
      same,
    );
    await addBreakdown('sendAndWait 1 at a time', since);
    since = Date.now();
    await phase(
      `${options.concurrentCommands} noop, sendAndWait, ${options.concurrency} at a time`,
      () =>
        cp.call(
          'syncCommands',
          { count: options.concurrentCommands, concurrency: options.concurrency, maxMs: 120_000 },
          180_000,
        ),
      same,
    );
    await addBreakdown(`sendAndWait ${options.concurrency} at a time`, since);
    const sequentialJobs = await phase(
      `${options.sequentialJobs} node-ping jobs, 1 at a time`,
      () => cp.call('pingJobs', { count: options.sequentialJobs, concurrency: 1, maxMs: 120_000 }, 180_000),
      (result) => result.jobs,
    );
    breakdown['node-ping jobs 1 at a time: runNodeCommand inside the step'] = sequentialJobs.commandInsideJob;
    const concurrentJobs = await phase(
      `${options.concurrentJobs} node-ping jobs, ${options.concurrency} outstanding (${started.jobConcurrency} workers)`,
      () =>
        cp.call(
          'pingJobs',
          { count: options.concurrentJobs, concurrency: options.concurrency, maxMs: 120_000 },
          180_000,
        ),
      (result) => result.jobs,
    );
    breakdown[`node-ping jobs ${options.concurrency} outstanding: runNodeCommand inside the step`] =
      concurrentJobs.commandInsideJob;
    const after = await cp.call('stats', undefined, 30_000);
    steady['streams after the command phase'] = after.streams;
    steady['control plane RSS after the command phase (MB)'] = mb(sampleProcess(cpPid)?.rssKb ?? 0);

    const processes: Row[] = [
      {
        role: 'benchmark driver',
        pid: process.pid,
        runs: 'this process: orchestration and /proc sampling only',
      },
      {
        role: 'control plane',
        pid: cpPid,
        runs: `startControlPlane: gRPC gateway on ${started.grpcAddress}, heartbeat writer, command service, job runner`,
      },
      {
        role: 'PostgreSQL',
        pid: postmasterPid,
        runs: 'embedded cluster of the control plane (postmaster + backends, summed)',
      },
      ...agentChildren.map(({ child, from, to }, i) => ({
        role: `agents #${i + 1}`,
        pid: child.pid,
        runs: `${to - from} AgentSessions (nodes ${from}..${to - 1}), no-op executor`,
      })),
    ];
    return { processes, log: summarizeLog(started.logFile), connect, steady, commands, breakdown, notes };
  } catch (error) {
    failed = true;
    try {
      const log = readFileSync(path.join(runDir, 'control-plane.log'), 'utf8').trim().split('\n').slice(-20);
      if (log.length && log[0]) console.error(`last control-plane log lines:\n${log.join('\n')}`);
    } catch {
      // no log yet
    }
    throw error;
  } finally {
    progress(failed ? 'failed; cleaning up...' : 'stopping agents and the control plane...');
    const stopStart = performance.now();
    await Promise.all(
      agentChildren.map(async ({ child, rpc }) => {
        await rpc.call('stop', { timeoutMs: 15_000 }, 30_000).catch(() => {});
        if (!(await waitForExit(child, 10_000))) child.kill('SIGKILL');
      }),
    );
    progress(`  agents stopped in ${round((performance.now() - stopStart) / 1000, 1)} s`);
    await cp.call('stop', undefined, 90_000).catch(() => {});
    if (!(await waitForExit(cpChild, 10_000))) cpChild.kill('SIGKILL');
    const pm = live.postmasterPid;
    if (pm && isAlive(pm)) {
      process.kill(pm, 'SIGQUIT');
      for (let i = 0; i < 50 && isAlive(pm); i++) await sleep(200);
      if (isAlive(pm)) process.kill(pm, 'SIGKILL');
    }
    live.postmasterPid = undefined;
    await rm(runDir, { recursive: true, force: true });
    live.runDir = '';
    progress(`  everything stopped and removed in ${round((performance.now() - stopStart) / 1000, 1)} s`);
  }
}
