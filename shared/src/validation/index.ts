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

/**
 * A node's name: a DNS label (lowercase letters, digits and inner hyphens, 1 to 63 characters),
 * so it can appear in hostnames, metrics labels and file names without escaping.
 */
export const NodeName = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'must be 1 to 63 lowercase letters, digits or hyphens, not starting or ending with a hyphen',
  );

export * from './hostname.ts';
export * from './names.ts';
