import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * Slugs, display names and the names an environment has on its node. The control plane derives
 * the node-side names here, once, when it creates an environment, and stores them on the
 * environment's row; the agent validates them again before using them (node-agent/src/provisioning/names.ts).
 */

const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const SLUG_RULE =
  'lowercase letters and digits in hyphen-separated groups (no leading, trailing or double hyphen)';

export const SITE_SLUG_LENGTH = { min: 3, max: 30 } as const;
export const ENVIRONMENT_SLUG_LENGTH = { min: 2, max: 16 } as const;

function slug(length: { min: number; max: number }, what: string) {
  return z
    .string()
    .min(length.min, `${what} must be at least ${length.min} characters`)
    .max(length.max, `${what} must be at most ${length.max} characters`)
    .regex(SLUG, `${what} must be ${SLUG_RULE}`);
}

/**
 * A site's slug: 3 to 30 characters, unique across the fleet. At least 3, so the `--` between
 * site and environment never lands on positions 3-4 of a hostname label (reserved for `xn--`).
 */
export const SiteSlug = slug(SITE_SLUG_LENGTH, 'site slug').meta({
  description: `3 to 30 ${SLUG_RULE}; unique across the fleet.`,
});

/** An environment's slug: 2 to 16 characters, unique within its site. */
export const EnvironmentSlug = slug(ENVIRONMENT_SLUG_LENGTH, 'environment slug').meta({
  description: `2 to 16 ${SLUG_RULE}; unique within the site.`,
});

/** A human name (site title, environment label): trimmed, 1 to 100 characters, no control characters. */
export const DisplayName = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(100, 'must be at most 100 characters')
  .refine((value) => !/[\p{Cc}\p{Cf}\u2028\u2029]/u.test(value), 'must not contain control characters');

export const ENVIRONMENT_TYPES = ['production', 'staging', 'development'] as const;
export const EnvironmentType = z.enum(ENVIRONMENT_TYPES);
export type EnvironmentType = z.infer<typeof EnvironmentType>;

/**
 * What a promotion copies from one environment to another (docs/environments.md defines each):
 * `code-only` (code, no database, no uploads), `code-and-db` (code and the whole database),
 * `db-only` (the whole database), `woocommerce-safe` (code and the database except the tables
 * that hold orders, customers and their sessions, which the target keeps).
 */
export const PROMOTION_PRESETS = ['code-only', 'code-and-db', 'db-only', 'woocommerce-safe'] as const;
export const PromotionPreset = z.enum(PROMOTION_PRESETS);
export type PromotionPreset = z.infer<typeof PromotionPreset>;

/** `<site>--<env>`: directory, PHP-FPM pool, nginx file and the first label of the default hostname. */
export function environmentNodeName(siteSlug: string, environmentSlug: string): string {
  if (!SiteSlug.safeParse(siteSlug).success) throw new Error(`not a site slug: ${JSON.stringify(siteSlug)}`);
  if (!EnvironmentSlug.safeParse(environmentSlug).success) {
    throw new Error(`not an environment slug: ${JSON.stringify(environmentSlug)}`);
  }
  return `${siteSlug}--${environmentSlug}`;
}

/** The permanent default hostname of an environment on a node with that base domain. */
export function defaultHostname(nodeName: string, baseDomain: string): string {
  return `${nodeName}.${baseDomain}`;
}

/** A short id: a lowercase letter, then 11 lowercase letters or digits (36^11 ≈ 1.3e17 values). */
const SHORT_ID = /^[a-z][a-z0-9]{11}$/;
const SHORT_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const SHORT_ID_LENGTH = 12;

/** A fresh short id (uniqueness is enforced by the unique index on `environments.short_id`). */
export function newShortId(random: (size: number) => Buffer = randomBytes): string {
  let id = '';
  while (id.length < SHORT_ID_LENGTH) {
    for (const byte of random(32)) {
      if (byte >= 252) continue; // 252 = 7 * 36: every symbol stays equally likely.
      const symbol = SHORT_ID_ALPHABET[byte % 36] as string;
      if (id.length === 0 && !/[a-z]/.test(symbol)) continue;
      id += symbol;
      if (id.length === SHORT_ID_LENGTH) break;
    }
  }
  return id;
}

export function isShortId(value: string): boolean {
  return SHORT_ID.test(value);
}

/** The names an environment has on its node (the fields of the protocol's EnvironmentSpec). */
export interface EnvironmentNodeNames {
  /** `<site>--<env>`. */
  name: string;
  /** Linux user and group, and the PHP-FPM pool's user: `wp_<short id>` (15 characters). */
  system_user: string;
  database_name: string;
  database_user: string;
  /** The literal WP_REDIS_PREFIX: `wpcp:<short id>:`. */
  redis_prefix: string;
}

/**
 * Linux user, MariaDB database and user come from the short id, never from slugs: they stay at
 * 15 characters (the limits are 32 for useradd and MySQL-compatible user names, 64 for database
 * names), cannot collide with a system account, and a slug never reaches them.
 */
export function environmentNodeNames(
  siteSlug: string,
  environmentSlug: string,
  shortId: string,
): EnvironmentNodeNames {
  if (!isShortId(shortId)) throw new Error(`not a short id: ${JSON.stringify(shortId)}`);
  const system = `wp_${shortId}`;
  return {
    name: environmentNodeName(siteSlug, environmentSlug),
    system_user: system,
    database_name: system,
    database_user: system,
    redis_prefix: `wpcp:${shortId}:`,
  };
}
