// `wpcp-agent enroll`: exchange a one-time join token for the node's identity.
//
//   1. parse the token (secret + CA hash) and refuse an already enrolled state directory;
//   2. read the server's certificate chain over unverified TLS and keep the CA matching the pin
//      (trust-bootstrap.ts); nothing is written when it does not match;
//   3. make a new ECDSA P-256 key and a CSR; the key never leaves the node;
//   4. call Enroll over TLS verified against that CA (chain and host name), sending the token;
//   5. check the answer (certificate for our key, issued by the pinned CA, named after the node id)
//      and store the identity atomically (state/identity.ts).
import { lstat, rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { EnrollResponse } from '@wpcp/shared/agent-protocol';
import { caCertificateHash, certificateInfo, createKeyPairAndCsr } from '@wpcp/shared/pki';
import { parseServerAddress } from '../connection/address.ts';
import { createAgentClient, describeGrpcError, grpcCode } from '../connection/channel.ts';
import { JOURNAL_DIR_NAME } from '../journal/journal.ts';
import { exists } from '../state/files.ts';
import {
  type EnrollmentState,
  issuedBy,
  keyMatchesCertificate,
  readEnrollmentStateSync,
  saveEnrollment,
} from '../state/identity.ts';
import { agentVersion } from '../system/stats.ts';
import { JoinTokenError, parseJoinToken } from './join-token.ts';
import { fetchPinnedCaCertificate, TrustBootstrapError } from './trust-bootstrap.ts';

export class EnrollError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EnrollError';
  }
}

export interface EnrollOptions {
  /** `host:port` of the control plane's gRPC listener; its certificate must carry `host`. */
  server: string;
  /** The join token (`wpcp1.<secret>.<cahash>`). */
  token: string;
  /** Absolute path of the state directory (created 0700 if missing). */
  stateDir: string;
  /** Enroll again over an enrolled state directory. */
  force?: boolean;
  hostname?: string;
  agentVersion?: string;
  timeoutMs?: number;
  /** Extra grpc-js channel options (tests). */
  channelOptions?: grpc.ChannelOptions;
}

export interface EnrollOutcome {
  nodeId: string;
  server: string;
  stateDir: string;
  certificateExpiresAt: Date;
  /** Where the journal of a previous identity was moved to (re-enrollment as another node). */
  archivedJournal?: string;
}

