import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase, freePort, TEST_ADMIN, waitFor } from '@wpcp/control-plane/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { makeInstanceDir } from '../stack/daemon.ts';
import {
  BINARIES,
  fetchWordPressCore,
  httpGet,
  type MariaDbInstance,
  type NginxInstance,
  type PhpFpmInstance,
  type RedisInstance,
  runCollect,
  shouldSkipStack,
  startMariaDb,
  startNginx,
  startPhpFpm,
  startRedis,
  WP_CLI_DOUBLE,
} from '../stack/index.ts';
import { apiClient } from '../support/fleet.ts';
import { type RunningProcess, startNodeProcess } from '../support/process.ts';

/**
 * The product end to end on one machine, the way a newcomer tries it: `WPCP_LOCAL_NODE=1` starts
 * the control plane, which enrolls and runs a real agent managing this machine as the node
 * `local`. The node's services are the hermetic stack (private nginx, PHP-FPM, MariaDB and Redis
 * from the installed binaries, in temporary directories, on unprivileged ports), given to the
 * agent through its WPCP_AGENT_* settings. Everything goes through the public API.
 */
const skip = shouldSkipStack();

let db: MariaDbInstance;
let redis: RedisInstance;
let fpm: PhpFpmInstance;
let nginx: NginxInstance;
let server: RunningProcess | undefined;
let dataDir: string;
let sitesDir: string;
let cronDir: string;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let api: Awaited<ReturnType<typeof apiClient>>;

beforeAll(async () => {
  if (skip) return;
  let core: Awaited<ReturnType<typeof fetchWordPressCore>>;
  [core, db, redis, fpm, nginx, database] = await Promise.all([
    fetchWordPressCore(),
    startMariaDb(),
    startRedis(),
    startPhpFpm(),
    startNginx(),
    createTestDatabase(inject('postgresAdminUrl')),
  ]);
  dataDir = await mkdtemp(path.join(tmpdir(), 'wpcp-single-'));
  // Like /srv/wpcp on a node: the environments' users must be able to walk into it.
  [sitesDir, cronDir] = await Promise.all([makeInstanceDir('sites'), makeInstanceDir('cron')]);
  const httpPort = await freePort();
  server = startNodeProcess('control-plane/src/server.ts', [], {
    DATABASE_URL: database.url,
    WPCP_DATA_DIR: dataDir,
    WPCP_HTTP_PORT: String(httpPort),
    WPCP_GRPC_HOST: '127.0.0.1',
    WPCP_GRPC_PORT: String(await freePort()),
    WPCP_ADMIN_EMAIL: TEST_ADMIN.email,
    WPCP_ADMIN_PASSWORD: TEST_ADMIN.password,
    WPCP_NODE_HEARTBEAT_INTERVAL_MS: '1000',
    // Single-machine mode and its node-side settings, as documented.
    WPCP_LOCAL_NODE: '1',
    WPCP_NODE_BASE_DOMAIN: 'local.test',
    WPCP_NODE_HTTP_PORT: String(nginx.port),
    WPCP_WP_CLI: WP_CLI_DOUBLE,
    WPCP_WP_CORE_SOURCE: core.dir,
    // Where this machine's "services" are: the hermetic stack.
    WPCP_AGENT_SITES_DIR: sitesDir,
    WPCP_AGENT_CRON_DIR: cronDir,
    WPCP_AGENT_NGINX_SITES_DIR: nginx.sitesDir,
    WPCP_AGENT_NGINX_TEST_ARGV: JSON.stringify(nginx.testArgv),
    WPCP_AGENT_NGINX_RELOAD_ARGV: JSON.stringify(nginx.reloadArgv),
    WPCP_AGENT_NGINX_LISTEN: JSON.stringify([nginx.listen]),
    WPCP_AGENT_PHP_FPM_POOL_DIR: fpm.poolDir,
    WPCP_AGENT_PHP_FPM_TEST_ARGV: JSON.stringify(fpm.testArgv),
    WPCP_AGENT_PHP_FPM_RELOAD_ARGV: JSON.stringify(fpm.reloadArgv),
    WPCP_AGENT_PHP_FPM_SOCKET_DIR: fpm.dir,
    WPCP_AGENT_DATABASE_ADMIN_ARGV: JSON.stringify([BINARIES.mysql, ...db.clientArgs]),
    WPCP_AGENT_DATABASE_DUMP_ARGV: JSON.stringify([BINARIES.mariadbDump, ...db.clientArgs]),
    WPCP_AGENT_DATABASE_HOST: `localhost:${db.socketPath}`,
    WPCP_AGENT_REDIS_HOST: redis.host,
    WPCP_AGENT_REDIS_PORT: String(redis.port),
    WPCP_AGENT_PHP_CLI: BINARIES.php,
  });
  await server.waitForOutput(/this node: +enrolled as "local"/, 90_000);
  api = await apiClient(`http://127.0.0.1:${httpPort}`);
  // The local agent connects on its own: wait until the node is active.
  await waitFor(
    async () => {
      const nodes = await api.get('/api/nodes');
      return nodes.body.items.some(
        (n: { name: string; status: string }) => n.name === 'local' && n.status === 'active',
      )
        ? true
        : undefined;
    },
    30_000,
    'the local node to be active',
  );
}, 180_000);

