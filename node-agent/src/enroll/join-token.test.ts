import { describe, expect, it } from 'vitest';
import { JoinTokenError, parseJoinToken } from './join-token.ts';

const secret = `${'A'.repeat(42)}_`;
const hash = 'ab'.repeat(32);

describe('parseJoinToken', () => {
  it('returns the token and the CA pin in caCertificateHash form', () => {
    expect(parseJoinToken(` wpcp1.${secret}.${hash}\n`)).toEqual({
      token: `wpcp1.${secret}.${hash}`,
      caHash: `sha256:${hash}`,
    });
  });

  it.each([
    ['', /must start with "wpcp1\."/],
    [`wpcp2.${secret}.${hash}`, /must start with "wpcp1\."/],
    [`wpcp1.${secret.slice(1)}.${hash}`, /secret must be 43 base64url/],
    [`wpcp1.${secret.slice(1)}+.${hash}`, /secret must be 43 base64url/],
    [`wpcp1.${secret}.${hash.toUpperCase()}`, /CA hash must be 64 lowercase hex/],
    [`wpcp1.${secret}.${hash}00`, /CA hash must be 64 lowercase hex/],
    [`wpcp1.${secret}`, /expected wpcp1\.<secret>\.<cahash>/],
  ])('refuses %j without echoing it', (token, reason) => {
    let error: unknown;
    try {
      parseJoinToken(token);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(JoinTokenError);
    expect((error as Error).message).toMatch(reason);
    if (token) expect((error as Error).message).not.toContain(token);
  });
});
