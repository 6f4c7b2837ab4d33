// The WP-CLI test double: WP-CLI's argument rules, root check, output formats and exit codes, and
// commands that change real WordPress files, a real MariaDB database and a real Redis.
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARIES, shouldSkipStack } from './binaries.ts';
import { type Collected, runCollect } from './exec.ts';
import { type MariaDbInstance, startMariaDb } from './mariadb.ts';
import { type RedisInstance, startRedis } from './redis.ts';
import { fetchWordPressCore, type WordPressCore } from './wordpress-core.ts';
import { WP_CLI_DOUBLE } from './wp-cli.ts';

const skip = shouldSkipStack(['php', 'mariadbd', 'mysql', 'redisServer']);
const asRoot = process.getuid?.() === 0;

function wp(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Collected> {
  return runCollect(WP_CLI_DOUBLE, args, { env: options.env, stdin: options.stdin, timeoutMs: 120_000 });
}

function expectOk(result: Collected): Collected {
  expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
  return result;
}

describe.skipIf(skip)('WP-CLI double: command line', () => {
  it.skipIf(!asRoot)('refuses to run as root without --allow-root, like WP-CLI', async () => {
    const refused = await wp(['--version']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^Error: YIKES! It looks like you're running this as root\./);
    expect(refused.stderr).toContain('--allow-root');
    expect(expectOk(await wp(['--version', '--allow-root'])).stdout).toBe('WP-CLI 2.12.0\n');
    expect(expectOk(await wp(['cli', 'version'], { env: { WP_CLI_ALLOW_ROOT: '1' } })).stdout).toBe(
      'WP-CLI 2.12.0\n',
    );
  });

  it('reports unknown commands, unknown and missing parameters as WP-CLI does', async () => {
    const unknown = await wp(['frobnicate', '--allow-root']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      "Error: 'frobnicate' is not a registered wp command. See 'wp help' for available commands.\n",
    );
    const sub = await wp(['core', 'frobnicate', '--allow-root']);
    expect(sub.stderr).toBe(
      "Error: 'frobnicate' is not a registered subcommand of 'core'. See 'wp help core' for available subcommands.\n",
    );
    const params = await wp(['core', 'install', '--allow-root', '--title=x', '--bogus']);
    expect(params.code).toBe(1);
    expect(params.stderr).toBe(
      [
        'Error: Parameter errors:',
        ' missing --url parameter (The address of the new site.)',
        ' missing --admin_user parameter (The name of the admin user.)',
        ' missing --admin_email parameter (The email address for the admin user.)',
        ' unknown --bogus parameter',
        '',
      ].join('\n'),
    );
    const usage = await wp(['option', 'get', '--allow-root']);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toBe('usage: wp option get <key> [--format=<format>]\n');
    const notWordPress = await wp(['core', 'version', '--path=/nonexistent', '--allow-root']);
    expect(notWordPress.code).toBe(1);
    expect(notWordPress.stderr).toMatch(/^Error: This does not seem to be a WordPress installation\./);
  });

  it('rewrites serialized data safely: lengths, nesting, objects of unknown classes, keys left alone', async () => {
    /** A PHP-serialized string with its byte length. */
    const ser = (value: string) => `s:${Buffer.byteLength(value)}:"${value}";`;
    const OLD = 'http://old.test';
    const cases = {
      plain: `see ${OLD}/page`,
      array: `a:2:{${ser('url')}${ser(OLD)}${ser('list')}a:1:{i:0;${ser(`${OLD}/path`)}}}`,
      nested: ser(`a:1:{${ser('url')}${ser(`${OLD}/deep`)}}`),
      object: `O:13:"Missing\\Thing":3:{${ser('url')}${ser(OLD)}${ser('\0*\0secret')}${ser(OLD)}${ser('\0Missing\\Thing\0priv')}${ser(OLD)}}`,
      keys: `a:1:{${ser(OLD)}${ser(OLD)}}`,
      multibyte: `a:1:{i:0;${ser(`ünï ${OLD}`)}}`,
      references: `a:2:{i:0;${ser(OLD)}i:1;R:2;}`,
      serializable: 'C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}',
      scalars: 'a:4:{i:0;b:1;i:1;i:42;i:2;d:0.5;i:3;N;}',
      corrupt: `a:1:{i:0;s:99:"${OLD}";}`,
    };
    const code = `$in = json_decode(stream_get_contents(STDIN), true);
      $r = new WpcpdSerializedReplacer('http://old.test', 'https://new.example.org');
      $out = [];
      foreach ($in as $k => $v) { $out[$k] = $r->run($v); }
      echo json_encode($out);`;
    const result = expectOk(
      await wp(['eval', code, '--skip-wordpress', '--allow-root'], { stdin: JSON.stringify(cases) }),
    );
    const out = JSON.parse(result.stdout) as Record<keyof typeof cases, string>;
    const N = 'https://new.example.org';
    expect(out.plain).toBe(`see ${N}/page`);
    expect(out.array).toBe(`a:2:{${ser('url')}${ser(N)}${ser('list')}a:1:{i:0;${ser(`${N}/path`)}}}`);
    expect(out.nested).toBe(ser(`a:1:{${ser('url')}${ser(`${N}/deep`)}}`));
    expect(out.object).toBe(
      `O:13:"Missing\\Thing":3:{${ser('url')}${ser(N)}${ser('\0*\0secret')}${ser(N)}${ser('\0Missing\\Thing\0priv')}${ser(N)}}`,
    );
    expect(out.keys).toBe(`a:1:{${ser(OLD)}${ser(N)}}`);
    expect(out.multibyte).toBe(`a:1:{i:0;${ser(`ünï ${N}`)}}`);
    expect(out.references).toBe(`a:2:{i:0;${ser(N)}i:1;R:2;}`);
    expect(out.serializable).toBe(cases.serializable);
    expect(out.scalars).toBe(cases.scalars);
    // Not valid serialized data: a plain replacement, as WP-CLI does when unserialize() fails.
    expect(out.corrupt).toBe(`a:1:{i:0;s:99:"${N}";}`);

    // Every rewritten value is valid for PHP's own unserialize().
    const check = `$in = json_decode(stream_get_contents(STDIN), true); $ok = [];
      foreach ($in as $k => $v) { $ok[$k] = $k === 'plain' || $k === 'corrupt' || unserialize($v, ['allowed_classes' => false]) !== false; }
      echo json_encode($ok);`;
    const valid = JSON.parse(
      expectOk(await wp(['eval', check, '--skip-wordpress', '--allow-root'], { stdin: JSON.stringify(out) }))
        .stdout,
    ) as Record<string, boolean>;
    expect(Object.values(valid).every(Boolean), JSON.stringify(valid)).toBe(true);
  });
});

describe.skipIf(skip)('WP-CLI double: core download', () => {
  let core: WordPressCore;
  let work: string;

  beforeAll(async () => {
    core = await fetchWordPressCore();
    work = await mkdtemp(path.join(tmpdir(), 'wpcp-wpdl-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('copies core from a directory (never its wp-config.php), refuses to overwrite, honours --version', async () => {
    const fromDir = path.join(work, 'from-dir');
    const env = { WPCP_WP_CORE_SOURCE: core.dir };
    const download = expectOk(await wp(['core', 'download', `--path=${fromDir}`, '--allow-root'], { env }));
    expect(download.stdout).toBe(
      `Creating directory '${fromDir}/'.\nDownloading WordPress ${core.version} (en_US)...\nSuccess: WordPress downloaded.\n`,
    );
    expect(expectOk(await wp(['core', 'version', `--path=${fromDir}`, '--allow-root'])).stdout).toBe(
      `${core.version}\n`,
    );
    expect((await readdir(fromDir)).includes('wp-config.php')).toBe(false);

    const again = await wp(['core', 'download', `--path=${fromDir}`, '--allow-root'], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('Error: WordPress files seem to already be present here.\n');

    const wrongVersion = await wp(['core', 'download', `--path=${work}/v`, '--version=4.0', '--allow-root'], {
      env,
    });
    expect(wrongVersion.code).toBe(1);
    expect(wrongVersion.stderr).toBe('Error: Release not found. Double-check locale or version.\n');
    const noSource = await wp(['core', 'download', `--path=${work}/none`, '--allow-root']);
    expect(noSource.code).toBe(1);
    expect(noSource.stderr).toMatch(/WPCP_WP_CORE_SOURCE/);
  });

  it('copies core from a .tar.gz (a small stand-in tree), with --force and --skip-content', async () => {
    // A miniature "WordPress": enough files for the double's checks, one of them a symlink.
    const tree = path.join(work, 'mini', 'wordpress');
    await mkdir(path.join(tree, 'wp-includes'), { recursive: true });
    await mkdir(path.join(tree, 'wp-content/themes/theme-one'), { recursive: true });
    await writeFile(
      path.join(tree, 'wp-includes/version.php'),
      "<?php\n$wp_version = '9.9.9';\n$wp_db_version = 1;\n",
    );
    await writeFile(path.join(tree, 'wp-load.php'), '<?php\n');
    await writeFile(path.join(tree, 'wp-config.php'), '<?php // never copied\n');
    await writeFile(path.join(tree, 'wp-content/themes/theme-one/style.css'), '/* theme */\n');
    await writeFile(path.join(work, 'mini', 'target.php'), '<?php // linked\n');
    await symlink('../../target.php', path.join(tree, 'wp-includes/linked.php'));
    const tarball = path.join(work, 'mini.tar.gz');
    const tar = await runCollect('tar', ['-czf', tarball, '-C', path.join(work, 'mini'), 'wordpress']);
    expect(tar.code, tar.output).toBe(0);

    const target = path.join(work, 'from-tar');
    expectOk(await wp(['core', 'download', `--path=${target}`, `--wpcp-source=${tarball}`, '--allow-root']));
    expect(expectOk(await wp(['core', 'version', `--path=${target}`, '--allow-root'])).stdout).toBe(
      '9.9.9\n',
    );
    expect((await readdir(target)).sort()).toEqual(['wp-content', 'wp-includes', 'wp-load.php']);

    // From the directory: the link arrives as a regular file; --skip-content leaves themes out.
    const fromDir = path.join(work, 'mini-dir');
    expectOk(
      await wp([
        'core',
        'download',
        `--path=${fromDir}`,
        `--wpcp-source=${tree}`,
        '--skip-content',
        '--allow-root',
      ]),
    );
    const linked = await lstat(path.join(fromDir, 'wp-includes/linked.php'));
    expect(linked.isFile() && !linked.isSymbolicLink()).toBe(true);
    expect(await readdir(path.join(fromDir, 'wp-content/themes'))).toEqual([]);
    expectOk(
      await wp([
        'core',
        'download',
        `--path=${fromDir}`,
        `--wpcp-source=${tarball}`,
        '--force',
        '--allow-root',
      ]),
    );
    expect(await readdir(path.join(fromDir, 'wp-content/themes'))).toEqual(['theme-one']);
  });
});

describe.skipIf(skip)('WP-CLI double: a site in MariaDB and Redis', () => {
  let core: WordPressCore;
  let db: MariaDbInstance;
  let redis: RedisInstance;
  let site: string;
  const url = 'http://double.test:8080';
  const run = (...args: string[]) => wp([`--path=${site}`, '--allow-root', ...args]);

  beforeAll(async () => {
    [core, db, redis] = await Promise.all([fetchWordPressCore(), startMariaDb(), startRedis()]);
    site = await mkdtemp(path.join(tmpdir(), 'wpcp-double-site-'));
    await db.query(
      "CREATE DATABASE wp_double; CREATE USER 'wp_double'@'localhost' IDENTIFIED BY 'double-password-123'; GRANT ALL ON wp_double.* TO 'wp_double'@'localhost';",
    );
    expectOk(
      await wp(['core', 'download', `--path=${site}`, '--allow-root'], {
        env: { WPCP_WP_CORE_SOURCE: core.dir },
      }),
    );
  });
  afterAll(async () => {
    await Promise.all([db?.stop(), redis?.stop()]);
    if (site) await rm(site, { recursive: true, force: true });
  });

  it('creates wp-config.php, reads and changes it', async () => {
    const wrong = await run(
      'config',
      'create',
      '--dbname=wp_double',
      '--dbuser=wp_double',
      '--dbpass=wrong',
      `--dbhost=localhost:${db.socketPath}`,
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^Error: Database connection error \(1045\) Access denied/);

    const extra = "define( 'WPCP_EXTRA', 'it\\'s here' );";
    expect(
      expectOk(
        await wp(
          [
            `--path=${site}`,
            '--allow-root',
            'config',
            'create',
            '--dbname=wp_double',
            '--dbuser=wp_double',
            '--dbpass=double-password-123',
            `--dbhost=localhost:${db.socketPath}`,
            '--extra-php',
          ],
          { stdin: extra },
        ),
      ).stdout,
    ).toBe("Success: Generated 'wp-config.php' file.\n");
    expect((await run('config', 'create', '--dbname=x', '--dbuser=y', '--skip-check')).stderr).toBe(
      "Error: The 'wp-config.php' file already exists.\n",
    );
    expect(expectOk(await run('config', 'get', 'DB_NAME')).stdout).toBe('wp_double\n');
    expect(expectOk(await run('config', 'get', 'table_prefix')).stdout).toBe('wp_\n');
    expect(expectOk(await run('config', 'get', 'WPCP_EXTRA')).stdout).toBe("it's here\n");
    const missing = await run('config', 'get', 'NOPE');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      "Error: The constant or variable 'NOPE' is not defined in the 'wp-config.php' file.\n",
    );

    expect(expectOk(await run('config', 'set', 'WP_REDIS_PORT', String(redis.port), '--raw')).stdout).toBe(
      `Success: Added the key 'WP_REDIS_PORT' in the 'wp-config.php' file with the raw value '${redis.port}'.\n`,
    );
    expectOk(await run('config', 'set', 'WP_REDIS_PREFIX', 'wpcp:double:'));
    expectOk(await run('config', 'set', 'WP_REDIS_SELECTIVE_FLUSH', 'true', '--raw'));
    expectOk(await run('config', 'set', 'DISABLE_WP_CRON', 'true', '--raw'));
    expect(expectOk(await run('config', 'set', 'WPCP_EXTRA', "a 'quoted' \\ value")).stdout).toBe(
      "Success: Updated the key 'WPCP_EXTRA' in the 'wp-config.php' file with the value 'a 'quoted' \\ value'.\n",
    );
    expect(expectOk(await run('config', 'get', 'WPCP_EXTRA')).stdout).toBe("a 'quoted' \\ value\n");
    expect(expectOk(await run('config', 'get', 'WP_REDIS_PORT', '--format=json')).stdout).toBe(
      `${redis.port}\n`,
    );
    const lint = await runCollect(BINARIES.php, ['-l', path.join(site, 'wp-config.php')]);
    expect(lint.code, lint.output).toBe(0);
  });

  it('installs WordPress; is-installed and option commands work on the real database', async () => {
    const before = await run('core', 'is-installed');
    expect(before).toMatchObject({ code: 1, stdout: '', stderr: '' });
    const notInstalled = await run('option', 'get', 'home');
    expect(notInstalled.code).toBe(1);
    expect(notInstalled.stderr).toBe(
      'Error: The site you have requested is not installed.\nRun `wp core install` to create database tables.\n',
    );

    const install = expectOk(
      await run(
        'core',
        'install',
        `--url=${url}`,
        '--title=Double',
        '--admin_user=admin',
        '--admin_email=admin@double.test',
        '--skip-email',
      ),
    );
    expect(install.stdout).toMatch(
      /^Admin password: \S{12,}\nSuccess: WordPress installed successfully\.\n$/,
    );
    expect(
      expectOk(
        await run(
          'core',
          'install',
          `--url=${url}`,
          '--title=Double',
          '--admin_user=admin',
          '--admin_email=admin@double.test',
        ),
      ).stdout,
    ).toBe('WordPress is already installed.\n');
    expect(await run('core', 'is-installed')).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(
      (await db.query("SELECT option_value FROM wp_double.wp_options WHERE option_name = 'siteurl'")).trim(),
    ).toBe(url);

    expect(expectOk(await run('option', 'get', 'home')).stdout).toBe(`${url}\n`);
    expect(expectOk(await run('option', 'update', 'home', 'http://other.test')).stdout).toBe(
      "Success: Updated 'home' option.\n",
    );
    expect(expectOk(await run('option', 'update', 'home', 'http://other.test')).stdout).toBe(
      "Success: Value passed for 'home' option is unchanged.\n",
    );
    expectOk(await run('option', 'update', 'home', url));
    expect(expectOk(await run('option', 'get', 'blogname', '--format=json')).stdout).toBe('"Double"\n');
    const absent = await run('option', 'get', 'no_such_option');
    expect(absent).toMatchObject({
      code: 1,
      stderr: "Error: Could not get 'no_such_option' option. Does it exist?\n",
    });
  });

  it('lists users in WP-CLI formats', async () => {
    expect(
      expectOk(await run('user', 'list', '--role=administrator', '--field=ID', '--format=json')).stdout,
    ).toBe('[1]');
    expect(expectOk(await run('user', 'list', '--role=administrator', '--field=ID')).stdout).toBe('1\n');
    expect(expectOk(await run('user', 'list', '--format=ids')).stdout).toBe('1');
    expect(expectOk(await run('user', 'list', '--format=count')).stdout).toBe('1');
    expect(expectOk(await run('user', 'list', '--role=subscriber', '--format=json')).stdout).toBe('[]');
    const json = JSON.parse(expectOk(await run('user', 'list', '--format=json')).stdout);
    expect(json).toEqual([
      expect.objectContaining({
        ID: 1,
        user_login: 'admin',
        user_email: 'admin@double.test',
        roles: 'administrator',
      }),
    ]);
    expect(Object.keys(json[0])).toEqual([
      'ID',
      'user_login',
      'display_name',
      'user_email',
      'user_registered',
      'roles',
    ]);
    const table = expectOk(await run('user', 'list', '--fields=ID,user_login,roles')).stdout;
    expect(table).toBe('ID\tuser_login\troles\n1\tadmin\tadministrator\n');
    const csv = expectOk(await run('user', 'list', '--fields=ID,user_login', '--format=csv')).stdout;
    expect(csv).toBe('ID,user_login\n1,admin\n');
  });

  it('search-replaces URLs, serialized options included, and reports like WP-CLI', async () => {
    const NEW = 'http://staging.double.test:8080';
    const seed = `update_option('wpcp_widget', ['title' => 'Link', 'url' => '${url}/shop', 'inner' => serialize(['u' => '${url}'])]);
      update_option('wpcp_object', (object) ['link' => '${url}/obj']);`;
    expectOk(await run('eval', seed));

    const dry = expectOk(await run('search-replace', url, NEW, '--dry-run', '--format=count'));
    const expected = Number(dry.stdout.trim());
    expect(expected).toBeGreaterThanOrEqual(5);
    expect(expectOk(await run('option', 'get', 'home')).stdout).toBe(`${url}\n`);

    const result = expectOk(await run('search-replace', url, NEW, '--skip-columns=guid'));
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe('Table\tColumn\tReplacements\tType');
    const options = lines.find((line) => line.startsWith('wp_options\toption_value\t'));
    expect(options).toMatch(/^wp_options\toption_value\t\d+\tPHP$/);
    expect(Number(options?.split('\t')[2])).toBeGreaterThanOrEqual(4); // home, siteurl, 2 serialized
    expect(lines.some((line) => line.startsWith('wp_posts\tguid'))).toBe(false);
    expect(lines.at(-1)).toMatch(/^Success: Made \d+ replacements\.$/);

    expect(expectOk(await run('option', 'get', 'home')).stdout).toBe(`${NEW}\n`);
    const widget = JSON.parse(expectOk(await run('option', 'get', 'wpcp_widget', '--format=json')).stdout);
    expect(widget.url).toBe(`${NEW}/shop`);
    expect(widget.inner).toBe(`a:1:{s:1:"u";s:${NEW.length}:"${NEW}";}`);
    expect(JSON.parse(expectOk(await run('option', 'get', 'wpcp_object', '--format=json')).stdout)).toEqual({
      link: `${NEW}/obj`,
    });
    // guid was skipped: still the old URL.
    expect(
      (
        await db.query("SELECT COUNT(*) FROM wp_double.wp_posts WHERE guid LIKE 'http://double.test:8080%'")
      ).trim(),
    ).not.toBe('0');

    const none = expectOk(await run('search-replace', 'no-such-text', 'x', '--format=count'));
    expect(none.stdout).toBe('0\n');
    expectOk(await run('search-replace', NEW, url, '--all-tables', '--precise'));
    expect(expectOk(await run('option', 'get', 'home')).stdout).toBe(`${url}\n`);
  });

  it("enables the Redis drop-in; cache flush removes only this site's keys", async () => {
    const status = expectOk(await run('redis', 'status')).stdout;
    expect(status).toMatch(/^Status: Not enabled$/m);
    expect(expectOk(await run('redis', 'enable')).stdout).toBe('Success: Object cache enabled.\n');
    expect(expectOk(await run('redis', 'enable')).stdout).toBe('Redis object cache already enabled.\n');
    expect(expectOk(await run('cache', 'type')).stdout).toBe('Redis\n');
    expect(expectOk(await run('redis', 'status')).stdout).toMatch(/^Status: Connected$/m);
    expectOk(await run('option', 'get', 'blogname'));
    const keys = (await redis.command('KEYS', '*')) as string[];
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((key) => key.startsWith('wpcp:double:wp_:'))).toBe(true);

    await redis.command('SET', 'wpcp:other-site:wp_:options:alloptions', 'keep me');
    expect(expectOk(await run('cache', 'flush')).stdout).toBe('Success: The cache was flushed.\n');
    expect(await redis.command('KEYS', '*')).toEqual(['wpcp:other-site:wp_:options:alloptions']);

    expect(expectOk(await run('redis', 'disable')).stdout).toBe('Success: Object cache disabled.\n');
    expect((await run('redis', 'disable')).stderr).toBe('Error: No object cache drop-in found.\n');
    await writeFile(path.join(site, 'wp-content/object-cache.php'), "<?php // someone else's drop-in\n");
    const foreign = await run('redis', 'enable');
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/^Error: A foreign object cache drop-in was found/);
    await rm(path.join(site, 'wp-content/object-cache.php'));
  });

  it('evaluates PHP with WordPress loaded, and turns wp_die() into an error', async () => {
    expect(expectOk(await run('eval', 'echo get_bloginfo("name"), "|", ABSPATH;')).stdout).toBe(
      `Double|${site}/`,
    );
    const config = path.join(site, 'wp-config.php');
    const original = await readFile(config, 'utf8');
    try {
      await writeFile(config, original.replace("'double-password-123'", "'wrong-password'"));
      const broken = await run('option', 'get', 'home');
      expect(broken.code).toBe(1);
      expect(broken.stderr).toBe('Error: Error establishing a database connection.\n');
    } finally {
      await writeFile(config, original);
    }
  });
});
