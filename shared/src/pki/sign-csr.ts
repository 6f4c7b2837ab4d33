import { isIP } from 'node:net';
import {
  addDays,
  assertCommonName,
  assertValidityDays,
  backdateMs,
  importSigningKeyPem,
  keyAlgorithm,
  nameWithCommonName,
  publicKeyDerOfPrivateKeyPem,
  randomSerialHex,
  signingAlgorithm,
  x509,
} from './crypto.ts';
import { InvalidCsrError } from './errors.ts';

export interface SignCsrOptions {
  /** The issuing CA's certificate (PEM). */
  readonly caCertPem: string;
  /** The issuing CA's private key (PKCS#8 PEM). */
  readonly caKeyPem: string;
  /** The PKCS#10 request (PEM) from the machine that holds the key. */
  readonly csrPem: string;
  /**
   * Common name of the certificate, chosen by the CA (the node id for agents). The CSR's subject is
   * ignored, as are any extensions it requests.
   */
  readonly subjectCommonName: string;
  /** Days from now until the certificate expires; never later than the CA itself. */
  readonly validityDays: number;
  /** `client`: TLS client authentication only (agents). `server`: TLS server authentication only. */
  readonly usage: 'client' | 'server';
  /** DNS subject alternative names (at least one DNS name or IP address for a server certificate). */
  readonly dnsNames?: readonly string[];
  /** IP address subject alternative names (IPv4 or IPv6). */
  readonly ipAddresses?: readonly string[];
  /** The current time; only tests pass it. */
  readonly now?: Date;
}

const hostnamePattern =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function subjectAltNames(options: SignCsrOptions): x509.JsonGeneralNames {
  const names: x509.JsonGeneralNames = [];
  for (const dnsName of new Set((options.dnsNames ?? []).map((name) => name.toLowerCase()))) {
    if (!hostnamePattern.test(dnsName))
      throw new RangeError(`not a valid DNS name: ${JSON.stringify(dnsName)}`);
    names.push({ type: 'dns', value: dnsName });
  }
  for (const ipAddress of new Set(options.ipAddresses ?? [])) {
    if (isIP(ipAddress) === 0) throw new RangeError(`not a valid IP address: ${JSON.stringify(ipAddress)}`);
    names.push({ type: 'ip', value: ipAddress });
  }
  if (options.usage === 'server' && names.length === 0) {
    throw new RangeError('a server certificate needs at least one DNS name or IP address');
  }
  return names;
}

async function parseAndVerifyCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (error) {
    throw new InvalidCsrError('the CSR is not a PEM PKCS#10 certificate request', { cause: error });
  }
  const algorithm = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (algorithm.name !== keyAlgorithm.name || algorithm.namedCurve !== keyAlgorithm.namedCurve) {
    throw new InvalidCsrError('the CSR key must be ECDSA P-256');
  }
  let valid: boolean;
  try {
    valid = await csr.verify();
  } catch (error) {
    throw new InvalidCsrError('the CSR signature cannot be checked', { cause: error });
  }
  if (!valid) throw new InvalidCsrError('the CSR signature does not verify');
  return csr;
}

function parseCaCertificate(caCertPem: string, caKeyPem: string, now: Date): x509.X509Certificate {
  const caCert = new x509.X509Certificate(caCertPem);
  const constraints = caCert.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) throw new Error('the issuing certificate is not a CA');
  if (now < caCert.notBefore || now > caCert.notAfter) throw new Error('the CA certificate is not valid now');
  if (!publicKeyDerOfPrivateKeyPem(caKeyPem).equals(Buffer.from(caCert.publicKey.rawData))) {
    throw new Error('the CA key does not belong to the CA certificate');
  }
  return caCert;
}

/**
 * Issues a certificate for the key of a CSR after checking the CSR's signature (proof that the
 * requester holds the key). The CA decides everything else: subject, validity, basicConstraints
 * CA:false, keyUsage digitalSignature, one extendedKeyUsage (clientAuth or serverAuth), SANs, and a
 * random 128-bit serial. Throws InvalidCsrError for a CSR to refuse.
 */
export async function signCsr(options: SignCsrOptions): Promise<string> {
  assertCommonName(options.subjectCommonName);
  assertValidityDays(options.validityDays);
  if (options.usage !== 'client' && options.usage !== 'server')
    throw new RangeError('usage must be client or server');
  const now = options.now ?? new Date();
  const altNames = subjectAltNames(options);
  const caCert = parseCaCertificate(options.caCertPem, options.caKeyPem, now);
  const csr = await parseAndVerifyCsr(options.csrPem);

  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [options.usage === 'client' ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
    caKeyId
      ? new x509.AuthorityKeyIdentifierExtension(caKeyId)
      : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
  ];
  if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames, false));

  const notBefore = new Date(Math.max(now.getTime() - backdateMs, caCert.notBefore.getTime()));
  const notAfter = new Date(
    Math.min(addDays(now, options.validityDays).getTime(), caCert.notAfter.getTime()),
  );
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: nameWithCommonName(options.subjectCommonName),
    issuer: caCert.subjectName,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey: await importSigningKeyPem(options.caKeyPem),
    signingAlgorithm,
    extensions,
  });
  return certificate.toString('pem');
}
