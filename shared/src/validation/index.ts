import { z } from 'zod';

/**
 * The one place where identifiers and user-supplied names are validated. Every route, job and
 * agent command takes its ids, slugs, hostnames, refs and paths from these schemas.
 */
export const Uuid = z.uuid({ message: 'must be a UUID' });

export const IdParams = z.strictObject({ id: Uuid });
export type IdParams = z.infer<typeof IdParams>;

export const Email = z
  .string()
  .trim()
  .min(3)
  .max(254)
  .regex(/^[^\s@]+@[^\s@]+$/, 'must be an email address')
  .transform((value) => value.toLowerCase());
