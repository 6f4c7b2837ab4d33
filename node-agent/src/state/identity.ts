// The node's identity in the state directory, written by `wpcp-agent enroll` and read by `run`:
//
//   <stateDir>/            0700
//     state.json           0600  {version, nodeId, server, caHash, enrolledAt, renewedAt?}; written
//                                last: a directory is enrolled exactly when this file exists
//     node-key.pem         0600  the node's private key (PKCS#8, ECDSA P-256); never leaves the node
//     node-cert.pem        0600  its client certificate, signed by the control plane's CA
//     ca-cert.pem          0600  the pinned CA: the only issuer the agent trusts for the server
//     journal/             0700  the command journal (journal/journal.ts)
//
// Renewal replaces the key and the certificate, which must always match. It stages both as
// `node-key.pem.next` and `node-cert.pem.next`, then renames the key, then the certificate. A crash
// between the two renames leaves a new key with the old certificate and the new certificate staged:
// loadIdentity() finishes the job (roll forward). A crash before the first rename leaves a complete
// old pair, and the staged files are discarded.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { caCertificateHash } from '@wpcp/shared/pki';
import { z } from 'zod';
import { ensurePrivateDir, exists, fsyncDir, writeFileAtomic } from './files.ts';

export const STATE_FILE = 'state.json';
export const KEY_FILE = 'node-key.pem';
export const CERT_FILE = 'node-cert.pem';
export const CA_FILE = 'ca-cert.pem';
const NEXT_SUFFIX = '.next';

export const EnrollmentState = z.strictObject({
  version: z.literal(1),
  nodeId: z.string().min(1),
  /** The `host:port` the agent enrolled with; the default `server` of `wpcp-agent run`. */
  server: z.string().min(1),
  /** `sha256:<hex>` of the pinned CA's public key (as in the join token). */
  caHash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  enrolledAt: z.iso.datetime(),
  renewedAt: z.iso.datetime().optional(),
});
export type EnrollmentState = z.infer<typeof EnrollmentState>;

export interface Identity {
  state: EnrollmentState;
  keyPem: string;
  certPem: string;
  caPem: string;
  notBefore: Date;
  notAfter: Date;
}

export class IdentityError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IdentityError';
  }
}

function parseState(text: string, file: string): EnrollmentState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new IdentityError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = EnrollmentState.safeParse(data);
  if (!parsed.success) throw new IdentityError(`${file} is not a valid enrollment state`);
  return parsed.data;
}

/**
 * The enrollment state, or undefined when the directory is not enrolled. Synchronous, for the
 * configuration loader (the default server). Throws IdentityError for an unreadable or bad file.
 */
