import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { createCertificateAuthority, createKeyPairAndCsr, signCsr } from '@wpcp/shared/pki';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AgentCa } from './agent-ca.ts';
import { verifyPeerCertificate } from './tls.ts';

const nodeId = '5b0e8a43-6d0e-4f1e-9a53-0c2f0d6b7e21';
let ca: AgentCa;
let otherCaPem: { certPem: string; keyPem: string };

async function issue(
  issuer: { certPem: string; keyPem: string },
  options: { commonName?: string; usage?: 'client' | 'server'; validityDays?: number; now?: Date } = {},
) {
  const { csrPem } = await createKeyPairAndCsr({ commonName: 'x' });
  return signCsr({
    caCertPem: issuer.certPem,
    caKeyPem: issuer.keyPem,
    csrPem,
    subjectCommonName: options.commonName ?? nodeId,
    validityDays: options.validityDays ?? 1,
    usage: options.usage ?? 'client',
    ...(options.usage === 'server' ? { dnsNames: ['localhost'] } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
}

const peer = (pem: string) => ({ raw: new X509Certificate(pem).raw }) as PeerCertificate;

beforeAll(async () => {
  const created = await createCertificateAuthority({ commonName: 'wpcp agent CA', validityDays: 30 });
  ca = { ...created, certificate: new X509Certificate(created.certPem), pin: '' };
  otherCaPem = await createCertificateAuthority({ commonName: 'wpcp agent CA', validityDays: 30 });
});

describe('verifyPeerCertificate', () => {
  it('identifies the node by the common name of a client certificate from our CA', async () => {
    const pem = await issue(ca);
    expect(verifyPeerCertificate(peer(pem), ca)).toEqual({
      ok: true,
      nodeId,
      serial: new X509Certificate(pem).serialNumber.toLowerCase(),
      notAfter: new X509Certificate(pem).validToDate,
    });
  });

  it('refuses no certificate, another CA, a server certificate, the CA itself and a non-node name', async () => {
    expect(verifyPeerCertificate(undefined, ca).ok).toBe(false);
    expect(verifyPeerCertificate({} as PeerCertificate, ca).ok).toBe(false);
    expect(verifyPeerCertificate(peer(await issue(otherCaPem)), ca)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not issued by this control plane/),
    });
    expect(verifyPeerCertificate(peer(await issue(ca, { usage: 'server' })), ca).ok).toBe(false);
    expect(verifyPeerCertificate(peer(ca.certPem), ca).ok).toBe(false);
    expect(
      verifyPeerCertificate(peer(await issue(ca, { commonName: 'wpcp-control-plane' })), ca),
    ).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/does not name a node/),
    });
  });

  it('refuses a certificate outside its validity', async () => {
    const pem = await issue(ca, { validityDays: 1 });
    const later = new Date(Date.now() + 2 * 86_400_000);
    expect(verifyPeerCertificate(peer(pem), ca, later)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/expired/),
    });
  });
});
