import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane, waitFor } from '../testing/index.ts';

// The API of sites, environments and domains where no node is needed: validation, error codes,
// states, listing, and placement failing when there is no active node (this file has none).

let cp: TestControlPlane;
let auth: string;

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'));
  auth = await cp.login();
});
afterAll(() => cp?.destroy());

const request = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
  cp.app.inject({
    method,
    url,
    headers: { authorization: auth },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });

async function jobCount(): Promise<number> {
  const row = await cp.db.selectFrom('jobs').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

async function jobEnds(id: string) {
  return waitFor(
    async () => {
      const job = (await request('GET', `/api/jobs/${id}`)).json();
      return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : undefined;
    },
    15_000,
    `job ${id} to end`,
  );
}

/** A site whose provisioning failed for want of a node (this file never has one). */
async function failedSite(slug: string) {
  const res = await request('POST', '/api/sites', { name: `Site ${slug}`, slug });
  expect(res.statusCode).toBe(202);
  const job = await jobEnds(res.json().job_id);
  return { job, siteId: job.target.id as string };
}

describe('creating a site', () => {
  it('answers 202 with a job; the site is listed at once, provisioning, and fails with no_active_node', async () => {
    const before = Date.now();
    const res = await request('POST', '/api/sites', { name: '  My Shop  ', slug: 'my-shop' });
    expect(res.statusCode).toBe(202);
    const { job_id } = res.json();
    expect(Object.keys(res.json())).toEqual(['job_id']);

    const job = (await request('GET', `/api/jobs/${job_id}`)).json();
    expect(job.type).toBe('provision-environment');
    expect(job.target.type).toBe('site');
    const siteId = job.target.id;
    const listed = (await request('GET', '/api/sites')).json();
    expect(listed.items.map((s: { id: string }) => s.id)).toContain(siteId);

    const site = (await request('GET', `/api/sites/${siteId}`)).json();
    expect(site).toMatchObject({ id: siteId, name: 'My Shop', slug: 'my-shop' });
    expect(['provisioning', 'failed']).toContain(site.status);
    expect(Date.parse(site.created_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(site.environments).toHaveLength(1);
    const [production] = site.environments;
    expect(production).toMatchObject({
      site_id: siteId,
      name: 'Production',
      slug: 'production',
      type: 'production',
      node_id: null,
      default_hostname: null,
      hostnames: [],
      url: null,
      wordpress_version: null,
      fastcgi_cache_enabled: false,
      redis_cache_enabled: false,
      last_deployed_ref: null,
      promotion_preset: 'code-only',
      source_environment_id: null,
    });
    expect(production.on_node).toEqual({
      name: 'my-shop--production',
      system_user: expect.stringMatching(/^wp_[a-z][a-z0-9]{11}$/),
      database_name: production.on_node.system_user,
      database_user: production.on_node.system_user,
      redis_prefix: `wpcp:${production.on_node.system_user.slice(3)}:`,
    });
    expect(site.production_environment_id).toBe(production.id);

    const ended = await jobEnds(job_id);
    expect(ended).toMatchObject({ status: 'failed', error_code: 'no_active_node', attempt: 1 });
    expect(
      ended.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`).slice(0, 2),
    ).toEqual(['place:failed', 'create-user:pending']);
    expect((await request('GET', `/api/sites/${siteId}`)).json()).toMatchObject({
      status: 'failed',
      environments: [{ status: 'failed', node_id: null }],
    });
    // No command was ever created.
    const commands = await cp.db
      .selectFrom('agent_commands')
      .select('id')
      .where('job_id', '=', job_id)
      .execute();
    expect(commands).toEqual([]);
  });

  it('refuses bad slugs and names with 400 and no job', async () => {
    const before = await jobCount();
    for (const slug of [
      'ab',
      'x'.repeat(31),
      'My-Shop',
      'my_shop',
      'my--shop',
      '-shop',
      'shop-',
      'sh op',
      '../etc',
      'shop;rm',
      '$host',
      'bücher',
      '',
      42,
      null,
    ]) {
      const res = await request('POST', '/api/sites', { name: 'Shop', slug });
      expect(res.statusCode, JSON.stringify(slug)).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
    for (const name of ['', '   ', 'a\u0000b', 'x'.repeat(101)]) {
      expect(
        (await request('POST', '/api/sites', { name, slug: 'okay' })).statusCode,
        JSON.stringify(name),
      ).toBe(400);
    }
    expect(
      (await request('POST', '/api/sites', { name: 'Shop', slug: 'okay', admin: true })).statusCode,
    ).toBe(400);
    expect((await request('POST', '/api/sites', { slug: 'okay' })).statusCode).toBe(400);
    expect(await jobCount()).toBe(before);
    const res = await request('POST', '/api/sites', { name: 'Shop', slug: 'Shop' });
    expect(res.json().details[0]).toMatchObject({ path: 'body.slug' });
  });

  it('answers 409 slug_taken for a slug in use, with no job', async () => {
    await failedSite('taken');
    const before = await jobCount();
    const res = await request('POST', '/api/sites', { name: 'Other', slug: 'taken' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'slug_taken', message: expect.stringContaining('taken') });
    expect(await jobCount()).toBe(before);
  });

  it('keeps slugs unique when two requests race', async () => {
    const answers = await Promise.all(
      [1, 2, 3].map(() => request('POST', '/api/sites', { name: 'Race', slug: 'race-me' })),
    );
    expect(answers.map((a) => a.statusCode).sort()).toEqual([202, 409, 409]);
    const sites = await cp.db.selectFrom('sites').select('id').where('slug', '=', 'race-me').execute();
    expect(sites).toHaveLength(1);
  });
});

describe('reading sites and environments', () => {
  it('lists sites newest first with a cursor and a status filter', async () => {
    const slugs = ['list-a', 'list-b', 'list-c'];
    for (const slug of slugs) await failedSite(slug);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await request('GET', `/api/sites?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode).toBe(200);
      const body: { items: { slug: string }[]; next_cursor: string | null } = res.json();
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((s) => s.slug));
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen.slice(0, 3)).toEqual([...slugs].reverse());
    const failed = (await request('GET', '/api/sites?status=failed&limit=200')).json().items;
    expect(failed.every((s: { status: string }) => s.status === 'failed')).toBe(true);
    expect((await request('GET', '/api/sites?status=sleeping')).statusCode).toBe(400);
  });

  it('lists a site’s environments and shows one environment', async () => {
    const { siteId } = await failedSite('env-list');
    const list = (await request('GET', `/api/sites/${siteId}/environments`)).json();
    expect(list.next_cursor).toBeNull();
    expect(list.items).toHaveLength(1);
    const environment = (await request('GET', `/api/environments/${list.items[0].id}`)).json();
    expect(environment).toEqual(list.items[0]);
    expect(environment).toMatchObject({ slug: 'production', status: 'failed' });
  });

  it('counts sites in the metrics', async () => {
    const metrics = (await request('GET', '/api/metrics')).json();
    const total = await cp.db
      .selectFrom('sites')
      .select(sql<string>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    expect(metrics.sites_total).toBe(Number(total.n));
    expect(metrics.sites_total).toBeGreaterThan(3);
  });

  it('answers 400 for malformed ids and 404 for unknown ones, on every new route', async () => {
    const routes: ['GET' | 'POST' | 'DELETE', string, object?][] = [
      ['GET', '/api/sites/:id'],
      ['GET', '/api/sites/:id/environments'],
      ['POST', '/api/sites/:id/environments', { name: 'Staging', slug: 'staging', type: 'staging' }],
      ['GET', '/api/environments/:id'],
      ['GET', '/api/environments/:id/domains'],
      ['POST', '/api/environments/:id/domains', { hostname: 'www.example.com' }],
      ['DELETE', '/api/domains/:id'],
      ['POST', '/api/domains/:id/primary'],
      ['DELETE', '/api/environments/:id'],
      ['DELETE', '/api/environments/:id?purge_backups=true'],
      ['DELETE', '/api/sites/:id'],
      ['DELETE', '/api/sites/:id?purge_backups=false'],
    ];
    for (const [method, route, body] of routes) {
      const bad = await request(method, route.replace(':id', 'not-a-uuid'), body);
      expect(bad.statusCode, `${method} ${route}`).toBe(400);
      expect(bad.json().code).toBe('validation_failed');
      const unknown = await request(method, route.replace(':id', randomUUID()), body);
      expect(unknown.statusCode, `${method} ${route}`).toBe(404);
      expect(unknown.json().code).toBe('not_found');
    }
  });

  it('documents the new routes in the OpenAPI document', async () => {
    const doc = (await request('GET', '/api/openapi.json')).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/sites',
        '/api/sites/{id}',
        '/api/sites/{id}/environments',
        '/api/environments/{id}',
        '/api/environments/{id}/domains',
        '/api/domains/{id}',
        '/api/domains/{id}/primary',
      ]),
    );
    expect(Object.keys(doc.paths['/api/sites/{id}'])).toContain('delete');
    expect(Object.keys(doc.paths['/api/environments/{id}'])).toContain('delete');
    expect(doc.paths['/api/sites/{id}'].delete.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ in: 'query', name: 'purge_backups' })]),
    );
    const createEnvironment = doc.paths['/api/sites/{id}/environments'].post;
    expect(createEnvironment.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['name', 'slug', 'type']),
    );
  });
});

