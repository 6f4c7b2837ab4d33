import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificateAuthority, createKeyPairAndCsr, signCsr } from '@wpcp/shared/pki';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CERT_FILE,
  IdentityError,
  KEY_FILE,
  loadIdentity,
  readEnrollmentStateSync,
  saveEnrollment,
  saveRenewedCertificate,
} from './identity.ts';

let ca: Awaited<ReturnType<typeof createCertificateAuthority>>;
let dir: string;

async function issue(): Promise<{ keyPem: string; certPem: string }> {
  const { keyPem, csrPem } = await createKeyPairAndCsr({ commonName: 'x' });
  const certPem = await signCsr({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem,
    subjectCommonName: 'node-1',
    validityDays: 1,
    usage: 'client',
  });
  return { keyPem, certPem };
}

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'ca', validityDays: 2 });
});
beforeEach(async () => {
  dir = path.join(await mkdtemp(path.join(tmpdir(), 'wpcp-identity-')), 'state');
});
afterEach(async () => {
  await rm(path.dirname(dir), { recursive: true, force: true });
});

describe('identity store', () => {
  it('saves and loads an enrollment', async () => {
    expect(readEnrollmentStateSync(dir)).toBeUndefined();
    await expect(loadIdentity(dir)).rejects.toThrow(/is not enrolled/);
    const first = await issue();
    await saveEnrollment(dir, { nodeId: 'node-1', server: 'cp:1', caPem: ca.certPem, ...first });
    const identity = await loadIdentity(dir);
    expect(identity.state).toMatchObject({ nodeId: 'node-1', server: 'cp:1' });
    expect(identity.certPem).toBe(first.certPem);
    expect(readEnrollmentStateSync(dir)?.server).toBe('cp:1');
  });

  it('renews atomically and rolls a renewal interrupted between its two renames forward', async () => {
    await saveEnrollment(dir, { nodeId: 'node-1', server: 'cp:1', caPem: ca.certPem, ...(await issue()) });
    const second = await issue();
    await saveRenewedCertificate(dir, second);
    expect((await loadIdentity(dir)).certPem).toBe(second.certPem);
    expect((await loadIdentity(dir)).state.renewedAt).toBeDefined();

    // Crash after the key rename, before the certificate rename.
    const third = await issue();
    await writeFile(path.join(dir, `${CERT_FILE}.next`), third.certPem, { mode: 0o600 });
    await writeFile(path.join(dir, `${KEY_FILE}.next`), third.keyPem, { mode: 0o600 });
    await rename(path.join(dir, `${KEY_FILE}.next`), path.join(dir, KEY_FILE));
    const recovered = await loadIdentity(dir);
    expect(recovered.certPem).toBe(third.certPem);
    expect(recovered.keyPem).toBe(third.keyPem);
    expect((await readdir(dir)).filter((name) => name.endsWith('.next'))).toEqual([]);
  });

  it('discards a renewal staged but never committed, and refuses a key that matches nothing', async () => {
    const first = await issue();
    await saveEnrollment(dir, { nodeId: 'node-1', server: 'cp:1', caPem: ca.certPem, ...first });
    const staged = await issue();
    await writeFile(path.join(dir, `${CERT_FILE}.next`), staged.certPem);
    await writeFile(path.join(dir, `${KEY_FILE}.next`), staged.keyPem);
    expect((await loadIdentity(dir)).certPem).toBe(first.certPem);
    expect((await readdir(dir)).filter((name) => name.endsWith('.next'))).toEqual([]);

    await writeFile(path.join(dir, KEY_FILE), (await issue()).keyPem);
    await expect(loadIdentity(dir)).rejects.toThrow(IdentityError);
  });

  it('refuses a CA file that is not the pinned one', async () => {
    await saveEnrollment(dir, { nodeId: 'node-1', server: 'cp:1', caPem: ca.certPem, ...(await issue()) });
    const other = await createCertificateAuthority({ commonName: 'ca', validityDays: 2 });
    await writeFile(path.join(dir, 'ca-cert.pem'), other.certPem);
    await expect(loadIdentity(dir)).rejects.toThrow(/not the CA pinned at enrollment/);
    expect(await readFile(path.join(dir, 'state.json'), 'utf8')).toContain('"caHash": "sha256:');
  });
});
