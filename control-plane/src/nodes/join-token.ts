import { createHash, randomBytes } from 'node:crypto';

/**
 * Join tokens: `wpcp1.<secret>.<ca-pin>`. The secret is 32 random bytes (base64url, 43
 * characters); the pin is the lowercase hex sha256 of the agent CA's DER SubjectPublicKeyInfo,
 * which the agent checks against the CA the server presents before it trusts it (kubeadm's
 * discovery hash). Only the sha256 of the whole token is stored; the token is shown once.
 */
const PATTERN = /^wpcp1\.([A-Za-z0-9_-]{43})\.([0-9a-f]{64})$/;

export function newJoinToken(caPin: string): string {
  return `wpcp1.${randomBytes(32).toString('base64url')}.${caPin}`;
}

export function hashJoinToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export function looksLikeJoinToken(token: string): boolean {
  return PATTERN.test(token);
}
