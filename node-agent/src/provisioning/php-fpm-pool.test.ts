import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PHP_LIMITS,
  type PhpFpmPoolOptions,
  renderPhpFpmPool,
  resolvePhpLimits,
} from './php-fpm-pool.ts';

const base: PhpFpmPoolOptions = {
  name: 'shop--prod',
  user: 'wp_abc123def456',
  group: 'wp_abc123def456',
  socketPath: '/run/php/wpcp-shop--prod.sock',
  listenOwner: 'www-data',
  listenGroup: 'www-data',
  root: '/srv/wpcp/shop--prod',
  tmpDir: '/srv/wpcp/shop--prod/tmp',
  errorLog: '/srv/wpcp/shop--prod/logs/php-error.log',
};

describe('renderPhpFpmPool', () => {
  it('renders a pool running as the environment user on its own socket with the default limits', () => {
    const text = renderPhpFpmPool(base);
    expect(text).toContain('[shop--prod]\n');
    expect(text).toContain('user = wp_abc123def456\ngroup = wp_abc123def456\n');
    expect(text).toContain('listen = /run/php/wpcp-shop--prod.sock\n');
    expect(text).toContain('listen.owner = www-data\nlisten.group = www-data\nlisten.mode = 0660\n');
    expect(text).toContain(
      'pm = ondemand\npm.max_children = 5\npm.process_idle_timeout = 10s\npm.max_requests = 500\n',
    );
    expect(text).toContain('request_terminate_timeout = 70s\n');
    expect(text).toContain('php_admin_value[memory_limit] = 256M\n');
    expect(text).toContain('php_admin_value[max_execution_time] = 60\n');
    expect(text).toContain('php_admin_value[upload_max_filesize] = 64M\n');
    expect(text).toContain('php_admin_value[post_max_size] = 64M\n');
    expect(text).toContain('php_admin_value[upload_tmp_dir] = /srv/wpcp/shop--prod/tmp\n');
    expect(text).not.toContain('open_basedir');
    expect(DEFAULT_PHP_LIMITS.memoryLimit).toBe('256M');
  });

  it('applies limits, process manager settings, open_basedir and env', () => {
    const text = renderPhpFpmPool({
      ...base,
      limits: {
        memoryLimit: '512M',
        maxExecutionTimeSeconds: 120,
        uploadMaxFilesize: '128M',
        postMaxSize: '130M',
      },
      processManager: {
        mode: 'dynamic',
        maxChildren: 10,
        startServers: 2,
        minSpareServers: 1,
        maxSpareServers: 3,
        maxRequests: 0,
      },
      openBasedir: ['/srv/wpcp/shop--prod', '/srv/wpcp/shop--prod/tmp'],
      env: { WP_ENVIRONMENT_TYPE: 'staging' },
    });
    expect(text).toContain('php_admin_value[memory_limit] = 512M\n');
    expect(text).toContain('request_terminate_timeout = 130s\n');
    expect(text).toContain('pm = dynamic\npm.max_children = 10\npm.start_servers = 2\n');
    expect(text).toContain('php_admin_value[open_basedir] = /srv/wpcp/shop--prod:/srv/wpcp/shop--prod/tmp\n');
    expect(text).toContain('env[WP_ENVIRONMENT_TYPE] = "staging"\n');
  });

  it('refuses values that could add directives or break the file', () => {
    const cases: Partial<PhpFpmPoolOptions>[] = [
      { name: 'shop\n[evil]' },
      { name: 'Shop' },
      { user: 'root\nuser = root' },
      { user: 'wp;x' },
      { group: '' },
      { listenOwner: 'www data' },
      { socketPath: 'relative.sock' },
      { socketPath: '/run/php/a b.sock' },
      { socketPath: '/run/php/x.sock\nlisten = 0.0.0.0:9000' },
      { socketPath: `/run/${'a'.repeat(100)}.sock` },
      { root: '/srv/../etc' },
      { tmpDir: '/tmp;x' },
      { errorLog: '/var/log/"x"' },
      { limits: { memoryLimit: '256M; extension=evil.so' } },
      { limits: { memoryLimit: '-1' } },
      { limits: { maxExecutionTimeSeconds: 0 } },
      { limits: { maxExecutionTimeSeconds: 1.5 } },
      { limits: { uploadMaxFilesize: '128M', postMaxSize: '64M' } },
      { processManager: { mode: 'static', maxChildren: 0, maxRequests: 0 } },
      { env: { 'BAD NAME': 'x' } },
      { env: { OK: 'x"\nphp_admin_value[open_basedir] = /' } },
      { env: { OK: '$HOME' } },
      { openBasedir: ['/srv:/etc'] },
    ];
    for (const change of cases) {
      expect(() => renderPhpFpmPool({ ...base, ...change }), JSON.stringify(change)).toThrow();
    }
  });

  it('resolves limits with defaults', () => {
    expect(resolvePhpLimits({ memoryLimit: '1G' })).toEqual({ ...DEFAULT_PHP_LIMITS, memoryLimit: '1G' });
  });
});
