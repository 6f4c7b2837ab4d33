import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TEST_ADMIN } from '@wpcp/control-plane/testing';
import { type RunningProcess, startNodeProcess } from './process.ts';

/** A control plane in its own process (test/support/control-plane-child.ts). */
export interface ControlPlaneProcess extends RunningProcess {
  http: string;
  grpc: string;
  /** Enqueues a `test-node-command` job (only with testJobs) and returns its id. */
  enqueue(payload: object): Promise<string>;
}

export async function startControlPlaneProcess(options: {
  adminUrl: string;
  databaseUrl: string;
  env?: Record<string, string>;
  testJobs?: boolean;
}): Promise<ControlPlaneProcess> {
  const child = startNodeProcess(
    'test/support/control-plane-child.ts',
    [JSON.stringify({ ...options, env: options.env ?? {}, testJobs: options.testJobs ?? false })],
    {},
  );
  const [, ready] = await child.waitForOutput(/READY (\{.*\})\n/);
  const { http, grpc } = JSON.parse(ready as string) as { http: string; grpc: string };
  let enqueued = 0;
  return {
    ...child,
    http,
    grpc,
    enqueue: async (payload) => {
      const before = enqueued++;
      child.send(`enqueue ${JSON.stringify(payload)}`);
      // The n-th answer belongs to the n-th request.
      const answers = () => [...child.stdout().matchAll(/(JOB|ERROR) (.+)\n/g)];
      const deadline = Date.now() + 15_000;
      while (answers().length <= before) {
        if (Date.now() > deadline) throw new Error('no answer to enqueue');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const [, kind, value] = answers()[before] as RegExpMatchArray;
      if (kind !== 'JOB') throw new Error(`enqueue failed: ${value}`);
      return value as string;
    },
  };
}

/** A tiny client of the control plane's HTTP API, logged in as the test admin. */
export async function apiClient(base: string) {
  const login = await fetch(`${base}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(TEST_ADMIN),
  });
  if (login.status !== 200) throw new Error(`login failed: ${login.status}`);
  const { session_token } = (await login.json()) as { session_token: string };
  const call = async (method: string, url: string, body?: object) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${session_token}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    return {
      status: res.status,
      // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered.
      body: (await res.json()) as Record<string, any>,
    };
  };
  return {
    base,
    headers: { authorization: `Bearer ${session_token}` },
    get: (url: string) => call('GET', url),
    post: (url: string, body?: object) => call('POST', url, body),
  };
}

/** A real `wpcp-agent` with its own state directory. */
export class AgentUnderTest {
  readonly stateDir: string;
  process: RunningProcess | undefined;

  private constructor(stateDir: string) {
    this.stateDir = stateDir;
  }

  static async create(): Promise<AgentUnderTest> {
    return new AgentUnderTest(await mkdtemp(path.join(tmpdir(), 'wpcp-agent-')));
  }

  /** Runs `wpcp-agent enroll` to completion. */
  async enroll(server: string, token: string): Promise<{ code: number | null; stderr: string }> {
    const run = startNodeProcess(
      'node-agent/bin/wpcp-agent.js',
      ['enroll', '--server', server, '--token-file', '-', '--state-dir', this.stateDir],
      {},
    );
    run.child.stdin?.end(token);
    const code = await run.exited();
    return { code, stderr: run.stderr() };
  }

  start(env: Record<string, string> = {}): RunningProcess {
    this.process = startNodeProcess(
      'node-agent/bin/wpcp-agent.js',
      ['run', '--state-dir', this.stateDir],
      env,
    );
    return this.process;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const code = (await this.process?.stop(signal)) ?? null;
    this.process = undefined;
    return code;
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    await rm(this.stateDir, { recursive: true, force: true });
  }
}
