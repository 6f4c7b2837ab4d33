/** Helpers for the PKI tests only. */
import { X509Certificate } from 'node:crypto';
import { x509 } from './crypto.ts';

/** Parses a PEM certificate with Node's own X.509 code (OpenSSL), independent of @peculiar/x509. */
export function nodeCertificate(pem: string): X509Certificate {
  return new X509Certificate(pem);
}

/** The critical flag and parsed value of every extension, keyed by name. */
export function extensionsOf(pem: string): Map<string, x509.Extension> {
  const certificate = new x509.X509Certificate(pem);
  return new Map(certificate.extensions.map((extension) => [extension.type, extension]));
}

/** Re-encodes a PEM block after changing its DER bytes. */
export function mutatePem(pem: string, mutate: (der: Buffer) => void): string {
  const label = /-----BEGIN ([A-Z ]+)-----/.exec(pem)?.[1];
  if (!label) throw new Error('not PEM');
  const der = Buffer.from(x509.PemConverter.decodeFirst(pem));
  mutate(der);
  return x509.PemConverter.encode(der, label);
}
