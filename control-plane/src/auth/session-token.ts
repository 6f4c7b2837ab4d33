import { createHash, randomBytes } from 'node:crypto';

/**
 * Session tokens: 256 random bits, shown to the client once. Only their sha256 is stored, so a
 * copy of the database cannot be replayed. The `wpcp_s_` prefix lets secret scanners spot leaks.
 */
const PREFIX = 'wpcp_s_';

export function newSessionToken(): string {
  return PREFIX + randomBytes(32).toString('base64url');
}

export function hashSessionToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export function looksLikeSessionToken(token: string): boolean {
  return /^wpcp_s_[A-Za-z0-9_-]{43}$/.test(token);
}
