import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { experimental } from '@grpc/grpc-js';
import { createKeyPairAndCsr, signCsr } from '@wpcp/shared/pki';
import type { AgentCa } from './agent-ca.ts';

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/**
 * Hands grpc-js the server's certificate chain and the CA that client certificates are checked
 * against, and pushes a new server certificate to the listening server when it is renewed.
 * Listeners are called asynchronously: grpc-js registers its own watcher only after adding them.
 */
export class StaticCertificateProvider implements experimental.CertificateProvider {
  #ca: experimental.CaCertificateUpdate | null = null;
  #identity: experimental.IdentityCertificateUpdate | null = null;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();

  setCa(caPem: string): void {
    const update = { caCertificate: Buffer.from(caPem) };
    this.#ca = update;
    for (const listener of this.#caListeners) listener(update);
  }

  /** `chainPem` is the leaf followed by the CA: agents read the CA from the chain to check their pin. */
  setIdentity(chainPem: string, keyPem: string): void {
    const update = { certificate: Buffer.from(chainPem), privateKey: Buffer.from(keyPem) };
    this.#identity = update;
    for (const listener of this.#identityListeners) listener(update);
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    setImmediate(() => {
      if (this.#caListeners.has(listener) && this.#ca) listener(this.#ca);
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    setImmediate(() => {
      if (this.#identityListeners.has(listener) && this.#identity) listener(this.#identity);
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
  }
}

export interface ServerIdentity {
  chainPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

const SERVER_COMMON_NAME = 'wpcp-control-plane';
export const SERVER_CERT_VALIDITY_DAYS = 90;

/** A fresh key and a server certificate from the agent CA for the names agents dial. */
export async function issueServerIdentity(
  ca: AgentCa,
  names: { dnsNames: string[]; ipAddresses: string[] },
): Promise<ServerIdentity> {
  const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: SERVER_COMMON_NAME });
  const certPem = await signCsr({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem,
    subjectCommonName: SERVER_COMMON_NAME,
    validityDays: SERVER_CERT_VALIDITY_DAYS,
    usage: 'server',
    dnsNames: names.dnsNames,
    ipAddresses: names.ipAddresses,
  });
  const certificate = new X509Certificate(certPem);
  return {
    chainPem: `${certPem.trim()}\n${ca.certPem.trim()}\n`,
    keyPem,
    notBefore: certificate.validFromDate,
    notAfter: certificate.validToDate,
  };
}

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const NODE_ID_CN = /^CN=([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

export type PeerIdentity =
  | { ok: true; nodeId: string; serial: string; notAfter: Date }
  | { ok: false; reason: string };

/**
 * Checks the client certificate of a stream ourselves, whatever the TLS layer decided: issued and
 * signed by our CA, valid now, a client (not CA, not server) certificate, whose common name is a
 * node id. The node is identified by this certificate only, never by anything it sends.
 */
export function verifyPeerCertificate(
  peer: PeerCertificate | undefined,
  ca: AgentCa,
  now = new Date(),
): PeerIdentity {
  if (!peer?.raw) return { ok: false, reason: 'no valid client certificate was presented' };
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(peer.raw);
  } catch {
    return { ok: false, reason: 'the client certificate cannot be parsed' };
  }
  if (!certificate.checkIssued(ca.certificate) || !certificate.verify(ca.certificate.publicKey)) {
    return { ok: false, reason: 'the client certificate was not issued by this control plane' };
  }
  if (now < certificate.validFromDate || now > certificate.validToDate) {
    return { ok: false, reason: 'the client certificate is expired or not yet valid' };
  }
  if (certificate.ca || !(certificate.keyUsage ?? []).includes(CLIENT_AUTH_OID)) {
    return { ok: false, reason: 'the certificate is not a node client certificate' };
  }
  const nodeId = NODE_ID_CN.exec(certificate.subject.trim())?.[1];
  if (!nodeId) return { ok: false, reason: 'the client certificate does not name a node' };
  return {
    ok: true,
    nodeId,
    serial: certificate.serialNumber.toLowerCase(),
    notAfter: certificate.validToDate,
  };
}
