/**
 * The one place that wires @peculiar/x509 to Node's WebCrypto. Every other file of the module imports
 * `x509` from here, so the provider is set before any certificate code runs. reflect-metadata must be
 * loaded before @peculiar/x509 (its dependency injection reads decorator metadata).
 */
import 'reflect-metadata';
import { createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

export { x509 };

/** The only key type the module makes or accepts: ECDSA on P-256 (prime256v1, secp256r1). */
export const keyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
/** ECDSA with SHA-256, the signature algorithm of every certificate and CSR made here. */
export const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;

const dayMs = 24 * 60 * 60 * 1000;
/** Certificates start this long before "now", so a node whose clock is a little behind accepts them. */
export const backdateMs = 5 * 60 * 1000;
/** Longest validity accepted for any certificate, CA included (about 10 years). */
export const maxValidityDays = 3650;

export function generateKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify']);
}

/** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the format Node's tls and grpc-js read. */
export async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Reads a PKCS#8 PEM P-256 private key for signing. */
export function importSigningKeyPem(pem: string): Promise<webcrypto.CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, keyAlgorithm, false, ['sign']);
}

/** DER SubjectPublicKeyInfo of the public half of a PEM private key. */
export function publicKeyDerOfPrivateKeyPem(pem: string): Buffer {
  return createPublicKey(pem).export({ type: 'spki', format: 'der' });
}

/**
 * A subject or issuer name holding only a common name, encoded as UTF8String. Built from an object,
 * not from a string, so the value is never parsed (x509's string and JSON forms give meaning to
 * `,`, `+`, `"` and a leading `#`).
 */
export function nameWithCommonName(commonName: string): x509.Name {
  return new x509.Name([{ CN: [{ utf8String: commonName }] }]);
}

/** A random positive 128-bit serial number as hex (RFC 5280: positive, at most 20 octets). */
export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  // Clear the sign bit (positive) and set the next one (no leading zero octet, fixed length).
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

export function assertCommonName(commonName: string): void {
  // X.520 upper bound is 64 characters; control characters (C0, DEL, C1) have no place in an identity.
  if (
    typeof commonName !== 'string' ||
    commonName.length === 0 ||
    commonName.length > 64 ||
    /\p{Cc}/u.test(commonName)
  ) {
    throw new RangeError('commonName must be 1 to 64 characters without control characters');
  }
}

export function assertValidityDays(validityDays: number): void {
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > maxValidityDays) {
    throw new RangeError(`validityDays must be an integer from 1 to ${maxValidityDays}`);
  }
}

export function addDays(date: Date, days: number): Date {
  return new Date(date.getTime() + days * dayMs);
}
