import { createHash } from 'node:crypto';
import { x509 } from './crypto.ts';

export interface CertificateInfo {
  /** The subject common name (the node id for agent certificates); empty if there is none. */
  readonly commonName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Serial number, lowercase hex. */
  readonly serialHex: string;
  /** SHA-256 of the DER certificate, lowercase hex without separators. */
  readonly fingerprintSha256: string;
}

/** What the control plane records about a certificate it issued or was presented with. */
export function certificateInfo(certPem: string): CertificateInfo {
  const certificate = new x509.X509Certificate(certPem);
  return {
    commonName: certificate.subjectName.getField('CN')[0] ?? '',
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    serialHex: certificate.serialNumber.toLowerCase(),
    fingerprintSha256: createHash('sha256').update(Buffer.from(certificate.rawData)).digest('hex'),
  };
}
