/**
 * `npm run bench`: prints the figures later work is compared against. Not part of `npm test`.
 *
 *   npm run bench [-- api] [-- --requests N]
 *   npm run bench -- fleet [--agents N] [--rate R] [--max-in-flight M] [--agent-processes P] [--agents-nice 0..19]
 *                          [--settle-seconds S] [--steady-seconds S] [--commands N] [--concurrent-commands N]
 *                          [--concurrency C] [--jobs N] [--concurrent-jobs N] [--log-level L]
 *
 * From the repository root, npm (which runs `npm run bench --workspace test`) keeps the options
 * after the first `--` for itself and passes on only their values: `npm run bench -- fleet --agents
 * 5000` still works (a bare number after `fleet` is the agent count), but any other option needs a
 * second `--`: `npm run bench -- -- fleet --agents 5000 --rate 50`. In test/, options reach this
 * script as written: `npm run bench -- fleet --agents 5000 --rate 50`.
 */
import { parseArgs } from 'node:util';
import { benchApiLatency } from './api-latency.ts';
import { benchFleet, emergencyCleanup } from './fleet.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    requests: { type: 'string', default: '1000' },
    agents: { type: 'string' },
    rate: { type: 'string', default: '100' },
    'agents-nice': { type: 'string', default: '0' },
    'max-in-flight': { type: 'string', default: '100' },
    'agent-processes': { type: 'string', default: '2' },
    'settle-seconds': { type: 'string', default: '10' },
    'steady-seconds': { type: 'string', default: '20' },
    commands: { type: 'string', default: '500' },
    'concurrent-commands': { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '32' },
    jobs: { type: 'string', default: '100' },
    'concurrent-jobs': { type: 'string', default: '500' },
    'log-level': { type: 'string', default: 'warn' },
  },
});
const numbers = positionals.filter((p) => /^\d+$/.test(p));
const which = new Set(positionals.filter((p) => !/^\d+$/.test(p)));
if (which.size === 0) which.add('api');
for (const name of which) {
  if (name !== 'api' && name !== 'fleet') throw new Error(`unknown benchmark ${name} (api, fleet)`);
}

function positiveInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, not ${value}`);
  return n;
}

function nonNegativeInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be an integer >= 0, not ${value}`);
  return n;
}

function niceValue(value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 19) throw new Error(`--agents-nice must be 0..19, not ${value}`);
  return n;
}

if (which.has('api')) {
  const results = await benchApiLatency({ requests: Number(values.requests) });
  console.log('\nAPI latency (milliseconds; per_second = completed operations per second)');
  console.table(results);
}

if (which.has('fleet')) {
  const fromNpm = process.env.npm_config_agents;
  const agents = positiveInt(
    'agents',
    values.agents ?? numbers[0] ?? (fromNpm && /^\d+$/.test(fromNpm) ? fromNpm : '1000'),
  );
  const options = {
    agents,
    ratePerSecond: positiveInt('rate', values.rate),
    maxInFlight: nonNegativeInt('max-in-flight', values['max-in-flight']),
    agentProcesses: positiveInt('agent-processes', values['agent-processes']),
    agentsNice: niceValue(values['agents-nice']),
    settleSeconds: positiveInt('settle-seconds', values['settle-seconds']),
    steadySeconds: positiveInt('steady-seconds', values['steady-seconds']),
    sequentialCommands: positiveInt('commands', values.commands),
    concurrentCommands: positiveInt('concurrent-commands', values['concurrent-commands']),
    concurrency: positiveInt('concurrency', values.concurrency),
    sequentialJobs: positiveInt('jobs', values.jobs),
    concurrentJobs: positiveInt('concurrent-jobs', values['concurrent-jobs']),
    logLevel: values['log-level'],
    progress: (line: string) => console.error(`[fleet ${new Date().toISOString().slice(11, 19)}] ${line}`),
  };
  // Whatever happens, the run ends: a watchdog well past the sum of every phase's own limit.
  const watchdogMs = (agents / options.ratePerSecond) * 1.5 * 1000 + agents * 20 + 20 * 60_000;
  const watchdog = setTimeout(() => {
    console.error(`fleet benchmark: still running after ${Math.round(watchdogMs / 1000)} s; giving up`);
    emergencyCleanup();
    process.exit(1);
  }, watchdogMs);
  watchdog.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      emergencyCleanup();
      process.exit(130);
    });
  }
  const report = await benchFleet(options);
  clearTimeout(watchdog);
  console.log(`\nAgent fleet: ${agents} agents — processes`);
  console.table(report.processes);
  console.log('\nConnect');
  console.table(report.connect);
  console.log(`\nSteady state (heartbeats every 5 s; CPU averaged over the window)`);
  console.table(report.steady);
  console.log('\nCommand round trip (milliseconds; per_second = completed commands per second)');
  console.table(report.commands);
  console.log('\nWhere the command time goes (milliseconds, from database timestamps / job output)');
  console.table(report.breakdown);
  console.log('\nControl-plane warnings and errors during the run (log level >= warn)');
  if (report.log.length) console.table(report.log);
  else console.log('none');
  for (const note of report.notes) console.log(`note: ${note}`);
}
process.exit(0);