afterAll(async () => {
  if (skip) return;
  await server?.stop('SIGTERM');
  await Promise.allSettled([db?.stop(), redis?.stop(), fpm?.stop(), nginx?.stop()]);
  await database?.drop();
  await Promise.all([dataDir, sitesDir, cronDir].map((dir) => rm(dir, { recursive: true, force: true })));
  // No Linux user of ours may outlive the test: the deletion test removes them through the API;
  // should it have failed, they are removed here all the same, and the test fails.
  const leftovers = (await readFile('/etc/passwd', 'utf8'))
    .split('\n')
    .filter((line) => line.includes(sitesDir));
  for (const line of leftovers) {
    const user = line.split(':')[0] as string;
    await runCollect('pkill', ['-KILL', '-u', user]).catch(() => {});
    await runCollect('userdel', [user]).catch(() => {});
  }
  expect(leftovers).toEqual([]);
});

async function finishedJob(jobId: string, timeoutMs = 120_000) {
  return waitFor(
    async () => {
      const job = await api.get(`/api/jobs/${jobId}`);
      return ['succeeded', 'failed', 'cancelled'].includes(job.body.status) ? job.body : undefined;
    },
    timeoutMs,
    `job ${jobId}`,
  );
}

const page = (hostname: string) =>
  httpGet(`http://127.0.0.1:${nginx.port}/`, { host: `${hostname}:${nginx.port}` });

/**
 * `nginx -s reload` returns before the new workers serve (old ones finish their connections
 * first), so a page reflecting a change is awaited, briefly.
 */
function pageWhere(hostname: string, predicate: (body: string) => boolean) {
  return waitFor(
    async () => {
      const res = await page(hostname);
      return predicate(res.body) ? res : undefined;
    },
    10_000,
    `${hostname} to serve the expected page`,
  );
}
const isShop = (body: string) => body.includes('Stack Shop');

