import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { caCertificateHash } from './ca-certificate-hash.ts';
import { createCertificateAuthority } from './certificate-authority.ts';
import { nodeCertificate } from './test-helpers.ts';

describe('caCertificateHash', () => {
  it('is sha256 of the DER SubjectPublicKeyInfo, like kubeadm discovery-token-ca-cert-hash', async () => {
    const ca = await createCertificateAuthority({ commonName: 'ca', validityDays: 1 });
    const spki = nodeCertificate(ca.certPem).publicKey.export({ type: 'spki', format: 'der' });
    const expected = `sha256:${createHash('sha256').update(spki).digest('hex')}`;

    expect(caCertificateHash(ca.certPem)).toBe(expected);
    expect(caCertificateHash(ca.certPem)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('differs between CAs', async () => {
    const a = await createCertificateAuthority({ commonName: 'ca', validityDays: 1 });
    const b = await createCertificateAuthority({ commonName: 'ca', validityDays: 1 });
    expect(caCertificateHash(a.certPem)).not.toBe(caCertificateHash(b.certPem));
  });

  it('refuses input that is not a certificate', () => {
    expect(() => caCertificateHash('not a certificate')).toThrow();
  });
});
