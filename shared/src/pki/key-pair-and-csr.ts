import {
  assertCommonName,
  exportPrivateKeyPem,
  generateKeyPair,
  nameWithCommonName,
  signingAlgorithm,
  x509,
} from './crypto.ts';

export interface CreateKeyPairAndCsrOptions {
  /** Requested common name. Informational: the CA sets the subject of the certificate itself. */
  readonly commonName: string;
}

export interface KeyPairAndCsr {
  /** The new private key (PKCS#8 PEM). Stays on the machine that made it. */
  readonly keyPem: string;
  /** PKCS#10 certificate signing request (PEM) for the key, signed by it. */
  readonly csrPem: string;
}

/** Agent side of enrollment and renewal: a new ECDSA P-256 key and a CSR for it. */
export async function createKeyPairAndCsr(options: CreateKeyPairAndCsrOptions): Promise<KeyPairAndCsr> {
  assertCommonName(options.commonName);
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: nameWithCommonName(options.commonName),
    keys,
    signingAlgorithm,
  });
  return { keyPem: await exportPrivateKeyPem(keys.privateKey), csrPem: csr.toString('pem') };
}
