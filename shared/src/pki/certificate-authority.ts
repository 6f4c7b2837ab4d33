import {
  addDays,
  assertCommonName,
  assertValidityDays,
  backdateMs,
  exportPrivateKeyPem,
  generateKeyPair,
  nameWithCommonName,
  randomSerialHex,
  signingAlgorithm,
  x509,
} from './crypto.ts';

export interface CreateCertificateAuthorityOptions {
  /** Subject (and issuer) common name, e.g. "wpcp agent CA". */
  readonly commonName: string;
  /** Days from now until the CA expires. */
  readonly validityDays: number;
  /** The current time; only tests pass it. */
  readonly now?: Date;
}

export interface CertificateAuthority {
  /** The self-signed CA certificate (PEM). Given to agents, which pin it. */
  readonly certPem: string;
  /** The CA's private key (PKCS#8 PEM). A secret: it signs every node and server certificate. */
  readonly keyPem: string;
}

/**
 * Creates a self-signed certificate authority with a new ECDSA P-256 key. It may sign end-entity
 * certificates only (basicConstraints CA:true, pathlen:0; keyUsage keyCertSign and cRLSign).
 */
export async function createCertificateAuthority(
  options: CreateCertificateAuthorityOptions,
): Promise<CertificateAuthority> {
  assertCommonName(options.commonName);
  assertValidityDays(options.validityDays);
  const now = options.now ?? new Date();
  const keys = await generateKeyPair();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: nameWithCommonName(options.commonName),
    notBefore: new Date(now.getTime() - backdateMs),
    notAfter: addDays(now, options.validityDays),
    keys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: certificate.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}
