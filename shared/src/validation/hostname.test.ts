import { describe, expect, it } from 'vitest';
import { BaseDomain, Hostname, isWithinDomain, normalizeHostname } from './hostname.ts';

const accepted = (input: string) => {
  const result = normalizeHostname(input);
  if (!result.ok) throw new Error(`${JSON.stringify(input)} refused: ${result.reason}`);
  return result.hostname;
};

describe('normalizeHostname', () => {
  it('accepts plain hostnames as they are', () => {
    for (const name of [
      'example.com',
      'www.example.com',
      'a.b',
      'x-1.y2.z',
      'shop--prod.web-1.example.net',
    ]) {
      expect(accepted(name)).toBe(name);
    }
  });

  it('lowercases, converts IDNA to punycode and drops one trailing dot', () => {
    expect(accepted('WWW.Example.COM')).toBe('www.example.com');
    expect(accepted('bücher.example')).toBe('xn--bcher-kva.example');
    expect(accepted('BÜCHER.example')).toBe('xn--bcher-kva.example');
    expect(accepted('faß.de')).toBe('xn--fa-hia.de');
    expect(accepted('例え.テスト')).toMatch(/^xn--[a-z0-9-]+\.xn--[a-z0-9-]+$/);
    expect(accepted('xn--bcher-kva.example')).toBe('xn--bcher-kva.example');
    expect(accepted('example.com.')).toBe('example.com');
  });

  it('refuses what nginx, a shell or a URL parser would read as syntax', () => {
    for (const input of [
      'a.com; include /etc/passwd',
      'a.com;',
      '$host',
      'example.$host',
      '~^.*$',
      '~example.com',
      '*.x.com',
      'x.*',
      'a b.com',
      ' example.com',
      'example.com ',
      'a\tb.com',
      'a\nb.com',
      'a.com/x',
      'a%41.com',
      'a{b}.com',
      'a_b.com',
      'a"b.com',
      "a'b.com",
      'a\\b.com',
      'a:80.com',
      'user@a.com',
      '[::1]',
      'ex\u200bample.com',
      'a\u0000.com',
      'a.com#',
    ]) {
      const result = normalizeHostname(input);
      expect(result.ok, JSON.stringify(input)).toBe(false);
    }
  });

  it('refuses empty labels, leading dots, double trailing dots and bad hyphens', () => {
    for (const input of [
      '',
      '.',
      '..',
      '.example.com',
      'a..b',
      'example.com..',
      '-a.com',
      'a-.com',
      'a.-b.com',
    ]) {
      expect(normalizeHostname(input).ok, JSON.stringify(input)).toBe(false);
    }
  });

  it('enforces 63-character labels and 253 characters in all', () => {
    expect(accepted(`${'a'.repeat(63)}.com`)).toHaveLength(67);
    expect(normalizeHostname(`${'a'.repeat(64)}.com`).ok).toBe(false);
    const exactly253 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    expect(exactly253).toHaveLength(253);
    expect(accepted(exactly253)).toBe(exactly253);
    const tooLong = `${'c'.repeat(60)}.${'c'.repeat(60)}.${'c'.repeat(60)}.${'c'.repeat(60)}.${'c'.repeat(10)}`;
    expect(tooLong.length).toBe(254);
    expect(normalizeHostname(tooLong).ok).toBe(false);
    expect(normalizeHostname('x'.repeat(300)).ok).toBe(false);
    expect(normalizeHostname(`${'a.'.repeat(600)}com`).ok).toBe(false);
  });

  it('refuses IP addresses, single labels (unless allowed) and invalid punycode', () => {
    expect(normalizeHostname('1.2.3.4').ok).toBe(false);
    expect(normalizeHostname('localhost').ok).toBe(false);
    expect(normalizeHostname('localhost', { allowSingleLabel: true })).toEqual({
      ok: true,
      hostname: 'localhost',
    });
    expect(normalizeHostname('xn--zz.example').ok).toBe(false);
  });
});

describe('Hostname and BaseDomain schemas', () => {
  it('transform to the normalised form and explain refusals', () => {
    expect(Hostname.parse('Bücher.Example.')).toBe('xn--bcher-kva.example');
    const refused = Hostname.safeParse('*.x.com');
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.message).toBe('hostname must not contain a wildcard');
    expect(Hostname.safeParse(42).success).toBe(false);
    expect(BaseDomain.parse('localhost')).toBe('localhost');
    expect(BaseDomain.parse('Web-1.Example.NET')).toBe('web-1.example.net');
    expect(
      BaseDomain.safeParse(`${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(30)}`).success,
    ).toBe(false);
  });

  it('tells whether a hostname is under a domain', () => {
    expect(isWithinDomain('a.web-1.example.net', 'web-1.example.net')).toBe(true);
    expect(isWithinDomain('web-1.example.net', 'web-1.example.net')).toBe(true);
    expect(isWithinDomain('xweb-1.example.net', 'web-1.example.net')).toBe(false);
  });
});
