import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { x509 } from './crypto.ts';
import { createKeyPairAndCsr } from './key-pair-and-csr.ts';

describe('createKeyPairAndCsr', () => {
  it('makes a P-256 key and a CSR for it, signed by it', async () => {
    const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: 'node-1.example.test' });

    const key = createPrivateKey(keyPem);
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');

    expect(csrPem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n/);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    expect(await csr.verify()).toBe(true);
    expect(csr.subjectName.getField('CN')).toEqual(['node-1.example.test']);
    expect(csr.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } });
    const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    expect(Buffer.from(csr.publicKey.rawData).equals(keySpki)).toBe(true);
  });

  it('makes a new key every time', async () => {
    const a = await createKeyPairAndCsr({ commonName: 'n' });
    const b = await createKeyPairAndCsr({ commonName: 'n' });
    expect(a.keyPem).not.toBe(b.keyPem);
  });

  it('refuses an empty common name', async () => {
    await expect(createKeyPairAndCsr({ commonName: '' })).rejects.toThrow(RangeError);
  });
});
