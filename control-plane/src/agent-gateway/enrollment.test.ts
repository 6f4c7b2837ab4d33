import { createHash, X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { RenewCertificateResponse } from '@wpcp/shared/agent-protocol';
import { createCertificateAuthority, createKeyPairAndCsr, signCsr } from '@wpcp/shared/pki';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  callEnroll,
  createNode,
  enrollAgent,
  startTestControlPlane,
  TestAgentStream,
  type TestControlPlane,
  waitFor,
} from '../testing/index.ts';

let cp: TestControlPlane;
let auth: string;
const streams: TestAgentStream[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    env: { WPCP_COMMAND_POLL_MS: '200', WPCP_NODE_CERT_VALIDITY_DAYS: '30' },
  });
  auth = await cp.login();
});
afterAll(async () => {
  for (const stream of streams) stream.close();
  await cp?.destroy();
});

function open(identity: { caPem: string; keyPem?: string; certPem?: string }) {
  const stream = new TestAgentStream(cp.grpcAddress, identity);
  streams.push(stream);
  return stream;
}

async function expectGrpcError(promise: Promise<unknown>, code: grpc.status) {
  await expect(promise).rejects.toMatchObject({ code });
}

describe('the gRPC listener', () => {
  it('sends its certificate chain with the CA, whose key hash is the pin in join tokens', async () => {
    const node = await createNode(cp, auth, 'chain-check');
    const pin = node.join_token.split('.')[2];
    // What an agent does before it trusts anything: read the chain over raw TLS and match the pin.
    const chain = await new Promise<tls.DetailedPeerCertificate>((resolve, reject) => {
      const socket = tls.connect(
        {
          host: '127.0.0.1',
          port: cp.gateway.port,
          servername: 'localhost',
          rejectUnauthorized: false,
          ALPNProtocols: ['h2'],
        },
        () => {
          resolve(socket.getPeerCertificate(true));
          socket.destroy();
        },
      );
      socket.on('error', reject);
    });
    const leaf = new X509Certificate(chain.raw);
    const issuer = new X509Certificate(chain.issuerCertificate.raw);
    expect(leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey)).toBe(true);
    const spki = issuer.publicKey.export({ type: 'spki', format: 'der' });
    expect(createHash('sha256').update(spki).digest('hex')).toBe(pin);
    expect(leaf.checkHost('localhost')).toBe('localhost');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });
});

