import { z } from 'zod';
import { DisplayName, SiteSlug, Uuid } from '../validation/index.ts';
import { Environment } from './environments.ts';
import { ListQuery } from './pagination.ts';

/**
 * `provisioning`: created, its production environment is being set up. `active`: its production
 * environment was provisioned. `deleting`: its deletion job is removing its environments (the
 * site goes when the last one is gone). `failed`: provisioning or deletion failed (the job says
 * why).
 */
export const SiteStatus = z.enum(['provisioning', 'active', 'deleting', 'failed']);
export type SiteStatus = z.infer<typeof SiteStatus>;

export const CreateSiteRequest = z.strictObject({
  /** The site's title (also WordPress's blog name). */
  name: DisplayName,
  slug: SiteSlug,
});
export type CreateSiteRequest = z.infer<typeof CreateSiteRequest>;

export const Site = z
  .object({
    id: Uuid,
    name: z.string(),
    slug: z.string(),
    status: SiteStatus,
    /** The site's production environment, created with the site. */
    production_environment_id: Uuid.nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Site' });
export type Site = z.infer<typeof Site>;

/** `GET /api/sites/{id}`: the site with its environments (oldest first). */
export const SiteWithEnvironments = Site.extend({ environments: z.array(Environment) }).meta({
  id: 'SiteWithEnvironments',
});
export type SiteWithEnvironments = z.infer<typeof SiteWithEnvironments>;

export const SiteListQuery = ListQuery.extend({ status: SiteStatus.optional() });
export type SiteListQuery = z.infer<typeof SiteListQuery>;
