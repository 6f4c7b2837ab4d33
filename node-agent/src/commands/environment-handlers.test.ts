// The environment handlers without the real stack: validation (REJECTED, nothing done) for every
// payload, and the idempotency of the steps that only write files, against a private "node" in a
// temporary directory (fake passwd and group files, `true`/`false` as nginx's checker and reload).
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type EnvironmentSpec, type EnvironmentStep, EnvironmentStepKind } from '@wpcp/shared/agent-protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentConfig } from '../config.ts';
import { writeDatabaseSecret } from '../provisioning/secrets.ts';
import { renderWpConfig } from '../provisioning/wp-config.ts';
import { testContext } from '../testing/command-context.ts';
import { saltsOf } from './environment-support.ts';
import { type NodeStack, nodeStackFromConfig, parseListen, resolveCommand } from './node-stack.ts';
import { capabilities, createHandlers, defaultHandlers } from './registry.ts';

const spec: EnvironmentSpec = {
  name: 'shop--prod',
  systemUser: 'wp_abc123def456',
  databaseName: 'wp_abc123def456',
  databaseUser: 'wp_abc123def456',
  redisPrefix: 'wpcp:abc123def456:',
};

function stepPayload(kind: EnvironmentStepKind, overrides: Partial<EnvironmentStep> = {}): EnvironmentStep {
  return {
    environment: spec,
    kind,
    undo: false,
    siteUrl: '',
    siteTitle: '',
    adminUser: '',
    adminEmail: '',
    purgeBackups: false,
    ...overrides,
  };
}

describe('validation: bad input is REJECTED and nothing runs', () => {
  const cases: Array<[string, () => ReturnType<typeof defaultHandlers.noop>]> = [
    [
      'an environment without names',
      () => run((c) => defaultHandlers.environmentStep(stepPayload(1, { environment: undefined }), c)),
    ],
    [
      'root as the system user',
      () =>
        run((c) =>
          defaultHandlers.environmentStep(
            stepPayload(1, { environment: { ...spec, systemUser: 'root' } }),
            c,
          ),
        ),
    ],
    [
      'the UNSPECIFIED kind',
      () => run((c) => defaultHandlers.environmentStep(stepPayload(EnvironmentStepKind.UNSPECIFIED), c)),
    ],
    [
      'an unknown kind',
      () => run((c) => defaultHandlers.environmentStep(stepPayload(99 as EnvironmentStepKind), c)),
    ],
    [
      'INSTALL_WORDPRESS with a URL that has a path',
      () =>
        run((c) =>
          defaultHandlers.environmentStep(
            stepPayload(EnvironmentStepKind.INSTALL_WORDPRESS, {
              siteUrl: 'http://shop.example/wp',
              siteTitle: 'Shop',
              adminUser: 'admin',
              adminEmail: 'a@example.com',
            }),
            c,
          ),
        ),
    ],
    [
      'INSTALL_WORDPRESS without an admin',
      () =>
        run((c) =>
          defaultHandlers.environmentStep(
            stepPayload(EnvironmentStepKind.INSTALL_WORDPRESS, {
              siteUrl: 'http://shop.example',
              siteTitle: 'Shop',
            }),
            c,
          ),
        ),
    ],
    ...['a.com; include /etc/passwd', '~^.*$', '*.x.com', 'a'.repeat(300)].map(
      (hostname): [string, () => ReturnType<typeof defaultHandlers.noop>] => [
        `the hostname ${hostname.slice(0, 30)}`,
        () =>
          run((c) =>
            defaultHandlers.configureNginx(
              { environment: spec, hostnames: [hostname], fastcgiCache: false, remove: false },
              c,
            ),
          ),
      ],
    ),
    [
      'no hostnames',
      () =>
        run((c) =>
          defaultHandlers.configureNginx(
            { environment: spec, hostnames: [], fastcgiCache: false, remove: false },
            c,
          ),
        ),
    ],
    [
      'remove with hostnames',
      () =>
        run((c) =>
          defaultHandlers.configureNginx(
            { environment: spec, hostnames: ['a.example'], fastcgiCache: false, remove: true },
            c,
          ),
        ),
    ],
    [
      'a site URL with a quote',
      () => run((c) => defaultHandlers.setSiteUrl({ environment: spec, url: "http://a.example'" }, c)),
    ],
    [
      'a clone onto itself',
      () =>
        run((c) =>
          defaultHandlers.cloneEnvironment(
            { source: spec, target: spec, sourceUrl: 'http://a.example', targetUrl: 'http://b.example' },
            c,
          ),
        ),
    ],
    [
      'a clone without target',
      () =>
        run((c) =>
          defaultHandlers.cloneEnvironment(
            { source: spec, target: undefined, sourceUrl: 'http://a.example', targetUrl: 'http://b.example' },
            c,
          ),
        ),
    ],
  ];

  function run(
    call: (context: ReturnType<typeof testContext>['context']) => ReturnType<typeof defaultHandlers.noop>,
  ) {
    const { context } = testContext({ allowExec: false });
    return call(context);
  }

  it.each(cases)('refuses %s', async (_, call) => {
    const outcome = await call();
    expect(outcome).toMatchObject({ status: 'rejected', errorCode: 'invalid_argument' });
  });
});

