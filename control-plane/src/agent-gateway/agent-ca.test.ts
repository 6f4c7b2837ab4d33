import { randomBytes, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createDb, type Db, migrateToLatest } from '../database/database.ts';
import { SecretBox } from '../secrets/secret-box.ts';
import { createTestDatabase } from '../testing/index.ts';
import { loadOrCreateAgentCa } from './agent-ca.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  db = createDb(database.url);
  await migrateToLatest(db);
});
afterAll(async () => {
  await db.destroy();
  await database.drop();
});

it('creates one CA even when replicas start together, and keeps its key sealed', async () => {
  const box = new SecretBox(randomBytes(32));
  const loaded = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateAgentCa(db, box)));
  const first = loaded[0];
  for (const ca of loaded) {
    expect(ca.certPem).toBe(first?.certPem);
    expect(ca.keyPem).toBe(first?.keyPem);
  }
  expect(new X509Certificate(first?.certPem ?? '').ca).toBe(true);
  expect(first?.pin).toMatch(/^[0-9a-f]{64}$/);
  const rows = await db.selectFrom('certificate_authorities').selectAll().execute();
  expect(rows).toHaveLength(1);
  expect(rows[0]?.private_key_sealed).not.toContain('PRIVATE KEY');
  // A later start reads the same CA.
  expect((await loadOrCreateAgentCa(db, box)).certPem).toBe(first?.certPem);
  await expect(loadOrCreateAgentCa(db, new SecretBox(randomBytes(32)))).rejects.toThrow(/WPCP_MASTER_KEY/);
});