describe.skipIf(skip)('single-machine mode on the real stack', () => {
  let siteId = '';
  let production = { id: '', default_hostname: '', wordpress_version: '' };

  it('enrolls this machine as the node "local", active', async () => {
    const nodes = await api.get('/api/nodes');
    const local = nodes.body.items.find((node: { name: string }) => node.name === 'local');
    expect(local).toBeDefined();
    await waitFor(
      async () => ((await api.get(`/api/nodes/${local.id}`)).body.status === 'active' ? true : undefined),
      20_000,
      'the local node to be active',
    );
  });

  it('POST /api/sites provisions a WordPress site that nginx serves under its default hostname', async () => {
    const created = await api.post('/api/sites', { name: 'Stack Shop', slug: 'stack-shop' });
    expect(created.status).toBe(202);
    const job = await finishedJob(created.body.job_id);
    expect(job, `${job.error_code}: ${job.error_message}`).toMatchObject({ status: 'succeeded' });
    siteId = job.target.id;
    const site = await api.get(`/api/sites/${siteId}`);
    expect(site.body.status).toBe('active');
    production = site.body.environments[0];
    expect(production).toMatchObject({
      type: 'production',
      status: 'active',
      default_hostname: 'stack-shop--production.local.test',
    });
    expect(production.wordpress_version).toMatch(/^\d+\.\d+/);

    const res = await pageWhere(production.default_hostname, isShop);
    expect(res.status).toBe(200);
    expect(res.body).toContain('Stack Shop');
    expect(res.body).toContain(`http://${production.default_hostname}:${nginx.port}`);
  });

  it('serves the site under an added domain, and no longer once the domain is deleted', async () => {
    const added = await api.post(`/api/environments/${production.id}/domains`, {
      hostname: 'shop.example.test',
    });
    expect(added.status).toBe(202);
    expect((await finishedJob(added.body.job_id)).status).toBe('succeeded');
    const served = await pageWhere('shop.example.test', isShop);
    expect(served.status).toBe(200);
    expect(served.body).toContain('Stack Shop');

    const domains = await api.get(`/api/environments/${production.id}/domains`);
    const domain = domains.body.items.find((d: { hostname: string }) => d.hostname === 'shop.example.test');
    const removed = await fetch(`${api.base}/api/domains/${domain.id}`, {
      method: 'DELETE',
      headers: api.headers,
    });
    expect(removed.status).toBe(202);
    const { job_id } = (await removed.json()) as { job_id: string };
    expect((await finishedJob(job_id)).status).toBe('succeeded');
    const gone = await pageWhere('shop.example.test', (body) => !isShop(body));
    expect(gone.body).not.toContain('Stack Shop');
  });

  it('clones production into staging, served under its own hostname with its URLs rewritten', async () => {
    const created = await api.post(`/api/sites/${siteId}/environments`, {
      name: 'Staging',
      slug: 'staging',
      type: 'staging',
      source_environment_id: production.id,
    });
    expect(created.status).toBe(202);
    const job = await finishedJob(created.body.job_id);
    expect(job, `${job.error_code}: ${job.error_message}`).toMatchObject({ status: 'succeeded' });
    const staging = (await api.get(`/api/environments/${job.target.id}`)).body;
    expect(staging.default_hostname).toBe('stack-shop--staging.local.test');
    const res = await pageWhere(staging.default_hostname, isShop);
    expect(res.status).toBe(200);
    expect(res.body).toContain('Stack Shop');
    expect(res.body).toContain(`http://${staging.default_hostname}:${nginx.port}`);
    expect(res.body).not.toContain(production.default_hostname);
  });

  it('deleting the site removes every environment from the node: users, files, pools, databases, nginx', async () => {
    const deleted = await fetch(`${api.base}/api/sites/${siteId}`, {
      method: 'DELETE',
      headers: api.headers,
    });
    expect(deleted.status).toBe(202);
    const { job_id } = (await deleted.json()) as { job_id: string };
    const job = await finishedJob(job_id);
    expect(job, `${job.error_code}: ${job.error_message}`).toMatchObject({ status: 'succeeded' });
    expect((await api.get(`/api/sites/${siteId}`)).status).toBe(404);

    const passwd = await readFile('/etc/passwd', 'utf8');
    expect(passwd).not.toContain(sitesDir);
    expect(await readdir(sitesDir)).toEqual([]);
    expect((await readdir(nginx.sitesDir)).filter((f) => f.includes('stack-shop'))).toEqual([]);
    expect((await readdir(fpm.poolDir)).filter((f) => f.includes('stack-shop'))).toEqual([]);
    const databases = await runCollect(BINARIES.mysql, [...db.clientArgs, '-N', '-e', 'show databases']);
    expect(databases.stdout).not.toMatch(/^wp_/m);
    const gone = await pageWhere(production.default_hostname, (body) => !isShop(body));
    expect(gone.body).not.toContain('Stack Shop');
  });
});
