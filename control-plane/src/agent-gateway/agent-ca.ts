import { X509Certificate } from 'node:crypto';
import { caCertificateHash, createCertificateAuthority } from '@wpcp/shared/pki';
import type { Db } from '../database/database.ts';
import type { SecretBox } from '../secrets/secret-box.ts';

const CA_NAME = 'agent';
const CA_COMMON_NAME = 'wpcp agent CA';
const CA_VALIDITY_DAYS = 3650;

/** The control plane's private CA for the agent channel, as every replica loads it. */
export interface AgentCa {
  certPem: string;
  keyPem: string;
  certificate: X509Certificate;
  /** Lowercase hex sha256 of the CA's DER SubjectPublicKeyInfo: the pin inside join tokens. */
  pin: string;
}

/**
 * Loads the agent CA from the database, creating it on the very first start. Replicas starting
 * together race safely: each may generate a CA, only the first insert wins, and all of them use
 * the row that is in the table. The key is stored sealed with the master key.
 */
export async function loadOrCreateAgentCa(db: Db, box: SecretBox): Promise<AgentCa> {
  let row = await findCa(db);
  if (!row) {
    const ca = await createCertificateAuthority({
      commonName: CA_COMMON_NAME,
      validityDays: CA_VALIDITY_DAYS,
    });
    await db
      .insertInto('certificate_authorities')
      .values({ name: CA_NAME, certificate_pem: ca.certPem, private_key_sealed: box.seal(ca.keyPem) })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    row = await findCa(db);
    if (!row) throw new Error('the agent CA was not stored');
  }
  const certPem = row.certificate_pem;
  return {
    certPem,
    keyPem: box.open(row.private_key_sealed),
    certificate: new X509Certificate(certPem),
    pin: caCertificateHash(certPem).replace(/^sha256:/, ''),
  };
}

function findCa(db: Db) {
  return db
    .selectFrom('certificate_authorities')
    .select(['certificate_pem', 'private_key_sealed'])
    .where('name', '=', CA_NAME)
    .executeTakeFirst();
}
