import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../testing/index.ts';
import { hashJoinToken } from './join-token.ts';

let cp: TestControlPlane;
let auth: string;

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    env: { WPCP_JOIN_TOKEN_TTL_SECONDS: '600' },
  });
  auth = await cp.login();
});
afterAll(() => cp?.destroy());

const request = (method: 'GET' | 'POST', url: string, payload?: object) =>
  cp.app.inject({ method, url, headers: { authorization: auth }, ...(payload ? { payload } : {}) });

describe('nodes API', () => {
  it('creates a node with a one-time join token pinned to the agent CA, storing only its hash', async () => {
    const before = Date.now();
    const res = await request('POST', '/api/nodes', { name: 'web-1' });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'web-1',
      join_token: expect.stringMatching(/^wpcp1\.[A-Za-z0-9_-]{43}\.[0-9a-f]{64}$/),
      join_token_expires_at: expect.any(String),
    });
    const expires = Date.parse(body.join_token_expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 600_000 - 1_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 600_000 + 1_000);

    // The pin is the sha256 of the CA certificate's DER SubjectPublicKeyInfo, as the agent computes it.
    const spki = new X509Certificate(cp.agentCa.certPem).publicKey.export({ type: 'spki', format: 'der' });
    expect(body.join_token.split('.')[2]).toBe(createHash('sha256').update(spki).digest('hex'));

    const row = await cp.db
      .selectFrom('nodes')
      .select(['join_token_hash', 'status'])
      .where('id', '=', body.id)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('pending');
    expect(row.join_token_hash?.equals(hashJoinToken(body.join_token))).toBe(true);
    const dump = JSON.stringify(await cp.db.selectFrom('nodes').selectAll().execute());
    expect(dump).not.toContain(body.join_token.split('.')[1]);
    // Never in the logs either.
    expect(JSON.stringify(cp.logs)).not.toContain(body.join_token.split('.')[1]);
  });

  it('shows a new node as pending, with nothing reported yet', async () => {
    const { id } = (await request('POST', '/api/nodes', { name: 'web-2' })).json();
    const res = await request('GET', `/api/nodes/${id}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      id,
      name: 'web-2',
      status: 'pending',
      agent_version: null,
      hostname: null,
      last_heartbeat_at: null,
      enrolled_at: null,
      stats: null,
      running_commands: 0,
      certificate_expires_at: null,
      disabled_at: null,
      base_domain: 'web-2.wpcp.localhost',
      public_scheme: 'http',
      public_port: null,
      created_at: expect.any(String),
    });
  });

  it('takes how its sites are reached: a base domain (normalised), scheme and port', async () => {
    const created = await request('POST', '/api/nodes', {
      name: 'web-reach',
      base_domain: 'Sites.Bücher.Example.',
      public_scheme: 'https',
      public_port: 8443,
    });
    expect(created.statusCode).toBe(201);
    expect((await request('GET', `/api/nodes/${created.json().id}`)).json()).toMatchObject({
      base_domain: 'sites.xn--bcher-kva.example',
      public_scheme: 'https',
      public_port: 8443,
    });
    const local = await request('POST', '/api/nodes', { name: 'web-local', base_domain: 'localhost' });
    expect((await request('GET', `/api/nodes/${local.json().id}`)).json().base_domain).toBe('localhost');
    for (const bad of [
      { base_domain: '*.example.com' },
      { base_domain: 'a.com; include /etc/passwd' },
      { base_domain: '$host' },
      { public_scheme: 'ftp' },
      { public_port: 0 },
      { public_port: 70000 },
    ]) {
      const res = await request('POST', '/api/nodes', { name: 'web-bad', ...bad });
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
  });

  it('refuses names that are not DNS labels, and unknown fields', async () => {
    for (const name of ['', 'Web-1', '-web', 'web-', 'web_1', 'a'.repeat(64), 'web.1', ' web']) {
      const res = await request('POST', '/api/nodes', { name });
      expect(res.statusCode, name).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
    expect((await request('POST', '/api/nodes', { name: 'ok-1', admin: true })).statusCode).toBe(400);
    expect((await request('POST', '/api/nodes', {})).statusCode).toBe(400);
    expect((await request('POST', '/api/nodes', { name: 'a'.repeat(63) })).statusCode).toBe(201);
  });

  it('answers 409 name_taken for a duplicate name', async () => {
    expect((await request('POST', '/api/nodes', { name: 'dup' })).statusCode).toBe(201);
    const res = await request('POST', '/api/nodes', { name: 'dup' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'name_taken', message: expect.stringContaining('dup') });
  });

  it('answers 400 for a malformed id and 404 for an unknown one, on every node route', async () => {
    for (const [method, suffix] of [
      ['GET', ''],
      ['POST', '/disable'],
      ['POST', '/enable'],
      ['POST', '/ping'],
    ] as const) {
      const bad = await request(method, `/api/nodes/not-a-uuid${suffix}`);
      expect(bad.statusCode, `${method} ${suffix}`).toBe(400);
      expect(bad.json().code).toBe('validation_failed');
      const unknown = await request(method, `/api/nodes/${randomUUID()}${suffix}`);
      expect(unknown.statusCode, `${method} ${suffix}`).toBe(404);
      expect(unknown.json().code).toBe('not_found');
    }
  });

  it('disables and enables a node, idempotently, and refuses to ping a disabled one', async () => {
    const { id } = (await request('POST', '/api/nodes', { name: 'web-3' })).json();
    const disabled = await request('POST', `/api/nodes/${id}/disable`);
    expect(disabled.statusCode).toBe(200);
    expect(disabled.json()).toMatchObject({ id, status: 'disabled', disabled_at: expect.any(String) });
    expect((await request('POST', `/api/nodes/${id}/disable`)).json().status).toBe('disabled');
    const ping = await request('POST', `/api/nodes/${id}/ping`);
    expect(ping.statusCode).toBe(409);
    expect(ping.json().code).toBe('node_disabled');

    const enabled = await request('POST', `/api/nodes/${id}/enable`);
    expect(enabled.statusCode).toBe(200);
    // Never enrolled: back to pending.
    expect(enabled.json()).toMatchObject({ id, status: 'pending', disabled_at: null });
    expect((await request('POST', `/api/nodes/${id}/enable`)).json().status).toBe('pending');
  });

  it('lists newest first with cursor pagination and a status filter', async () => {
    const names = ['list-a', 'list-b', 'list-c', 'list-d'];
    const ids: string[] = [];
    for (const name of names) ids.push((await request('POST', '/api/nodes', { name })).json().id);
    await request('POST', `/api/nodes/${ids[1]}/disable`);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await request('GET', `/api/nodes?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode).toBe(200);
      const body: { items: { id: string }[]; next_cursor: string | null } = res.json();
      expect(body.items.length).toBeLessThanOrEqual(3);
      seen.push(...body.items.map((node) => node.id));
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen.slice(0, 4)).toEqual([...ids].reverse());

    const disabled = (await request('GET', '/api/nodes?status=disabled&limit=200')).json().items;
    expect(disabled.map((node: { id: string }) => node.id)).toContain(ids[1]);
    expect(disabled.every((node: { status: string }) => node.status === 'disabled')).toBe(true);
    const pending = (await request('GET', '/api/nodes?status=pending&limit=200')).json().items;
    expect(pending.map((node: { id: string }) => node.id)).not.toContain(ids[1]);
    for (const query of ['status=sleeping', 'limit=0', 'cursor=%24', 'name=x']) {
      expect((await request('GET', `/api/nodes?${query}`)).statusCode, query).toBe(400);
    }
  });

  it('needs a session', async () => {
    const res = await cp.app.inject({ method: 'GET', url: '/api/nodes' });
    expect(res.statusCode).toBe(401);
  });

  it('documents the node routes in the OpenAPI document', async () => {
    const doc = (await request('GET', '/api/openapi.json')).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/nodes',
        '/api/nodes/{id}',
        '/api/nodes/{id}/disable',
        '/api/nodes/{id}/enable',
        '/api/nodes/{id}/ping',
        '/api/jobs/{id}/logs',
      ]),
    );
  });
});