describe('environments and domains that do not fit the state', () => {
  it('refuses a new environment on a site that is not active (409 invalid_state, no job)', async () => {
    const { siteId } = await failedSite('not-active');
    const before = await jobCount();
    const res = await request('POST', `/api/sites/${siteId}/environments`, {
      name: 'Staging',
      slug: 'staging',
      type: 'staging',
    });
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('invalid_state');
    expect(await jobCount()).toBe(before);
  });

  it('validates new environments: slug, type, preset, source id, unknown fields', async () => {
    const { siteId } = await failedSite('env-validation');
    const before = await jobCount();
    const valid = { name: 'Staging', slug: 'staging', type: 'staging' };
    for (const body of [
      { ...valid, slug: 'x' },
      { ...valid, slug: 'x'.repeat(17) },
      { ...valid, slug: 'Staging' },
      { ...valid, slug: 'a--b' },
      { ...valid, type: 'prod' },
      { ...valid, type: undefined },
      { ...valid, name: '' },
      { ...valid, promotion_preset: 'everything' },
      { ...valid, source_environment_id: 'not-a-uuid' },
      { ...valid, colour: 'red' },
    ]) {
      const res = await request('POST', `/api/sites/${siteId}/environments`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
    expect(await jobCount()).toBe(before);
  });

  it('refuses domains on an environment that is not active, and bad hostnames, with no job', async () => {
    const { siteId } = await failedSite('domain-state');
    const [environment] = (await request('GET', `/api/sites/${siteId}`)).json().environments;
    const before = await jobCount();
    const res = await request('POST', `/api/environments/${environment.id}/domains`, {
      hostname: 'www.example.com',
    });
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('invalid_state');
    for (const hostname of [
      'a.com; include /etc/passwd',
      '~^.*$',
      '*.x.com',
      '$host',
      'example.$host',
      '..',
      '.example.com',
      'example.com..',
      'a b.com',
      'a\tb.com',
      'a.com/x',
      'a{b}.com',
      'x'.repeat(300),
      `${'a'.repeat(64)}.com`,
      `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`,
      '1.2.3.4',
      'localhost',
      '',
      42,
    ]) {
      const bad = await request('POST', `/api/environments/${environment.id}/domains`, { hostname });
      expect(bad.statusCode, JSON.stringify(hostname)).toBe(400);
      expect(bad.json().code).toBe('validation_failed');
    }
    expect(await jobCount()).toBe(before);
  });

  it('deletes a site whose production was never placed: nothing to send, the rows go', async () => {
    const { siteId } = await failedSite('never-placed');
    const [production] = (await request('GET', `/api/sites/${siteId}`)).json().environments;
    const res = await request('DELETE', `/api/sites/${siteId}`);
    expect(res.statusCode).toBe(202);
    const job = await jobEnds(res.json().job_id);
    expect(job).toMatchObject({
      status: 'succeeded',
      type: 'delete-site',
      target: { type: 'site', id: siteId },
      output: {
        site_id: siteId,
        environment_job_ids: [],
        production: { environment_id: production.id, node_id: null, hostnames_freed: [] },
      },
    });
    const commands = await cp.db
      .selectFrom('agent_commands')
      .select('id')
      .where('job_id', '=', job.id)
      .execute();
    expect(commands).toEqual([]);
    expect((await request('GET', `/api/sites/${siteId}`)).statusCode).toBe(404);
    expect((await request('GET', `/api/environments/${production.id}`)).statusCode).toBe(404);
    // Deleting it again: it is gone.
    expect((await request('DELETE', `/api/sites/${siteId}`)).statusCode).toBe(404);
    // Its slug is free again.
    expect((await request('POST', '/api/sites', { name: 'Again', slug: 'never-placed' })).statusCode).toBe(
      202,
    );
  });

  it('refuses a production environment alone, and a site still provisioning (409, no job)', async () => {
    const { siteId } = await failedSite('prod-alone');
    const [production] = (await request('GET', `/api/sites/${siteId}`)).json().environments;
    const before = await jobCount();
    const res = await request('DELETE', `/api/environments/${production.id}`);
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('production_with_site');
    // A site still provisioning, and one whose environment is busy (`updating`, a later feature).
    await cp.db.updateTable('sites').set({ status: 'provisioning' }).where('id', '=', siteId).execute();
    const early = await request('DELETE', `/api/sites/${siteId}`);
    expect(early.statusCode).toBe(409);
    expect(early.json().code).toBe('invalid_state');
    await cp.db.updateTable('sites').set({ status: 'failed' }).where('id', '=', siteId).execute();
    await cp.db
      .updateTable('environments')
      .set({ status: 'updating' })
      .where('id', '=', production.id)
      .execute();
    const busy = await request('DELETE', `/api/sites/${siteId}`);
    expect(busy.statusCode).toBe(409);
    expect(busy.json().code).toBe('invalid_state');
    expect(busy.json().message).toContain('updating');
    expect(await jobCount()).toBe(before);
    // Refused, nothing changed: the site is still failed, not deleting.
    expect((await request('GET', `/api/sites/${siteId}`)).json().status).toBe('failed');
  });

  it('needs a session', async () => {
    for (const [method, url] of [
      ['GET', '/api/sites'],
      ['POST', '/api/sites'],
      ['DELETE', `/api/domains/${randomUUID()}`],
      ['DELETE', `/api/environments/${randomUUID()}`],
      ['DELETE', `/api/sites/${randomUUID()}`],
    ] as const) {
      expect((await cp.app.inject({ method, url })).statusCode).toBe(401);
    }
  });
});
