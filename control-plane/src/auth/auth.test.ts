import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestControlPlane, TEST_ADMIN, type TestControlPlane } from '../testing/index.ts';
import { hashSessionToken } from './session-token.ts';

let cp: TestControlPlane;

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    env: { WPCP_LOGIN_MAX_FAILURES: '3', WPCP_LOGIN_WINDOW_SECONDS: '600', WPCP_TRUST_PROXY: 'true' },
  });
});
afterAll(() => cp?.destroy());

/** Each test uses its own client address (X-Forwarded-For is trusted here) so limits don't mix. */
function login(body: unknown, address: string) {
  return cp.app.inject({
    method: 'POST',
    url: '/api/login',
    payload: body as object,
    headers: { 'x-forwarded-for': address },
  });
}

function get(url: string, authorization?: string) {
  return cp.app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} });
}

describe('login and sessions', () => {
  it('logs in with the admin credentials and the token opens /api', async () => {
    const res = await login(TEST_ADMIN, '10.0.0.1');
    expect(res.statusCode).toBe(200);
    const token = res.json().session_token as string;
    expect(token).toMatch(/^wpcp_s_[A-Za-z0-9_-]{43}$/);
    expect((await get('/api/jobs', `Bearer ${token}`)).statusCode).toBe(200);
  });

  it('stores only a hash of the token', async () => {
    const token = (await login(TEST_ADMIN, '10.0.0.2')).json().session_token as string;
    const rows = await cp.db.selectFrom('sessions').select('token_hash').execute();
    expect(rows.some((row) => row.token_hash.equals(hashSessionToken(token)))).toBe(true);
    const dump = JSON.stringify(await cp.db.selectFrom('sessions').selectAll().execute());
    expect(dump).not.toContain(token.slice(7));
  });

  it('treats the email case-insensitively', async () => {
    const res = await login({ ...TEST_ADMIN, email: TEST_ADMIN.email.toUpperCase() }, '10.0.0.3');
    expect(res.statusCode).toBe(200);
  });

  it('gives the same answer for an unknown email and a wrong password', async () => {
    const unknown = await login({ email: 'nobody@example.test', password: TEST_ADMIN.password }, '10.0.1.1');
    const wrong = await login({ email: TEST_ADMIN.email, password: 'wrong password' }, '10.0.1.2');
    expect(unknown.statusCode).toBe(401);
    expect(wrong.statusCode).toBe(401);
    expect(unknown.json()).toEqual(wrong.json());
    expect(unknown.json().code).toBe('invalid_credentials');
  });

  it('takes roughly the same time for an unknown email and a wrong password', async () => {
    const time = async (body: unknown, address: string) => {
      const start = performance.now();
      await login(body, address);
      return performance.now() - start;
    };
    // Warm up, then compare medians of a few tries each (different addresses: no rate limit).
    await time({ email: 'warm@example.test', password: 'x' }, '10.0.2.0');
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 2; i++) {
      unknown.push(await time({ email: `nobody${i}@example.test`, password: 'x' }, `10.0.2.${i + 1}`));
      wrong.push(await time({ email: TEST_ADMIN.email, password: `wrong${i}` }, `10.0.3.${i + 1}`));
    }
    const median = (values: number[]) =>
      values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
    const ratio = median(unknown) / median(wrong);
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
    // And neither is instant: a password check happened in both cases.
    expect(Math.min(median(unknown), median(wrong))).toBeGreaterThan(5);
    await cp.db.deleteFrom('login_failures').execute();
  });

  it('requires a session on every /api route but login', async () => {
    for (const url of ['/api/jobs', '/api/metrics', '/api/openapi.json', '/api/anything']) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(401);
      expect(res.json().code).toBe('unauthorized');
    }
    for (const authorization of ['Bearer nonsense', 'Basic abc', `Bearer wpcp_s_${'A'.repeat(43)}`]) {
      expect((await get('/api/jobs', authorization)).statusCode).toBe(401);
    }
    const logout = await cp.app.inject({ method: 'POST', url: '/api/logout' });
    expect(logout.statusCode).toBe(401);
  });

  it('revokes the token at logout', async () => {
    const token = (await login(TEST_ADMIN, '10.0.4.1')).json().session_token as string;
    const logout = await cp.app.inject({
      method: 'POST',
      url: '/api/logout',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(logout.statusCode).toBe(200);
    expect(logout.json()).toEqual({ success: true });
    const after = await get('/api/jobs', `Bearer ${token}`);
    expect(after.statusCode).toBe(401);
    expect(after.json().code).toBe('unauthorized');
  });

  it('expires a session idle for longer than the idle timeout', async () => {
    const token = (await login(TEST_ADMIN, '10.0.5.1')).json().session_token as string;
    expect((await get('/api/jobs', `Bearer ${token}`)).statusCode).toBe(200);
    const idleSeconds = cp.config.sessions.idleSeconds;
    await cp.db
      .updateTable('sessions')
      .set({ last_seen_at: new Date(Date.now() - (idleSeconds + 5) * 1000) })
      .where('token_hash', '=', hashSessionToken(token))
      .execute();
    expect((await get('/api/jobs', `Bearer ${token}`)).statusCode).toBe(401);
  });

  it('expires a session past its absolute lifetime even when in use', async () => {
    const token = (await login(TEST_ADMIN, '10.0.5.2')).json().session_token as string;
    await cp.db
      .updateTable('sessions')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('token_hash', '=', hashSessionToken(token))
      .execute();
    expect((await get('/api/jobs', `Bearer ${token}`)).statusCode).toBe(401);
  });

  it('keeps an active session alive by refreshing its last use', async () => {
    const token = (await login(TEST_ADMIN, '10.0.5.3')).json().session_token as string;
    const stale = new Date(Date.now() - 10 * 60 * 1000);
    await cp.db
      .updateTable('sessions')
      .set({ last_seen_at: stale })
      .where('token_hash', '=', hashSessionToken(token))
      .execute();
    expect((await get('/api/jobs', `Bearer ${token}`)).statusCode).toBe(200);
    const row = await cp.db
      .selectFrom('sessions')
      .select('last_seen_at')
      .where('token_hash', '=', hashSessionToken(token))
      .executeTakeFirstOrThrow();
    expect(row.last_seen_at.getTime()).toBeGreaterThan(stale.getTime());
  });
});