describe('enrollment', () => {
  it('exchanges a valid join token and a CSR for a certificate signed by the CA, CN = node id', async () => {
    const node = await createNode(cp, auth, 'enroll-ok');
    const identity = await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
    expect(identity.nodeId).toBe(node.id);
    expect(identity.caPem).toBe(cp.agentCa.certPem);
    const certificate = new X509Certificate(identity.certPem);
    const ca = new X509Certificate(cp.agentCa.certPem);
    expect(certificate.checkIssued(ca) && certificate.verify(ca.publicKey)).toBe(true);
    // The CSR asked for CN=test-node; the CA decides the subject.
    expect(certificate.subject).toBe(`CN=${node.id}`);
    expect(certificate.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    expect(certificate.validToDate.getTime() - Date.now()).toBeGreaterThan(29 * 86_400_000);

    const row = await cp.db
      .selectFrom('nodes')
      .selectAll()
      .where('id', '=', node.id)
      .executeTakeFirstOrThrow();
    expect(row.certificate_serial).toBe(certificate.serialNumber.toLowerCase());
    expect(row.certificate_fingerprint).toBe(certificate.fingerprint256.replaceAll(':', '').toLowerCase());
    expect(row.enrolled_at).toBeInstanceOf(Date);
    expect(row.join_token_used_at).toBeInstanceOf(Date);
    expect(row.status).toBe('pending'); // active on its first Hello/heartbeat
    const api = (
      await cp.app.inject({ method: 'GET', url: `/api/nodes/${node.id}`, headers: { authorization: auth } })
    ).json();
    expect(api).toMatchObject({ status: 'pending', hostname: 'test-node', agent_version: '0.0.0-test' });
    expect(Date.parse(api.certificate_expires_at)).toBe(certificate.validToDate.getTime());
  });

  it('refuses a token a second time (one-time), even when two enrollments race', async () => {
    const node = await createNode(cp, auth, 'enroll-race');
    const { csrPem } = await createKeyPairAndCsr({ commonName: 'x' });
    const results = await Promise.allSettled(
      [1, 2, 3].map(() =>
        callEnroll(cp.grpcAddress, cp.agentCa.certPem, { joinToken: node.join_token, csrPem }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    }
    await expectGrpcError(
      callEnroll(cp.grpcAddress, cp.agentCa.certPem, { joinToken: node.join_token, csrPem }),
      grpc.status.UNAUTHENTICATED,
    );
  });

  it('refuses an expired token, an unknown one and a malformed one', async () => {
    const node = await createNode(cp, auth, 'enroll-expired');
    await cp.db
      .updateTable('nodes')
      .set({ join_token_expires_at: sql`now() - interval '1 second'` })
      .where('id', '=', node.id)
      .execute();
    const { csrPem } = await createKeyPairAndCsr({ commonName: 'x' });
    await expectGrpcError(
      callEnroll(cp.grpcAddress, cp.agentCa.certPem, { joinToken: node.join_token, csrPem }),
      grpc.status.UNAUTHENTICATED,
    );
    const forged = `wpcp1.${'A'.repeat(43)}.${node.join_token.split('.')[2]}`;
    for (const joinToken of [forged, 'nope', '', `${node.join_token}x`]) {
      await expectGrpcError(
        callEnroll(cp.grpcAddress, cp.agentCa.certPem, { joinToken, csrPem }),
        grpc.status.UNAUTHENTICATED,
      );
    }
    expect(
      (
        await cp.db
          .selectFrom('nodes')
          .select('enrolled_at')
          .where('id', '=', node.id)
          .executeTakeFirstOrThrow()
      ).enrolled_at,
    ).toBeNull();
  });

  it('refuses a bad CSR with INVALID_ARGUMENT and leaves the token usable', async () => {
    const node = await createNode(cp, auth, 'enroll-bad-csr');
    await expectGrpcError(
      callEnroll(cp.grpcAddress, cp.agentCa.certPem, { joinToken: node.join_token, csrPem: 'not a csr' }),
      grpc.status.INVALID_ARGUMENT,
    );
    // A CSR whose signature does not verify (its key is not the one that signed it).
    const { csrPem } = await createKeyPairAndCsr({ commonName: 'x' });
    const lines = csrPem.trim().split('\n');
    const body = Buffer.from(lines.slice(1, -1).join(''), 'base64');
    body[body.length - 5] = (body[body.length - 5] ?? 0) ^ 0xff;
    const tampered = `${lines[0]}\n${body.toString('base64')}\n${lines.at(-1)}\n`;
    await expectGrpcError(
      callEnroll(cp.grpcAddress, cp.agentCa.certPem, { joinToken: node.join_token, csrPem: tampered }),
      grpc.status.INVALID_ARGUMENT,
    );
    const identity = await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
    expect(identity.nodeId).toBe(node.id);
  });

  it('refuses to enroll a disabled node', async () => {
    const node = await createNode(cp, auth, 'enroll-disabled');
    await cp.app.inject({
      method: 'POST',
      url: `/api/nodes/${node.id}/disable`,
      headers: { authorization: auth },
    });
    const { csrPem } = await createKeyPairAndCsr({ commonName: 'x' });
    await expectGrpcError(
      callEnroll(cp.grpcAddress, cp.agentCa.certPem, { joinToken: node.join_token, csrPem }),
      grpc.status.PERMISSION_DENIED,
    );
  });
});

describe('Connect authentication', () => {
  it('accepts the enrolled certificate: Welcome names the node, and the node becomes active', async () => {
    const node = await createNode(cp, auth, 'connect-ok');
    const identity = await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
    const stream = open(identity);
    const welcome = await stream.open();
    expect(welcome).toMatchObject({ nodeId: node.id, heartbeatIntervalMs: 5000, maxConcurrentCommands: 4 });
    expect(Math.abs(welcome.serverTimeMs - Date.now())).toBeLessThan(5_000);
    const api = (
      await cp.app.inject({ method: 'GET', url: `/api/nodes/${node.id}`, headers: { authorization: auth } })
    ).json();
    expect(api.status).toBe('active');
    expect(cp.gateway.registry.get(node.id)?.isOpen).toBe(true);
  });

  it('refuses a certificate from another CA, naming itself as the same node', async () => {
    const node = await createNode(cp, auth, 'connect-stranger');
    await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
    const otherCa = await createCertificateAuthority({ commonName: 'wpcp agent CA', validityDays: 30 });
    const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: node.id });
    const certPem = await signCsr({
      caCertPem: otherCa.certPem,
      caKeyPem: otherCa.keyPem,
      csrPem,
      subjectCommonName: node.id,
      validityDays: 1,
      usage: 'client',
    });
    const stream = open({ caPem: cp.agentCa.certPem, keyPem, certPem });
    stream.hello();
    expect((await stream.ended).code).toBe(grpc.status.UNAUTHENTICATED);
    expect(cp.gateway.registry.get(node.id)).toBeUndefined();
  });

  it('refuses Connect without a client certificate', async () => {
    const stream = open({ caPem: cp.agentCa.certPem });
    stream.hello();
    const status = await stream.ended;
    expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(status.details).toMatch(/client certificate/);
  });

  it('refuses a CA-signed certificate that is not the node’s current one', async () => {
    const node = await createNode(cp, auth, 'connect-replaced');
    const identity = await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
    // A second certificate for the same node id from our CA, never recorded (as if stolen from a backup).
    const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: node.id });
    const certPem = await signCsr({
      caCertPem: cp.agentCa.certPem,
      caKeyPem: cp.agentCa.keyPem,
      csrPem,
      subjectCommonName: node.id,
      validityDays: 1,
      usage: 'client',
    });
    const stream = open({ caPem: identity.caPem, keyPem, certPem });
    stream.hello();
    expect((await stream.ended).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('cuts a disabled node off at once and refuses it until it is enabled', async () => {
    const node = await createNode(cp, auth, 'connect-disabled');
    const identity = await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
    const stream = open(identity);
    await stream.open();
    const started = Date.now();
    const res = await cp.app.inject({
      method: 'POST',
      url: `/api/nodes/${node.id}/disable`,
      headers: { authorization: auth },
    });
    expect(res.json().status).toBe('disabled');
    expect((await stream.ended).code).toBe(grpc.status.PERMISSION_DENIED);
    expect(Date.now() - started).toBeLessThan(3_000);

    const again = open(identity);
    again.hello();
    expect((await again.ended).code).toBe(grpc.status.PERMISSION_DENIED);

    await cp.app.inject({
      method: 'POST',
      url: `/api/nodes/${node.id}/enable`,
      headers: { authorization: auth },
    });
    const back = open(identity);
    await back.open();
    expect(
      (
        await cp.app.inject({ method: 'GET', url: `/api/nodes/${node.id}`, headers: { authorization: auth } })
      ).json().status,
    ).toBe('active');
  });

  it('renews the certificate over the stream; the old one stays accepted until the new one is used', async () => {
    const node = await createNode(cp, auth, 'connect-renew');
    const identity = await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
    const stream = open(identity);
    await stream.open();
    const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: 'whatever' });
    stream.send({ $case: 'renewCertificateRequest', value: { csrPem } });
    const { certificatePem } = (await stream.next('renewCertificateResponse')) as RenewCertificateResponse;
    const renewed = new X509Certificate(certificatePem);
    expect(renewed.subject).toBe(`CN=${node.id}`);
    const row = await cp.db
      .selectFrom('nodes')
      .selectAll()
      .where('id', '=', node.id)
      .executeTakeFirstOrThrow();
    expect(row.certificate_serial).toBe(renewed.serialNumber.toLowerCase());
    expect(row.previous_certificate_serial).toBe(
      new X509Certificate(identity.certPem).serialNumber.toLowerCase(),
    );
    stream.close();

    // The renewal answer could have been lost: the old certificate still connects...
    const old = open(identity);
    await old.open();
    old.close();
    // ...until the new one has been used once.
    const fresh = open({ caPem: identity.caPem, keyPem, certPem: certificatePem });
    await fresh.open();
    const after = await cp.db
      .selectFrom('nodes')
      .selectAll()
      .where('id', '=', node.id)
      .executeTakeFirstOrThrow();
    expect(after.previous_certificate_serial).toBeNull();
    const stale = open(identity);
    stale.hello();
    expect((await stale.ended).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('ends a stream that does not start with Hello', async () => {
    const node = await createNode(cp, auth, 'connect-no-hello');
    const identity = await enrollAgent(cp.grpcAddress, cp.agentCa.certPem, node.join_token);
    const stream = open(identity);
    stream.heartbeat();
    expect((await stream.ended).code).toBe(grpc.status.INVALID_ARGUMENT);
    await waitFor(
      async () => (cp.gateway.registry.get(node.id) ? undefined : true),
      2_000,
      'no registered stream',
    );
  });
});
