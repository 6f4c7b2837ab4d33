import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { caCertificateHash, certificateInfo, createCertificateAuthority } from '@wpcp/shared/pki';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CA_FILE, CERT_FILE, KEY_FILE, loadIdentity, STATE_FILE } from '../state/identity.ts';
import { FakeControlPlane } from '../testing/fake-control-plane.ts';
import { EnrollError, enroll } from './enroll.ts';

let plane: FakeControlPlane;
let parent: string;
let stateDir: string;

beforeAll(async () => {
  plane = await FakeControlPlane.start();
});
afterAll(async () => {
  await plane.close();
});
beforeEach(async () => {
  parent = await mkdtemp(path.join(tmpdir(), 'wpcp-enroll-'));
  stateDir = path.join(parent, 'state');
});
afterEach(async () => {
  await rm(parent, { recursive: true, force: true });
});

function mode(info: { mode: number }): string {
  return (info.mode & 0o777).toString(8);
}

async function errorOf(promise: Promise<unknown>): Promise<EnrollError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(EnrollError);
    return err as EnrollError;
  }
  throw new Error('expected an EnrollError');
}

describe('enroll', () => {
  it('pins the CA, enrolls, and stores the identity privately', async () => {
    const token = plane.createJoinToken('node-abc');
    const outcome = await enroll({
      server: `localhost:${plane.port}`,
      token,
      stateDir,
      hostname: 'web-1',
      agentVersion: '9.9.9',
    });
    expect(outcome).toMatchObject({ nodeId: 'node-abc', server: `localhost:${plane.port}`, stateDir });
    expect(plane.enrollRequests.at(-1)).toEqual({
      joinToken: token,
      hostname: 'web-1',
      agentVersion: '9.9.9',
    });

    expect(mode(await stat(stateDir))).toBe('700');
    expect((await readdir(stateDir)).sort()).toEqual([CA_FILE, KEY_FILE, CERT_FILE, STATE_FILE].sort());
    for (const file of [CA_FILE, KEY_FILE, CERT_FILE, STATE_FILE]) {
      expect(mode(await stat(path.join(stateDir, file)))).toBe('600');
    }
    const state = JSON.parse(await readFile(path.join(stateDir, STATE_FILE), 'utf8'));
    expect(state).toMatchObject({
      version: 1,
      nodeId: 'node-abc',
      server: `localhost:${plane.port}`,
      caHash: plane.caHash,
    });
    // caCertificateHash (shared) and the token's pin are the same value.
    expect(caCertificateHash(await readFile(path.join(stateDir, CA_FILE), 'utf8'))).toBe(plane.caHash);

    const identity = await loadIdentity(stateDir);
    expect(certificateInfo(identity.certPem).commonName).toBe('node-abc');
    expect(identity.keyPem).toContain('BEGIN PRIVATE KEY');
  });

  it('enrolls with an IP address as the server host', async () => {
    const outcome = await enroll({
      server: `127.0.0.1:${plane.port}`,
      token: plane.createJoinToken(),
      stateDir,
    });
    expect(outcome.server).toBe(`127.0.0.1:${plane.port}`);
  });

  it('refuses a server whose CA does not match the pin, and writes nothing', async () => {
    const other = await createCertificateAuthority({ commonName: 'someone else', validityDays: 1 });
    const token = plane.createJoinToken().replace(/[0-9a-f]{64}$/, caCertificateHash(other.certPem).slice(7));
    const err = await errorOf(enroll({ server: `localhost:${plane.port}`, token, stateDir }));
    expect(err.message).toMatch(
      /refusing localhost:\d+: none of the 2 certificate\(s\) it presented matches/,
    );
    expect(err.message).not.toContain(token);
    await expect(stat(stateDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('explains a server that does not send its CA certificate', async () => {
    const leafOnly = await FakeControlPlane.start({ sendChain: false, ca: plane.ca });
    try {
      const err = await errorOf(
        enroll({ server: `localhost:${leafOnly.port}`, token: leafOnly.createJoinToken(), stateDir }),
      );
      expect(err.message).toContain('must send its CA certificate too');
    } finally {
      await leafOnly.close();
    }
  });

  it('reports a token the control plane refuses, and writes nothing', async () => {
    const token = plane.createJoinToken();
    await enroll({ server: `localhost:${plane.port}`, token, stateDir: path.join(parent, 'first') });
    // The same token again: one-time tokens are refused after use.
    const err = await errorOf(enroll({ server: `localhost:${plane.port}`, token, stateDir }));
    expect(err.message).toMatch(/control plane refused the join token \(UNAUTHENTICATED: .*\); join tokens/);
    expect(err.message).not.toContain(token);
    await expect(stat(stateDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a server address that is not among the names of its certificate', async () => {
    const localhostOnly = await FakeControlPlane.start({ ca: plane.ca, ipAddresses: [] });
    try {
      const err = await errorOf(
        enroll({
          server: `127.0.0.1:${localhostOnly.port}`,
          token: localhostOnly.createJoinToken(),
          stateDir,
        }),
      );
      expect(err.message).toMatch(
        /cannot enroll with 127\.0\.0\.1:\d+ \(UNAVAILABLE: .*WPCP_GRPC_PUBLIC_NAMES/,
      );
      await expect(stat(stateDir)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await localhostOnly.close();
    }
  });

  it('refuses malformed tokens and addresses without contacting anyone', async () => {
    const requests = plane.enrollRequests.length;
    await expect(
      enroll({ server: `localhost:${plane.port}`, token: 'wpcp1.short.abc', stateDir }),
    ).rejects.toThrow(/malformed join token \(the secret must be 43 base64url characters\)/);
    await expect(enroll({ server: 'localhost', token: plane.createJoinToken(), stateDir })).rejects.toThrow(
      /invalid server address "localhost": expected HOST:PORT/,
    );
    expect(plane.enrollRequests.length).toBe(requests);
  });

  it('refuses an enrolled state directory unless forced; --force as another node archives the journal', async () => {
    const server = `localhost:${plane.port}`;
    await enroll({ server, token: plane.createJoinToken('node-first'), stateDir });
    await mkdir(path.join(stateDir, 'journal'));
    await writeFile(path.join(stateDir, 'journal', 'c1.json'), '{}');

    const token = plane.createJoinToken('node-second');
    const err = await errorOf(enroll({ server, token, stateDir }));
    expect(err.message).toMatch(/already enrolled as node node-first .*use --force/);

    const outcome = await enroll({ server, token, stateDir, force: true });
    expect(outcome.nodeId).toBe('node-second');
    expect(outcome.archivedJournal).toMatch(/journal\.previous-/);
    expect((await loadIdentity(stateDir)).state.nodeId).toBe('node-second');
    expect(await readdir(outcome.archivedJournal as string)).toEqual(['c1.json']);
  });
});
