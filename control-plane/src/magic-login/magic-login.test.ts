import { CommandStatus } from '@wpcp/shared/agent-protocol';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  startTestControlPlane,
  startTestNode,
  type TestControlPlane,
  type TestNode,
  waitFor,
} from '../testing/index.ts';

// POST /api/environments/:id/magic-login and its audit trail against an in-test agent whose
// answers to create_magic_login each test scripts: a login URL, a WP-CLI failure, or silence.
// Tests run in order on one control plane.

const TOKEN = 'SecretMagicToken_0123456789abcdefghijklmnopq';
const RATE_LIMIT = 5;

let cp: TestControlPlane;
let auth: string;
let web1: TestNode;
let mode: 'ok' | 'fail' | 'hang' = 'ok';
const issuedUrls: string[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    env: {
      WPCP_NODE_HEARTBEAT_INTERVAL_MS: '60000',
      WPCP_COMMAND_POLL_MS: '200',
      WPCP_COMMAND_RESULT_GRACE_SECONDS: '1',
      WPCP_MAGIC_LOGIN_MAX_PER_WINDOW: String(RATE_LIMIT),
      WPCP_MAGIC_LOGIN_WINDOW_SECONDS: '60',
    },
  });
  auth = await cp.login();
  web1 = await startTestNode(cp, auth, 'web1');
  // create_magic_login is held by the test node's own answerer and answered here instead.
  web1.holdWhen((command) => command.type === 'createMagicLogin');
  web1.stream.autoAnswer((command) => {
    const payload = command.payload;
    if (payload?.$case !== 'createMagicLogin') return undefined;
    if (mode === 'hang') return undefined;
    if (mode === 'fail') {
      return {
        status: CommandStatus.FAILED,
        errorCode: 'wp_cli_error',
        errorMessage: 'wp user list exited with code 1: Error: Error establishing a database connection.',
      };
    }
    const url = `${payload.value.siteUrl}/wpcp-login/#${TOKEN}${issuedUrls.length}`;
    issuedUrls.push(url);
    return {
      status: CommandStatus.SUCCEEDED,
      outputJson: JSON.stringify({
        login_url: url,
        expires_at_ms: Date.now() + payload.value.ttlSeconds * 1000,
        user: 'wpcp-admin',
      }),
    };
  });
});
afterAll(async () => {
  web1?.close();
  await cp?.destroy();
});

const request = (method: 'GET' | 'POST', url: string) =>
  cp.app.inject({ method, url, headers: { authorization: auth } });

async function createSite(slug: string) {
  const res = await cp.app.inject({
    method: 'POST',
    url: '/api/sites',
    headers: { authorization: auth },
    payload: { name: `Site ${slug}`, slug },
  });
  expect(res.statusCode, res.body).toBe(202);
  const jobId = res.json().job_id;
  const job = await waitFor(
    async () => {
      const j = (await request('GET', `/api/jobs/${jobId}`)).json();
      return ['succeeded', 'failed'].includes(j.status) ? j : undefined;
    },
    20_000,
    'site job',
  );
  expect(job.status).toBe('succeeded');
  const site = (await request('GET', `/api/sites/${job.target.id}`)).json();
  return site.environments[0] as { id: string; url: string; status: string };
}

const magicLogin = (environmentId: string) =>
  request('POST', `/api/environments/${environmentId}/magic-login`);
const audit = async (environmentId: string) => {
  const res = await request('GET', `/api/environments/${environmentId}/magic-logins`);
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as { items: Record<string, unknown>[]; next_cursor: string | null };
};

let shop: { id: string; url: string };

