import { describe, expect, it } from 'vitest';
import {
  environmentFileStem,
  environmentName,
  generateShortId,
  isShortId,
  isSlug,
  MAX_SYSTEM_NAME_LENGTH,
  parseEnvironmentName,
  SITE_SLUG_LENGTH,
  systemNames,
} from './names.ts';

describe('environment names', () => {
  it('joins site and environment slugs with -- and splits them back', () => {
    expect(environmentName('shop', 'production')).toBe('shop--production');
    expect(environmentName('my-shop', 'st')).toBe('my-shop--st');
    expect(parseEnvironmentName('my-shop--staging-2')).toEqual({ site: 'my-shop', environment: 'staging-2' });
  });

  it('refuses slugs outside the patterns and lengths', () => {
    for (const bad of [
      'ab',
      'a'.repeat(31),
      'Shop',
      'sh--op',
      '-shop',
      'shop-',
      'sh_op',
      'sh op',
      'shop\n',
      '',
    ]) {
      expect(() => environmentName(bad, 'prod'), bad).toThrow(/site slug/);
    }
    for (const bad of ['p', 'a'.repeat(17), 'PROD', 'pr--od', 'pr.od']) {
      expect(() => environmentName('shop', bad), bad).toThrow(/environment slug/);
    }
    expect(isSlug('a'.repeat(30), SITE_SLUG_LENGTH)).toBe(true);
  });

  it('refuses names it could not have produced', () => {
    for (const bad of ['shop', 'shop--', '--prod', 'a--b--c', 'shop---prod', '../x--prod', 'shop--prod/']) {
      expect(() => parseEnvironmentName(bad), bad).toThrow();
    }
  });

  it('keeps the longest name within one DNS label', () => {
    const longest = environmentName('a'.repeat(30), 'b'.repeat(16));
    expect(longest.length).toBe(48);
    expect(longest.length).toBeLessThanOrEqual(63);
  });

  it('never puts -- at label positions 3-4 (reserved for IDNA)', () => {
    expect(environmentName('abc', 'prod').indexOf('--')).toBeGreaterThanOrEqual(3);
  });

  it('names files without dots (cron.d ignores such names)', () => {
    expect(environmentFileStem('shop--prod')).toBe('wpcp-shop--prod');
    expect(() => environmentFileStem('shop.prod')).toThrow();
  });
});

describe('short ids and system names', () => {
  it('generates ids that start with a letter, 12 characters of [a-z0-9]', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const id = generateShortId();
      expect(id).toMatch(/^[a-z][a-z0-9]{11}$/);
      expect(isShortId(id)).toBe(true);
      seen.add(id);
    }
    expect(seen.size).toBe(500);
  });

  it('draws without modulo bias (bytes from 252 up are skipped)', () => {
    let call = 0;
    const random = (size: number) => {
      call++;
      return Buffer.alloc(size, call === 1 ? 255 : 0); // first draw useless, then all 'a'
    };
    expect(generateShortId(random)).toBe('aaaaaaaaaaaa');
  });

  it('derives Linux, MariaDB and Redis names within their limits', () => {
    const names = systemNames('abc123def456');
    expect(names).toEqual({
      linuxUser: 'wp_abc123def456',
      linuxGroup: 'wp_abc123def456',
      database: 'wp_abc123def456',
      databaseUser: 'wp_abc123def456',
      redisPrefix: 'wpcp:abc123def456:',
    });
    const longest = systemNames(`a${'b'.repeat(28)}`);
    expect(longest.linuxUser.length).toBe(MAX_SYSTEM_NAME_LENGTH);
  });

  it('refuses ids that would make unsafe or overlong names', () => {
    for (const bad of [
      '1abcdef',
      'abc',
      'ABCDEFG',
      'abc-def',
      'abc_def',
      `a${'b'.repeat(29)}`,
      "abc'def",
      'abc def',
    ]) {
      expect(() => systemNames(bad), bad).toThrow(/short id/);
    }
  });
});
