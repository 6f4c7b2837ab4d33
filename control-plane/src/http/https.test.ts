import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificateAuthority, createKeyPairAndCsr, signCsr } from '@wpcp/shared/pki';
import { afterAll, expect, inject, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../testing/index.ts';

let cp: TestControlPlane | undefined;
let dir: string;
afterAll(async () => {
  await cp?.destroy();
  await rm(dir, { recursive: true, force: true });
});

it('speaks HTTPS when WPCP_HTTP_TLS_CERT and WPCP_HTTP_TLS_KEY are set', async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wpcp-https-'));
  const ca = await createCertificateAuthority({ commonName: 'test CA', validityDays: 2 });
  const server = await createKeyPairAndCsr({ commonName: 'api' });
  const certPem = await signCsr({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem: server.csrPem,
    subjectCommonName: 'api',
    validityDays: 1,
    usage: 'server',
    ipAddresses: ['127.0.0.1'],
  });
  await writeFile(path.join(dir, 'cert.pem'), certPem);
  await writeFile(path.join(dir, 'key.pem'), server.keyPem);
  cp = await startTestControlPlane(inject('postgresAdminUrl'), {
    env: { WPCP_HTTP_TLS_CERT: path.join(dir, 'cert.pem'), WPCP_HTTP_TLS_KEY: path.join(dir, 'key.pem') },
  });
  const address = await cp.app.listen({ host: '127.0.0.1', port: 0 });
  expect(address).toMatch(/^https:\/\//);
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(`${address}/healthz`, { ca: ca.certPem }, (res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  expect(status).toBe(200);
  expect(JSON.parse(body)).toEqual({ status: 'ok' });
});
