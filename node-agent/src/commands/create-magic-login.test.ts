import { describe, expect, it } from 'vitest';
import { ProvisioningError } from '../provisioning/errors.ts';
import { MAGIC_LOGIN_PLUGIN } from '../provisioning/magic-login-plugin.ts';
import { validateCreateMagicLogin } from './create-magic-login.ts';

const environment = {
  name: 'shop--production',
  systemUser: 'wp_abc123',
  databaseName: 'wp_abc123',
  databaseUser: 'wp_abc123',
  redisPrefix: 'wpcp:abc123:',
};

describe('create_magic_login validation', () => {
  it('binds the token to the host a browser sends (no default port)', () => {
    const at = (siteUrl: string) => validateCreateMagicLogin({ environment, siteUrl, ttlSeconds: 60 });
    expect(at('http://shop.example.test')).toMatchObject({ host: 'shop.example.test', ttlSeconds: 60 });
    expect(at('http://shop.example.test:80').host).toBe('shop.example.test');
    expect(at('https://shop.example.test:443').siteUrl).toBe('https://shop.example.test');
    expect(at('http://shop.example.test:8080')).toMatchObject({
      host: 'shop.example.test:8080',
      siteUrl: 'http://shop.example.test:8080',
    });
  });

  it('refuses a bad site URL, a TTL out of range and a bad environment', () => {
    const bad = [
      { environment, siteUrl: 'http://shop.example.test/path', ttlSeconds: 60 },
      { environment, siteUrl: 'ftp://shop.example.test', ttlSeconds: 60 },
      { environment, siteUrl: 'http://shop.example.test', ttlSeconds: 0 },
      { environment, siteUrl: 'http://shop.example.test', ttlSeconds: 3_601 },
      { environment: { ...environment, systemUser: 'root;rm' }, siteUrl: 'http://a.test', ttlSeconds: 60 },
    ];
    for (const payload of bad) {
      expect(() => validateCreateMagicLogin(payload), JSON.stringify(payload)).toThrow(ProvisioningError);
    }
  });

  it('ships a plugin that consumes atomically and answers 410 for a used or expired link', () => {
    expect(MAGIC_LOGIN_PLUGIN).toContain('rename($file, $claimed)');
    expect(MAGIC_LOGIN_PLUGIN).toContain('status_header($status)');
    expect(MAGIC_LOGIN_PLUGIN).toContain("'This login link has expired'");
    expect(MAGIC_LOGIN_PLUGIN).toContain('location.hash');
  });
});
