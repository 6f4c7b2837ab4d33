import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({ INIT_CWD: '/srv/wpcp' });
    expect(config).toMatchObject({
      databaseUrl: undefined,
      dataDir: path.join('/srv/wpcp', '.wpcp'),
      http: { host: '127.0.0.1', port: 8080, tls: undefined, trustProxy: false },
      admin: { email: 'admin@localhost', password: undefined },
      sessions: { idleSeconds: 12 * 3600, maxSeconds: 7 * 24 * 3600 },
      loginRateLimit: { maxFailures: 10, windowSeconds: 900 },
      grpc: { host: '0.0.0.0', port: 8443 },
    });
    expect(config.grpc.publicNames.dnsNames).toContain('localhost');
    expect(config.grpc.publicNames.ipAddresses).toContain('127.0.0.1');
  });

  it('reads the defaults of new nodes: base domain (normalised), scheme and port', () => {
    expect(loadConfig({}).nodes.siteDefaults).toEqual({
      baseDomain: undefined,
      publicScheme: 'http',
      publicPort: undefined,
    });
    expect(
      loadConfig({
        WPCP_NODE_BASE_DOMAIN: 'Sites.Example.NET.',
        WPCP_NODE_PUBLIC_SCHEME: 'https',
        WPCP_NODE_HTTP_PORT: '8443',
      }).nodes.siteDefaults,
    ).toEqual({ baseDomain: 'sites.example.net', publicScheme: 'https', publicPort: 8443 });
    expect(loadConfig({ WPCP_NODE_BASE_DOMAIN: 'localhost' }).nodes.siteDefaults.baseDomain).toBe(
      'localhost',
    );
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', WPCP_ADMIN_PASSWORD: '' })).toMatchObject({
      databaseUrl: undefined,
      admin: { password: undefined },
    });
  });

  it.each([
    ['WPCP_HTTP_PORT', 'eighty'],
    ['WPCP_HTTP_PORT', '70000'],
    ['DATABASE_URL', 'mysql://x@y/z'],
    ['WPCP_TRUST_PROXY', 'maybe'],
    ['WPCP_MASTER_KEY', 'too-short'],
    ['WPCP_ADMIN_PASSWORD', 'short'],
    ['WPCP_ADMIN_EMAIL', 'not an email'],
    ['WPCP_LOG_LEVEL', 'loud'],
    ['WPCP_NODE_BASE_DOMAIN', '*.example.com'],
    ['WPCP_NODE_BASE_DOMAIN', 'a.com;b'],
    ['WPCP_NODE_PUBLIC_SCHEME', 'ftp'],
    ['WPCP_NODE_HTTP_PORT', '0'],
    ['WPCP_NODE_HTTP_PORT', '80a'],
  ])('refuses %s=%s with one line naming the variable', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain(name);
    expect(message).not.toContain('\n');
  });

  it('needs the TLS certificate and key together, and idle <= max session time', () => {
    expect(() => loadConfig({ WPCP_HTTP_TLS_CERT: '/x.pem' })).toThrow(/WPCP_HTTP_TLS_KEY/);
    expect(() => loadConfig({ WPCP_SESSION_IDLE_SECONDS: '100', WPCP_SESSION_MAX_SECONDS: '50' })).toThrow(
      /WPCP_SESSION_IDLE_SECONDS/,
    );
  });
});
