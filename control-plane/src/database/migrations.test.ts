import { Migrator } from 'kysely/migration';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../testing/index.ts';
import { createDb, type Db, migrateToLatest } from './database.ts';
import { migrationProvider } from './migrations/index.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  db = createDb(database.url);
});
afterAll(async () => {
  await db.destroy();
  await database.drop();
});

it('brings an existing database of an older version up to date, keeping its data', async () => {
  const all = Object.keys(await migrationProvider.getMigrations()).sort();
  expect(all[0]).toBe('0001-foundation');
  // An installation that only ever ran the first migration, with a user in it.
  const migrator = new Migrator({ db, provider: migrationProvider });
  const first = await migrator.migrateTo('0001-foundation');
  expect(first.error).toBeUndefined();
  await db.insertInto('users').values({ email: 'old@example.test', password_hash: 'scrypt$x' }).execute();

  const { applied } = await migrateToLatest(db);
  expect(applied).toEqual(all.slice(1));
  const users = await db.selectFrom('users').select('email').execute();
  expect(users).toEqual([{ email: 'old@example.test' }]);

  // A second run is a no-op.
  expect((await migrateToLatest(db)).applied).toEqual([]);
});
