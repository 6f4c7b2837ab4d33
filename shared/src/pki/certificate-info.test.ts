import { describe, expect, it } from 'vitest';
import { createCertificateAuthority } from './certificate-authority.ts';
import { certificateInfo } from './certificate-info.ts';
import { createKeyPairAndCsr } from './key-pair-and-csr.ts';
import { signCsr } from './sign-csr.ts';
import { nodeCertificate } from './test-helpers.ts';

describe('certificateInfo', () => {
  it('reports what Node reads from the same certificate', async () => {
    const ca = await createCertificateAuthority({ commonName: 'wpcp agent CA', validityDays: 10 });
    const { csrPem } = await createKeyPairAndCsr({ commonName: 'ignored' });
    const certPem = await signCsr({
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      csrPem,
      subjectCommonName: 'node-7f3a',
      validityDays: 5,
      usage: 'client',
    });
    const node = nodeCertificate(certPem);

    expect(certificateInfo(certPem)).toEqual({
      commonName: 'node-7f3a',
      notBefore: node.validFromDate,
      notAfter: node.validToDate,
      serialHex: node.serialNumber.toLowerCase(),
      fingerprintSha256: node.fingerprint256.replaceAll(':', '').toLowerCase(),
    });
    expect(certificateInfo(ca.certPem).commonName).toBe('wpcp agent CA');
  });
});
