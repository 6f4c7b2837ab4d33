import { describe, expect, it } from 'vitest';
import {
  DisplayName,
  defaultHostname,
  EnvironmentSlug,
  EnvironmentType,
  environmentNodeName,
  environmentNodeNames,
  isShortId,
  newShortId,
  PromotionPreset,
  SiteSlug,
} from './names.ts';

const NASTY = [
  '',
  ' ',
  'UPPER',
  'Shop',
  'a b',
  'a--b',
  '-abc',
  'abc-',
  'a_bc',
  'a.bc',
  '..',
  '../etc',
  'abc;rm',
  '$host',
  '*abc',
  '~abc',
  'bücher',
  'abc\n',
  'ab\u200bc',
];

describe('slugs', () => {
  it('accepts site slugs of 3 to 30 characters in hyphen-separated groups', () => {
    for (const slug of ['abc', 'my-shop', 'a1-b2-c3', 'x'.repeat(30), '123']) {
      expect(SiteSlug.safeParse(slug).success, slug).toBe(true);
    }
    for (const slug of [...NASTY, 'ab', 'x'.repeat(31)]) {
      expect(SiteSlug.safeParse(slug).success, JSON.stringify(slug)).toBe(false);
    }
  });

  it('accepts environment slugs of 2 to 16 characters', () => {
    for (const slug of ['qa', 'staging', 'dev-2', 'x'.repeat(16)]) {
      expect(EnvironmentSlug.safeParse(slug).success, slug).toBe(true);
    }
    for (const slug of [...NASTY, 'a', 'x'.repeat(17)]) {
      expect(EnvironmentSlug.safeParse(slug).success, JSON.stringify(slug)).toBe(false);
    }
  });

  it('explains the rule in the message', () => {
    expect(SiteSlug.safeParse('Shop').error?.issues[0]?.message).toContain('lowercase letters and digits');
    expect(SiteSlug.safeParse('ab').error?.issues[0]?.message).toBe(
      'site slug must be at least 3 characters',
    );
  });
});

describe('display names, types and presets', () => {
  it('trims display names and refuses control characters', () => {
    expect(DisplayName.parse('  My Shop  ')).toBe('My Shop');
    expect(DisplayName.parse('Café “Zürich” — 日本')).toBe('Café “Zürich” — 日本');
    for (const name of ['', '   ', 'a\u0000b', 'a\nb', 'a\u202eb', 'x'.repeat(101)]) {
      expect(DisplayName.safeParse(name).success, JSON.stringify(name)).toBe(false);
    }
  });

  it('knows the environment types and the promotion presets', () => {
    expect(EnvironmentType.options).toEqual(['production', 'staging', 'development']);
    expect(PromotionPreset.options).toEqual(['code-only', 'code-and-db', 'db-only', 'woocommerce-safe']);
    expect(EnvironmentType.safeParse('prod').success).toBe(false);
    expect(PromotionPreset.safeParse('everything').success).toBe(false);
  });
});

describe('names on the node', () => {
  it('names an environment <site>--<env> and its default hostname under the base domain', () => {
    expect(environmentNodeName('my-shop', 'staging')).toBe('my-shop--staging');
    expect(defaultHostname('my-shop--staging', 'web-1.example.net')).toBe(
      'my-shop--staging.web-1.example.net',
    );
    // The longest name still fits a DNS label.
    expect(environmentNodeName('x'.repeat(30), 'y'.repeat(16)).length).toBeLessThanOrEqual(63);
    expect(() => environmentNodeName('../x', 'prod')).toThrow();
    expect(() => environmentNodeName('shop', 'a--b')).toThrow();
  });

  it('makes short ids: a letter then 11 letters or digits, unbiased, unique enough', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) ids.add(newShortId());
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(isShortId(id), id).toBe(true);
    // A random source of only digits first still yields a letter first.
    let calls = 0;
    const digitsThenLetters = (size: number) =>
      Buffer.from(Array.from({ length: size }, (_, i) => (calls++ === 0 && i < 5 ? 26 : 1)));
    expect(newShortId(digitsThenLetters)).toMatch(/^b/);
    expect(isShortId('1abcdefghijk')).toBe(false);
    expect(isShortId('abc')).toBe(false);
  });

  it('derives Linux, MariaDB and Redis names from the short id, within 32 characters', () => {
    const names = environmentNodeNames('my-shop', 'production', 'k3x9q2m7p4za');
    expect(names).toEqual({
      name: 'my-shop--production',
      system_user: 'wp_k3x9q2m7p4za',
      database_name: 'wp_k3x9q2m7p4za',
      database_user: 'wp_k3x9q2m7p4za',
      redis_prefix: 'wpcp:k3x9q2m7p4za:',
    });
    expect(names.system_user.length).toBeLessThanOrEqual(32);
    expect(names.system_user).toMatch(/^[a-z_][a-z0-9_-]*$/);
    expect(() => environmentNodeNames('my-shop', 'production', 'x; drop')).toThrow();
  });
});