describe('registry', () => {
  it('announces the payload cases as the .proto names them', () => {
    expect(capabilities()).toEqual([
      'clone_environment',
      'configure_nginx',
      'create_magic_login',
      'environment_step',
      'noop',
      'ping',
      'purge_cache',
      'set_object_cache',
      'set_site_url',
    ]);
  });

  it('finds a bare WP-CLI command name in the PATH', () => {
    expect(resolveCommand('sh')).toMatch(/^\/(usr\/)?bin\/sh$/);
    expect(resolveCommand('/opt/wp')).toBe('/opt/wp');
    expect(resolveCommand('no-such-program-here')).toBe('no-such-program-here');
  });

  it('reads nginx listen settings', () => {
    expect(parseListen('80')).toEqual({ port: 80 });
    expect(parseListen('127.0.0.1:8080')).toEqual({ address: '127.0.0.1', port: 8080 });
    expect(parseListen('[::]:80')).toEqual({ address: '[::]', port: 80 });
  });
});

describe('saltsOf', () => {
  it('reads back the salts of a wp-config.php the agent wrote, quotes and backslashes included', () => {
    const salts = {
      AUTH_KEY: `a'b\\c${'x'.repeat(40)}`,
      SECURE_AUTH_KEY: 'y'.repeat(64),
      LOGGED_IN_KEY: `\\'${'z'.repeat(40)}`,
      NONCE_KEY: 'n'.repeat(64),
      AUTH_SALT: 'o'.repeat(64),
      SECURE_AUTH_SALT: 'p'.repeat(64),
      LOGGED_IN_SALT: 'q'.repeat(64),
      NONCE_SALT: `);${'r'.repeat(60)}`,
    };
    const text = renderWpConfig({
      dbName: 'wp_a',
      dbUser: 'wp_a',
      dbPassword: 'pw'.repeat(10),
      dbHost: 'localhost',
      redis: { prefix: 'wpcp:a:' },
      salts,
    });
    expect(saltsOf(text)).toEqual(salts);
    expect(saltsOf('<?php // nothing')).toBeUndefined();
  });
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('file-writing steps on a private node (root)', () => {
  let dir: string;
  let stack: NodeStack;
  let nginxCheck: string;
  const uid = 4242;
  const gid = 4242;

  const handlers = () => createHandlers(stack);
  type Outcome = {
    status: string;
    errorCode?: string;
    errorMessage?: string;
    output?: Record<string, unknown>;
    logs: string[];
  };
  const call = async <P>(
    fn: (
      payload: P,
      context: ReturnType<typeof testContext>['context'],
    ) => ReturnType<typeof defaultHandlers.noop>,
    payload: P,
  ): Promise<Outcome> => {
    const test = testContext();
    const outcome = await fn(payload, test.context);
    return { ...(outcome as Omit<Outcome, 'logs'>), logs: test.logs };
  };
  const step = (kind: EnvironmentStepKind, undo = false) =>
    call(handlers().environmentStep, stepPayload(kind, { undo }));

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wpcp-handlers-'));
    await chmod(dir, 0o755);
    const sites = path.join(dir, 'sites');
    for (const sub of ['sites', 'nginx', 'cron', 'state', 'core/wp-includes'])
      await mkdir(path.join(dir, sub), { recursive: true });
    await writeFile(path.join(dir, 'core/wp-includes/version.php'), "<?php\n$wp_version = '6.1.9';\n");
    await writeFile(path.join(dir, 'core/wp-load.php'), '<?php\n');
    await writeFile(
      path.join(dir, 'passwd'),
      `root:x:0:0:root:/root:/bin/bash\n${spec.systemUser}:x:${uid}:${gid}:wpcp environment ${spec.name}:${sites}/${spec.name}:/usr/sbin/nologin\n`,
    );
    await writeFile(path.join(dir, 'group'), `root:x:0:\nwww-data:x:33:\n${spec.systemUser}:x:${gid}:\n`);
    // The "nginx -t" of this node: passes unless the file `broken` exists.
    nginxCheck = path.join(dir, 'nginx-check');
    await writeFile(
      nginxCheck,
      `#!/bin/sh\nif [ -e ${dir}/broken ]; then echo "nginx: [emerg] broken" >&2; exit 1; fi\n`,
      { mode: 0o755 },
    );
    const settings = AgentConfig.parse({
      server: 'localhost:1',
      stateDir: path.join(dir, 'state'),
      sitesDir: sites,
      nginxSitesDir: path.join(dir, 'nginx'),
      nginxCacheDir: path.join(dir, 'nginx-cache'),
      nginxTestArgv: [nginxCheck],
      nginxReloadArgv: ['/bin/true'],
      cronDir: path.join(dir, 'cron'),
      wpCoreSource: path.join(dir, 'core'),
    });
    stack = nodeStackFromConfig(settings, {
      linuxUserTools: {
        useradd: '/bin/false',
        userdel: '/bin/false',
        groupdel: '/bin/false',
        passwdFile: path.join(dir, 'passwd'),
        groupFile: path.join(dir, 'group'),
      },
    });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('says which step is missing when an earlier one was not done', async () => {
    for (const kind of [
      EnvironmentStepKind.INSTALL_CORE,
      EnvironmentStepKind.WRITE_WP_CONFIG,
      EnvironmentStepKind.INSTALL_CRON,
    ]) {
      expect(await step(kind)).toMatchObject({ status: 'failed', errorCode: 'step_prerequisite_missing' });
    }
    const nginx = await call(handlers().configureNginx, {
      environment: spec,
      hostnames: ['shop.example'],
      fastcgiCache: false,
      remove: false,
    });
    expect(nginx).toMatchObject({ status: 'failed', errorCode: 'step_prerequisite_missing' });
    expect(nginx.errorMessage).toContain('CREATE_LAYOUT');
  });

  it('does, redoes and undoes the layout, core, wp-config and cron steps idempotently', async () => {
    expect(await step(EnvironmentStepKind.CREATE_LAYOUT)).toMatchObject({ status: 'succeeded' });
    const root = path.join(stack.sitesDir, spec.name);
    expect((await stat(path.join(root, 'releases'))).uid).toBe(uid);

    // wp-config.php needs the password CREATE_DATABASE keeps.
    expect(await step(EnvironmentStepKind.WRITE_WP_CONFIG)).toMatchObject({
      errorCode: 'step_prerequisite_missing',
    });
    await writeDatabaseSecret(stack.stateDir, {
      database: spec.databaseName,
      user: spec.databaseUser,
      password: 'S3cret-password-value',
    });
    const written = await step(EnvironmentStepKind.WRITE_WP_CONFIG);
    expect(written).toMatchObject({ status: 'succeeded', output: { changed: true } });
    const config = path.join(root, 'shared/wp-config.php');
    const first = await readFile(config, 'utf8');
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    expect((await stat(config)).uid).toBe(uid);
    expect(JSON.stringify(written)).not.toContain('S3cret-password-value');
    expect(await step(EnvironmentStepKind.WRITE_WP_CONFIG)).toMatchObject({ output: { changed: false } });
    expect(await readFile(config, 'utf8')).toBe(first);

    const core = await step(EnvironmentStepKind.INSTALL_CORE);
    expect(core).toMatchObject({
      status: 'succeeded',
      output: { wordpress_version: '6.1.9', release: 'initial', changed: true },
    });
    expect((await lstat(path.join(root, 'current'))).isSymbolicLink()).toBe(true);
    expect((await stat(path.join(root, 'current/wp-load.php'))).uid).toBe(uid);
    expect((await lstat(path.join(root, 'releases/initial/wp-config.php'))).isSymbolicLink()).toBe(true);
    expect(await step(EnvironmentStepKind.INSTALL_CORE)).toMatchObject({ output: { changed: false } });

    expect(await step(EnvironmentStepKind.INSTALL_CRON)).toMatchObject({ output: { changed: true } });
    expect(await step(EnvironmentStepKind.INSTALL_CRON)).toMatchObject({ output: { changed: false } });
    expect(await readFile(path.join(stack.cronDir, `wpcp-${spec.name}`), 'utf8')).toContain(
      `* * * * * ${spec.systemUser} `,
    );

    for (const kind of [
      EnvironmentStepKind.INSTALL_CRON,
      EnvironmentStepKind.WRITE_WP_CONFIG,
      EnvironmentStepKind.INSTALL_CORE,
    ]) {
      expect(await step(kind, true)).toMatchObject({ status: 'succeeded', output: { removed: true } });
      expect(await step(kind, true)).toMatchObject({ status: 'succeeded', output: { removed: false } });
    }
    expect(await step(EnvironmentStepKind.CREATE_LAYOUT, true)).toMatchObject({
      output: { removed: true, kept_backups: false },
    });
    expect(await lstat(root).catch(() => undefined)).toBeUndefined();
    expect(await step(EnvironmentStepKind.CREATE_LAYOUT, true)).toMatchObject({
      status: 'succeeded',
      output: { removed: false },
    });
  });

  it('keeps an environment root that still holds backups when the layout is undone', async () => {
    await step(EnvironmentStepKind.CREATE_LAYOUT);
    const root = path.join(stack.sitesDir, spec.name);
    await mkdir(path.join(root, 'backups/b1'));
    expect(await step(EnvironmentStepKind.CREATE_LAYOUT, true)).toMatchObject({
      output: { removed: true, kept_backups: true },
    });
    expect((await lstat(path.join(root, 'backups/b1'))).isDirectory()).toBe(true);
    expect(await lstat(path.join(root, 'releases')).catch(() => undefined)).toBeUndefined();
  });

  it('writes, keeps, rolls back and removes the server block', async () => {
    await step(EnvironmentStepKind.CREATE_LAYOUT);
    const nginx = handlers().configureNginx;
    const file = path.join(stack.nginx.sitesDir, `wpcp-${spec.name}.conf`);
    const payload = {
      environment: spec,
      hostnames: ['shop--prod.node.example', 'shop.example'],
      fastcgiCache: true,
      remove: false,
    };
    expect(await call(nginx, payload)).toMatchObject({
      status: 'succeeded',
      output: { changed: true, fastcgi_cache: true },
    });
    const content = await readFile(file, 'utf8');
    expect(content).toContain(
      `fastcgi_cache_path ${path.join(dir, 'nginx-cache', spec.name)} levels=1:2 keys_zone=wpcp_${spec.name.replace(/-/g, '_')}:10m`,
    );
    expect((await lstat(path.join(dir, 'nginx-cache', spec.name))).isDirectory()).toBe(true);
    expect(content).toContain('server_name shop--prod.node.example shop.example;');
    expect(content).toContain(`fastcgi_pass unix:/run/php/wpcp-${spec.name}.sock;`);
    expect(content).toContain('listen 80;');
    expect(content).toContain('listen [::]:80;');
    expect(await call(nginx, payload)).toMatchObject({ status: 'succeeded', output: { changed: false } });

    await writeFile(path.join(dir, 'broken'), '');
    const failed = await call(nginx, { ...payload, hostnames: ['shop.example'] });
    expect(failed).toMatchObject({ status: 'failed', errorCode: 'config_check_failed' });
    expect(failed.errorMessage).toContain('nginx: [emerg] broken');
    expect(await readFile(file, 'utf8')).toBe(content);
    await rm(path.join(dir, 'broken'));

    const removal = { environment: spec, hostnames: [], fastcgiCache: false, remove: true };
    expect(await call(nginx, removal)).toMatchObject({ status: 'succeeded', output: { changed: true } });
    expect(await lstat(file).catch(() => undefined)).toBeUndefined();
    expect(await call(nginx, removal)).toMatchObject({ status: 'succeeded', output: { changed: false } });
  });
});
