// Certificate renewal over the authenticated stream (Teleport/Nomad style): once the client
// certificate has used about two-thirds of its lifetime, the agent makes a new key, sends a CSR in
// RenewCertificateRequest, and stores the new key and certificate (state/identity.ts, crash-safe)
// when RenewCertificateResponse arrives. The current stream keeps its certificate; the next
// connection uses the new one. A refused or lost request is tried again later.
import type { RenewCertificateRequest } from '@wpcp/shared/agent-protocol';
import { certificateInfo, createKeyPairAndCsr } from '@wpcp/shared/pki';
import type { Logger } from 'pino';
import { issuedBy, keyMatchesCertificate, saveRenewedCertificate } from '../state/identity.ts';

export interface CertificateLifetime {
  notBefore: Date;
  notAfter: Date;
}

export interface RenewalOptions {
  stateDir: string;
  logger: Logger;
  /** Fraction of the lifetime after which the agent renews (default 2/3). */
  renewAtFraction?: number;
  /** Wait between two requests when no answer came (default 10 minutes). */
  retryIntervalMs?: number;
}

export class CertificateRenewal {
  readonly #stateDir: string;
  readonly #logger: Logger;
  readonly #fraction: number;
  readonly #retryIntervalMs: number;
  #pendingKeyPem: string | undefined;
  #lastRequestAt = Number.NEGATIVE_INFINITY;
  #creating = false;

  constructor(options: RenewalOptions) {
    this.#stateDir = options.stateDir;
    this.#logger = options.logger;
    this.#fraction = options.renewAtFraction ?? 2 / 3;
    this.#retryIntervalMs = options.retryIntervalMs ?? 10 * 60_000;
  }

  /** When the certificate should be renewed. */
  renewAt(lifetime: CertificateLifetime): Date {
    const start = lifetime.notBefore.getTime();
    return new Date(start + (lifetime.notAfter.getTime() - start) * this.#fraction);
  }

  isDue(lifetime: CertificateLifetime, now = Date.now()): boolean {
    return now >= this.renewAt(lifetime).getTime();
  }

  /**
   * A request to send now, or undefined when none is needed (not due, one is being made, or one
   * was sent less than the retry interval ago).
   */
  async maybeCreateRequest(
    lifetime: CertificateLifetime,
    now = Date.now(),
  ): Promise<RenewCertificateRequest | undefined> {
    if (!this.isDue(lifetime, now) || this.#creating) return undefined;
    if (now - this.#lastRequestAt < this.#retryIntervalMs) return undefined;
    this.#creating = true;
    try {
      const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: 'wpcp-node' });
      this.#pendingKeyPem = keyPem;
      this.#lastRequestAt = now;
      this.#logger.info(
        { notAfter: lifetime.notAfter.toISOString() },
        'client certificate past its renewal point; requesting a new one',
      );
      return { csrPem };
    } finally {
      this.#creating = false;
    }
  }

  /**
   * Check and store a renewed certificate. Returns its lifetime, or undefined when it is refused
   * (not for the pending key, not from the pinned CA, or for another node).
   */
  async complete(
    certificatePem: string,
    expected: { caPem: string; nodeId: string },
  ): Promise<CertificateLifetime | undefined> {
    const keyPem = this.#pendingKeyPem;
    if (keyPem === undefined) {
      this.#logger.warn('RenewCertificateResponse without a pending request; ignored');
      return undefined;
    }
    let problem: string | undefined;
    if (!keyMatchesCertificate(keyPem, certificatePem)) problem = 'it is not for the new key';
    else if (!issuedBy(certificatePem, expected.caPem)) problem = 'it is not issued by the pinned CA';
    else if (certificateInfo(certificatePem).commonName !== expected.nodeId)
      problem = 'it names another node';
    if (problem) {
      this.#logger.error(`refusing the renewed certificate: ${problem}`);
      return undefined;
    }
    await saveRenewedCertificate(this.#stateDir, { keyPem, certPem: certificatePem });
    this.#pendingKeyPem = undefined;
    const info = certificateInfo(certificatePem);
    this.#logger.info(
      { notAfter: info.notAfter.toISOString(), serial: info.serialHex },
      'stored the renewed client certificate; the next connection uses it',
    );
    return { notBefore: info.notBefore, notAfter: info.notAfter };
  }
}
