import { z } from 'zod';
import { DisplayName, EnvironmentSlug, EnvironmentType, PromotionPreset, Uuid } from '../validation/index.ts';
import { ListQuery } from './pagination.ts';

/**
 * `provisioning` → `active`, or `failed` when provisioning (or cloning) failed. `updating`: a job
 * is changing its code or database (deploys, updates, restores, promotions: later features).
 * `deleting`: its deletion job is removing it from its node (the row goes when it is done; a
 * failed deletion leaves it `failed`). docs/environments.md has the transitions.
 */
export const EnvironmentStatus = z.enum(['provisioning', 'active', 'updating', 'deleting', 'failed']);
export type EnvironmentStatus = z.infer<typeof EnvironmentStatus>;

/**
 * `POST /api/sites/{id}/environments`. With `source_environment_id` the environment is a clone of
 * that environment of the same site (files, database, URLs rewritten), placed on the source's
 * node; without it, a fresh WordPress install placed on the least loaded active node.
 */
export const CreateEnvironmentRequest = z.strictObject({
  name: DisplayName,
  slug: EnvironmentSlug,
  type: EnvironmentType,
  source_environment_id: Uuid.optional(),
  /** What a promotion from this environment copies (default `code-only`). */
  promotion_preset: PromotionPreset.default('code-only'),
});
export type CreateEnvironmentRequest = z.infer<typeof CreateEnvironmentRequest>;

/** The names the environment has on its node. Not secrets; useful on the node's shell. */
export const EnvironmentOnNode = z.object({
  /** `<site>--<env>`: /srv/wpcp/<name>, the PHP-FPM pool, the nginx file. */
  name: z.string(),
  /** Linux user and group (`wp_<short id>`). */
  system_user: z.string(),
  database_name: z.string(),
  database_user: z.string(),
  /** WP_REDIS_PREFIX. */
  redis_prefix: z.string(),
});

export const Environment = z
  .object({
    id: Uuid,
    site_id: Uuid,
    name: z.string(),
    slug: z.string(),
    type: EnvironmentType,
    status: EnvironmentStatus,
    /** The node it runs on; null until placed. */
    node_id: Uuid.nullable(),
    on_node: EnvironmentOnNode,
    /** `<site>--<env>.<node base domain>`, permanent; null until placed. */
    default_hostname: z.string().nullable(),
    /** The hostname WordPress's `home` and `siteurl` use. */
    primary_hostname: z.string().nullable(),
    /** Every hostname nginx serves it under, the primary first. */
    hostnames: z.array(z.string()),
    /** `http(s)://<primary hostname>[:port]`; null until placed. */
    url: z.string().nullable(),
    wordpress_version: z.string().nullable(),
    fastcgi_cache_enabled: z.boolean(),
    redis_cache_enabled: z.boolean(),
    last_deployed_ref: z.string().nullable(),
    promotion_preset: PromotionPreset,
    /** The environment it was cloned from, if any. */
    source_environment_id: Uuid.nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Environment' });
export type Environment = z.infer<typeof Environment>;

export const EnvironmentListQuery = ListQuery;
export type EnvironmentListQuery = z.infer<typeof EnvironmentListQuery>;

/**
 * `DELETE /api/environments/{id}` and `DELETE /api/sites/{id}`: `?purge_backups=true` removes the
 * environments' `backups/` directories too (default: kept on the node). Exactly `true` or
 * `false`; anything else, or another parameter, is a 400.
 */
export const DeletionQuery = z.strictObject({
  purge_backups: z.enum(['true', 'false']).default('false'),
});
export type DeletionQuery = z.infer<typeof DeletionQuery>;
