import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@wpcp/control-plane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningProcess, startNodeProcess } from '../support/process.ts';

/**
 * `npm start` as an operator runs it: the real server process on an embedded PostgreSQL in its
 * own data directory, started, used with HTTP, stopped, restarted and killed.
 */
let dataDir: string;
let env: Record<string, string>;
let base: string;
const running: RunningProcess[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'wpcp-system-'));
  const httpPort = await freePort();
  base = `http://127.0.0.1:${httpPort}`;
  env = {
    WPCP_DATA_DIR: dataDir,
    WPCP_HTTP_PORT: String(httpPort),
    WPCP_EMBEDDED_PG_PORT: String(await freePort()),
    WPCP_GRPC_PORT: String(await freePort()),
    WPCP_GRPC_HOST: '127.0.0.1',
  };
});

afterAll(async () => {
  for (const process of running) await process.stop('SIGTERM');
  await stopOrphanPostmaster();
  await rm(dataDir, { recursive: true, force: true });
});

function startServer(extraEnv: Record<string, string> = {}): RunningProcess {
  const server = startNodeProcess('control-plane/src/server.ts', [], { ...env, ...extraEnv });
  running.push(server);
  return server;
}

async function postmasterPid(dir = dataDir): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(path.join(dir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function stopOrphanPostmaster() {
  const pid = await postmasterPid();
  if (pid) process.kill(pid, 'SIGINT');
}

async function login(password: string) {
  const res = await fetch(`${base}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'admin@localhost', password }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}

describe('the control plane process', () => {
  let password = '';

  it('starts on a fresh data dir, prints where it listens and where the admin password is', async () => {
    const server = startServer();
    const [banner] = await server.waitForOutput(/listening on (http:\/\/\S+)[\s\S]*log in:.*\n/);
    expect(banner).toContain(base);
    const passwordFile = path.join(dataDir, 'admin-password');
    expect(banner).toContain(passwordFile);
    expect(banner).toContain('master key: generated');
    password = (await readFile(passwordFile, 'utf8')).trim();
    expect(password.length).toBeGreaterThanOrEqual(20);
    expect((await stat(passwordFile)).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(dataDir, 'master-key'))).mode & 0o777).toBe(0o600);
    // Not a terminal: the password itself is never printed, nor logged.
    expect(server.stdout()).not.toContain(password);
    expect(server.stderr()).not.toContain(password);

    const { status, body } = await login(password);
    expect(status).toBe(200);
    const headers = { authorization: `Bearer ${body.session_token}` };
    expect((await fetch(`${base}/api/jobs`, { headers })).status).toBe(200);
    const metrics = await (await fetch(`${base}/api/metrics`, { headers })).json();
    expect(metrics).toEqual({ jobs_running: 0, jobs_queued: 0, nodes_active: 0, sites_total: 0 });
    const logout = await fetch(`${base}/api/logout`, { method: 'POST', headers });
    expect(await logout.json()).toEqual({ success: true });
    expect((await fetch(`${base}/api/jobs`, { headers })).status).toBe(401);

    // SIGTERM: a clean exit, and the embedded database is stopped with it.
    expect(await server.stop('SIGTERM')).toBe(0);

    // Logs are JSON lines, one per request, and none carries the token.
    const logLines = server
      .stdout()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line));
    expect(logLines.filter((line) => line.msg === 'request')).toHaveLength(5);
    expect(server.stdout()).not.toContain(body.session_token);
    expect(await postmasterPid()).toBeUndefined();
  });

  it('keeps its data across restarts; the second start migrates nothing and creates no admin', async () => {
    const server = startServer();
    const [banner] = await server.waitForOutput(/listening on[\s\S]*log in:.*\n/);
    expect(banner).not.toContain('(created)');
    expect(server.stdout()).not.toContain('database migrated');
    expect((await login(password)).status).toBe(200);
    expect(await server.stop('SIGTERM')).toBe(0);
  });

  it('recovers the embedded database after the process is killed with SIGKILL', async () => {
    const first = startServer();
    await first.waitForOutput(/listening on/);
    expect(await first.stop('SIGKILL')).toBeNull();
    // The postmaster outlives its parent: the next start must deal with it.
    expect(await postmasterPid()).toBeDefined();

    const second = startServer();
    await second.waitForOutput(/listening on/);
    expect((await login(password)).status).toBe(200);
    expect(await second.stop('SIGTERM')).toBe(0);
    await sleep(100);
    expect(await postmasterPid()).toBeUndefined();
  });

  it('refuses to start on a port in use with one clear line, leaving no database running', async () => {
    const first = startServer();
    await first.waitForOutput(/listening on/);
    const refused = async (extra: Record<string, string>) => {
      const dir = `${dataDir}-refused`;
      const other = startServer({
        WPCP_EMBEDDED_PG_PORT: String(await freePort()),
        WPCP_DATA_DIR: dir,
        ...extra,
      });
      const code = await new Promise<number | null>((resolve) => other.child.once('exit', resolve));
      // Its embedded database was started before the port was found taken: it must be gone.
      expect(await postmasterPid(dir)).toBeUndefined();
      await rm(dir, { recursive: true, force: true });
      return { code, stderr: other.stderr() };
    };
    // The HTTP port is taken.
    const http = await refused({ WPCP_GRPC_PORT: String(await freePort()) });
    expect(http.code).toBe(1);
    expect(http.stderr).toMatch(/wpcp: cannot listen on 127\.0\.0\.1:\d+: the address is already in use/);
    // The agent gateway's port is taken.
    const grpc = await refused({ WPCP_HTTP_PORT: String(await freePort()) });
    expect(grpc.code).toBe(1);
    expect(grpc.stderr).toMatch(
      /wpcp: failed to start: cannot listen for agents on 127\.0\.0\.1:\d+ .*EADDRINUSE/,
    );
    const code1 = await first.stop('SIGTERM');
    expect(code1, first.stderr() + first.stdout().slice(-2000)).toBe(0);
  });

  it('stops with one clear line naming a bad setting', async () => {
    const server = startServer({ WPCP_HTTP_PORT: 'eighty' });
    const code = await new Promise<number | null>((resolve) => server.child.once('exit', resolve));
    expect(code).toBe(1);
    const lines = server.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^wpcp: invalid configuration: WPCP_HTTP_PORT: /);
  });
});
