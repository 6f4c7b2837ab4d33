// The agent's provisioning primitives against real servers from the stack harness: MariaDB
// accounts, atomic nginx and PHP-FPM configuration with rollback, Linux users, and wp-config.php
// as PHP reads it.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyConfigAtomically, commandCheck } from '../../node-agent/src/provisioning/atomic-config.ts';
import {
  createLinuxUser,
  deleteLinuxUser,
  lookupLinuxUser,
} from '../../node-agent/src/provisioning/linux-user.ts';
import {
  accountExists,
  createDatabaseAndUser,
  dropDatabaseAndUser,
  type MysqlClient,
} from '../../node-agent/src/provisioning/mariadb.ts';
import { generateShortId, systemNames } from '../../node-agent/src/provisioning/names.ts';
import { renderServerBlock } from '../../node-agent/src/provisioning/nginx-server-block.ts';
import { renderPhpFpmPool } from '../../node-agent/src/provisioning/php-fpm-pool.ts';
import { generateSalts, renderWpConfig } from '../../node-agent/src/provisioning/wp-config.ts';
import { BINARIES, shouldSkipStack } from './binaries.ts';
import { runCollect } from './exec.ts';
import { httpGet } from './http.ts';
import { type MariaDbInstance, startMariaDb } from './mariadb.ts';
import { type NginxInstance, startNginx } from './nginx.ts';
import { accepts, type PhpFpmInstance, startPhpFpm } from './php-fpm.ts';

const skip = shouldSkipStack();

describe.skipIf(skip)('mariadb.ts against MariaDB', () => {
  let db: MariaDbInstance;
  let client: MysqlClient;

  beforeAll(async () => {
    db = await startMariaDb();
    client = { file: BINARIES.mysql, args: db.clientArgs };
  });
  afterAll(async () => {
    await db?.stop();
  });

  /** Runs SQL as `user` over the socket with its password; resolves with the client's result. */
  function asUser(user: string, password: string, sql: string) {
    return runCollect(
      BINARIES.mysql,
      [
        '--no-defaults',
        '--protocol=socket',
        `--socket=${db.socketPath}`,
        `--user=${user}`,
        '--batch',
        '--raw',
        '--skip-column-names',
      ],
      { stdin: sql, env: { MYSQL_PWD: password } },
    );
  }

  it('creates a database and a user with privileges on that database only', async () => {
    const names = systemNames(generateShortId());
    const account = { database: names.database, user: names.databaseUser };
    // A database the LIKE wildcard `_` in an unescaped GRANT would also match (wp_x -> wpXx).
    const lookalike = names.database.replace('_', 'X');
    await db.query(`CREATE DATABASE \`${lookalike}\`; CREATE TABLE \`${lookalike}\`.secrets (v TEXT);`);
    // A password with every character SQL quoting must get right.
    const password = `p'w"\\d\`%_;-- ${'x'.repeat(16)}`;
    await createDatabaseAndUser(client, account, password);
    expect(await accountExists(client, account)).toEqual({ database: true, user: true });

    const own = await asUser(
      names.databaseUser,
      password,
      `CREATE TABLE ${names.database}.t (v INT); SELECT DATABASE();`,
    );
    expect(own.code, own.stderr).toBe(0);
    const other = await asUser(names.databaseUser, password, `SELECT * FROM \`${lookalike}\`.secrets;`);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/denied/);
    const create = await asUser(names.databaseUser, password, 'CREATE DATABASE another_one;');
    expect(create.code).not.toBe(0);
    const grants = await asUser(names.databaseUser, password, 'SHOW GRANTS;');
    expect(grants.stdout).toContain(`ON \`${names.database.replace('_', '\\_')}\`.*`);

    await dropDatabaseAndUser(client, account);
    expect(await accountExists(client, account)).toEqual({ database: false, user: false });
    await dropDatabaseAndUser(client, account); // idempotent
    await db.query(`DROP DATABASE \`${lookalike}\`;`);
  });

  it('refuses an existing database or user and leaves them alone', async () => {
    const names = systemNames(generateShortId());
    const account = { database: names.database, user: names.databaseUser };
    await db.query(`CREATE DATABASE ${names.database}; CREATE TABLE ${names.database}.keep (v INT);`);
    await expect(createDatabaseAndUser(client, account, 'x'.repeat(32))).rejects.toMatchObject({
      code: 'database_exists',
    });
    expect((await db.query(`SHOW TABLES FROM ${names.database}`)).trim()).toBe('keep');
    await db.query(`DROP DATABASE ${names.database}; CREATE USER '${names.databaseUser}'@'localhost';`);
    await expect(createDatabaseAndUser(client, account, 'x'.repeat(32))).rejects.toMatchObject({
      code: 'database_user_exists',
    });
    expect(await accountExists(client, account)).toEqual({ database: false, user: true });
    await db.query(`DROP USER '${names.databaseUser}'@'localhost';`);
  });

  it('drops what it created when creation fails half-way', async () => {
    const names = systemNames(generateShortId());
    // A client that can create databases but not users: CREATE USER fails after CREATE DATABASE.
    const limited = `lim_${generateShortId()}`;
    const limitedPassword = 'limited-password-123';
    await db.query(
      `CREATE USER '${limited}'@'localhost' IDENTIFIED BY '${limitedPassword}'; GRANT CREATE, DROP, SELECT ON *.* TO '${limited}'@'localhost';`,
    );
    const limitedClient: MysqlClient = {
      file: BINARIES.mysql,
      args: [
        '--no-defaults',
        '--protocol=socket',
        `--socket=${db.socketPath}`,
        `--user=${limited}`,
        `--password=${limitedPassword}`,
      ],
    };
    await expect(
      createDatabaseAndUser(
        limitedClient,
        { database: names.database, user: names.databaseUser },
        'y'.repeat(32),
      ),
    ).rejects.toMatchObject({ code: 'command_failed' });
    expect(
      (
        await db.query(
          `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${names.database}'`,
        )
      ).trim(),
    ).toBe('0');
    await db.query(`DROP USER '${limited}'@'localhost';`);
  });
});

