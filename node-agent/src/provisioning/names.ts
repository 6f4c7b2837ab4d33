// Names on the node, derived in one place.
//
// - An environment is named `<site>--<env>` from its site and environment slugs. Slugs are
//   lowercase letters and digits in hyphen-separated groups (`^[a-z0-9]+(-[a-z0-9]+)*$`), so they
//   never contain `--` and the name splits back unambiguously. The name is used for the directory
//   (/srv/wpcp/<name>), the PHP-FPM pool, the nginx file and the default hostname's first label
//   (at most 30 + 2 + 16 = 48 characters, within a DNS label's 63). Site slugs are at least 3
//   characters, so `--` never sits at label positions 3-4 (reserved for IDNA "xn--" labels, which
//   ACME certificate authorities refuse otherwise).
// - Linux user and group, MariaDB database and user come from the environment's short unique id
//   (`wp_<id>`, at most 32 characters: the limit of useradd and of MySQL-compatible user names),
//   not from its slugs, so a rename never touches them and no slug can collide with a system user.
// - The Redis key prefix comes from the same id, so a cache purge of one environment cannot touch
//   another's keys.
import { randomBytes } from 'node:crypto';
import { invalidArgument } from './errors.ts';

const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;
export const SITE_SLUG_LENGTH = { min: 3, max: 30 } as const;
export const ENVIRONMENT_SLUG_LENGTH = { min: 2, max: 16 } as const;

/** Short ids: a lowercase letter, then lowercase letters and digits; 6 to 29 characters. */
const SHORT_ID = /^[a-z][a-z0-9]{5,28}$/;
const SHORT_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const SHORT_ID_LENGTH = 12;
export const SYSTEM_NAME_PREFIX = 'wp_';
/** useradd's limit, and MySQL's user-name limit (MariaDB allows 80; we keep to the lowest). */
export const MAX_SYSTEM_NAME_LENGTH = 32;

export function isSlug(value: string, length: { min: number; max: number }): boolean {
  return value.length >= length.min && value.length <= length.max && SLUG.test(value);
}

export function assertSiteSlug(value: string): void {
  if (!isSlug(value, SITE_SLUG_LENGTH)) {
    throw invalidArgument(
      `site slug must be ${SITE_SLUG_LENGTH.min}-${SITE_SLUG_LENGTH.max} lowercase letters or digits in hyphen-separated groups: ${JSON.stringify(value)}`,
    );
  }
}

export function assertEnvironmentSlug(value: string): void {
  if (!isSlug(value, ENVIRONMENT_SLUG_LENGTH)) {
    throw invalidArgument(
      `environment slug must be ${ENVIRONMENT_SLUG_LENGTH.min}-${ENVIRONMENT_SLUG_LENGTH.max} lowercase letters or digits in hyphen-separated groups: ${JSON.stringify(value)}`,
    );
  }
}

/** `<site>--<env>`. */
export function environmentName(siteSlug: string, environmentSlug: string): string {
  assertSiteSlug(siteSlug);
  assertEnvironmentSlug(environmentSlug);
  return `${siteSlug}--${environmentSlug}`;
}

/** The inverse of environmentName; throws on anything it could not have produced. */
export function parseEnvironmentName(name: string): { site: string; environment: string } {
  const parts = name.split('--');
  if (parts.length !== 2) throw invalidArgument(`not an environment name: ${JSON.stringify(name)}`);
  const [site = '', environment = ''] = parts;
  assertSiteSlug(site);
  assertEnvironmentSlug(environment);
  return { site, environment };
}

export function isEnvironmentName(name: string): boolean {
  try {
    parseEnvironmentName(name);
    return true;
  } catch {
    return false;
  }
}

export function assertEnvironmentName(name: string): void {
  parseEnvironmentName(name);
}

export function isShortId(value: string): boolean {
  return SHORT_ID.test(value);
}

export function assertShortId(value: string): void {
  if (!isShortId(value)) {
    throw invalidArgument(
      `short id must be a lowercase letter followed by 5-28 lowercase letters or digits: ${JSON.stringify(value)}`,
    );
  }
}

/**
 * A fresh short id: a letter then 11 letters or digits (36^11 ≈ 1.3e17 values; uniqueness is
 * still enforced where ids are stored). Unbiased: bytes past the largest multiple of 36 are drawn
 * again.
 */
export function generateShortId(random: (size: number) => Buffer = randomBytes): string {
  let id = '';
  while (id.length < SHORT_ID_LENGTH) {
    for (const byte of random(32)) {
      if (byte >= 252) continue; // 252 = 7 * 36: keeps every symbol equally likely.
      const symbol = SHORT_ID_ALPHABET[byte % SHORT_ID_ALPHABET.length] as string;
      if (id.length === 0 && !/[a-z]/.test(symbol)) continue;
      id += symbol;
      if (id.length === SHORT_ID_LENGTH) break;
    }
  }
  return id;
}

export interface SystemNames {
  /** Linux user and its primary group. */
  linuxUser: string;
  linuxGroup: string;
  database: string;
  databaseUser: string;
  /** Redis key prefix, used literally (WP_REDIS_PREFIX). */
  redisPrefix: string;
}

export function systemNames(shortId: string): SystemNames {
  assertShortId(shortId);
  const base = `${SYSTEM_NAME_PREFIX}${shortId}`;
  return {
    linuxUser: base,
    linuxGroup: base,
    database: base,
    databaseUser: base,
    redisPrefix: `wpcp:${shortId}:`,
  };
}

/** The pool, nginx and cron file names of an environment (no dots: cron.d ignores names with one). */
export function environmentFileStem(environment: string): string {
  assertEnvironmentName(environment);
  return `wpcp-${environment}`;
}
