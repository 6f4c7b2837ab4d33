import { EnvironmentStepKind } from '@wpcp/shared/agent-protocol';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type RecordedCommand,
  startTestControlPlane,
  startTestNode,
  type TestControlPlane,
  type TestNode,
  WORDPRESS_VERSION,
  waitFor,
} from '../testing/index.ts';

// Provisioning, placement, cloning and domains against in-test agents that answer every command
// (or fail the ones a test scripts). Tests run in order and build on each other: one node first,
// then a second one for placement.

let cp: TestControlPlane;
let auth: string;
let web1: TestNode;
let web2: TestNode | undefined;

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    // No heartbeats from the test agents: keep them "active" for the whole file.
    env: {
      WPCP_NODE_HEARTBEAT_INTERVAL_MS: '60000',
      WPCP_COMMAND_POLL_MS: '200',
      WPCP_COMMAND_RESULT_GRACE_SECONDS: '1',
    },
  });
  auth = await cp.login();
  web1 = await startTestNode(cp, auth, 'web1');
});
afterAll(async () => {
  web1?.close();
  web2?.close();
  await cp?.destroy();
});

const request = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
  cp.app.inject({ method, url, headers: { authorization: auth }, ...(payload ? { payload } : {}) });

async function accepted(method: 'POST' | 'DELETE', url: string, payload?: object): Promise<string> {
  const res = await request(method, url, payload);
  expect(res.statusCode, res.body).toBe(202);
  return res.json().job_id;
}