describe('magic login', () => {
  it('answers the login URL the node made, with its expiry, and audits it without the URL', async () => {
    shop = await createSite('shop');
    mode = 'ok';
    const res = await magicLogin(shop.id);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body.login_url).toBe(issuedUrls[0]);
    expect(body.login_url.startsWith(`${shop.url}/wpcp-login/#`)).toBe(true);
    const expiresIn = Date.parse(body.expires_at) - Date.now();
    expect(expiresIn).toBeGreaterThan(50_000);
    expect(expiresIn).toBeLessThanOrEqual(60_000);

    // The command the node got: the environment, its primary URL, 60 s.
    const sent = web1.commands.filter((c) => c.type === 'createMagicLogin');
    expect(sent).toHaveLength(1);
    expect(sent[0]?.value).toMatchObject({ siteUrl: shop.url, ttlSeconds: 60 });
    expect(sent[0]?.id.startsWith('sync:')).toBe(true);

    const trail = await audit(shop.id);
    expect(trail.next_cursor).toBeNull();
    expect(trail.items).toEqual([
      {
        id: expect.any(String),
        environment_id: shop.id,
        node_id: web1.id,
        user_id: expect.any(String),
        user_email: 'admin@example.test',
        status: 'issued',
        error_code: null,
        created_at: expect.any(String),
        expires_at: body.expires_at,
      },
    ]);
  });

  it('keeps the URL out of the database and the logs', async () => {
    const rows = await cp.db.selectFrom('magic_logins').selectAll().execute();
    const commands = await cp.db
      .selectFrom('agent_commands')
      .selectAll()
      .where('type', '=', 'createMagicLogin')
      .execute();
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) expect(command.output).toBeNull();
    const everything = JSON.stringify([rows, commands, cp.logs]);
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain('/wpcp-login/');
    expect(cp.logs.some((line) => line.msg === 'magic login issued')).toBe(true);
    // And a line that names it anyway is redacted.
    cp.app.log.info({ login_url: issuedUrls[0], result: { login_url: issuedUrls[0] } }, 'probe');
    const probe = cp.logs.find((line) => line.msg === 'probe');
    expect(probe).toMatchObject({ login_url: '[redacted]', result: { login_url: '[redacted]' } });
  });

  it('answers wp_cli_error (502) with the node message when the node-side operation fails', async () => {
    mode = 'fail';
    const res = await magicLogin(shop.id);
    expect(res.statusCode, res.body).toBe(502);
    expect(res.json().code).toBe('wp_cli_error');
    expect(res.json().message).toContain('Error establishing a database connection');
    expect((await audit(shop.id)).items[0]).toMatchObject({ status: 'failed', error_code: 'wp_cli_error' });
  });

  it('answers node_unreachable (503) within 10 s when the agent is connected but never answers', async () => {
    mode = 'hang';
    const started = Date.now();
    const res = await magicLogin(shop.id);
    const took = Date.now() - started;
    expect(res.statusCode, res.body).toBe(503);
    expect(res.json().code).toBe('node_unreachable');
    expect(took).toBeGreaterThanOrEqual(9_000);
    expect(took).toBeLessThan(11_500);
    expect((await audit(shop.id)).items[0]).toMatchObject({
      status: 'failed',
      error_code: 'node_unreachable',
    });
    mode = 'ok';
  }, 20_000);

  it('answers environment_not_active (409) unless the environment is active, without asking the node', async () => {
    const before = web1.commands.length;
    for (const status of ['provisioning', 'updating', 'failed', 'deleting'] as const) {
      await cp.db.updateTable('environments').set({ status }).where('id', '=', shop.id).execute();
      const res = await magicLogin(shop.id);
      expect(res.statusCode, res.body).toBe(409);
      expect(res.json().code).toBe('environment_not_active');
    }
    await cp.db.updateTable('environments').set({ status: 'active' }).where('id', '=', shop.id).execute();
    expect(web1.commands.length).toBe(before);
  });

  it('validates the id (400) and answers 404 for an unknown environment', async () => {
    for (const url of ['/api/environments/not-a-uuid/magic-login']) {
      const res = await request('POST', url);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
    const list = await request('GET', '/api/environments/not-a-uuid/magic-logins');
    expect(list.statusCode).toBe(400);
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect((await magicLogin(unknown)).json().code).toBe('not_found');
    expect((await request('GET', `/api/environments/${unknown}/magic-logins`)).statusCode).toBe(404);
    const noSession = await cp.app.inject({
      method: 'POST',
      url: `/api/environments/${shop.id}/magic-login`,
    });
    expect(noSession.statusCode).toBe(401);
  });

  it('rate-limits each environment (429 with Retry-After), and the limit is per environment', async () => {
    mode = 'ok';
    const blog = await createSite('blog');
    for (let i = 0; i < RATE_LIMIT; i++) {
      const res = await magicLogin(blog.id);
      expect(res.statusCode, res.body).toBe(200);
    }
    const limited = await magicLogin(blog.id);
    expect(limited.statusCode, limited.body).toBe(429);
    expect(limited.json().code).toBe('rate_limited');
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // shop had 3 requests in this window: it is not limited by blog's.
    expect((await magicLogin(shop.id)).statusCode).toBe(200);

    // The trail pages newest first.
    const first = await request('GET', `/api/environments/${blog.id}/magic-logins?limit=3`);
    const page1 = first.json();
    expect(page1.items).toHaveLength(3);
    const second = (
      await request('GET', `/api/environments/${blog.id}/magic-logins?limit=3&cursor=${page1.next_cursor}`)
    ).json();
    expect(second.items).toHaveLength(2);
    expect(second.next_cursor).toBeNull();
    const all = [...page1.items, ...second.items];
    expect(all.every((item: { status: string }) => item.status === 'issued')).toBe(true);
    expect(new Set(all.map((item: { id: string }) => item.id)).size).toBe(RATE_LIMIT);
  });

  it('answers node_unreachable (503) at once when the node has no live stream', async () => {
    web1.close();
    await waitFor(
      async () => {
        const node = await cp.db
          .selectFrom('nodes')
          .select('stream_session')
          .where('id', '=', web1.id)
          .executeTakeFirst();
        return node?.stream_session === null ? true : undefined;
      },
      10_000,
      'the stream to be gone',
    );
    const started = Date.now();
    const res = await magicLogin(shop.id);
    expect(res.statusCode, res.body).toBe(503);
    expect(res.json().code).toBe('node_unreachable');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await audit(shop.id)).items[0]).toMatchObject({
      status: 'failed',
      error_code: 'node_unreachable',
    });
  });
});
