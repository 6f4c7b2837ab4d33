import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, startTestControlPlane, type TestControlPlane } from '../testing/index.ts';

let cp: TestControlPlane;
let auth: string;

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    env: { WPCP_HTTP_BODY_LIMIT_BYTES: '2048' },
  });
  auth = await cp.login();
});
afterAll(() => cp?.destroy());

function expectErrorShape(body: Record<string, unknown>, code: string) {
  expect(body.code).toBe(code);
  expect(typeof body.message).toBe('string');
  expect(String(body.message).length).toBeGreaterThan(0);
  expect(JSON.stringify(body)).not.toMatch(/\bat .+\.ts:\d+|stack/);
}

describe('API conventions', () => {
  it('answers unknown routes with 404 not_found', async () => {
    const res = await cp.app.inject({ method: 'GET', url: '/api/nope', headers: { authorization: auth } });
    expect(res.statusCode).toBe(404);
    expectErrorShape(res.json(), 'not_found');
    const outside = await cp.app.inject({ method: 'GET', url: '/nope' });
    expect(outside.statusCode).toBe(404);
    expectErrorShape(outside.json(), 'not_found');
  });

  it('refuses malformed JSON with 400 validation_failed', async () => {
    const res = await cp.app.inject({
      method: 'POST',
      url: '/api/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"email": ',
    });
    expect(res.statusCode).toBe(400);
    expectErrorShape(res.json(), 'validation_failed');
  });

  it('refuses a body that is not JSON with 415', async () => {
    const res = await cp.app.inject({
      method: 'POST',
      url: '/api/login',
      headers: { 'content-type': 'text/plain' },
      payload: 'email=a',
    });
    expect(res.statusCode).toBe(415);
    expectErrorShape(res.json(), 'unsupported_media_type');
  });

  it('refuses an oversized body with 413', async () => {
    const res = await cp.app.inject({
      method: 'POST',
      url: '/api/login',
      payload: { email: 'a@b.c', password: 'x'.repeat(4096) },
    });
    expect(res.statusCode).toBe(413);
    expectErrorShape(res.json(), 'payload_too_large');
  });

  it('refuses unknown fields and wrong types, naming each problem', async () => {
    const extra = await cp.app.inject({
      method: 'POST',
      url: '/api/login',
      payload: { email: 'a@b.c', password: 'x', admin: true },
    });
    expect(extra.statusCode).toBe(400);
    expectErrorShape(extra.json(), 'validation_failed');
    expect(extra.json().message).toContain('admin');

    const wrongType = await cp.app.inject({
      method: 'POST',
      url: '/api/login',
      payload: { email: 42, password: [] },
    });
    expect(wrongType.statusCode).toBe(400);
    const details = wrongType.json().details as { path: string }[];
    expect([...new Set(details.map((d) => d.path))].sort()).toEqual(['body.email', 'body.password']);
  });

  it('treats a malformed id as 400 and a well-formed unknown one as 404', async () => {
    const bad = await cp.app.inject({
      method: 'GET',
      url: '/api/jobs/not-a-uuid',
      headers: { authorization: auth },
    });
    expect(bad.statusCode).toBe(400);
    expectErrorShape(bad.json(), 'validation_failed');
    const unknown = await cp.app.inject({
      method: 'GET',
      url: `/api/jobs/${randomUUID()}`,
      headers: { authorization: auth },
    });
    expect(unknown.statusCode).toBe(404);
    expectErrorShape(unknown.json(), 'not_found');
  });

  it('validates list parameters: limit 1..200, opaque cursors', async () => {
    for (const query of [
      'limit=0',
      'limit=201',
      'limit=abc',
      'cursor=%24%24',
      'cursor=AAAA',
      'status=nope',
      'colour=red',
    ]) {
      const res = await cp.app.inject({
        method: 'GET',
        url: `/api/jobs?${query}`,
        headers: { authorization: auth },
      });
      expect(res.statusCode, query).toBe(400);
      expectErrorShape(res.json(), 'validation_failed');
    }
  });

  it('answers health and readiness without a session', async () => {
    expect((await cp.app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await cp.app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ status: 'ok' });
  });

  it('serves the OpenAPI document built from the schemas, and a docs page', async () => {
    const res = await cp.app.inject({
      method: 'GET',
      url: '/api/openapi.json',
      headers: { authorization: auth },
    });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/login',
        '/api/logout',
        '/api/jobs',
        '/api/jobs/{id}',
        '/api/jobs/{id}/cancel',
        '/api/metrics',
      ]),
    );
    expect(doc.paths['/api/login'].post.requestBody.content['application/json'].schema.required).toEqual([
      'email',
      'password',
    ]);
    const page = await cp.app.inject({ method: 'GET', url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
  });

  it('reads metrics as integers from the database', async () => {
    const res = await cp.app.inject({ method: 'GET', url: '/api/metrics', headers: { authorization: auth } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ jobs_running: 0, jobs_queued: 0, nodes_active: 0, sites_total: 0 });
  });

  it('writes one log line per request with its request id, and the id in a header', async () => {
    const res = await cp.app.inject({ method: 'GET', url: '/healthz' });
    const id = res.headers['x-request-id'];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const lines = cp.logs.filter((line) => line.reqId === id);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'request', method: 'GET', url: '/healthz', status: 200 });
  });
});

describe('database outage', () => {
  it('answers 503 database_unavailable when PostgreSQL is gone, not a 500', async () => {
    const database = await createTestDatabase(inject('postgresAdminUrl'));
    const other = await startTestControlPlane(inject('postgresAdminUrl'), { database });
    const token = await other.login();
    // Refuse new connections to this control plane's database and cut the existing ones.
    const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') });
    await admin.connect();
    const name = new URL(database.url).pathname.slice(1);
    await admin.query(`alter database ${pg.escapeIdentifier(name)} allow_connections false`);
    await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [name]);
    const ready = await other.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expectErrorShape(ready.json(), 'database_unavailable');
    const jobs = await other.app.inject({
      method: 'GET',
      url: '/api/jobs',
      headers: { authorization: token },
    });
    expect(jobs.statusCode).toBe(503);
    expectErrorShape(jobs.json(), 'database_unavailable');
    await admin.query(`alter database ${pg.escapeIdentifier(name)} allow_connections true`);
    await admin.end();
    await other.destroy();
    await database.drop();
  });
});
