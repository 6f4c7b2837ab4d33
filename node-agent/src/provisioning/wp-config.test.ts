import { describe, expect, it } from 'vitest';
import {
  generateSalts,
  phpString,
  phpValue,
  randomString,
  renderWpConfig,
  SALT_LENGTH,
  SALT_NAMES,
  type WpConfigOptions,
} from './wp-config.ts';

const base: WpConfigOptions = {
  dbName: 'wp_abc123def456',
  dbUser: 'wp_abc123def456',
  dbPassword: 'pw-123',
  dbHost: 'localhost:/run/mysqld/mysqld.sock',
  redis: { prefix: 'wpcp:abc123def456:', host: '127.0.0.1', port: 6379 },
};

describe('phpString', () => {
  it('escapes only backslash and single quote, the two escapes of a single-quoted literal', () => {
    expect(phpString('plain')).toBe("'plain'");
    expect(phpString("it's")).toBe("'it\\'s'");
    expect(phpString('back\\slash')).toBe("'back\\\\slash'");
    expect(phpString("\\'")).toBe("'\\\\\\''");
    expect(phpString('ends with \\')).toBe("'ends with \\\\'");
    // Everything else is literal inside single quotes: variables, newlines, closing tags.
    expect(phpString('$x {$y} ?> <?php \n')).toBe("'$x {$y} ?> <?php \n'");
    expect(() => phpString('nul\0')).toThrow(/NUL/);
  });

  it('writes booleans and numbers as PHP literals', () => {
    expect(phpValue(true)).toBe('true');
    expect(phpValue(false)).toBe('false');
    expect(phpValue(42)).toBe('42');
    expect(() => phpValue(Number.NaN)).toThrow();
  });
});

describe('salts', () => {
  it('generates eight 64-character salts, all different', () => {
    const salts = generateSalts();
    expect(Object.keys(salts)).toEqual([...SALT_NAMES]);
    for (const value of Object.values(salts)) expect(value).toHaveLength(SALT_LENGTH);
    expect(new Set(Object.values(salts)).size).toBe(8);
    expect(generateSalts().AUTH_KEY).not.toBe(salts.AUTH_KEY);
  });

  it('draws uniformly: bytes past the last full cycle are redrawn', () => {
    let call = 0;
    const random = (size: number) => Buffer.alloc(size, call++ === 0 ? 255 : 1);
    // 256 % 3 = 1: byte 255 is past the last full cycle of a 3-letter alphabet and is skipped.
    expect(randomString(4, 'abc', random)).toBe('bbbb');
  });
});

describe('renderWpConfig', () => {
  it('renders DB settings, salts, the literal Redis prefix and DISABLE_WP_CRON', () => {
    const text = renderWpConfig({ ...base, environmentType: 'staging' });
    expect(text.startsWith('<?php\n')).toBe(true);
    expect(text).toContain("define( 'DB_NAME', 'wp_abc123def456' );");
    expect(text).toContain("define( 'DB_HOST', 'localhost:/run/mysqld/mysqld.sock' );");
    expect(text).toContain("define( 'DB_CHARSET', 'utf8mb4' );");
    expect(text).toContain("define( 'WP_REDIS_PREFIX', 'wpcp:abc123def456:' );");
    expect(text).toContain("define( 'WP_REDIS_SELECTIVE_FLUSH', true );");
    expect(text).toContain("define( 'WP_REDIS_HOST', '127.0.0.1' );");
    expect(text).toContain("define( 'WP_REDIS_PORT', 6379 );");
    expect(text).toContain("define( 'DISABLE_WP_CRON', true );");
    expect(text).toContain("define( 'WP_ENVIRONMENT_TYPE', 'staging' );");
    expect(text).toContain("$table_prefix = 'wp_';");
    expect(text.trimEnd().endsWith("require_once ABSPATH . 'wp-settings.php';")).toBe(true);
    for (const name of SALT_NAMES) expect(text).toMatch(new RegExp(`define\\( '${name}', '.{64,}' \\);`));
  });

  it('gives every render fresh salts unless salts are passed', () => {
    expect(renderWpConfig(base)).not.toBe(renderWpConfig(base));
    const salts = generateSalts();
    expect(renderWpConfig({ ...base, salts })).toBe(renderWpConfig({ ...base, salts }));
  });

  it('keeps hostile strings as data', () => {
    const text = renderWpConfig({ ...base, dbPassword: "x'); system('id'); //\\" });
    expect(text).toContain("define( 'DB_PASSWORD', 'x\\'); system(\\'id\\'); //\\\\' );");
  });

  it('uses a unix socket for Redis when given one', () => {
    const text = renderWpConfig({ ...base, redis: { prefix: 'p:', socketPath: '/run/redis/redis.sock' } });
    expect(text).toContain("define( 'WP_REDIS_SCHEME', 'unix' );");
    expect(text).toContain("define( 'WP_REDIS_PATH', '/run/redis/redis.sock' );");
    expect(text).not.toContain('WP_REDIS_HOST');
  });

  it('refuses bad prefixes, charsets, constant names and overrides of managed constants', () => {
    expect(() => renderWpConfig({ ...base, tablePrefix: "wp_'; drop" })).toThrow(/table prefix/);
    expect(() => renderWpConfig({ ...base, dbCharset: 'utf8mb4; x' })).toThrow();
    expect(() => renderWpConfig({ ...base, redis: { prefix: '' } })).toThrow(/prefix/);
    expect(() => renderWpConfig({ ...base, extraConstants: { 'BAD-NAME': 1 } })).toThrow(/constant name/);
    expect(() => renderWpConfig({ ...base, extraConstants: { DB_PASSWORD: 'x' } })).toThrow(
      /cannot be overridden/,
    );
    expect(() => renderWpConfig({ ...base, extraConstants: { DISABLE_WP_CRON: false } })).toThrow();
    expect(renderWpConfig({ ...base, extraConstants: { WP_DEBUG: true } })).toContain(
      "define( 'WP_DEBUG', true );",
    );
  });
});