async function jobEnds(id: string) {
  return waitFor(
    async () => {
      const job = (await request('GET', `/api/jobs/${id}`)).json();
      return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : undefined;
    },
    20_000,
    `job ${id} to end`,
  ).catch(async (error) => {
    const job = (await request('GET', `/api/jobs/${id}`)).json();
    const steps = job.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`).join(', ');
    throw new Error(`${error.message}; it is ${job.status} at ${steps}`);
  });
}

async function jobCount(): Promise<number> {
  const row = await cp.db.selectFrom('jobs').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The commands a job sent, in the order the node received them. */
function commandsOf(node: TestNode, jobId: string): RecordedCommand[] {
  return node.commands.filter((c) => c.id.startsWith(`${jobId}:`));
}

const getEnvironment = async (id: string) => (await request('GET', `/api/environments/${id}`)).json();

/** Creates a site and waits for its job; returns the site with its production environment. */
async function createSite(slug: string, name = `Site ${slug}`) {
  const jobId = await accepted('POST', '/api/sites', { name, slug });
  const job = await jobEnds(jobId);
  const site = (await request('GET', `/api/sites/${job.target.id}`)).json();
  return { jobId, job, site, production: site.environments[0] };
}

const SPEC = (environment: { on_node: Record<string, string> }) => ({
  name: environment.on_node.name,
  systemUser: environment.on_node.system_user,
  databaseName: environment.on_node.database_name,
  databaseUser: environment.on_node.database_user,
  redisPrefix: environment.on_node.redis_prefix,
});

let shop: Awaited<ReturnType<typeof createSite>>;

describe('provisioning a site', () => {
  it('runs every step on the node in order, with the environment as the key of every command', async () => {
    shop = await createSite('shop', 'Shop');
    const { jobId, job, site, production } = shop;
    expect(job).toMatchObject({
      status: 'succeeded',
      type: 'provision-environment',
      target: { type: 'site' },
    });
    expect(job.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual(
      [
        'place',
        'create-user',
        'create-layout',
        'create-php-pool',
        'create-database',
        'install-core',
        'write-wp-config',
        'install-wordpress',
        'install-cron',
        'write-nginx',
        'mark-active',
      ].map((name) => `${name}:succeeded`),
    );
    expect(job.output).toEqual({
      environment_id: production.id,
      node_id: web1.id,
      wordpress_version: WORDPRESS_VERSION,
    });

    const sent = commandsOf(web1, jobId);
    expect(sent.map((c) => `${c.id.slice(jobId.length + 1)} ${c.label}`)).toEqual([
      'create-user create-user',
      'create-layout create-layout',
      'create-php-pool create-php-pool',
      'create-database create-database',
      'install-core install-core',
      'write-wp-config write-wp-config',
      'install-wordpress install-wordpress',
      'install-cron install-cron',
      'write-nginx configureNginx',
    ]);
    expect(new Set(sent.map((c) => c.environmentKey))).toEqual(new Set([production.id]));
    const spec = SPEC(production);
    expect(spec).toMatchObject({ name: 'shop--production', systemUser: expect.stringMatching(/^wp_/) });
    for (const command of sent.slice(0, 8)) {
      expect(command.value).toMatchObject({ environment: spec, undo: false });
    }
    expect(sent[0]?.value.kind).toBe(EnvironmentStepKind.CREATE_USER);
    expect(sent[7]?.value.kind).toBe(EnvironmentStepKind.INSTALL_CRON);
    expect(sent[6]?.value).toMatchObject({
      kind: EnvironmentStepKind.INSTALL_WORDPRESS,
      siteUrl: 'http://shop--production.web1.test',
      siteTitle: 'Shop',
      adminUser: 'wpcp-admin',
      adminEmail: 'admin@example.test',
    });
    // Only INSTALL_WORDPRESS carries the install fields.
    expect(sent[0]?.value).toMatchObject({ siteUrl: '', siteTitle: '', adminUser: '', adminEmail: '' });
    expect(sent[8]?.value).toEqual({
      environment: spec,
      hostnames: ['shop--production.web1.test'],
      fastcgiCache: false,
      remove: false,
    });

    expect(site).toMatchObject({ slug: 'shop', status: 'active', production_environment_id: production.id });
    expect(production).toMatchObject({
      status: 'active',
      type: 'production',
      node_id: web1.id,
      default_hostname: 'shop--production.web1.test',
      primary_hostname: 'shop--production.web1.test',
      hostnames: ['shop--production.web1.test'],
      url: 'http://shop--production.web1.test',
      wordpress_version: WORDPRESS_VERSION,
    });
    const domains = (await request('GET', `/api/environments/${production.id}/domains`)).json();
    expect(domains.items).toEqual([
      {
        id: expect.any(String),
        environment_id: production.id,
        hostname: 'shop--production.web1.test',
        is_default: true,
        is_primary: true,
        status: 'active',
        created_at: expect.any(String),
        updated_at: expect.any(String),
      },
    ]);
  });

  it('undoes what was done, newest first, when a step in the middle fails, and fails site and environment', async () => {
    web1.failWhen((c) => c.label === 'create-database', 'Access denied for user root');
    try {
      const { jobId, job, site, production } = await createSite('broken');
      expect(job).toMatchObject({ status: 'failed', error_code: 'command_failed', attempt: 1 });
      expect(job.error_message).toContain('Access denied for user root');
      expect(job.steps.map((s: { status: string }) => s.status)).toEqual([
        'succeeded',
        'succeeded',
        'succeeded',
        'succeeded',
        'failed',
        ...Array(6).fill('pending'),
      ]);
      const sent = commandsOf(web1, jobId);
      expect(sent.map((c) => `${c.id.slice(jobId.length + 1)} ${c.label}`)).toEqual([
        'create-user create-user',
        'create-layout create-layout',
        'create-php-pool create-php-pool',
        'create-database create-database',
        'undo-create-database undo-create-database',
        'undo-create-php-pool undo-create-php-pool',
        'undo-create-layout undo-create-layout',
        'undo-create-user undo-create-user',
      ]);
      for (const undo of sent.slice(4)) {
        expect(undo.value).toMatchObject({ environment: SPEC(production), undo: true });
        expect(undo.environmentKey).toBe(production.id);
      }
      expect(site.status).toBe('failed');
      expect(production.status).toBe('failed');
    } finally {
      web1.failWhen(undefined);
    }
  });

  it('removes the server block when the last step before activation fails', async () => {
    web1.failWhen((c) => c.label === 'configureNginx', 'nginx: [emerg] unknown directive');
    try {
      const { jobId, job } = await createSite('nginx-broken');
      expect(job).toMatchObject({ status: 'failed', error_code: 'command_failed' });
      const labels = commandsOf(web1, jobId).map((c) => c.label);
      expect(labels.slice(8)).toEqual([
        'configureNginx',
        'configureNginx:remove',
        'undo-install-cron',
        'undo-install-wordpress',
        'undo-write-wp-config',
        'undo-install-core',
        'undo-create-database',
        'undo-create-php-pool',
        'undo-create-layout',
        'undo-create-user',
      ]);
    } finally {
      web1.failWhen(undefined);
    }
  });
});

describe('cancelling provisioning', () => {
  it('undoes the steps that ran and leaves the environment and site failed', async () => {
    web1.holdWhen((c) => c.label === 'install-core');
    try {
      const jobId = await accepted('POST', '/api/sites', { name: 'Cancelled', slug: 'cancelled' });
      await waitFor(
        async () => (commandsOf(web1, jobId).some((c) => c.label === 'install-core') ? true : undefined),
        10_000,
        'install-core to reach the node',
      );
      expect((await request('POST', `/api/jobs/${jobId}/cancel`)).statusCode).toBe(200);
      const job = await jobEnds(jobId);
      expect(job).toMatchObject({ status: 'cancelled', error_code: 'job_cancelled' });
      expect(
        commandsOf(web1, jobId)
          .map((c) => c.label)
          .slice(5),
      ).toEqual([
        'undo-install-core',
        'undo-create-database',
        'undo-create-php-pool',
        'undo-create-layout',
        'undo-create-user',
      ]);
      const site = (await request('GET', `/api/sites/${job.target.id}`)).json();
      expect(site).toMatchObject({ status: 'failed', environments: [{ status: 'failed' }] });
    } finally {
      web1.holdWhen(undefined);
    }
  });
});

describe('placement', () => {
  it('places a new site on the active node with the fewest environments, not counting failed ones', async () => {
    web2 = await startTestNode(cp, auth, 'web2', { public_scheme: 'https', public_port: 8443 });
    // web1: one active environment (shop), two failed ones; web2: none.
    const second = await createSite('second');
    expect(second.production).toMatchObject({
      node_id: web2.id,
      status: 'active',
      url: 'https://second--production.web2.test:8443',
    });
    expect(commandsOf(web2, second.jobId)[6]?.value.siteUrl).toBe(
      'https://second--production.web2.test:8443',
    );
    // One each now: the tie goes to the older node.
    const third = await createSite('third');
    expect(third.production.node_id).toBe(web1.id);
  });

  it('skips disabled nodes', async () => {
    // web1: 2, web2: 1; with web2 disabled the next site still goes to web1.
    expect((await request('POST', `/api/nodes/${web2?.id}/disable`)).statusCode).toBe(200);
    try {
      const fourth = await createSite('fourth');
      expect(fourth.production.node_id).toBe(web1.id);
    } finally {
      await request('POST', `/api/nodes/${web2?.id}/enable`);
      await web2?.reconnect();
    }
  });
});

describe('environments', () => {
  it('clones an environment on its source node, even when another node is less loaded', async () => {
    const { site, production } = shop;
    const jobId = await accepted('POST', `/api/sites/${site.id}/environments`, {
      name: 'Staging',
      slug: 'staging',
      type: 'staging',
      source_environment_id: production.id,
      promotion_preset: 'woocommerce-safe',
    });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({
      status: 'succeeded',
      type: 'clone-environment',
      target: { type: 'environment' },
    });
    const staging = await getEnvironment(job.target.id);
    expect(staging).toMatchObject({
      site_id: site.id,
      name: 'Staging',
      slug: 'staging',
      type: 'staging',
      status: 'active',
      node_id: web1.id,
      default_hostname: 'shop--staging.web1.test',
      url: 'http://shop--staging.web1.test',
      wordpress_version: WORDPRESS_VERSION,
      promotion_preset: 'woocommerce-safe',
      source_environment_id: production.id,
    });
    expect(staging.on_node.system_user).not.toBe(production.on_node.system_user);

    const sent = commandsOf(web1, jobId);
    expect(sent.map((c) => c.label)).toEqual([
      'create-user',
      'create-layout',
      'create-php-pool',
      'create-database',
      'cloneEnvironment',
      'install-cron',
      'configureNginx',
    ]);
    const clone = sent[4] as RecordedCommand;
    expect(clone.value).toEqual({
      source: SPEC(production),
      target: SPEC(staging),
      sourceUrl: 'http://shop--production.web1.test',
      targetUrl: 'http://shop--staging.web1.test',
    });
    // The copy runs in line with the source's commands; everything else under the new environment.
    expect(clone.environmentKey).toBe(production.id);
    expect(sent.filter((c) => c !== clone).every((c) => c.environmentKey === staging.id)).toBe(true);
    expect(sent[6]?.value.hostnames).toEqual(['shop--staging.web1.test']);

    const environments = (await request('GET', `/api/sites/${site.id}/environments`)).json().items;
    expect(environments.map((e: { slug: string }) => e.slug)).toEqual(['production', 'staging']);
  });

  it('installs a fresh development environment with its own title', async () => {
    const jobId = await accepted('POST', `/api/sites/${shop.site.id}/environments`, {
      name: 'Dev',
      slug: 'dev',
      type: 'development',
    });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', type: 'provision-environment' });
    // A fresh environment is placed like a site: web2 is the less loaded node now.
    const dev = await getEnvironment(job.target.id);
    expect(dev).toMatchObject({ node_id: web2?.id, promotion_preset: 'code-only', status: 'active' });
    const install = commandsOf(web2 as TestNode, jobId).find((c) => c.label === 'install-wordpress');
    expect(install?.value).toMatchObject({
      siteTitle: 'Shop (Dev)',
      siteUrl: 'https://shop--dev.web2.test:8443',
    });
  });

  it('refuses a second production, a taken slug and a bad clone source, with no job', async () => {
    const before = await jobCount();
    const url = `/api/sites/${shop.site.id}/environments`;
    const production = await request('POST', url, { name: 'Prod 2', slug: 'prod-two', type: 'production' });
    expect(production.statusCode).toBe(409);
    expect(production.json().code).toBe('production_exists');
    const taken = await request('POST', url, { name: 'Staging', slug: 'staging', type: 'staging' });
    expect(taken.statusCode).toBe(409);
    expect(taken.json().code).toBe('slug_taken');
    const otherSite = await request('POST', url, {
      name: 'QA',
      slug: 'qa',
      type: 'staging',
      source_environment_id: (await createSite('other')).production.id,
    });
    expect(otherSite.statusCode).toBe(400);
    const broken = (await request('GET', '/api/sites?status=failed'))
      .json()
      .items.find((s: { slug: string }) => s.slug === 'broken');
    const brokenProduction = (await request('GET', `/api/sites/${broken.id}`)).json().environments[0];
    const failedSource = await request('POST', `/api/sites/${broken.id}/environments`, {
      name: 'QA',
      slug: 'qa',
      type: 'staging',
      source_environment_id: brokenProduction.id,
    });
    expect(failedSource.statusCode).toBe(409);
    expect(failedSource.json().code).toBe('invalid_state');
    // `other` made one job; nothing else did.
    expect(await jobCount()).toBe(before + 1);
  });
});

describe('domains', () => {
  let www: string;

  it('adds a hostname: the server block lists every hostname, the primary first', async () => {
    const { production } = shop;
    const jobId = await accepted('POST', `/api/environments/${production.id}/domains`, {
      hostname: 'WWW.Shop.Example.',
    });
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', type: 'add-domain', target: { type: 'domain' } });
    www = job.target.id;
    const sent = commandsOf(web1, jobId);
    expect(sent.map((c) => c.label)).toEqual(['configureNginx']);
    expect(sent[0]?.environmentKey).toBe(production.id);
    expect(sent[0]?.value).toMatchObject({
      environment: SPEC(production),
      hostnames: ['shop--production.web1.test', 'www.shop.example'],
      remove: false,
    });
    expect((await getEnvironment(production.id)).hostnames).toEqual([
      'shop--production.web1.test',
      'www.shop.example',
    ]);
    const domains = (await request('GET', `/api/environments/${production.id}/domains`)).json().items;
    expect(domains[1]).toMatchObject({
      id: www,
      hostname: 'www.shop.example',
      status: 'active',
      is_primary: false,
    });
  });

  it('refuses a hostname in use anywhere, or under a node base domain, with no job', async () => {
    const before = await jobCount();
    const staging = (await request('GET', `/api/sites/${shop.site.id}`)).json().environments[1];
    for (const hostname of [
      'www.shop.example',
      'Www.Shop.Example',
      'www.shop.example.',
      'shop--production.web1.test',
    ]) {
      const res = await request('POST', `/api/environments/${staging.id}/domains`, { hostname });
      expect(res.statusCode, hostname).toBe(409);
      expect(res.json().code).toBe('hostname_taken');
    }
    for (const hostname of ['web2.test', 'anything.web1.test']) {
      const res = await request('POST', `/api/environments/${staging.id}/domains`, { hostname });
      expect(res.statusCode, hostname).toBe(409);
      expect(res.json().code).toBe('hostname_reserved');
    }
    expect(await jobCount()).toBe(before);
  });

  it('refuses to delete the default hostname (409), or the primary one (409 primary_domain)', async () => {
    const before = await jobCount();
    const [defaultDomain] = (await request('GET', `/api/environments/${shop.production.id}/domains`)).json()
      .items;
    const res = await request('DELETE', `/api/domains/${defaultDomain.id}`);
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('default_domain');
    const again = await request('POST', `/api/domains/${defaultDomain.id}/primary`);
    expect(again.statusCode).toBe(409);
    expect(again.json().code).toBe('invalid_state');
    expect(await jobCount()).toBe(before);
  });

  it('makes a domain primary: server block with it first, then WordPress home/siteurl', async () => {
    const { production } = shop;
    const jobId = await accepted('POST', `/api/domains/${www}/primary`);
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', type: 'make-primary-domain' });
    const sent = commandsOf(web1, jobId);
    expect(sent.map((c) => c.label)).toEqual(['configureNginx', 'setSiteUrl']);
    expect(sent[0]?.value.hostnames).toEqual(['www.shop.example', 'shop--production.web1.test']);
    expect(sent[1]?.value).toEqual({ environment: SPEC(production), url: 'http://www.shop.example' });
    expect(sent.every((c) => c.environmentKey === production.id)).toBe(true);
    expect(await getEnvironment(production.id)).toMatchObject({
      primary_hostname: 'www.shop.example',
      default_hostname: 'shop--production.web1.test',
      url: 'http://www.shop.example',
      hostnames: ['www.shop.example', 'shop--production.web1.test'],
    });

    const before = await jobCount();
    const res = await request('DELETE', `/api/domains/${www}`);
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('primary_domain');
    expect(await jobCount()).toBe(before);
  });

  it('removes a hostname: the server block without it, then the domain is gone', async () => {
    const { production } = shop;
    const added = await jobEnds(
      await accepted('POST', `/api/environments/${production.id}/domains`, { hostname: 'blog.shop.example' }),
    );
    const blog = added.target.id;
    expect(commandsOf(web1, added.id)[0]?.value.hostnames).toEqual([
      'www.shop.example',
      'shop--production.web1.test',
      'blog.shop.example',
    ]);
    const jobId = await accepted('DELETE', `/api/domains/${blog}`);
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', type: 'remove-domain' });
    expect(commandsOf(web1, jobId).map((c) => [c.label, c.value.hostnames])).toEqual([
      ['configureNginx', ['www.shop.example', 'shop--production.web1.test']],
    ]);
    const hostnames = (await request('GET', `/api/environments/${production.id}/domains`))
      .json()
      .items.map((d: { hostname: string }) => d.hostname);
    expect(hostnames).toEqual(['shop--production.web1.test', 'www.shop.example']);
    expect((await request('DELETE', `/api/domains/${blog}`)).statusCode).toBe(404);
  });

  it('takes a hostname back out when nginx refuses it, and frees it again', async () => {
    const { production } = shop;
    web1.failWhen(
      (c) => c.label === 'configureNginx' && (c.value.hostnames as string[]).includes('bad.shop.example'),
      'nginx: configuration file test failed',
    );
    try {
      const jobId = await accepted('POST', `/api/environments/${production.id}/domains`, {
        hostname: 'bad.shop.example',
      });
      const job = await jobEnds(jobId);
      expect(job).toMatchObject({ status: 'failed', error_code: 'command_failed' });
      expect(commandsOf(web1, jobId).map((c) => [c.id.slice(jobId.length + 1), c.value.hostnames])).toEqual([
        ['write-nginx', ['www.shop.example', 'shop--production.web1.test', 'bad.shop.example']],
        ['undo-write-nginx', ['www.shop.example', 'shop--production.web1.test']],
      ]);
      const domains = await cp.db
        .selectFrom('domains')
        .select('id')
        .where('hostname', '=', 'bad.shop.example')
        .execute();
      expect(domains).toEqual([]);
    } finally {
      web1.failWhen(undefined);
    }
  });

  it('makes the default hostname primary again', async () => {
    const [defaultDomain] = (await request('GET', `/api/environments/${shop.production.id}/domains`)).json()
      .items;
    const job = await jobEnds(await accepted('POST', `/api/domains/${defaultDomain.id}/primary`));
    expect(job.status).toBe('succeeded');
    expect(commandsOf(web1, job.id)[1]?.value.url).toBe('http://shop--production.web1.test');
    expect((await getEnvironment(shop.production.id)).primary_hostname).toBe('shop--production.web1.test');
    // Now www can go.
    const removed = await jobEnds(await accepted('DELETE', `/api/domains/${www}`));
    expect(removed.status).toBe('succeeded');
  });
});
