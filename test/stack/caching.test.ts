// Caching on the hermetic stack through the agent's handlers (configure_nginx with fastcgi_cache,
// set_object_cache, purge_cache) and the real CommandExecutor: real nginx with a per-environment
// FastCGI cache zone, PHP-FPM, MariaDB, the WP-CLI double's stand-in Redis drop-in, and a real
// Redis whose keys are seeded directly (prefixes with glob characters included).
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { type EnvironmentSpec, EnvironmentStepKind } from '@wpcp/shared/agent-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeStackFromConfig } from '../../node-agent/src/commands/node-stack.ts';
import { type CommandHandlers, createHandlers } from '../../node-agent/src/commands/registry.ts';
import { deleteLinuxUser } from '../../node-agent/src/provisioning/linux-user.ts';
import { dropDatabaseAndUser } from '../../node-agent/src/provisioning/mariadb.ts';
import { generateShortId } from '../../node-agent/src/provisioning/names.ts';
import { deleteKeysWithPrefix, escapeRedisGlob } from '../../node-agent/src/provisioning/redis.ts';
import { type AgentStack, type CommandOutcome, startAgentStack } from './agent-stack.ts';
import { shouldSkipStack } from './binaries.ts';
import { makeInstanceDir, removeInstanceDir } from './daemon.ts';
import { type HttpResponse, httpGet } from './http.ts';

const skip = shouldSkipStack();

const STEPS = [
  EnvironmentStepKind.CREATE_USER,
  EnvironmentStepKind.CREATE_LAYOUT,
  EnvironmentStepKind.CREATE_PHP_POOL,
  EnvironmentStepKind.CREATE_DATABASE,
  EnvironmentStepKind.INSTALL_CORE,
  EnvironmentStepKind.WRITE_WP_CONFIG,
  EnvironmentStepKind.INSTALL_WORDPRESS,
  EnvironmentStepKind.INSTALL_CRON,
] as const;

function newSpec(site: string, environment: string): EnvironmentSpec {
  const id = generateShortId();
  return {
    name: `${site}--${environment}`,
    systemUser: `wp_${id}`,
    databaseName: `wp_${id}`,
    databaseUser: `wp_${id}`,
    redisPrefix: `wpcp:${id}:`,
  };
}

