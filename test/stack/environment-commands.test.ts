// The agent's environment commands (environment_step, configure_nginx, set_site_url,
// clone_environment) run through the real CommandExecutor against the hermetic stack: real
// useradd, MariaDB, PHP-FPM, nginx, cron.d files and the WP-CLI double. Each test builds on the
// previous one (one stack for the file); the last ones take everything down again and check that
// nothing is left on the "node".
import { lstat, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type EnvironmentSpec, EnvironmentStepKind } from '@wpcp/shared/agent-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeStackFromConfig } from '../../node-agent/src/commands/node-stack.ts';
import { createHandlers } from '../../node-agent/src/commands/registry.ts';
import { runProcess } from '../../node-agent/src/exec/run.ts';
import { environmentLayout } from '../../node-agent/src/provisioning/layout.ts';
import { deleteLinuxUser, lookupLinuxUser } from '../../node-agent/src/provisioning/linux-user.ts';
import { accountExists, dropDatabaseAndUser } from '../../node-agent/src/provisioning/mariadb.ts';
import { generateShortId } from '../../node-agent/src/provisioning/names.ts';
import { databaseSecretPath } from '../../node-agent/src/provisioning/secrets.ts';
import { type AgentStack, type CommandOutcome, startAgentStack } from './agent-stack.ts';
import { BINARIES, shouldSkipStack } from './binaries.ts';
import { httpGet } from './http.ts';
import { WP_CLI_DOUBLE } from './wp-cli.ts';

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