export function readEnrollmentStateSync(stateDir: string): EnrollmentState | undefined {
  const file = path.join(stateDir, STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IdentityError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseState(text, file);
}

export async function isEnrolled(stateDir: string): Promise<boolean> {
  return exists(path.join(stateDir, STATE_FILE));
}

/** Whether the private key belongs to the certificate. */
export function keyMatchesCertificate(keyPem: string, certPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** Whether `certPem` was issued by (and is signed by) the CA certificate `caPem`. */
export function issuedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return ca.ca && cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function readRequired(file: string): Promise<string> {
  const text = await readOptional(file);
  if (text === undefined) throw new IdentityError(`${file} is missing; enroll the node again`);
  return text;
}

/** Complete or discard a renewal that a crash interrupted (see the header). */
async function recoverRenewal(stateDir: string, keyPem: string, certPem: string): Promise<string> {
  const keyNext = path.join(stateDir, KEY_FILE + NEXT_SUFFIX);
  const certNext = path.join(stateDir, CERT_FILE + NEXT_SUFFIX);
  if (keyMatchesCertificate(keyPem, certPem)) {
    // A renewal that never reached its first rename: the staged files are unused.
    await unlink(keyNext).catch(() => {});
    await unlink(certNext).catch(() => {});
    return certPem;
  }
  const staged = await readOptional(certNext);
  if (staged !== undefined && keyMatchesCertificate(keyPem, staged)) {
    await rename(certNext, path.join(stateDir, CERT_FILE));
    await fsyncDir(stateDir);
    return staged;
  }
  throw new IdentityError(
    `${path.join(stateDir, KEY_FILE)} does not belong to ${path.join(stateDir, CERT_FILE)}; enroll the node again`,
  );
}

/** Read and check the node's identity. Throws IdentityError when the directory is not enrolled. */
export async function loadIdentity(stateDir: string): Promise<Identity> {
  const stateFile = path.join(stateDir, STATE_FILE);
  const stateText = await readOptional(stateFile);
  if (stateText === undefined) {
    throw new IdentityError(
      `${stateDir} is not enrolled (no ${STATE_FILE}); run: wpcp-agent enroll --server HOST:PORT --token TOKEN --state-dir ${stateDir}`,
    );
  }
  const state = parseState(stateText, stateFile);
  const keyPem = await readRequired(path.join(stateDir, KEY_FILE));
  const caPem = await readRequired(path.join(stateDir, CA_FILE));
  const certPem = await recoverRenewal(stateDir, keyPem, await readRequired(path.join(stateDir, CERT_FILE)));

  if (caCertificateHash(caPem) !== state.caHash) {
    throw new IdentityError(`${path.join(stateDir, CA_FILE)} is not the CA pinned at enrollment`);
  }
  if (!issuedBy(certPem, caPem)) {
    throw new IdentityError(`${path.join(stateDir, CERT_FILE)} was not issued by the pinned CA`);
  }
  const cert = new X509Certificate(certPem);
  return {
    state,
    keyPem,
    certPem,
    caPem,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

export interface SaveEnrollmentInput {
  nodeId: string;
  server: string;
  keyPem: string;
  certPem: string;
  caPem: string;
  now?: Date;
}

/** Store a fresh enrollment. state.json is written last: it is the commit point. */
export async function saveEnrollment(stateDir: string, input: SaveEnrollmentInput): Promise<EnrollmentState> {
  const state: EnrollmentState = {
    version: 1,
    nodeId: input.nodeId,
    server: input.server,
    caHash: caCertificateHash(input.caPem),
    enrolledAt: (input.now ?? new Date()).toISOString(),
  };
  await ensurePrivateDir(stateDir);
  // A re-enrollment (--force) must not look enrolled while its files are half replaced.
  await unlink(path.join(stateDir, STATE_FILE)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  await unlink(path.join(stateDir, KEY_FILE + NEXT_SUFFIX)).catch(() => {});
  await unlink(path.join(stateDir, CERT_FILE + NEXT_SUFFIX)).catch(() => {});
  await writeFileAtomic(stateDir, KEY_FILE, input.keyPem, { syncDir: false });
  await writeFileAtomic(stateDir, CERT_FILE, input.certPem, { syncDir: false });
  await writeFileAtomic(stateDir, CA_FILE, input.caPem, { syncDir: false });
  await fsyncDir(stateDir);
  await writeFileAtomic(stateDir, STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
  return state;
}

/** Replace the key and certificate after a renewal, crash-safely (see the header). */
export async function saveRenewedCertificate(
  stateDir: string,
  input: { keyPem: string; certPem: string; now?: Date },
): Promise<void> {
  if (!keyMatchesCertificate(input.keyPem, input.certPem)) {
    throw new IdentityError('the renewed certificate does not belong to the new key');
  }
  const stateFile = path.join(stateDir, STATE_FILE);
  const state = parseState(await readRequired(stateFile), stateFile);
  await writeFileAtomic(stateDir, KEY_FILE + NEXT_SUFFIX, input.keyPem, { syncDir: false });
  await writeFileAtomic(stateDir, CERT_FILE + NEXT_SUFFIX, input.certPem, { syncDir: false });
  await fsyncDir(stateDir);
  await rename(path.join(stateDir, KEY_FILE + NEXT_SUFFIX), path.join(stateDir, KEY_FILE));
  await rename(path.join(stateDir, CERT_FILE + NEXT_SUFFIX), path.join(stateDir, CERT_FILE));
  await fsyncDir(stateDir);
  const renewed: EnrollmentState = { ...state, renewedAt: (input.now ?? new Date()).toISOString() };
  await writeFileAtomic(stateDir, STATE_FILE, `${JSON.stringify(renewed, null, 2)}\n`);
}