describe.skipIf(skip)('atomic configuration against nginx and PHP-FPM', () => {
  let nginx: NginxInstance;
  let fpm: PhpFpmInstance;
  let docroot: string;

  beforeAll(async () => {
    [nginx, fpm] = await Promise.all([startNginx(), startPhpFpm()]);
    docroot = path.join(nginx.dir, 'docroot');
    await runCollect('/bin/mkdir', ['-m', '0755', docroot]);
    await writeFile(path.join(docroot, 'index.html'), 'site one\n');
  });
  afterAll(async () => {
    await nginx?.stop();
    await fpm?.stop();
  });

  const nginxChange = (file: string, content: string | null) => ({
    path: path.join(nginx.sitesDir, file),
    content,
    check: commandCheck({ file: nginx.testArgv[0] as string, args: nginx.testArgv.slice(1) }),
    reload: () => nginx.reload(),
  });

  function block(hostname: string, extra = ''): string {
    return renderServerBlock({
      name: 'site-one--prod',
      hostnames: [hostname],
      listen: [{ address: '127.0.0.1', port: nginx.port }],
      root: docroot,
      fastcgiSocket: path.join(fpm.dir, 'none.sock'),
      clientMaxBodySize: '64M',
      fastcgiReadTimeoutSeconds: 70,
    }).replace('    index index.php index.html;\n', `    index index.php index.html;\n${extra}`);
  }

  it('writes, checks with nginx -t, reloads; a failing block is rolled back and nginx keeps serving', async () => {
    await applyConfigAtomically(nginxChange('one.conf', block('one.test')));
    expect((await httpGet(nginx.url('/'), { host: 'one.test' })).body).toBe('site one\n');

    // Adding a hostname: the new one serves too.
    await applyConfigAtomically(nginxChange('one.conf', block('one.test', '')));
    const withAlias = block('one.test').replace('server_name one.test;', 'server_name one.test alias.test;');
    await applyConfigAtomically(nginxChange('one.conf', withAlias));
    expect((await httpGet(nginx.url('/'), { host: 'alias.test' })).body).toBe('site one\n');

    // A block nginx rejects: config_check_failed, the file is back, both hostnames still serve.
    const broken = block('one.test', '    this_is_not_a_directive on;\n');
    await expect(applyConfigAtomically(nginxChange('one.conf', broken))).rejects.toMatchObject({
      code: 'config_check_failed',
      message: expect.stringMatching(/unknown directive "this_is_not_a_directive"/),
    });
    expect(await readFile(path.join(nginx.sitesDir, 'one.conf'), 'utf8')).toBe(withAlias);
    expect((await httpGet(nginx.url('/'), { host: 'alias.test' })).body).toBe('site one\n');

    // A second file breaking the whole config (duplicate server_name is only a warning; a duplicate
    // default_server is an error) is refused without touching the first site.
    const conflicting = `server {\n    listen ${nginx.listen} default_server;\n    server_name two.test;\n}\n`;
    await expect(applyConfigAtomically(nginxChange('two.conf', conflicting))).rejects.toMatchObject({
      code: 'config_check_failed',
    });
    expect(await readFile(path.join(nginx.sitesDir, 'two.conf'), 'utf8').catch(() => null)).toBeNull();
    expect((await httpGet(nginx.url('/'), { host: 'one.test' })).status).toBe(200);

    // Removal: the hostname falls through to the default server.
    await applyConfigAtomically(nginxChange('one.conf', null));
    expect((await httpGet(nginx.url('/'), { host: 'one.test' })).body).not.toBe('site one\n');
  });

  it('adds a PHP-FPM pool rendered by the agent (php-fpm -t, reload) and rolls back a broken one', async () => {
    const socket = path.join(fpm.dir, 'pool-one.sock');
    const logs = await mkdtemp(path.join(tmpdir(), 'wpcp-pool-'));
    try {
      const pool = renderPhpFpmPool({
        name: 'pool-one--prod',
        user: 'nobody',
        group: 'nogroup',
        socketPath: socket,
        listenOwner: 'www-data',
        listenGroup: 'www-data',
        root: '/tmp',
        tmpDir: '/tmp',
        errorLog: path.join(logs, 'php-error.log'),
      });
      const change = (content: string | null) => ({
        path: path.join(fpm.poolDir, 'pool-one.conf'),
        content,
        check: commandCheck({ file: fpm.testArgv[0] as string, args: fpm.testArgv.slice(1) }),
        reload: () => fpm.reload(),
      });
      await applyConfigAtomically(change(pool));
      expect(await accepts(socket)).toBe(true);

      await expect(applyConfigAtomically(change(`${pool}pm.max_children = many\n`))).rejects.toMatchObject({
        code: 'config_check_failed',
      });
      expect(await readFile(path.join(fpm.poolDir, 'pool-one.conf'), 'utf8')).toBe(pool);
      expect(await accepts(fpm.harnessSocket)).toBe(true);
      expect(await accepts(socket)).toBe(true);

      await applyConfigAtomically(change(null));
      expect(await accepts(socket)).toBe(false);
    } finally {
      await rm(logs, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skip)('linux-user.ts', () => {
  const created: string[] = [];
  afterAll(async () => {
    for (const name of created) await deleteLinuxUser(name).catch(() => {});
  });

  it('creates a system user with its own group, no login and its home at the environment root; deletes it', async () => {
    const name = systemNames(generateShortId()).linuxUser;
    created.push(name);
    const spec = { name, home: '/srv/wpcp/user-test--prod', environment: 'user-test--prod' };
    const user = await createLinuxUser(spec);
    expect(user).toMatchObject({
      name,
      home: '/srv/wpcp/user-test--prod',
      shell: '/usr/sbin/nologin',
      comment: 'wpcp environment user-test--prod',
    });
    expect(user.uid).toBeLessThan(1000); // --system
    const group = (await readFile('/etc/group', 'utf8'))
      .split('\n')
      .find((line) => line.startsWith(`${name}:`));
    expect(group?.split(':')[2]).toBe(String(user.gid));
    // Nothing created on disk by useradd.
    expect(await readFile('/srv/wpcp/user-test--prod/.bashrc').catch(() => null)).toBeNull();

    // A retried step is fine; the same name for another environment is not.
    expect(await createLinuxUser(spec)).toEqual(user);
    await expect(createLinuxUser({ ...spec, environment: 'other--prod' })).rejects.toMatchObject({
      code: 'linux_user_exists',
    });

    await deleteLinuxUser(name);
    expect(await lookupLinuxUser(name)).toBeUndefined();
    expect(
      (await readFile('/etc/group', 'utf8')).split('\n').some((line) => line.startsWith(`${name}:`)),
    ).toBe(false);
    await deleteLinuxUser(name); // idempotent
  });
});

describe.skipIf(skip)('wp-config.php as PHP reads it', () => {
  it('keeps every value exactly, hostile ones included', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wpcp-wpconfig-'));
    try {
      const salts = generateSalts();
      const password = "pa'ss\\word\\' ?> <?php echo 1; $x {$y} \n\t`id`";
      await writeFile(
        path.join(dir, 'wp-config.php'),
        renderWpConfig({
          dbName: 'wp_abc',
          dbUser: 'wp_abc',
          dbPassword: password,
          dbHost: 'localhost:/run/mysqld/mysqld.sock',
          salts,
          redis: { prefix: 'wpcp:abc:', host: '127.0.0.1', port: 6379 },
          extraConstants: { WP_DEBUG: false, WPCP_NOTE: "it's \\ fine" },
        }),
      );
      await writeFile(path.join(dir, 'wp-settings.php'), '<?php\n');
      const lint = await runCollect(BINARIES.php, ['-l', path.join(dir, 'wp-config.php')]);
      expect(lint.code, lint.output).toBe(0);
      const script = `define('ABSPATH', ${JSON.stringify(`${dir}/`)}); require ${JSON.stringify(`${dir}/wp-config.php`)};
        echo json_encode(['password' => DB_PASSWORD, 'host' => DB_HOST, 'auth' => AUTH_KEY, 'nonce' => NONCE_SALT,
          'prefix' => WP_REDIS_PREFIX, 'cron' => DISABLE_WP_CRON, 'port' => WP_REDIS_PORT, 'note' => WPCP_NOTE,
          'table_prefix' => $table_prefix, 'debug' => WP_DEBUG]);`;
      const result = await runCollect(BINARIES.php, ['-r', script]);
      expect(result.code, result.output).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({
        password,
        host: 'localhost:/run/mysqld/mysqld.sock',
        auth: salts.AUTH_KEY,
        nonce: salts.NONCE_SALT,
        prefix: 'wpcp:abc:',
        cron: true,
        port: 6379,
        note: "it's \\ fine",
        table_prefix: 'wp_',
        debug: false,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