describe('login rate limiting', () => {
  it('limits failed logins per client address, with Retry-After', async () => {
    const address = '10.1.0.1';
    for (let i = 0; i < 3; i++) {
      expect((await login({ email: `guess${i}@example.test`, password: 'x' }, address)).statusCode).toBe(401);
    }
    const limited = await login({ email: 'guess9@example.test', password: 'x' }, address);
    expect(limited.statusCode).toBe(429);
    expect(limited.json().code).toBe('rate_limited');
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(590);
    expect(retryAfter).toBeLessThanOrEqual(600);
    // Even the right password is refused from that address until the window passes.
    expect((await login(TEST_ADMIN, address)).statusCode).toBe(429);
    expect((await login(TEST_ADMIN, '10.1.0.2')).statusCode).toBe(200);
  });

  it('limits failed logins per account across addresses', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await login({ email: TEST_ADMIN.email, password: 'wrong' }, `10.2.0.${i}`)).statusCode).toBe(
        401,
      );
    }
    const limited = await login(TEST_ADMIN, '10.2.1.1');
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBeDefined();
    // The window passing (simulated by ageing the failures) lifts the limit.
    await cp.db
      .updateTable('login_failures')
      .set({ created_at: new Date(Date.now() - 601_000) })
      .execute();
    expect((await login(TEST_ADMIN, '10.2.1.1')).statusCode).toBe(200);
  });

  it('believes X-Forwarded-For only when WPCP_TRUST_PROXY is set', async () => {
    const untrusting = await startTestControlPlane(inject('postgresAdminUrl'), {
      env: { WPCP_LOGIN_MAX_FAILURES: '2' },
    });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await untrusting.app.inject({
          method: 'POST',
          url: '/api/login',
          payload: { email: `x${i}@example.test`, password: 'x' },
          headers: { 'x-forwarded-for': `192.0.2.${i}` },
        });
        expect(res.statusCode).toBe(401);
      }
      // A spoofed header did not give each attempt a fresh address: the real one is limited.
      const res = await untrusting.app.inject({
        method: 'POST',
        url: '/api/login',
        payload: { email: 'y@example.test', password: 'x' },
        headers: { 'x-forwarded-for': '192.0.2.99' },
      });
      expect(res.statusCode).toBe(429);
    } finally {
      await untrusting.destroy();
    }
  });
});

describe('secrets in logs', () => {
  it('never writes passwords or tokens into the logs', async () => {
    const res = await login(TEST_ADMIN, '10.3.0.1');
    const token = res.json().session_token as string;
    await get('/api/jobs', `Bearer ${token}`);
    await login({ email: TEST_ADMIN.email, password: 'a wrong secret password' }, '10.3.0.2');
    const all = JSON.stringify(cp.logs);
    expect(all).not.toContain(TEST_ADMIN.password);
    expect(all).not.toContain('a wrong secret password');
    expect(all).not.toContain(token);
    // The logger itself redacts secret fields wherever a caller puts them.
    cp.app.log.info(
      { password: 'p4ss', nested: { session_token: 't0k', join_token: 'j01n' } },
      'redaction probe',
    );
    const probe = cp.logs.find((line) => line.msg === 'redaction probe');
    expect(probe).toMatchObject({
      password: '[redacted]',
      nested: { session_token: '[redacted]', join_token: '[redacted]' },
    });
  });
});
