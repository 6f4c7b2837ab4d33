import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type RecordedCommand,
  startTestControlPlane,
  startTestNode,
  type TestControlPlane,
  type TestNode,
  waitFor,
} from '../testing/index.ts';

// Deleting environments and sites against an in-test agent that answers every command (or fails
// or holds the ones a test scripts). Tests run in order on one node and one control plane.

let cp: TestControlPlane;
let auth: string;
let web1: TestNode;

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
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
  await cp?.destroy();
});

const request = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
  cp.app.inject({ method, url, headers: { authorization: auth }, ...(payload ? { payload } : {}) });

async function accepted(method: 'POST' | 'DELETE', url: string, payload?: object): Promise<string> {
  const res = await request(method, url, payload);
  expect(res.statusCode, res.body).toBe(202);
  expect(Object.keys(res.json())).toEqual(['job_id']);
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
  );
}

async function jobCount(): Promise<number> {
  const row = await cp.db.selectFrom('jobs').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The commands a job sent, in the order the node received them. */
function commandsOf(jobId: string): RecordedCommand[] {
  return web1.commands.filter((c) => c.id.startsWith(`${jobId}:`));
}

/** `<command step> <label>` of each command a job sent. */
function sentBy(jobId: string): string[] {
  return commandsOf(jobId).map((c) => `${c.id.slice(jobId.length + 1)} ${c.label}`);
}

const stepsOf = (job: { steps: { name: string; status: string }[] }) =>
  job.steps.map((s) => `${s.name}:${s.status}`);

const getEnvironment = (id: string) => request('GET', `/api/environments/${id}`);

async function createSite(slug: string) {
  const job = await jobEnds(await accepted('POST', '/api/sites', { name: `Site ${slug}`, slug }));
  expect(job.status).toBe('succeeded');
  const site = (await request('GET', `/api/sites/${job.target.id}`)).json();
  return { site, production: site.environments[0] };
}

async function createEnvironment(siteId: string, slug: string, extra: object = {}) {
  const job = await jobEnds(
    await accepted('POST', `/api/sites/${siteId}/environments`, {
      name: slug,
      slug,
      type: 'staging',
      ...extra,
    }),
  );
  expect(job.status).toBe('succeeded');
  return (await getEnvironment(job.target.id)).json();
}

async function addDomain(environmentId: string, hostname: string) {
  const job = await jobEnds(
    await accepted('POST', `/api/environments/${environmentId}/domains`, { hostname }),
  );
  expect(job.status).toBe('succeeded');
}

const SPEC = (environment: { on_node: Record<string, string> }) => ({
  name: environment.on_node.name,
  systemUser: environment.on_node.system_user,
  databaseName: environment.on_node.database_name,
  databaseUser: environment.on_node.database_user,
  redisPrefix: environment.on_node.redis_prefix,
});

/** What a deletion sends, in order: the server block first, then the provisioning undone newest first. */
const DELETION_COMMANDS = [
  'remove-nginx configureNginx:remove',
  'undo-install-cron undo-install-cron',
  'undo-install-wordpress undo-install-wordpress',
  'undo-write-wp-config undo-write-wp-config',
  'undo-install-core undo-install-core',
  'undo-create-database undo-create-database',
  'undo-create-php-pool undo-create-php-pool',
  'undo-create-layout undo-create-layout',
  'undo-create-user undo-create-user',
];
const DELETION_STEPS = [...DELETION_COMMANDS.map((c) => c.split(' ')[0] as string), 'delete-environment'];

let shop: Awaited<ReturnType<typeof createSite>>;

describe('deleting an environment', () => {
  it('removes nginx first, undoes the steps newest first, then its records; its names are free again', async () => {
    shop = await createSite('shop');
    const staging = await createEnvironment(shop.site.id, 'staging');
    await addDomain(staging.id, 'blog.shop.example');

    const jobId = await accepted('DELETE', `/api/environments/${staging.id}`);
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({
      status: 'succeeded',
      type: 'delete-environment',
      target: { type: 'environment', id: staging.id },
      output: {
        environment_id: staging.id,
        node_id: web1.id,
        hostnames_freed: ['shop--staging.web1.test', 'blog.shop.example'],
        backups_purged: false,
      },
    });
    expect(stepsOf(job)).toEqual(['check', ...DELETION_STEPS].map((s) => `${s}:succeeded`));

    expect(sentBy(jobId)).toEqual(DELETION_COMMANDS);
    const sent = commandsOf(jobId);
    expect(new Set(sent.map((c) => c.environmentKey))).toEqual(new Set([staging.id]));
    expect(sent[0]?.value).toEqual({
      environment: SPEC(staging),
      hostnames: [],
      fastcgiCache: false,
      remove: true,
    });
    for (const undo of sent.slice(1)) {
      expect(undo.value).toMatchObject({ environment: SPEC(staging), undo: true, purgeBackups: false });
    }

    // Gone from every view; its domains with it.
    expect((await getEnvironment(staging.id)).statusCode).toBe(404);
    expect((await request('GET', `/api/environments/${staging.id}/domains`)).statusCode).toBe(404);
    const site = (await request('GET', `/api/sites/${shop.site.id}`)).json();
    expect(site.environments.map((e: { slug: string }) => e.slug)).toEqual(['production']);
    const domains = await cp.db
      .selectFrom('domains')
      .select('hostname')
      .where('environment_id', '=', staging.id)
      .execute();
    expect(domains).toEqual([]);

    // Its custom hostname can go elsewhere, and its slug and default hostname come back.
    await addDomain(shop.production.id, 'blog.shop.example');
    const again = await createEnvironment(shop.site.id, 'staging');
    expect(again).toMatchObject({ default_hostname: 'shop--staging.web1.test', status: 'active' });
    expect(again.id).not.toBe(staging.id);
    expect(again.on_node.system_user).not.toBe(staging.on_node.system_user);
  });

  it('purges the backups directory only when asked: purgeBackups on CREATE_LAYOUT’s undo', async () => {
    const staging = (await request('GET', `/api/sites/${shop.site.id}`)).json().environments[1];
    const jobId = await accepted('DELETE', `/api/environments/${staging.id}?purge_backups=true`);
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({ status: 'succeeded', output: { backups_purged: true } });
    expect(sentBy(jobId)).toEqual(DELETION_COMMANDS);
    for (const command of commandsOf(jobId).slice(1)) {
      expect(command.value.purgeBackups, command.label).toBe(command.label === 'undo-create-layout');
    }
    // `false` spelled out is the default.
    const dev = await createEnvironment(shop.site.id, 'dev', { type: 'development' });
    const kept = await jobEnds(await accepted('DELETE', `/api/environments/${dev.id}?purge_backups=false`));
    expect(kept.output.backups_purged).toBe(false);
  });

  it('refuses production alone, a bad purge_backups or an unknown parameter, with no job', async () => {
    const before = await jobCount();
    const production = await request('DELETE', `/api/environments/${shop.production.id}`);
    expect(production.statusCode).toBe(409);
    expect(production.json().code).toBe('production_with_site');
    expect(production.json().message).toContain(`/api/sites/${shop.site.id}`);
    for (const query of [
      'purge_backups=yes',
      'purge_backups=1',
      'purge_backups=TRUE',
      'purge_backups=',
      'purge_backups=true&purge_backups=false',
      'force=true',
    ]) {
      for (const url of [`/api/environments/${shop.production.id}`, `/api/sites/${shop.site.id}`]) {
        const res = await request('DELETE', `${url}?${query}`);
        expect(res.statusCode, `${url}?${query}`).toBe(400);
        expect(res.json().code).toBe('validation_failed');
      }
    }
    expect((await getEnvironment(shop.production.id)).json().status).toBe('active');
    expect(await jobCount()).toBe(before);
  });

  it('leaves the environment failed when a command fails midway; DELETE again finishes it', async () => {
    const qa = await createEnvironment(shop.site.id, 'qa');
    web1.failWhen(
      (c) => c.label === 'undo-create-database' && c.environmentKey === qa.id,
      'ERROR 2002: cannot connect to MariaDB',
    );
    let failedJob: string;
    try {
      failedJob = await accepted('DELETE', `/api/environments/${qa.id}`);
      const job = await jobEnds(failedJob);
      expect(job).toMatchObject({ status: 'failed', error_code: 'command_failed' });
      expect(job.error_message).toContain('cannot connect to MariaDB');
      expect(job.steps.map((s: { status: string }) => s.status)).toEqual([
        ...Array(6).fill('succeeded'),
        'failed',
        ...Array(4).fill('pending'),
      ]);
      // Nothing after the failure, and nothing "undone" from a deletion.
      expect(sentBy(failedJob)).toEqual(DELETION_COMMANDS.slice(0, 6));
    } finally {
      web1.failWhen(undefined);
    }
    const failed = (await getEnvironment(qa.id)).json();
    expect(failed).toMatchObject({ status: 'failed', hostnames: ['shop--qa.web1.test'] });

    const retry = await accepted('DELETE', `/api/environments/${qa.id}`);
    const job = await jobEnds(retry);
    expect(job.status).toBe('succeeded');
    // Every undo again, from the top: each is idempotent on the node.
    expect(sentBy(retry)).toEqual(DELETION_COMMANDS);
    expect((await getEnvironment(qa.id)).statusCode).toBe(404);
  });

  it('is deleting while its job runs: DELETE again is 409; a cancelled deletion leaves it failed', async () => {
    const temp = await createEnvironment(shop.site.id, 'temp');
    web1.holdWhen((c) => c.label === 'configureNginx:remove' && c.environmentKey === temp.id);
    let jobId: string;
    try {
      jobId = await accepted('DELETE', `/api/environments/${temp.id}`);
      await waitFor(
        async () => (commandsOf(jobId).length > 0 ? true : undefined),
        10_000,
        'the deletion to reach the node',
      );
      expect((await getEnvironment(temp.id)).json().status).toBe('deleting');
      const before = await jobCount();
      for (const url of [`/api/environments/${temp.id}`, `/api/sites/${shop.site.id}`]) {
        const res = await request('DELETE', url);
        expect(res.statusCode, url).toBe(409);
        expect(res.json().code).toBe('invalid_state');
      }
      // Nothing else starts on it either.
      const domain = await request('POST', `/api/environments/${temp.id}/domains`, { hostname: 'x.example' });
      expect(domain.statusCode).toBe(409);
      expect(await jobCount()).toBe(before);

      expect((await request('POST', `/api/jobs/${jobId}/cancel`)).statusCode).toBe(200);
      expect(await jobEnds(jobId)).toMatchObject({ status: 'cancelled' });
    } finally {
      web1.holdWhen(undefined);
    }
    expect((await getEnvironment(temp.id)).json().status).toBe('failed');
    expect((await jobEnds(await accepted('DELETE', `/api/environments/${temp.id}`))).status).toBe(
      'succeeded',
    );
    expect((await getEnvironment(temp.id)).statusCode).toBe(404);
  });

  it('refuses an environment that is still provisioning, or one being cloned from (409, no job)', async () => {
    const source = await createEnvironment(shop.site.id, 'source');
    web1.holdWhen((c) => c.label === 'install-cron');
    try {
      const provisioning = await accepted('POST', `/api/sites/${shop.site.id}/environments`, {
        name: 'Clone',
        slug: 'clone',
        type: 'staging',
        source_environment_id: source.id,
      });
      await waitFor(
        async () => (commandsOf(provisioning).some((c) => c.label === 'install-cron') ? true : undefined),
        10_000,
        'the clone to reach install-cron',
      );
      const clone = (await request('GET', `/api/jobs/${provisioning}`)).json().target.id;
      const before = await jobCount();
      for (const url of [
        `/api/environments/${clone}`,
        `/api/environments/${source.id}`,
        `/api/sites/${shop.site.id}`,
      ]) {
        const res = await request('DELETE', url);
        expect(res.statusCode, url).toBe(409);
        expect(res.json().code).toBe('invalid_state');
      }
      expect(await jobCount()).toBe(before);
      // A refused request changes nothing.
      const site = (await request('GET', `/api/sites/${shop.site.id}`)).json();
      expect(site.status).toBe('active');
      expect(site.environments.map((e: { slug: string; status: string }) => `${e.slug}:${e.status}`)).toEqual(
        ['production:active', 'source:active', 'clone:provisioning'],
      );

      expect((await request('POST', `/api/jobs/${provisioning}/cancel`)).statusCode).toBe(200);
      await jobEnds(provisioning);
      // A failed provisioning is cleaned up by deleting it; then its source can go too.
      expect((await jobEnds(await accepted('DELETE', `/api/environments/${clone}`))).status).toBe(
        'succeeded',
      );
      expect((await jobEnds(await accepted('DELETE', `/api/environments/${source.id}`))).status).toBe(
        'succeeded',
      );
    } finally {
      web1.holdWhen(undefined);
    }
  });
});

describe('deleting a site', () => {
  it('deletes every environment, production last, then the site; its names are free again', async () => {
    const { site, production } = shop;
    const stage = await createEnvironment(site.id, 'stage', { source_environment_id: production.id });
    const dev = await createEnvironment(site.id, 'dev', { type: 'development' });

    const jobId = await accepted('DELETE', `/api/sites/${site.id}`);
    const job = await jobEnds(jobId);
    expect(job).toMatchObject({
      status: 'succeeded',
      type: 'delete-site',
      target: { type: 'site', id: site.id },
    });
    expect(stepsOf(job)).toEqual(
      ['check', 'wait-for-environments', ...DELETION_STEPS, 'delete-site'].map((s) => `${s}:succeeded`),
    );
    expect(job.output).toMatchObject({
      site_id: site.id,
      production: {
        environment_id: production.id,
        hostnames_freed: ['shop--production.web1.test', 'blog.shop.example'],
        backups_purged: false,
      },
    });

    // One job per other environment, in that environment's group, before production's removal.
    const environmentJobs = job.output.environment_job_ids as string[];
    expect(environmentJobs).toHaveLength(2);
    const deleted = new Set<string>();
    for (const id of environmentJobs) {
      const environmentJob = (await request('GET', `/api/jobs/${id}`)).json();
      expect(environmentJob).toMatchObject({ status: 'succeeded', type: 'delete-environment' });
      deleted.add(environmentJob.target.id);
      expect(sentBy(id)).toEqual(DELETION_COMMANDS);
      expect(new Set(commandsOf(id).map((c) => c.environmentKey))).toEqual(
        new Set([environmentJob.target.id]),
      );
    }
    expect(deleted).toEqual(new Set([stage.id, dev.id]));
    expect(sentBy(jobId)).toEqual(DELETION_COMMANDS);
    expect(new Set(commandsOf(jobId).map((c) => c.environmentKey))).toEqual(new Set([production.id]));
    const firstOfProduction = web1.commands.indexOf(commandsOf(jobId)[0] as RecordedCommand);
    for (const id of environmentJobs) {
      expect(web1.commands.indexOf(commandsOf(id).at(-1) as RecordedCommand)).toBeLessThan(firstOfProduction);
    }

    expect((await request('GET', `/api/sites/${site.id}`)).statusCode).toBe(404);
    const listed = (await request('GET', '/api/sites?limit=200')).json().items;
    expect(listed.map((s: { id: string }) => s.id)).not.toContain(site.id);
    for (const id of [production.id, stage.id, dev.id]) {
      expect((await getEnvironment(id)).statusCode).toBe(404);
    }
    const rows = await cp.db
      .selectFrom('domains')
      .select('hostname')
      .where('hostname', 'in', ['shop--production.web1.test', 'blog.shop.example', 'shop--stage.web1.test'])
      .execute();
    expect(rows).toEqual([]);

    // The slug and every hostname can be used again.
    const again = await createSite('shop');
    expect(again.production.default_hostname).toBe('shop--production.web1.test');
    await addDomain(again.production.id, 'blog.shop.example');
  });

  it('stops before production when an environment cannot be deleted; DELETE again finishes', async () => {
    const { site, production } = await createSite('news');
    const staging = await createEnvironment(site.id, 'staging');
    web1.failWhen(
      (c) => c.label === 'undo-create-php-pool' && c.environmentKey === staging.id,
      'php-fpm: cannot remove pool',
    );
    let jobId: string;
    try {
      jobId = await accepted('DELETE', `/api/sites/${site.id}?purge_backups=true`);
      expect((await request('GET', `/api/sites/${site.id}`)).json().status).toBe('deleting');
      const job = await jobEnds(jobId);
      expect(job).toMatchObject({ status: 'failed', error_code: 'deletion_failed' });
      expect(job.error_message).toContain('news--staging');
      expect(job.error_message).toContain('php-fpm: cannot remove pool');
      expect(stepsOf(job).slice(0, 3)).toEqual([
        'check:succeeded',
        'wait-for-environments:failed',
        'remove-nginx:pending',
      ]);
      // Production was never touched.
      expect(commandsOf(jobId)).toEqual([]);
    } finally {
      web1.failWhen(undefined);
    }
    const failed = (await request('GET', `/api/sites/${site.id}`)).json();
    expect(failed).toMatchObject({
      status: 'failed',
      environments: [
        { id: production.id, status: 'failed' },
        { id: staging.id, status: 'failed' },
      ],
    });
    expect(
      (await request('GET', '/api/sites?status=failed&limit=200'))
        .json()
        .items.map((s: { id: string }) => s.id),
    ).toContain(site.id);

    const retry = await accepted('DELETE', `/api/sites/${site.id}?purge_backups=true`);
    const job = await jobEnds(retry);
    expect(job.status).toBe('succeeded');
    const [environmentJob] = job.output.environment_job_ids;
    expect(sentBy(environmentJob)).toEqual(DELETION_COMMANDS);
    expect(commandsOf(environmentJob).find((c) => c.label === 'undo-create-layout')?.value.purgeBackups).toBe(
      true,
    );
    expect(commandsOf(retry).find((c) => c.label === 'undo-create-layout')?.value.purgeBackups).toBe(true);
    expect((await request('GET', `/api/sites/${site.id}`)).statusCode).toBe(404);
  });

  it('runs after the jobs already queued on its environments', async () => {
    const { site, production } = await createSite('queued');
    // A domain job holds production's group: the site's deletion waits behind it.
    web1.holdWhen(
      (c) => c.label === 'configureNginx' && (c.value.hostnames as string[]).includes('www.queued.example'),
    );
    let jobId: string;
    try {
      const domainJob = await accepted('POST', `/api/environments/${production.id}/domains`, {
        hostname: 'www.queued.example',
      });
      await waitFor(
        async () => (commandsOf(domainJob).length > 0 ? true : undefined),
        10_000,
        'the domain job to reach the node',
      );
      jobId = await accepted('DELETE', `/api/sites/${site.id}`);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect((await request('GET', `/api/jobs/${jobId}`)).json().status).toBe('queued');
      expect(commandsOf(jobId)).toEqual([]);
      expect((await request('POST', `/api/jobs/${domainJob}/cancel`)).statusCode).toBe(200);
      expect((await jobEnds(domainJob)).status).toBe('cancelled');
    } finally {
      web1.holdWhen(undefined);
    }
    const job = await jobEnds(jobId);
    expect(job.status).toBe('succeeded');
    expect(sentBy(jobId)).toEqual(DELETION_COMMANDS);
    expect((await request('GET', `/api/sites/${site.id}`)).statusCode).toBe(404);
  });
});