describe.skipIf(skip)('caching on the stack', () => {
  let s: AgentStack;
  let cacheRoot: string;
  let handlers: CommandHandlers;
  const timings: Record<string, number> = {};
  const a = newSpec('cache-shop', 'prod');
  const other = newSpec('cache-shop', 'staging');
  const hostname = `${a.name}.node.test`;
  const url = (host: string) => `http://${host}:${s.nginx.port}`;

  const run = (payload: Parameters<AgentStack['run']>[0]) => s.runWith(handlers, payload);
  const expectOk = (outcome: CommandOutcome) => {
    expect(outcome.status, `${outcome.id}: ${outcome.errorCode} ${outcome.errorMessage}`).toBe('succeeded');
    return outcome.output;
  };
  const step = (kind: EnvironmentStepKind, undo = false) =>
    run({
      $case: 'environmentStep',
      value: {
        environment: a,
        kind,
        undo,
        siteUrl: kind === EnvironmentStepKind.INSTALL_WORDPRESS && !undo ? url(hostname) : '',
        siteTitle: kind === EnvironmentStepKind.INSTALL_WORDPRESS && !undo ? 'Cache shop' : '',
        purgeBackups: false,
        adminUser: kind === EnvironmentStepKind.INSTALL_WORDPRESS && !undo ? 'wpcp-admin' : '',
        adminEmail: kind === EnvironmentStepKind.INSTALL_WORDPRESS && !undo ? 'admin@example.test' : '',
      },
    });
  const nginx = (fastcgiCache: boolean, remove = false) =>
    run({
      $case: 'configureNginx',
      value: { environment: a, hostnames: remove ? [] : [hostname], fastcgiCache, remove },
    });
  const purge = (spec: EnvironmentSpec) => run({ $case: 'purgeCache', value: { environment: spec } });
  const objectCache = (enabled: boolean) =>
    run({ $case: 'setObjectCache', value: { environment: a, enabled } });

  /** GET `path` on the environment (retrying while a reload is under way: a 404 from the default server). */
  const get = async (pathname: string, headers: Record<string, string> = {}): Promise<HttpResponse> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const page = await httpGet(s.nginx.url(pathname), { host: `${hostname}:${s.nginx.port}`, headers });
        if ((page.status === 200 && page.body.includes('Cache shop')) || Date.now() > deadline) return page;
      } catch (err) {
        // A connection cut by an old worker retiring after a reload.
        if (Date.now() > deadline) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  /** Waits until nginx's workers run the new configuration (X-Cache present or not on a query-string GET). */
  const reloaded = async (cacheOn: boolean) => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const page = await get(`/?reload-probe=${Date.now()}`);
      if ((xCache(page) !== undefined) === cacheOn) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`nginx did not pick up the configuration (cache ${cacheOn ? 'on' : 'off'})`);
  };
  const xCache = (page: HttpResponse) => page.headers['x-cache'];
  const loggedIn = { cookie: 'wordpress_logged_in_0123456789abcdef=admin%7C123%7Cabc' };
  const keysUnder = async (prefix: string) =>
    ((await s.redis.command('KEYS', `${escapeRedisGlob(prefix)}*`)) as string[]).sort();

  beforeAll(async () => {
    const started = performance.now();
    s = await startAgentStack();
    cacheRoot = path.join(await makeInstanceDir('cache'), 'wpcp');
    handlers = createHandlers(nodeStackFromConfig({ ...s.settings, nginxCacheDir: cacheRoot }));
    for (const kind of STEPS) expectOk(await step(kind));
    expectOk(await nginx(false));
    timings.provision = Math.round(performance.now() - started);
  });

  afterAll(async () => {
    if (s) {
      await nginx(false, true).catch(() => {});
      for (const kind of [...STEPS].reverse()) await step(kind, true).catch(() => {});
      await deleteLinuxUser(a.systemUser).catch(() => {});
      await dropDatabaseAndUser(s.stack.database.admin, {
        database: a.databaseName,
        user: a.databaseUser,
      }).catch(() => {});
      await removeInstanceDir(path.dirname(cacheRoot)).catch(() => {});
      await s.stop();
    }
    console.info(`caching timings (ms): ${JSON.stringify(timings)}`);
  });

  it('page cache on: a second anonymous GET is a HIT, logged-in and query-string requests never are', async () => {
    const started = performance.now();
    const output = expectOk(await nginx(true));
    expect(output).toMatchObject({ fastcgi_cache: true, changed: true });
    const file = await readFile(path.join(s.nginx.sitesDir, `wpcp-${a.name}.conf`), 'utf8');
    expect(file).toContain(`fastcgi_cache_path ${cacheRoot}/${a.name} `);
    expect((await lstat(path.join(cacheRoot, a.name))).isDirectory()).toBe(true);
    await reloaded(true);

    const first = await get('/');
    expect(first.status).toBe(200);
    expect(xCache(first)).toBe('MISS');
    const second = await get('/');
    expect(xCache(second)).toBe('HIT');
    expect(second.body).toBe(first.body);

    for (let i = 0; i < 2; i++) {
      const member = await get('/', loggedIn);
      expect(member.status).toBe(200);
      expect(xCache(member)).toBe('BYPASS');
    }
    expect(xCache(await get('/?s=probe'))).toBe('BYPASS');
    expect(xCache(await get('/', { cookie: 'woocommerce_items_in_cart=1' }))).toBe('BYPASS');
    const login = await httpGet(s.nginx.url('/wp-login.php'), { host: `${hostname}:${s.nginx.port}` });
    expect(login.status).toBe(200);
    expect(xCache(login)).toBe('BYPASS');
    timings.pageCache = Math.round(performance.now() - started);
  });

  it('a purge empties the zone directory (which stays) and the next anonymous GET is a MISS', async () => {
    expect(xCache(await get('/'))).toBe('HIT');
    const output = expectOk(await purge(a));
    expect(output.page_cache_files_removed).toBeGreaterThanOrEqual(1);
    expect(await readdir(path.join(cacheRoot, a.name))).toEqual([]);
    expect(xCache(await get('/'))).toBe('MISS');
    expect(xCache(await get('/'))).toBe('HIT');
  });

  it('page cache off: no cache state at all, neither anonymous nor logged in', async () => {
    const output = expectOk(await nginx(false));
    expect(output).toMatchObject({ fastcgi_cache: false, changed: true });
    const file = await readFile(path.join(s.nginx.sitesDir, `wpcp-${a.name}.conf`), 'utf8');
    expect(file).not.toMatch(/fastcgi_cache|X-Cache/);
    await reloaded(false);
    expect(await lstat(path.join(cacheRoot, a.name)).catch(() => undefined)).toBeUndefined();
    for (const headers of [{}, {}, loggedIn, loggedIn]) {
      const page = await get('/', headers);
      expect(page.status).toBe(200);
      expect(xCache(page) ?? 'MISS').not.toBe('HIT');
    }
  });

  it('object cache on: the drop-in is in place, wp-config.php defines the literal prefix; idempotent', async () => {
    const dropin = path.join(s.sitesDir, a.name, 'current', 'wp-content', 'object-cache.php');
    expect(expectOk(await objectCache(true))).toMatchObject({ enabled: true, changed: true });
    expect((await lstat(dropin)).isFile()).toBe(true);
    const wpConfig = await readFile(path.join(s.sitesDir, a.name, 'shared/wp-config.php'), 'utf8');
    expect(wpConfig).toContain(`define( 'WP_REDIS_PREFIX', '${a.redisPrefix}' );`);
    expect(wpConfig).toContain("define( 'WP_REDIS_SELECTIVE_FLUSH', true );");
    expect(expectOk(await objectCache(true))).toMatchObject({ enabled: true, changed: false });
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('Cache shop');
  });

  it('object cache off: the drop-in is removed and WordPress still serves; idempotent', async () => {
    const dropin = path.join(s.sitesDir, a.name, 'current', 'wp-content', 'object-cache.php');
    expect(expectOk(await objectCache(false))).toMatchObject({ enabled: false, changed: true });
    expect(await lstat(dropin).catch(() => undefined)).toBeUndefined();
    expect(expectOk(await objectCache(false))).toMatchObject({ enabled: false, changed: false });
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('Cache shop');
  });

  it("a purge deletes exactly the keys under the environment's prefix and leaves the other's intact", async () => {
    const suffixes = ['options:alloptions', 'posts:*', 'x?y', '[abc]', 'back\\slash', 'plain'];
    for (const suffix of suffixes) {
      await s.redis.command('SET', `${a.redisPrefix}${suffix}`, 'a');
      await s.redis.command('SET', `${other.redisPrefix}${suffix}`, 'other');
    }
    await s.redis.command('SET', 'wpcp:unrelated', 'keep');
    const mine = await keysUnder(a.redisPrefix);
    const theirs = await keysUnder(other.redisPrefix);
    expect(mine.length).toBeGreaterThanOrEqual(suffixes.length);
    expect(theirs).toHaveLength(suffixes.length);

    const output = expectOk(await purge(a));
    expect(output.redis_keys_removed).toBe(mine.length);
    expect(await keysUnder(a.redisPrefix)).toEqual([]);
    expect(await keysUnder(other.redisPrefix)).toEqual(theirs);
    expect(await s.redis.command('GET', 'wpcp:unrelated')).toBe('keep');
    expect(expectOk(await purge(a))).toEqual({ page_cache_files_removed: 0, redis_keys_removed: 0 });
  });

  it('prefixes with glob characters are literals: nothing a pattern would also match is deleted', async () => {
    const prefix = 'wpcp:g*l?b[ab]\\:';
    const lookalikes = ['wpcp:gXXlZba\\:1', 'wpcp:gl_bb\\:2', 'wpcp:g*l?ba\\:3', 'wpcp:g*l?b[ab]:4'];
    const literal = [`${prefix}1`, `${prefix}*`, `${prefix}?`, `${prefix}[x]`];
    for (const key of [...lookalikes, ...literal]) await s.redis.command('SET', key, '1');
    expect(await deleteKeysWithPrefix({ host: s.redis.host, port: s.redis.port }, prefix, { batch: 2 })).toBe(
      literal.length,
    );
    for (const key of literal) expect(await s.redis.command('EXISTS', key)).toBe(0);
    for (const key of lookalikes) expect(await s.redis.command('EXISTS', key)).toBe(1);
    for (const key of lookalikes) await s.redis.command('DEL', key);
    await s.redis.command('DEL', 'wpcp:unrelated');
    for (const key of await keysUnder(other.redisPrefix)) await s.redis.command('DEL', key);
  });
});
