// The end-to-end proof that the stack works: WordPress core from Debian's packages, provisioned the
// way the agent will provision an environment (its own Linux user, directory layout, MariaDB
// database and user, PHP-FPM pool, nginx server block checked and reloaded atomically,
// wp-config.php), installed with `wp core install` through the WP-CLI double running as the site's
// user, and then served by real nginx + PHP-FPM + MariaDB on a loopback port.
import { chown, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type RunResult, runProcess } from '../../node-agent/src/exec/run.ts';
import {
  applyConfigAtomically,
  commandCheck,
  writeFileAtomically,
} from '../../node-agent/src/provisioning/atomic-config.ts';
import {
  createLayout,
  environmentLayout,
  linkSharedIntoRelease,
  releasePath,
  switchCurrent,
} from '../../node-agent/src/provisioning/layout.ts';
import {
  createLinuxUser,
  deleteLinuxUser,
  lookupGroupId,
} from '../../node-agent/src/provisioning/linux-user.ts';
import {
  createDatabaseAndUser,
  dropDatabaseAndUser,
  generateDatabasePassword,
} from '../../node-agent/src/provisioning/mariadb.ts';
import {
  environmentFileStem,
  environmentName,
  generateShortId,
  systemNames,
} from '../../node-agent/src/provisioning/names.ts';
import { renderServerBlock } from '../../node-agent/src/provisioning/nginx-server-block.ts';
import { renderPhpFpmPool } from '../../node-agent/src/provisioning/php-fpm-pool.ts';
import { renderWpConfig } from '../../node-agent/src/provisioning/wp-config.ts';
import { BINARIES, shouldSkipStack } from './binaries.ts';
import { makeInstanceDir, removeInstanceDir } from './daemon.ts';
import { httpGet } from './http.ts';
import { startMariaDb } from './mariadb.ts';
import { startNginx } from './nginx.ts';
import { startPhpFpm } from './php-fpm.ts';
import { startRedis } from './redis.ts';
import { fetchWordPressCore } from './wordpress-core.ts';
import { WP_CLI_DOUBLE } from './wp-cli.ts';

const skip = shouldSkipStack();

