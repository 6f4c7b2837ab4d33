import { createPrivateKey, webcrypto } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CertificateAuthority, createCertificateAuthority } from './certificate-authority.ts';
import { signingAlgorithm, x509 } from './crypto.ts';
import { InvalidCsrError } from './errors.ts';
import { createKeyPairAndCsr } from './key-pair-and-csr.ts';
import { type SignCsrOptions, signCsr } from './sign-csr.ts';
import { extensionsOf, mutatePem, nodeCertificate } from './test-helpers.ts';

const oid = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extendedKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
};

let ca: CertificateAuthority;
let agent: { keyPem: string; csrPem: string };

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'wpcp agent CA', validityDays: 365 });
  agent = await createKeyPairAndCsr({ commonName: 'tamper-me' });
});

function options(overrides: Partial<SignCsrOptions> = {}): SignCsrOptions {
  return {
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem: agent.csrPem,
    subjectCommonName: 'node-7f3a',
    validityDays: 30,
    usage: 'client',
    ...overrides,
  };
}

describe('signCsr', () => {
  it('issues a client certificate for the CSR key, with the subject chosen by the CA', async () => {
    const now = new Date();
    const certPem = await signCsr(options({ now }));
    const cert = nodeCertificate(certPem);
    const caCert = nodeCertificate(ca.certPem);

    expect(cert.subject).toBe('CN=node-7f3a');
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(agent.keyPem))).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // Node lists the extended key usages here
    expect(cert.subjectAltName).toBeUndefined();
    expect(cert.serialNumber).toMatch(/^[0-9A-F]{32}$/);
    expect(cert.validFromDate.getTime()).toBe(Math.floor(now.getTime() / 1000) * 1000 - 5 * 60 * 1000);
    expect(cert.validToDate.getTime()).toBe(Math.floor(now.getTime() / 1000) * 1000 + 30 * 24 * 3600 * 1000);

    const extensions = extensionsOf(certPem);
    const constraints = extensions.get(oid.basicConstraints) as x509.BasicConstraintsExtension;
    expect([constraints.critical, constraints.ca]).toEqual([true, false]);
    const keyUsage = extensions.get(oid.keyUsage) as x509.KeyUsagesExtension;
    expect([keyUsage.critical, keyUsage.usages]).toEqual([true, x509.KeyUsageFlags.digitalSignature]);
    const caKeyId = (
      extensionsOf(ca.certPem).get(oid.subjectKeyIdentifier) as x509.SubjectKeyIdentifierExtension
    ).keyId;
    expect((extensions.get(oid.authorityKeyIdentifier) as x509.AuthorityKeyIdentifierExtension).keyId).toBe(
      caKeyId,
    );
    expect(extensions.has(oid.subjectKeyIdentifier)).toBe(true);
  });

  it('issues a server certificate with serverAuth and subject alternative names', async () => {
    const certPem = await signCsr(
      options({
        usage: 'server',
        dnsNames: ['CP.Example.test', 'localhost'],
        ipAddresses: ['127.0.0.1', '::1'],
      }),
    );
    const cert = nodeCertificate(certPem);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(cert.subjectAltName).toBe(
      'DNS:cp.example.test, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    expect(cert.checkHost('cp.example.test')).toBe('cp.example.test');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });

  it('gives every certificate a different serial', async () => {
    const a = nodeCertificate(await signCsr(options()));
    const b = nodeCertificate(await signCsr(options()));
    expect(a.serialNumber).not.toBe(b.serialNumber);
  });

  it('ignores the extensions a CSR asks for', async () => {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const greedy = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=greedy',
      keys,
      signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'evil.example' }]),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ],
    });
    const cert = nodeCertificate(await signCsr(options({ csrPem: greedy.toString('pem') })));
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBeUndefined();
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(cert.subject).toBe('CN=node-7f3a');
  });

  it('never outlives the CA', async () => {
    const shortCa = await createCertificateAuthority({ commonName: 'short', validityDays: 10 });
    const cert = nodeCertificate(
      await signCsr(options({ caCertPem: shortCa.certPem, caKeyPem: shortCa.keyPem, validityDays: 30 })),
    );
    expect(cert.validToDate).toEqual(nodeCertificate(shortCa.certPem).validToDate);
  });

  describe('refuses a CSR it must not sign', () => {
    it('a tampered CSR (one byte of the subject changed)', async () => {
      const tampered = mutatePem(agent.csrPem, (der) => {
        const at = der.indexOf('tamper-me');
        expect(at).toBeGreaterThan(0);
        der[at + 8] = 'f'.charCodeAt(0);
      });
      expect(new x509.Pkcs10CertificateRequest(tampered).subjectName.getField('CN')).toEqual(['tamper-mf']);
      await expect(signCsr(options({ csrPem: tampered }))).rejects.toThrow(InvalidCsrError);
    });

    it('a CSR with a corrupted public key', async () => {
      const csr = new x509.Pkcs10CertificateRequest(agent.csrPem);
      const point = Buffer.from(csr.publicKey.rawData).subarray(-8);
      const corrupted = mutatePem(agent.csrPem, (der) => {
        const at = der.indexOf(point);
        der[at + 7] = (der[at + 7] ?? 0) ^ 0xff;
      });
      await expect(signCsr(options({ csrPem: corrupted }))).rejects.toThrow(InvalidCsrError);
    });

    it('a CSR signed by another key than the one it carries (no proof of possession)', async () => {
      const carried = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
        'sign',
        'verify',
      ]);
      const signer = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
        'sign',
        'verify',
      ]);
      const forged = await x509.Pkcs10CertificateRequestGenerator.create({
        name: 'CN=forged',
        keys: { publicKey: carried.publicKey, privateKey: signer.privateKey },
        signingAlgorithm,
      });
      await expect(signCsr(options({ csrPem: forged.toString('pem') }))).rejects.toThrow(
        'the CSR signature does not verify',
      );
    });

    it('a CSR for an RSA key', async () => {
      const keys = await webcrypto.subtle.generateKey(
        {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        },
        true,
        ['sign', 'verify'],
      );
      const rsa = await x509.Pkcs10CertificateRequestGenerator.create({
        name: 'CN=rsa',
        keys,
        signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' },
      });
      await expect(signCsr(options({ csrPem: rsa.toString('pem') }))).rejects.toThrow(
        'the CSR key must be ECDSA P-256',
      );
    });

    it('input that is not a CSR', async () => {
      await expect(signCsr(options({ csrPem: 'hello' }))).rejects.toThrow(InvalidCsrError);
      await expect(signCsr(options({ csrPem: ca.certPem }))).rejects.toThrow(InvalidCsrError);
    });
  });

  describe('refuses to sign with bad CA material or parameters', () => {
    it('a CA key that does not belong to the CA certificate', async () => {
      const other = await createCertificateAuthority({ commonName: 'other', validityDays: 1 });
      await expect(signCsr(options({ caKeyPem: other.keyPem }))).rejects.toThrow(
        'the CA key does not belong',
      );
    });

    it('an issuing certificate that is not a CA', async () => {
      const leafPem = await signCsr(options());
      await expect(signCsr(options({ caCertPem: leafPem, caKeyPem: agent.keyPem }))).rejects.toThrow(
        'not a CA',
      );
    });

    it('an expired CA', async () => {
      const later = new Date(Date.now() + 400 * 24 * 3600 * 1000);
      await expect(signCsr(options({ now: later }))).rejects.toThrow('the CA certificate is not valid now');
    });

    it('a server certificate without names, or with invalid ones', async () => {
      await expect(signCsr(options({ usage: 'server' }))).rejects.toThrow(RangeError);
      await expect(signCsr(options({ usage: 'server', dnsNames: ['bad_name'] }))).rejects.toThrow(RangeError);
      await expect(signCsr(options({ usage: 'server', dnsNames: ['-a.example'] }))).rejects.toThrow(
        RangeError,
      );
      await expect(signCsr(options({ usage: 'server', ipAddresses: ['999.1.1.1'] }))).rejects.toThrow(
        RangeError,
      );
    });

    it('bad common name, validity or usage', async () => {
      await expect(signCsr(options({ subjectCommonName: '' }))).rejects.toThrow(RangeError);
      await expect(signCsr(options({ validityDays: 0 }))).rejects.toThrow(RangeError);
      await expect(signCsr(options({ usage: 'both' as 'client' }))).rejects.toThrow(RangeError);
    });
  });
});
