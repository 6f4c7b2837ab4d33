import { createPrivateKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCertificateAuthority } from './certificate-authority.ts';
import { x509 } from './crypto.ts';
import { extensionsOf, nodeCertificate } from './test-helpers.ts';

describe('createCertificateAuthority', () => {
  it('makes a self-signed P-256 CA that may sign end-entity certificates only', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const ca = await createCertificateAuthority({ commonName: 'wpcp agent CA', validityDays: 3650, now });
    const cert = nodeCertificate(ca.certPem);

    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=wpcp agent CA');
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.validFromDate.getTime()).toBe(now.getTime() - 5 * 60 * 1000);
    expect(cert.validToDate.toISOString()).toBe('2039-12-30T00:00:00.000Z');

    const key = createPrivateKey(ca.keyPem);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.checkPrivateKey(key)).toBe(true);

    const extensions = extensionsOf(ca.certPem);
    const constraints = extensions.get('2.5.29.19') as x509.BasicConstraintsExtension;
    expect([constraints.critical, constraints.ca, constraints.pathLength]).toEqual([true, true, 0]);
    const keyUsage = extensions.get('2.5.29.15') as x509.KeyUsagesExtension;
    expect(keyUsage.critical).toBe(true);
    expect(keyUsage.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(extensions.has('2.5.29.14')).toBe(true); // subjectKeyIdentifier
  });

  it('gives each CA its own key and a random serial', async () => {
    const a = await createCertificateAuthority({ commonName: 'a', validityDays: 1 });
    const b = await createCertificateAuthority({ commonName: 'a', validityDays: 1 });
    expect(a.keyPem).not.toBe(b.keyPem);
    expect(nodeCertificate(a.certPem).serialNumber).toMatch(/^[0-9A-F]{32}$/);
    expect(nodeCertificate(a.certPem).serialNumber).not.toBe(nodeCertificate(b.certPem).serialNumber);
  });

  it('keeps the common name literal (no DN parsing)', async () => {
    const ca = await createCertificateAuthority({ commonName: 'a, CN=b+"c"', validityDays: 1 });
    expect(nodeCertificate(ca.certPem).toLegacyObject().subject).toEqual({ CN: 'a, CN=b+"c"' });
  });

  it('refuses bad parameters', async () => {
    await expect(createCertificateAuthority({ commonName: '', validityDays: 1 })).rejects.toThrow(RangeError);
    await expect(createCertificateAuthority({ commonName: 'x'.repeat(65), validityDays: 1 })).rejects.toThrow(
      RangeError,
    );
    await expect(createCertificateAuthority({ commonName: 'a\nb', validityDays: 1 })).rejects.toThrow(
      RangeError,
    );
    await expect(createCertificateAuthority({ commonName: 'ca', validityDays: 0 })).rejects.toThrow(
      RangeError,
    );
    await expect(createCertificateAuthority({ commonName: 'ca', validityDays: 1.5 })).rejects.toThrow(
      RangeError,
    );
    await expect(createCertificateAuthority({ commonName: 'ca', validityDays: 3651 })).rejects.toThrow(
      RangeError,
    );
  });
});