describe.skipIf(skip)('environment commands on the stack', () => {
  let s: AgentStack;
  const created: EnvironmentSpec[] = [];
  const timings: Record<string, number> = {};
  const a = newSpec('stack-shop', 'prod');
  const b = newSpec('stack-shop', 'staging');
  const c = newSpec('stack-fail', 'prod');
  const host = (spec: EnvironmentSpec, suffix = 'node.test') => `${spec.name}.${suffix}`;
  const url = (hostname: string) => `http://${hostname}:${s.nginx.port}`;

  const step = (
    spec: EnvironmentSpec,
    kind: EnvironmentStepKind,
    options: { undo?: boolean; siteUrl?: string; title?: string } = {},
  ) =>
    s.run({
      $case: 'environmentStep',
      value: {
        environment: spec,
        kind,
        undo: options.undo ?? false,
        siteUrl: kind === EnvironmentStepKind.INSTALL_WORDPRESS ? (options.siteUrl ?? '') : '',
        siteTitle: kind === EnvironmentStepKind.INSTALL_WORDPRESS ? (options.title ?? 'Stack shop') : '',
        purgeBackups: false,
        adminUser: kind === EnvironmentStepKind.INSTALL_WORDPRESS ? 'wpcp-admin' : '',
        adminEmail: kind === EnvironmentStepKind.INSTALL_WORDPRESS ? 'admin@example.test' : '',
      },
    });
  const nginxFor = (spec: EnvironmentSpec, hostnames: string[], remove = false) =>
    s.run({ $case: 'configureNginx', value: { environment: spec, hostnames, fastcgiCache: false, remove } });

  const expectOk = (outcome: CommandOutcome) => {
    expect(outcome.status, `${outcome.id}: ${outcome.errorCode} ${outcome.errorMessage}`).toBe('succeeded');
    return outcome.output;
  };

  /** Every step in order, then the server block; returns the outcomes. */
  const provision = async (spec: EnvironmentSpec, hostname: string, title: string) => {
    const outcomes: CommandOutcome[] = [];
    for (const kind of STEPS) {
      outcomes.push(await step(spec, kind, { siteUrl: url(hostname), title }));
      expectOk(outcomes.at(-1) as CommandOutcome);
    }
    outcomes.push(await nginxFor(spec, [hostname]));
    expectOk(outcomes.at(-1) as CommandOutcome);
    return outcomes;
  };

  /** What the control plane does to delete an environment (or after a failed job): undo, newest first. */
  const teardown = async (spec: EnvironmentSpec) => {
    const outcomes = [await nginxFor(spec, [], true)];
    for (const kind of [...STEPS].reverse()) outcomes.push(await step(spec, kind, { undo: true }));
    return outcomes;
  };

  /** The front page (retrying while a reload is under way). */
  const frontPage = async (hostname: string, expected: (body: string, status: number) => boolean) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const page = await httpGet(s.nginx.url('/'), { host: `${hostname}:${s.nginx.port}` });
      if (expected(page.body, page.status) || Date.now() > deadline) return page;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  /** WP-CLI (the double) as the environment's user, for assertions. */
  const wp = async (spec: EnvironmentSpec, args: string[]) => {
    const user = await lookupLinuxUser(spec.systemUser);
    if (!user) throw new Error(`no user ${spec.systemUser}`);
    const layout = environmentLayout(s.sitesDir, spec.name);
    const result = await runProcess({
      file: BINARIES.php,
      args: [WP_CLI_DOUBLE, `--path=${layout.current}`, ...args],
      uid: user.uid,
      gid: user.gid,
      env: { HOME: layout.root },
      timeoutMs: 60_000,
      maxOutputBytes: 1024 * 1024,
    });
    expect(result.exitCode, `wp ${args.join(' ')}: ${result.stderr}`).toBe(0);
    return result.stdout.trim();
  };

  /** Everything of an environment still on the node (empty when nothing is). */
  const leftovers = async (spec: EnvironmentSpec): Promise<string[]> => {
    const found: string[] = [];
    const stem = `wpcp-${spec.name}`;
    if (await lookupLinuxUser(spec.systemUser)) found.push('linux user');
    if (
      (await readFile('/etc/group', 'utf8'))
        .split('\n')
        .some((line) => line.startsWith(`${spec.systemUser}:`))
    )
      found.push('linux group');
    const exists = await accountExists(s.stack.database.admin, {
      database: spec.databaseName,
      user: spec.databaseUser,
    });
    if (exists.database) found.push('database');
    if (exists.user) found.push('database user');
    for (const file of [
      path.join(s.sitesDir, spec.name),
      path.join(s.fpm.poolDir, `${stem}.conf`),
      path.join(s.fpm.dir, `${stem}.sock`),
      path.join(s.nginx.sitesDir, `${stem}.conf`),
      path.join(s.cronDir, stem),
      databaseSecretPath(s.stateDir, spec.databaseUser),
    ]) {
      if (await lstat(file).catch(() => undefined)) found.push(file);
    }
    return found;
  };

  beforeAll(async () => {
    const started = performance.now();
    s = await startAgentStack();
    timings.stack = Math.round(performance.now() - started);
  });

  afterAll(async () => {
    // Whatever a failed test left: take it down, and make sure no Linux user survives.
    for (const spec of created) {
      if (!s) break;
      await teardown(spec).catch(() => {});
      await deleteLinuxUser(spec.systemUser).catch(() => {});
      await dropDatabaseAndUser(s.stack.database.admin, {
        database: spec.databaseName,
        user: spec.databaseUser,
      }).catch(() => {});
    }
    await s?.stop();
    console.info(`environment command timings (ms): ${JSON.stringify(timings)}`);
  });

  it('provisions an environment step by step, and nginx serves its WordPress front page', async () => {
    const started = performance.now();
    created.push(a);
    const outcomes = await provision(a, host(a), 'Stack shop');
    timings.provision = Math.round(performance.now() - started);

    const [user, layout, pool, database, core, config, install, cron, nginx] = outcomes.map((o) => o.output);
    expect(user).toMatchObject({ step: 'create-user', linux_user: a.systemUser });
    expect(layout).toMatchObject({ root: path.join(s.sitesDir, a.name) });
    expect(pool).toMatchObject({ socket: path.join(s.fpm.dir, `wpcp-${a.name}.sock`), changed: true });
    expect(database).toEqual({
      step: 'create-database',
      environment: a.name,
      database: a.databaseName,
      user: a.databaseUser,
      changed: true,
    });
    expect(core).toMatchObject({ wordpress_version: s.core.version, release: 'initial', changed: true });
    expect(config).toMatchObject({ changed: true });
    expect(install).toMatchObject({ url: url(host(a)), admin_user: 'wpcp-admin', changed: true });
    expect(cron).toMatchObject({ file: path.join(s.cronDir, `wpcp-${a.name}`), changed: true });
    expect(nginx).toMatchObject({ hostnames: [host(a)], changed: true });

    const page = await frontPage(host(a), (body) => body.includes('<title>Stack shop</title>'));
    expect(page.status, page.body.slice(0, 1_000)).toBe(200);
    expect(page.body).toContain('<title>Stack shop</title>');
    expect(page.body).toContain(`href="${url(host(a))}`);

    // What is on disk, with the owners and modes docs/node-layout.md describes.
    const account = await lookupLinuxUser(a.systemUser);
    const root = path.join(s.sitesDir, a.name);
    const wpConfig = await stat(path.join(root, 'shared/wp-config.php'));
    expect([wpConfig.uid, wpConfig.mode & 0o777]).toEqual([account?.uid, 0o600]);
    expect((await stat(path.join(root, 'releases/initial/wp-includes/version.php'))).uid).toBe(account?.uid);
    expect(await readFile(path.join(s.cronDir, `wpcp-${a.name}`), 'utf8')).toContain(
      `* * * * * ${a.systemUser} /usr/bin/flock -n ${root}/tmp/wp-cron.lock ${BINARIES.php} ${WP_CLI_DOUBLE} --path=${root}/current cron event run --due-now --quiet`,
    );
    const wpConfigText = await readFile(path.join(root, 'shared/wp-config.php'), 'utf8');
    expect(wpConfigText).toContain(`define( 'WP_REDIS_PREFIX', '${a.redisPrefix}' );`);
    expect(wpConfigText).toContain("define( 'DISABLE_WP_CRON', true );");

    // No secret in any log line, error or output: the database password and the salts.
    const secret = JSON.parse(await readFile(databaseSecretPath(s.stateDir, a.databaseUser), 'utf8')) as {
      password: string;
    };
    expect(wpConfigText).toContain(secret.password);
    const everything = JSON.stringify(outcomes);
    expect(everything).not.toContain(secret.password);
    const salt = /define\( 'AUTH_KEY', '([^']+)' \);/.exec(wpConfigText)?.[1] as string;
    expect(everything).not.toContain(salt);
    expect(everything).not.toMatch(/admin.?password/i);
  });

  it('does every step again without changing anything', async () => {
    const before = await readFile(path.join(s.sitesDir, a.name, 'shared/wp-config.php'), 'utf8');
    const started = performance.now();
    for (const kind of STEPS) {
      const output = expectOk(await step(a, kind, { siteUrl: url(host(a)), title: 'Stack shop' }));
      if (kind !== EnvironmentStepKind.CREATE_USER && kind !== EnvironmentStepKind.CREATE_LAYOUT) {
        expect(output.changed, `step ${kind}`).toBe(false);
      }
    }
    expect(expectOk(await nginxFor(a, [host(a)])).changed).toBe(false);
    timings.again = Math.round(performance.now() - started);
    expect(await readFile(path.join(s.sitesDir, a.name, 'shared/wp-config.php'), 'utf8')).toBe(before);
    expect((await frontPage(host(a), (_, status) => status === 200)).status).toBe(200);
  });

  it('serves a second hostname and moves home and siteurl to it with set_site_url', async () => {
    const second = host(a, 'example.test');
    expectOk(await nginxFor(a, [host(a), second]));
    expectOk(await s.run({ $case: 'setSiteUrl', value: { environment: a, url: url(second) } }));
    expect(await wp(a, ['option', 'get', 'home'])).toBe(url(second));
    expect(await wp(a, ['option', 'get', 'siteurl'])).toBe(url(second));
    const page = await frontPage(second, (body) => body.includes(`href="${url(second)}`));
    expect(page.body).toContain(`href="${url(second)}`);

    // And back, as when the default hostname becomes primary again.
    expectOk(await s.run({ $case: 'setSiteUrl', value: { environment: a, url: url(host(a)) } }));
    expectOk(await nginxFor(a, [host(a)]));
    expect(await wp(a, ['option', 'get', 'home'])).toBe(url(host(a)));
  });

  it('rolls back a server block that fails nginx -t, and nginx keeps serving', async () => {
    const file = path.join(s.nginx.sitesDir, `wpcp-${a.name}.conf`);
    const before = await readFile(file, 'utf8');
    // A valid hostname (four 62-character labels) longer than the test nginx's
    // server_names_hash_bucket_size: nginx -t fails ("could not build server_names_hash").
    const long = `${['a', 'b', 'c'].map((ch) => ch.repeat(62)).join('.')}.${'d'.repeat(50)}.test`;
    const outcome = await nginxFor(a, [host(a), long]);
    expect(outcome.status).toBe('failed');
    expect(outcome.errorCode).toBe('config_check_failed');
    expect(outcome.errorMessage).toContain('server_names_hash');
    expect(await readFile(file, 'utf8')).toBe(before);
    const page = await frontPage(host(a), (_, status) => status === 200);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>Stack shop</title>');
  });

  it('clones an environment: same content under its own URL, serialized data rewritten', async () => {
    const sourceUrl = url(host(a));
    const targetUrl = url(host(b));
    // Serialized data holding the URL (an option saved as an array), and an upload.
    await wp(a, [
      'option',
      'update',
      'wpcp_clone_probe',
      JSON.stringify({ link: `${sourceUrl}/shop/`, nested: { home: sourceUrl } }),
      '--format=json',
    ]);
    const sourceUser = await lookupLinuxUser(a.systemUser);
    const upload = path.join(s.sitesDir, a.name, 'shared/uploads/probe.txt');
    await writeFile(upload, 'uploaded file\n');
    await runProcess({
      file: 'chown',
      args: [`${sourceUser?.uid}:${sourceUser?.gid}`, upload],
      timeoutMs: 5_000,
      maxOutputBytes: 1024,
    });

    created.push(b);
    const started = performance.now();
    for (const kind of STEPS.slice(0, 4)) expectOk(await step(b, kind));
    const clone = await s.run({
      $case: 'cloneEnvironment',
      value: { source: a, target: b, sourceUrl, targetUrl },
    });
    expectOk(clone);
    expectOk(await step(b, EnvironmentStepKind.INSTALL_CRON));
    expectOk(await nginxFor(b, [host(b)]));
    timings.clone = Math.round(performance.now() - started);
    expect(clone.output).toMatchObject({ release: 'initial', wordpress_version: s.core.version });
    expect(clone.output.replacements).toBeGreaterThan(0);

    const page = await frontPage(host(b), (body) => body.includes(`href="${targetUrl}`));
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>Stack shop</title>');
    expect(page.body).toContain(`href="${targetUrl}`);
    expect(page.body).not.toContain(sourceUrl);

    // Serialization-safe: the stored string lengths match the new URL.
    const probe = JSON.parse(await wp(b, ['option', 'get', 'wpcp_clone_probe', '--format=json']));
    expect(probe).toEqual({ link: `${targetUrl}/shop/`, nested: { home: targetUrl } });
    const raw = await s.db.query(
      `SELECT option_value FROM \`${b.databaseName}\`.wp_options WHERE option_name = 'wpcp_clone_probe';`,
    );
    expect(raw).toContain(`s:${`${targetUrl}/shop/`.length}:"${targetUrl}/shop/"`);
    // The source is unchanged.
    expect(JSON.parse(await wp(a, ['option', 'get', 'wpcp_clone_probe', '--format=json']))).toEqual({
      link: `${sourceUrl}/shop/`,
      nested: { home: sourceUrl },
    });
    expect(await wp(a, ['option', 'get', 'home'])).toBe(sourceUrl);

    // The copy belongs to the target's user, with its own wp-config.php.
    const targetUser = await lookupLinuxUser(b.systemUser);
    const copied = await stat(path.join(s.sitesDir, b.name, 'shared/uploads/probe.txt'));
    expect(copied.uid).toBe(targetUser?.uid);
    expect((await stat(path.join(s.sitesDir, b.name, 'releases/initial/index.php'))).uid).toBe(
      targetUser?.uid,
    );
    const targetConfig = await readFile(path.join(s.sitesDir, b.name, 'shared/wp-config.php'), 'utf8');
    expect(targetConfig).toContain(`define( 'DB_NAME', '${b.databaseName}' );`);
    expect(targetConfig).toContain(`define( 'WP_REDIS_PREFIX', '${b.redisPrefix}' );`);
  });

  it('undoes every step in reverse and leaves nothing behind; undoing again succeeds', async () => {
    const started = performance.now();
    for (const spec of [b, a]) {
      for (const outcome of await teardown(spec)) expectOk(outcome);
      expect(await leftovers(spec)).toEqual([]);
      for (const outcome of await teardown(spec)) expectOk(outcome);
    }
    timings.teardown = Math.round(performance.now() - started);
    expect(await readdir(s.nginx.sitesDir)).toEqual([]);
    expect((await readdir(s.fpm.poolDir)).filter((name) => name.startsWith('wpcp-'))).toEqual([]);
    // The default server still answers: nginx was reloaded, never broken.
    expect((await httpGet(s.nginx.url('/'))).status).toBe(200);
  });

  it('leaves nothing behind when a step fails midway and the earlier ones are undone', async () => {
    created.push(c);
    // A node whose WordPress core source is missing: INSTALL_CORE fails.
    const broken = createHandlers(
      nodeStackFromConfig({ ...s.settings, wpCoreSource: '/nonexistent/wordpress' }),
    );
    const done: EnvironmentStepKind[] = [];
    for (const kind of STEPS.slice(0, 4)) {
      expectOk(await step(c, kind));
      done.push(kind);
    }
    const failed = await s.runWith(broken, {
      $case: 'environmentStep',
      value: {
        environment: c,
        kind: EnvironmentStepKind.INSTALL_CORE,
        undo: false,
        siteUrl: '',
        siteTitle: '',
        adminUser: '',
        adminEmail: '',
        purgeBackups: false,
      },
    });
    expect(failed.status).toBe('failed');
    expect(failed.errorCode).toBe('core_install_failed');
    expect(failed.errorMessage).toContain('/nonexistent/wordpress');
    // The job's undos: the failed step (harmless when nothing was done), then the others.
    expectOk(await step(c, EnvironmentStepKind.INSTALL_CORE, { undo: true }));
    for (const kind of done.reverse()) expectOk(await step(c, kind, { undo: true }));
    expect(await leftovers(c)).toEqual([]);
  });
});
