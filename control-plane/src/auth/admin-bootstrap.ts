import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '../database/database.ts';
import { upsertAdminUser } from './auth.queries.ts';
import { hashPassword } from './password.ts';

export type AdminBootstrap =
  | { outcome: 'exists'; email: string }
  | { outcome: 'created'; email: string; passwordFile?: string; generatedPassword?: string };

/**
 * Creates the single admin user on first start. Without WPCP_ADMIN_PASSWORD a password is
 * generated and written to `<dataDir>/admin-password` (0600); the caller prints only that path
 * (and the password itself only on a terminal), never into the JSON logs.
 */
export async function ensureAdminUser(
  db: Db,
  options: { email: string; password?: string; dataDir: string },
): Promise<AdminBootstrap> {
  const generated = options.password ? undefined : randomBytes(18).toString('base64url');
  const password = options.password ?? (generated as string);
  const outcome = await upsertAdminUser(db, options.email, await hashPassword(password));
  if (outcome === 'exists') return { outcome, email: options.email };
  if (!generated) return { outcome, email: options.email };
  const passwordFile = path.join(options.dataDir, 'admin-password');
  await writeFile(passwordFile, `${generated}\n`, { mode: 0o600 });
  return { outcome, email: options.email, passwordFile, generatedPassword: generated };
}
