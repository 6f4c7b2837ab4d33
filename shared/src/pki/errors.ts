/**
 * A certificate signing request the CA refuses: not a PEM PKCS#10 request, a key that is not ECDSA
 * P-256, or a signature that does not verify (tampered with, or not made by the key it carries).
 * The agent gateway answers it with INVALID_ARGUMENT; anything else thrown by signCsr is a
 * server-side problem (bad CA material or parameters).
 */
export class InvalidCsrError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidCsrError';
  }
}
