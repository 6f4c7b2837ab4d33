/**
 * The PEMs work where they are used: Node's tls module and grpc-js, with mutual authentication.
 * Listens on 127.0.0.1, port 0.
 */
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentServiceClient, type AgentServiceServer, AgentServiceService } from '../agent-protocol/index.ts';
import { type CertificateAuthority, createCertificateAuthority } from './certificate-authority.ts';
import { createKeyPairAndCsr } from './key-pair-and-csr.ts';
import { signCsr } from './sign-csr.ts';

interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

async function issue(
  ca: CertificateAuthority,
  commonName: string,
  usage: 'client' | 'server',
): Promise<KeyAndCert> {
  const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName });
  const names = usage === 'server' ? { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] } : {};
  const certPem = await signCsr({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem,
    subjectCommonName: commonName,
    validityDays: 1,
    usage,
    ...names,
  });
  return { keyPem, certPem };
}

let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let server: KeyAndCert;
let agent: KeyAndCert;
let strangerAgent: KeyAndCert;
let serverAsClient: KeyAndCert;

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'wpcp agent CA', validityDays: 30 });
  otherCa = await createCertificateAuthority({ commonName: 'wpcp agent CA', validityDays: 30 });
  server = await issue(ca, 'control-plane', 'server');
  agent = await issue(ca, 'node-7f3a', 'client');
  strangerAgent = await issue(otherCa, 'node-7f3a', 'client');
  serverAsClient = await issue(ca, 'node-7f3a', 'server');
});

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('mutual TLS with node:tls', () => {
  /** authorizationError of each client a lenient server let through, to show why a strict one refuses. */
  let verifyErrors: (string | undefined)[] = [];

  /**
   * `strict` is the production setting (handshakes with a bad client certificate are dropped). A
   * lenient server accepts them and records why they failed verification.
   */
  async function startTlsServer(strict = true): Promise<number> {
    verifyErrors = [];
    const tlsServer = tls.createServer(
      {
        key: server.keyPem,
        cert: server.certPem,
        ca: [ca.certPem],
        requestCert: true,
        rejectUnauthorized: strict,
      },
      (socket) => {
        if (!socket.authorized) {
          verifyErrors.push(String(socket.authorizationError));
          socket.destroy();
          return;
        }
        socket.end(`hello ${socket.getPeerCertificate().subject.CN}`);
      },
    );
    tlsServer.on('tlsClientError', () => {}); // refused handshakes are expected here
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => tlsServer.close());
    return (tlsServer.address() as AddressInfo).port;
  }

  /** Connects, and resolves with everything the server wrote, or rejects with the TLS error. */
  function talk(port: number, client: Partial<KeyAndCert>, trusted = ca.certPem): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        ca: [trusted],
        key: client.keyPem,
        cert: client.certPem,
      });
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        received += chunk;
      });
      socket.on('end', () => (received ? resolve(received) : reject(new Error('closed without an answer'))));
      socket.on('error', reject);
    });
  }

  it('succeeds with a client certificate from the CA, and the server sees the node id', async () => {
    const port = await startTlsServer();
    expect(await talk(port, agent)).toBe('hello node-7f3a');
  });

  it('refuses a client certificate from another CA', async () => {
    const port = await startTlsServer();
    await expect(talk(port, strangerAgent)).rejects.toThrow('closed without an answer');
    await expect(talk(await startTlsServer(false), strangerAgent)).rejects.toThrow();
    expect(verifyErrors).toEqual(['UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
  });

  it('refuses a client without a certificate', async () => {
    const port = await startTlsServer();
    await expect(talk(port, {})).rejects.toThrow(/certificate required/);
  });

  it('refuses a server certificate presented as a client certificate (extendedKeyUsage)', async () => {
    const port = await startTlsServer();
    await expect(talk(port, serverAsClient)).rejects.toThrow('closed without an answer');
    await expect(talk(await startTlsServer(false), serverAsClient)).rejects.toThrow();
    expect(verifyErrors).toEqual(['INVALID_PURPOSE']);
  });

  it('lets the agent refuse a server whose certificate is not from the pinned CA', async () => {
    const port = await startTlsServer();
    await expect(talk(port, agent, otherCa.certPem)).rejects.toThrow(
      /self-signed certificate in certificate chain/,
    );
  });
});

describe('mutual TLS with grpc-js', () => {
  async function startGrpcServer(): Promise<string> {
    const grpcServer = new grpc.Server();
    const implementation: AgentServiceServer = {
      enroll(call, callback) {
        const commonName = call.getAuthContext().sslPeerCertificate?.subject.CN;
        callback(null, { nodeId: String(commonName), certificatePem: '', caCertificatePem: '' });
      },
      connect(call) {
        call.end();
      },
    };
    grpcServer.addService(AgentServiceService, implementation);
    const credentials = grpc.ServerCredentials.createSsl(
      Buffer.from(ca.certPem),
      [{ private_key: Buffer.from(server.keyPem), cert_chain: Buffer.from(server.certPem) }],
      true,
    );
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', credentials, (error, boundPort) =>
        error ? reject(error) : resolve(boundPort),
      ),
    );
    cleanups.push(() => grpcServer.forceShutdown());
    return `127.0.0.1:${port}`;
  }

  function enroll(address: string, client: KeyAndCert): Promise<string> {
    const credentials = grpc.credentials.createSsl(
      Buffer.from(ca.certPem),
      Buffer.from(client.keyPem),
      Buffer.from(client.certPem),
    );
    // SNI must be a name, not an IP address (RFC 6066); the server certificate has both.
    const stub = new AgentServiceClient(address, credentials, {
      'grpc.ssl_target_name_override': 'localhost',
    });
    cleanups.push(() => stub.close());
    const deadline = new Date(Date.now() + 5000);
    return new Promise((resolve, reject) =>
      stub.enroll(
        { joinToken: '', csrPem: '', agentVersion: '', hostname: '' },
        new grpc.Metadata(),
        { deadline },
        (error, response) => (error ? reject(error) : resolve(response.nodeId)),
      ),
    );
  }

  it('identifies the node by its certificate (call.getAuthContext().sslPeerCertificate)', async () => {
    const address = await startGrpcServer();
    expect(await enroll(address, agent)).toBe('node-7f3a');
  });

  it('refuses a client certificate from another CA', async () => {
    const address = await startGrpcServer();
    await expect(enroll(address, strangerAgent)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});
