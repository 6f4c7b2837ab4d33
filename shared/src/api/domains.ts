import { z } from 'zod';
import { Hostname, Uuid } from '../validation/index.ts';
import { ListQuery } from './pagination.ts';

/**
 * `pending`: accepted, its job has not yet put it into nginx. `active`: served. `removing`: its
 * deletion job is taking it out of nginx (it is still served until then).
 */
export const DomainStatus = z.enum(['pending', 'active', 'removing']);
export type DomainStatus = z.infer<typeof DomainStatus>;

export const AddDomainRequest = z.strictObject({ hostname: Hostname });
export type AddDomainRequest = z.infer<typeof AddDomainRequest>;

export const Domain = z
  .object({
    id: Uuid,
    environment_id: Uuid,
    /** Lowercase, IDNA labels as punycode. */
    hostname: z.string(),
    /** The permanent `<site>--<env>.<node base domain>`; cannot be deleted. */
    is_default: z.boolean(),
    /** WordPress's `home`/`siteurl` use it, nginx lists it first; cannot be deleted. */
    is_primary: z.boolean(),
    status: DomainStatus,
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Domain' });
export type Domain = z.infer<typeof Domain>;

/** Oldest first (the default hostname comes first). */
export const DomainListQuery = ListQuery;
export type DomainListQuery = z.infer<typeof DomainListQuery>;