function callEnroll(
  client: ReturnType<typeof createAgentClient>,
  request: Parameters<ReturnType<typeof createAgentClient>['enroll']>[0],
  timeoutMs: number,
): Promise<EnrollResponse> {
  return new Promise((resolve, reject) => {
    client.enroll(request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

function explainEnrollFailure(err: unknown, server: string): EnrollError {
  const detail = describeGrpcError(err);
  switch (grpcCode(err)) {
    case grpc.status.UNAUTHENTICATED:
      return new EnrollError(
        `the control plane refused the join token (${detail}); join tokens are one-time and short-lived: create a new one`,
        { cause: err },
      );
    case grpc.status.INVALID_ARGUMENT:
      return new EnrollError(`the control plane refused the enrollment request (${detail})`, { cause: err });
    case grpc.status.UNAVAILABLE:
      return new EnrollError(
        `cannot enroll with ${server} (${detail}); check that HOST is one of the names in the server certificate (WPCP_GRPC_PUBLIC_NAMES)`,
        { cause: err },
      );
    case grpc.status.DEADLINE_EXCEEDED:
      return new EnrollError(`${server} did not answer the enrollment in time`, { cause: err });
    default:
      return new EnrollError(`enrollment with ${server} failed (${detail})`, { cause: err });
  }
}

function checkResponse(response: EnrollResponse, keyPem: string, pinnedCaPem: string, caHash: string): void {
  if (response.caCertificatePem && caCertificateHash(response.caCertificatePem) !== caHash) {
    throw new EnrollError('the control plane answered with a CA certificate that does not match the pin');
  }
  if (!response.certificatePem) throw new EnrollError('the control plane answered without a certificate');
  if (!keyMatchesCertificate(keyPem, response.certificatePem)) {
    throw new EnrollError('the certificate the control plane issued is not for this node key');
  }
  if (!issuedBy(response.certificatePem, pinnedCaPem)) {
    throw new EnrollError('the certificate the control plane issued is not signed by the pinned CA');
  }
  if (!response.nodeId) throw new EnrollError('the control plane answered without a node id');
  const commonName = certificateInfo(response.certificatePem).commonName;
  if (commonName !== response.nodeId) {
    throw new EnrollError(
      `the certificate names node ${JSON.stringify(commonName)}, not ${JSON.stringify(response.nodeId)}`,
    );
  }
}

/** A CSR subject is informational (the CA names the certificate); keep it valid. */
function csrCommonName(hostname: string): string {
  const cleaned = hostname.replace(/\p{Cc}/gu, '').slice(0, 64);
  return cleaned.length > 0 ? cleaned : 'wpcp-node';
}

export async function enroll(options: EnrollOptions): Promise<EnrollOutcome> {
  let token: ReturnType<typeof parseJoinToken>;
  let address: ReturnType<typeof parseServerAddress>;
  try {
    token = parseJoinToken(options.token);
    address = parseServerAddress(options.server);
  } catch (err) {
    throw new EnrollError((err as Error).message, { cause: err });
  }
  if (!path.isAbsolute(options.stateDir))
    throw new EnrollError('the state directory must be an absolute path');
  const stateDir = options.stateDir;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const hostname = options.hostname ?? os.hostname();

  let previous: EnrollmentState | undefined;
  try {
    previous = readEnrollmentStateSync(stateDir);
  } catch (err) {
    if (!options.force) throw new EnrollError(`${(err as Error).message}; use --force to enroll again`);
  }
  if (previous && !options.force) {
    throw new EnrollError(
      `${stateDir} is already enrolled as node ${previous.nodeId} (server ${previous.server}); use --force to enroll again`,
    );
  }

  // Checked before the token is spent: a state directory we could not write to after all.
  const existing = await lstat(stateDir).catch(() => undefined);
  if (existing && !existing.isDirectory()) throw new EnrollError(`${stateDir} exists and is not a directory`);

  let caPem: string;
  try {
    caPem = await fetchPinnedCaCertificate({ address, caHash: token.caHash, timeoutMs });
  } catch (err) {
    if (err instanceof TrustBootstrapError || err instanceof JoinTokenError) {
      throw new EnrollError(err.message, { cause: err });
    }
    throw err;
  }

  const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: csrCommonName(hostname) });
  const client = createAgentClient({ address, caPem, channelOptions: options.channelOptions });
  let response: EnrollResponse;
  try {
    response = await callEnroll(
      client,
      {
        joinToken: token.token,
        csrPem,
        agentVersion: options.agentVersion ?? agentVersion(),
        hostname,
      },
      timeoutMs,
    );
  } catch (err) {
    throw explainEnrollFailure(err, address.target);
  } finally {
    client.close();
  }
  checkResponse(response, keyPem, caPem, token.caHash);

  // Results journaled for another node would be refused by the control plane forever: keep them
  // aside for inspection instead of resending them under the new identity.
  let archivedJournal: string | undefined;
  const journalDir = path.join(stateDir, JOURNAL_DIR_NAME);
  if (previous && previous.nodeId !== response.nodeId && (await exists(journalDir))) {
    archivedJournal = `${journalDir}.previous-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(journalDir, archivedJournal);
  }

  await saveEnrollment(stateDir, {
    nodeId: response.nodeId,
    server: address.target,
    keyPem,
    certPem: response.certificatePem,
    caPem,
  });
  return {
    nodeId: response.nodeId,
    server: address.target,
    stateDir,
    certificateExpiresAt: certificateInfo(response.certificatePem).notAfter,
    ...(archivedJournal === undefined ? {} : { archivedJournal }),
  };
}
