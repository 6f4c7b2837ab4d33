// First contact with a control plane the agent does not trust yet (kubeadm-style CA pinning).
//
// The agent opens a raw TLS connection WITHOUT verifying the server, only to read the certificate
// chain it presents (the server sends its leaf certificate and the CA). It keeps the one CA
// certificate whose public key hash equals the pin from the join token, and nothing else. From then
// on, every connection verifies the server normally against that CA (chain and host name), so a
// man in the middle without the CA's key can neither impersonate the server nor learn the token:
// the token is sent only on the verified channel.
import { X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { caCertificateHash } from '@wpcp/shared/pki';
import type { ServerAddress } from '../connection/address.ts';

export class TrustBootstrapError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TrustBootstrapError';
  }
}

export interface FetchPinnedCaOptions {
  address: ServerAddress;
  /** `sha256:<hex>` from the join token. */
  caHash: string;
  timeoutMs?: number;
}

/** The certificates the peer sent, leaf first, each once. */
function peerChain(socket: tls.TLSSocket): tls.DetailedPeerCertificate[] {
  const chain: tls.DetailedPeerCertificate[] = [];
  const seen = new Set<string>();
  let current: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  // A self-signed root names itself as its issuer; the fingerprint set ends the walk.
  while (current?.raw && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256);
    chain.push(current);
    current = current.issuerCertificate;
  }
  return chain;
}

/** Open a TLS connection without verification and return the peer's certificate chain (DER). */
function readPresentedChain(address: ServerAddress, timeoutMs: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: address.host,
      port: address.port,
      // Deliberately unverified: the chain is only read here, and trusted only through the pin.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      // SNI takes host names only (RFC 6066); Node warns when given an IP address.
      ...(address.isIp ? {} : { servername: address.host }),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TrustBootstrapError(`no TLS handshake with ${address.target} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const chain = peerChain(socket).map((cert) => cert.raw);
      socket.destroy();
      resolve(chain);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        new TrustBootstrapError(`cannot open a TLS connection to ${address.target}: ${err.message}`, {
          cause: err,
        }),
      );
    });
  });
}

/**
 * The PEM of the CA certificate the server presents whose public key matches `caHash`. Throws
 * TrustBootstrapError when the server cannot be reached or presents no such CA.
 */
export async function fetchPinnedCaCertificate(options: FetchPinnedCaOptions): Promise<string> {
  const chain = await readPresentedChain(options.address, options.timeoutMs ?? 15_000);
  if (chain.length === 0) {
    throw new TrustBootstrapError(`${options.address.target} presented no certificate`);
  }
  for (const der of chain) {
    const cert = new X509Certificate(der);
    if (caCertificateHash(cert.toString()) === options.caHash) {
      if (!cert.ca) {
        throw new TrustBootstrapError(
          `the certificate of ${options.address.target} matching the join token's CA hash is not a CA certificate`,
        );
      }
      return cert.toString();
    }
  }
  const hint =
    chain.length === 1
      ? ' (it sent only its own certificate: the control plane must send its CA certificate too)'
      : '';
  throw new TrustBootstrapError(
    `refusing ${options.address.target}: none of the ${chain.length} certificate(s) it presented matches the CA hash in the join token${hint}. ` +
      'Check the server address, or that the token comes from this control plane; this can also be an interception attempt.',
  );
}
