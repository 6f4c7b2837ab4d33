import type { EnvironmentSpec } from '@wpcp/shared/agent-protocol';
import { describe, expect, it } from 'vitest';
import {
  parseSiteUrl,
  validateAdminEmail,
  validateAdminUser,
  validateEnvironmentSpec,
  validateHostnames,
  validateSiteTitle,
} from './environment-spec.ts';
import { ProvisioningError } from './errors.ts';

const spec: EnvironmentSpec = {
  name: 'shop--prod',
  systemUser: 'wp_abc123def456',
  databaseName: 'wp_abc123def456',
  databaseUser: 'wp_abc123def456',
  redisPrefix: 'wpcp:abc123def456:',
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProvisioningError);
    return (err as ProvisioningError).code;
  }
  return undefined;
}

describe('validateEnvironmentSpec', () => {
  it('accepts the names the control plane derives', () => {
    expect(validateEnvironmentSpec(spec)).toEqual(spec);
  });

  it.each([
    ['missing', undefined],
    ['a name without --', { ...spec, name: 'shop-prod' }],
    ['a path in the name', { ...spec, name: '../etc--prod' }],
    ['root as the user', { ...spec, systemUser: 'root' }],
    ['www-data as the user', { ...spec, systemUser: 'www-data' }],
    ['the mysql database', { ...spec, databaseName: 'mysql' }],
    ['a quote in the database', { ...spec, databaseName: "wp_abc'; DROP" }],
    ['an upper-case user', { ...spec, databaseUser: 'WP_ABC123DEF456' }],
    ['a user longer than 32 characters', { ...spec, systemUser: `wp_a${'b'.repeat(30)}` }],
    ['an empty Redis prefix', { ...spec, redisPrefix: '' }],
    ['a Redis prefix without separator', { ...spec, redisPrefix: 'wpcp:abc123def456' }],
    ['a Redis wildcard', { ...spec, redisPrefix: 'wpcp:*:' }],
  ])('refuses %s', (_, value) => {
    expect(codeOf(() => validateEnvironmentSpec(value as EnvironmentSpec | undefined))).toBe(
      'invalid_argument',
    );
  });
});

describe('validateHostnames', () => {
  it('accepts lowercase punycode hostnames, the primary first', () => {
    expect(validateHostnames(['shop--prod.node.example', 'xn--bcher-kva.example'])).toEqual([
      'shop--prod.node.example',
      'xn--bcher-kva.example',
    ]);
  });

  it.each([
    [[]],
    [['a.com; include /etc/passwd']],
    [['~^.*$']],
    [['*.x.com']],
    [['.x.com']],
    [['x.com', 'x.com']],
    [['Shop.example']],
    [['a b.example']],
    [[`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.example`]],
    [['a'.repeat(300)]],
    [['x.com\nserver_name evil']],
  ])('refuses %j', (hostnames) => {
    expect(codeOf(() => validateHostnames(hostnames))).toBe('invalid_argument');
  });
});

describe('parseSiteUrl', () => {
  it.each([
    ['http://shop--prod.node.example', { scheme: 'http', hostname: 'shop--prod.node.example' }],
    ['https://shop.example:8443', { scheme: 'https', hostname: 'shop.example', port: 8443 }],
  ])('accepts %s', (url, parts) => {
    expect(parseSiteUrl(url)).toMatchObject({ url, ...parts });
  });

  it.each([
    'shop.example',
    'ftp://shop.example',
    'http://shop.example/',
    'http://shop.example/path',
    'http://user@shop.example',
    'http://shop.example:0',
    'http://shop.example:99999',
    'http://SHOP.example',
    'http://shop.example?x=1',
    "http://shop.example'",
  ])('refuses %s', (url) => {
    expect(codeOf(() => parseSiteUrl(url))).toBe('invalid_argument');
  });
});

describe('INSTALL_WORDPRESS fields', () => {
  it('accepts ordinary values', () => {
    expect(validateSiteTitle("Joe's Shop & Café")).toBe("Joe's Shop & Café");
    expect(validateAdminUser('wpcp-admin')).toBe('wpcp-admin');
    expect(validateAdminEmail('ops@example.com')).toBe('ops@example.com');
  });

  it('refuses control characters, odd user names and addresses WordPress would refuse', () => {
    expect(codeOf(() => validateSiteTitle(''))).toBe('invalid_argument');
    expect(codeOf(() => validateSiteTitle('a\nb'))).toBe('invalid_argument');
    expect(codeOf(() => validateSiteTitle('x'.repeat(201)))).toBe('invalid_argument');
    expect(codeOf(() => validateAdminUser('admin user'))).toBe('invalid_argument');
    expect(codeOf(() => validateAdminUser(''))).toBe('invalid_argument');
    expect(codeOf(() => validateAdminEmail('admin@localhost'))).toBe('invalid_argument');
    expect(codeOf(() => validateAdminEmail('a b@example.com'))).toBe('invalid_argument');
  });
});
