import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentConfig, CONFIG_FILE_ENV_VAR, ConfigError, ENV_VARS, isHostPort, loadConfig } from './config.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wpcp-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(content: unknown): Promise<string> {
  const file = path.join(dir, 'agent.json');
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the defaults when only the server is given', () => {
    expect(loadConfig({ env: { WPCP_AGENT_SERVER: 'cp.example.com:7443' } })).toEqual({
      server: 'cp.example.com:7443',
      stateDir: '/var/lib/wpcp-agent',
      sitesDir: '/srv/wpcp',
      heartbeatIntervalMs: 5000,
      maxConcurrentCommands: 4,
      keepaliveTimeMs: 10000,
      keepaliveTimeoutMs: 5000,
      reconnectInitialMs: 1000,
      reconnectMaxMs: 30000,
      shutdownGraceMs: 10000,
      logLevel: 'info',
      nginxSitesDir: '/etc/nginx/sites-enabled',
      nginxCacheDir: '/var/cache/nginx/wpcp',
      nginxTestArgv: ['/usr/sbin/nginx', '-t', '-q'],
      nginxReloadArgv: ['/usr/sbin/nginx', '-s', 'reload'],
      nginxListen: ['80', '[::]:80'],
      publicScheme: 'http',
      publicPort: 80,
      webUser: 'www-data',
      phpFpmPoolDir: '/etc/php/8.2/fpm/pool.d',
      phpFpmTestArgv: ['/usr/sbin/php-fpm8.2', '-t'],
      phpFpmReloadArgv: ['/usr/sbin/service', 'php8.2-fpm', 'reload'],
      phpFpmSocketDir: '/run/php',
      databaseAdminArgv: [
        '/usr/bin/mariadb',
        '--protocol=socket',
        '--socket=/run/mysqld/mysqld.sock',
        '--user=root',
      ],
      databaseDumpArgv: [
        '/usr/bin/mariadb-dump',
        '--protocol=socket',
        '--socket=/run/mysqld/mysqld.sock',
        '--user=root',
      ],
      databaseHost: 'localhost:/run/mysqld/mysqld.sock',
      databaseAccountHost: 'localhost',
      redisHost: '127.0.0.1',
      redisPort: 6379,
      wpCli: '/usr/local/bin/wp',
      phpCli: '/usr/bin/php',
      wpCoreSource: '',
      cronDir: '/etc/cron.d',
    });
  });

  it('reads argv and listen settings as JSON arrays, from the file and from the environment', async () => {
    const file = await configFile({
      server: 'cp.example.com:7443',
      nginxTestArgv: ['/opt/nginx/sbin/nginx', '-p', '/tmp/n/', '-t'],
      nginxListen: ['127.0.0.1:8080'],
      phpCli: '',
    });
    const config = loadConfig({
      argv: ['--config', file],
      env: {
        WPCP_AGENT_PHP_FPM_RELOAD_ARGV: '["/bin/kill","-USR2","4242"]',
        WPCP_AGENT_PUBLIC_PORT: '8080',
        WPCP_AGENT_WP_CORE_SOURCE: '/usr/share/wordpress',
      },
    });
    expect(config).toMatchObject({
      nginxTestArgv: ['/opt/nginx/sbin/nginx', '-p', '/tmp/n/', '-t'],
      nginxListen: ['127.0.0.1:8080'],
      phpFpmReloadArgv: ['/bin/kill', '-USR2', '4242'],
      publicPort: 8080,
      phpCli: '',
      wpCoreSource: '/usr/share/wordpress',
    });
  });

  it.each([
    [{ WPCP_AGENT_NGINX_RELOAD_ARGV: 'nginx -s reload' }, 'nginxReloadArgv'],
    [{ WPCP_AGENT_NGINX_RELOAD_ARGV: '["nginx","-s","reload"]' }, 'nginxReloadArgv'],
    [{ WPCP_AGENT_NGINX_RELOAD_ARGV: '[]' }, 'nginxReloadArgv'],
    [{ WPCP_AGENT_NGINX_LISTEN: '["80; include /etc/passwd"]' }, 'nginxListen'],
    [{ WPCP_AGENT_NGINX_LISTEN: '["70000"]' }, 'nginxListen'],
    [{ WPCP_AGENT_SITES_DIR: '/srv/my sites' }, 'sitesDir'],
    [{ WPCP_AGENT_WP_CLI: '/usr/local/bin/wp;id' }, 'wpCli'],
    [{ WPCP_AGENT_PUBLIC_SCHEME: 'ftp' }, 'publicScheme'],
    [{ WPCP_AGENT_DATABASE_HOST: "localhost'" }, 'databaseHost'],
    [{ WPCP_AGENT_WEB_USER: 'www data' }, 'webUser'],
  ])('refuses a node-stack value that is not safe to use: %o', (env, setting) => {
    const message = errorOf(() => loadConfig({ env: { WPCP_AGENT_SERVER: 'cp.example.com:7443', ...env } }));
    expect(message).toContain(`invalid setting ${setting}`);
  });

  it('reads the config file and lets environment variables override it', async () => {
    const file = await configFile({
      server: 'file.example.com:7443',
      stateDir: '/srv/agent-state',
      maxConcurrentCommands: 8,
      logLevel: 'debug',
    });
    const config = loadConfig({
      argv: ['--config', file],
      env: {
        WPCP_AGENT_MAX_CONCURRENT_COMMANDS: '2',
        WPCP_AGENT_LOG_LEVEL: 'warn',
        WPCP_AGENT_STATE_DIR: '',
      },
    });
    expect(config).toMatchObject({
      server: 'file.example.com:7443',
      stateDir: '/srv/agent-state',
      maxConcurrentCommands: 2,
      logLevel: 'warn',
      heartbeatIntervalMs: 5000,
    });
  });

  it('accepts --config=FILE and WPCP_AGENT_CONFIG, the command line winning', async () => {
    const file = await configFile({ server: 'a.example:1' });
    expect(loadConfig({ argv: [`--config=${file}`], env: {} }).server).toBe('a.example:1');
    expect(loadConfig({ env: { [CONFIG_FILE_ENV_VAR]: file } }).server).toBe('a.example:1');
    const other = path.join(dir, 'other.json');
    await writeFile(other, JSON.stringify({ server: 'b.example:2' }));
    expect(loadConfig({ argv: ['--config', other], env: { [CONFIG_FILE_ENV_VAR]: file } }).server).toBe(
      'b.example:2',
    );
  });

  it('parses every numeric environment variable', () => {
    const config = loadConfig({
      env: {
        WPCP_AGENT_SERVER: '10.0.0.5:7443',
        WPCP_AGENT_HEARTBEAT_INTERVAL_MS: '2000',
        WPCP_AGENT_MAX_CONCURRENT_COMMANDS: '16',
        WPCP_AGENT_KEEPALIVE_TIME_MS: '20000',
        WPCP_AGENT_KEEPALIVE_TIMEOUT_MS: '3000',
        WPCP_AGENT_RECONNECT_INITIAL_MS: '500',
        WPCP_AGENT_RECONNECT_MAX_MS: '60000',
        WPCP_AGENT_SHUTDOWN_GRACE_MS: '0',
      },
    });
    expect(config).toMatchObject({
      heartbeatIntervalMs: 2000,
      maxConcurrentCommands: 16,
      keepaliveTimeMs: 20000,
      keepaliveTimeoutMs: 3000,
      reconnectInitialMs: 500,
      reconnectMaxMs: 60000,
      shutdownGraceMs: 0,
    });
  });

  it('names the missing server setting', () => {
    expect(errorOf(() => loadConfig({ env: {} }))).toMatch(/^missing setting server: set WPCP_AGENT_SERVER/);
  });

  it('lets command-line flags win and takes the server from the enrollment state when unset', async () => {
    const file = await configFile({ stateDir: '/from/file' });
    const seen: string[] = [];
    const config = loadConfig({
      configFile: file,
      env: { WPCP_AGENT_STATE_DIR: '/from/env' },
      overrides: { stateDir: '/from/flag' },
      defaultServer: (stateDir) => {
        seen.push(stateDir);
        return 'enrolled.example:8443';
      },
    });
    expect(config).toMatchObject({ stateDir: '/from/flag', server: 'enrolled.example:8443' });
    expect(seen).toEqual(['/from/flag']);

    // An explicit server wins over the enrollment state, which is then not read.
    const explicit = loadConfig({
      env: { WPCP_AGENT_SERVER: 'other.example:1' },
      defaultServer: () => {
        throw new Error('must not be called');
      },
    });
    expect(explicit.server).toBe('other.example:1');

    const env = { WPCP_AGENT_SERVER: 'cp.example.com:1' };
    expect(errorOf(() => loadConfig({ env, overrides: { stateDir: 'relative' } }))).toMatch(
      /invalid setting stateDir = "relative" \(from command line\)/,
    );
  });

  it.each([
    [{ WPCP_AGENT_HEARTBEAT_INTERVAL_MS: 'soon' }, 'heartbeatIntervalMs', 'WPCP_AGENT_HEARTBEAT_INTERVAL_MS'],
    [{ WPCP_AGENT_HEARTBEAT_INTERVAL_MS: '1.5' }, 'heartbeatIntervalMs', 'WPCP_AGENT_HEARTBEAT_INTERVAL_MS'],
    [
      { WPCP_AGENT_MAX_CONCURRENT_COMMANDS: '0' },
      'maxConcurrentCommands',
      'WPCP_AGENT_MAX_CONCURRENT_COMMANDS',
    ],
    [{ WPCP_AGENT_STATE_DIR: 'relative/dir' }, 'stateDir', 'WPCP_AGENT_STATE_DIR'],
    [{ WPCP_AGENT_LOG_LEVEL: 'verbose' }, 'logLevel', 'WPCP_AGENT_LOG_LEVEL'],
    [{ WPCP_AGENT_SERVER: 'cp.example.com' }, 'server', 'WPCP_AGENT_SERVER'],
    [{ WPCP_AGENT_SERVER: 'cp.example.com:99999' }, 'server', 'WPCP_AGENT_SERVER'],
    [{ WPCP_AGENT_SERVER: 'http://cp.example.com:7443' }, 'server', 'WPCP_AGENT_SERVER'],
    [{ WPCP_AGENT_RECONNECT_INITIAL_MS: '50000' }, 'reconnectMaxMs', 'default'],
  ])('names the bad setting and its source: %o', (env, setting, source) => {
    const message = errorOf(() => loadConfig({ env: { WPCP_AGENT_SERVER: 'cp.example.com:7443', ...env } }));
    expect(message).toContain(`invalid setting ${setting}`);
    expect(message).toContain(source);
  });

  it('reports a value from the config file with the file name', async () => {
    const file = await configFile({ server: 'cp.example.com:7443', keepaliveTimeMs: '10s' });
    const message = errorOf(() => loadConfig({ argv: ['--config', file], env: {} }));
    expect(message).toBe(
      `invalid setting keepaliveTimeMs = "10s" (from config file ${file}): must be an integer between 1000 and 3600000`,
    );
  });

  it('refuses unknown settings, unknown WPCP_AGENT_ variables and unknown arguments', async () => {
    const file = await configFile({ server: 'cp.example.com:7443', heartbeatMs: 1000 });
    expect(errorOf(() => loadConfig({ argv: ['--config', file], env: {} }))).toContain(
      'unknown setting "heartbeatMs"',
    );
    expect(
      errorOf(() => loadConfig({ env: { WPCP_AGENT_SEVER: 'x', WPCP_AGENT_SERVER: 'cp.example.com:7443' } })),
    ).toContain('unknown environment variable WPCP_AGENT_SEVER');
    expect(errorOf(() => loadConfig({ argv: ['--verbose'], env: {} }))).toContain(
      'unknown argument "--verbose"',
    );
    expect(errorOf(() => loadConfig({ argv: ['--config'], env: {} }))).toContain(
      '--config needs a file name',
    );
  });

  it('reports unreadable and malformed config files', async () => {
    expect(
      errorOf(() => loadConfig({ argv: ['--config', path.join(dir, 'missing.json')], env: {} })),
    ).toContain('ENOENT');
    const broken = await configFile('{ "server": ');
    expect(errorOf(() => loadConfig({ argv: ['--config', broken], env: {} }))).toContain('is not valid JSON');
    const array = await configFile([1, 2]);
    expect(errorOf(() => loadConfig({ argv: ['--config', array], env: {} }))).toContain(
      'must contain a JSON object',
    );
  });

  it('documents every setting and environment variable in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [setting, envVar] of Object.entries(ENV_VARS)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${setting}\``));
      expect(row, `README row for ${setting}`).toBeDefined();
      expect(row).toContain(`\`${envVar}\``);
    }
    expect(readme).toContain(CONFIG_FILE_ENV_VAR);
    expect(Object.keys(AgentConfig.shape).sort()).toEqual(Object.keys(ENV_VARS).sort());
  });
});

describe('isHostPort', () => {
  it.each(['cp.example.com:7443', 'localhost:1', '10.1.2.3:65535', '[::1]:7443', '[2001:db8::5]:443'])(
    'accepts %s',
    (value) => expect(isHostPort(value)).toBe(true),
  );
  it.each([
    'cp.example.com',
    ':7443',
    'cp.example.com:0',
    'cp.example.com:65536',
    'a b:1',
    '-a.com:1',
    '::1:7443',
  ])('refuses %s', (value) => expect(isHostPort(value)).toBe(false));
});
