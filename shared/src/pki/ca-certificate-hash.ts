import { createHash } from 'node:crypto';
import { x509 } from './crypto.ts';

/**
 * The pin an operator hands to a new node with its join token: `sha256:<hex>` of the DER
 * SubjectPublicKeyInfo of the CA certificate, the same value as kubeadm's
 * discovery-token-ca-cert-hash (`openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum`).
 * Hashing the key rather than the certificate keeps the pin valid when the CA is re-issued with
 * the same key.
 */
export function caCertificateHash(caCertPem: string): string {
  const spki = Buffer.from(new x509.X509Certificate(caCertPem).publicKey.rawData);
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}