describe.skipIf(skip)('WordPress on the stack', () => {
  it('serves the front page of a site installed through the WP-CLI double', async () => {
    const timings: Record<string, number> = {};
    let mark = performance.now();
    const lap = (name: string) => {
      const now = performance.now();
      timings[name] = Math.round(now - mark);
      mark = now;
    };

    const [core, db, redis, fpm, nginx, sitesRoot] = await Promise.all([
      fetchWordPressCore(),
      startMariaDb(),
      startRedis(),
      startPhpFpm(),
      startNginx(),
      makeInstanceDir('sites'),
    ]);
    lap('stack start (parallel) + core files');

    const environment = environmentName('e2e-shop', 'prod');
    const names = systemNames(generateShortId());
    const layout = environmentLayout(sitesRoot, environment);
    const stem = environmentFileStem(environment);
    const hostname = `${environment}.node.test`;
    const url = `http://${hostname}:${nginx.port}`;
    const mysql = { file: BINARIES.mysql, args: db.clientArgs };
    const account = { database: names.database, user: names.databaseUser };
    let userCreated = false;
    let databaseCreated = false;

    try {
      const user = await createLinuxUser({ name: names.linuxUser, home: layout.root, environment });
      userCreated = true;
      const webGid = await lookupGroupId('www-data');
      expect(webGid).toBeDefined();
      await createLayout(layout, { uid: user.uid, gid: user.gid, webGid: webGid as number });

      const dbPassword = generateDatabasePassword();
      await createDatabaseAndUser(mysql, account, dbPassword);
      databaseCreated = true;
      lap('user, layout, database');

      const wp = async (args: string[]): Promise<RunResult> => {
        const result = await runProcess({
          file: WP_CLI_DOUBLE,
          args,
          uid: user.uid,
          gid: user.gid,
          env: { HOME: layout.root, WPCP_WP_CORE_SOURCE: core.dir },
          timeoutMs: 120_000,
          maxOutputBytes: 1024 * 1024,
        });
        expect(result.exitCode, `wp ${args.join(' ')}\n${result.stdout}\n${result.stderr}`).toBe(0);
        return result;
      };

      // Code: the release directory, created by `wp core download` as the site's user.
      await wp(['core', 'download', `--path=${releasePath(layout, 'r1')}`]);
      await linkSharedIntoRelease(layout, 'r1');
      await writeFileAtomically(
        layout.sharedWpConfig,
        renderWpConfig({
          dbName: names.database,
          dbUser: names.databaseUser,
          dbPassword,
          dbHost: `localhost:${db.socketPath}`,
          redis: { prefix: names.redisPrefix, host: redis.host, port: redis.port },
          environmentType: 'production',
        }),
        0o600,
      );
      await chown(layout.sharedWpConfig, user.uid, user.gid);
      await switchCurrent(layout, 'r1');
      lap('core download + wp-config');

      // PHP-FPM pool of the environment, then its server block (nginx -t, reload, rollback on failure).
      const socket = path.join(fpm.dir, `${stem}.sock`);
      await applyConfigAtomically({
        path: path.join(fpm.poolDir, `${stem}.conf`),
        content: renderPhpFpmPool({
          name: environment,
          user: user.name,
          group: user.name,
          socketPath: socket,
          listenOwner: 'www-data',
          listenGroup: 'www-data',
          root: layout.root,
          tmpDir: layout.tmp,
          errorLog: path.join(layout.logs, 'php-error.log'),
        }),
        check: commandCheck({ file: fpm.testArgv[0] as string, args: fpm.testArgv.slice(1) }),
        reload: () => fpm.reload(),
      });
      await applyConfigAtomically({
        path: path.join(nginx.sitesDir, `${stem}.conf`),
        content: renderServerBlock({
          name: environment,
          hostnames: [hostname],
          listen: [{ address: '127.0.0.1', port: nginx.port }],
          root: layout.current,
          fastcgiSocket: socket,
          clientMaxBodySize: '64M',
          fastcgiReadTimeoutSeconds: 70,
          accessLog: path.join(layout.logs, 'nginx-access.log'),
          publicPort: nginx.port,
        }),
        check: commandCheck({ file: nginx.testArgv[0] as string, args: nginx.testArgv.slice(1) }),
        reload: () => nginx.reload(),
      });
      lap('pool + server block');

      const install = await wp([
        'core',
        'install',
        `--path=${layout.current}`,
        `--url=${url}`,
        '--title=wpcp stack proof',
        '--admin_user=admin',
        '--admin_email=admin@example.test',
        `--admin_password=${generateDatabasePassword()}`,
        '--skip-email',
      ]);
      expect(install.stdout).toContain('Success: WordPress installed successfully.');
      expect((await wp(['option', 'get', 'home', `--path=${layout.current}`])).stdout.trim()).toBe(url);
      lap('wp core install');

      const page = await httpGet(nginx.url('/'), { host: `${hostname}:${nginx.port}` });
      expect(page.status, `${JSON.stringify(page.headers)}\n${page.body.slice(0, 2_000)}`).toBe(200);
      expect(page.body).toContain('<title>wpcp stack proof</title>');
      // Rendered by the block theme from the database (site URL, title) and the theme's files.
      expect(page.body).toContain(`href="${url}`);
      expect(page.body).toContain('/wp-content/themes/twentytwentythree/assets/fonts/');
      const stylesheet = await httpGet(nginx.url('/wp-content/themes/twentytwentythree/style.css'), {
        host: hostname,
      });
      expect(stylesheet.status).toBe(200);
      expect(stylesheet.body).toContain('Theme Name: Twenty Twenty-Three');
      // wp-config.php is PHP: requesting it runs it (no output), never shows its secrets.
      const config = await httpGet(nginx.url('/wp-config.php'), { host: hostname });
      expect(config.body).not.toContain(dbPassword);
      lap('HTTP');

      // The object cache: after `wp redis enable` pages fill Redis under this environment's prefix.
      await wp(['redis', 'enable', `--path=${layout.current}`]);
      expect((await httpGet(nginx.url('/'), { host: `${hostname}:${nginx.port}` })).status).toBe(200);
      const keys = (await redis.command('KEYS', '*')) as string[];
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.every((key) => key.startsWith(names.redisPrefix))).toBe(true);
      lap('redis');
      console.info(`WordPress e2e timings (ms): ${JSON.stringify(timings)}`);
    } finally {
      // PHP-FPM first: its workers run as the site user, and userdel refuses a user with processes.
      await nginx.stop();
      await fpm.stop();
      if (databaseCreated) await dropDatabaseAndUser(mysql, account);
      if (userCreated) await deleteLinuxUser(names.linuxUser);
      await rm(layout.root, { recursive: true, force: true });
      await removeInstanceDir(sitesRoot);
      await Promise.all([db.stop(), redis.stop()]);
    }
  });
});
