import { sql } from 'kysely';
import type { Db } from '../database/database.ts';
import type { DomainStatus } from '../database/schema.ts';

/** Every statement on `domains`. */

export function findDomain(db: Db, id: string) {
  return db.selectFrom('domains').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Oldest first (the default hostname first), keyset-paginated on `seq`. */
export function listDomains(db: Db, environmentId: string, page: { limit: number; afterSeq?: string }) {
  let query = db
    .selectFrom('domains')
    .selectAll()
    .where('environment_id', '=', environmentId)
    .orderBy('seq', 'asc')
    .limit(page.limit + 1);
  if (page.afterSeq) query = query.where('seq', '>', page.afterSeq);
  return query.execute();
}

/** The domain holding this hostname, if any (of any environment). */
export function domainWithHostname(db: Db, hostname: string) {
  return db
    .selectFrom('domains')
    .select(['id', 'environment_id'])
    .where('hostname', '=', hostname)
    .executeTakeFirst();
}

/** The node base domain that `hostname` is, or is under (reserved for default hostnames). */
export function baseDomainCovering(db: Db, hostname: string) {
  return db
    .selectFrom('nodes')
    .select(['name', 'base_domain'])
    .where((eb) =>
      eb.or([
        eb('base_domain', '=', hostname),
        eb(sql`right(${hostname}, length(base_domain) + 1)`, '=', sql`'.' || base_domain`),
      ]),
    )
    .limit(1)
    .executeTakeFirst();
}

export function insertDomain(
  db: Db,
  domain: {
    environmentId: string;
    hostname: string;
    isDefault: boolean;
    isPrimary: boolean;
    status: DomainStatus;
  },
) {
  return db
    .insertInto('domains')
    .values({
      environment_id: domain.environmentId,
      hostname: domain.hostname,
      is_default: domain.isDefault,
      is_primary: domain.isPrimary,
      status: domain.status,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

/** The default domain of an environment, created at placement unless it exists. */
export async function ensureDefaultDomain(db: Db, environmentId: string, hostname: string): Promise<void> {
  const existing = await db
    .selectFrom('domains')
    .select('id')
    .where('environment_id', '=', environmentId)
    .where('is_default', '=', true)
    .executeTakeFirst();
  if (!existing) {
    await insertDomain(db, { environmentId, hostname, isDefault: true, isPrimary: true, status: 'pending' });
  }
}

export function setDomainStatus(db: Db, id: string, from: DomainStatus[], to: DomainStatus) {
  return db
    .updateTable('domains')
    .set({ status: to, updated_at: sql`now()` })
    .where('id', '=', id)
    .where('status', 'in', from)
    .returning('id')
    .executeTakeFirst();
}

export function activatePendingDomains(db: Db, environmentId: string) {
  return db
    .updateTable('domains')
    .set({ status: 'active', updated_at: sql`now()` })
    .where('environment_id', '=', environmentId)
    .where('status', '=', 'pending')
    .execute();
}

export function deleteDomain(db: Db, id: string, onlyIf: { status?: DomainStatus } = {}) {
  let query = db.deleteFrom('domains').where('id', '=', id);
  if (onlyIf.status) query = query.where('status', '=', onlyIf.status);
  return query.execute();
}

/** Makes `domainId` the only primary domain of its environment (two statements: the index is not deferrable). */
export async function makePrimary(trx: Db, environmentId: string, domainId: string): Promise<void> {
  await trx
    .updateTable('domains')
    .set({ is_primary: false, updated_at: sql`now()` })
    .where('environment_id', '=', environmentId)
    .where('is_primary', '=', true)
    .where('id', '<>', domainId)
    .execute();
  await trx
    .updateTable('domains')
    .set({ is_primary: true, updated_at: sql`now()` })
    .where('id', '=', domainId)
    .execute();
}

/** Every domain of the environment, oldest first. */
export function domainsOfEnvironment(db: Db, environmentId: string) {
  return db
    .selectFrom('domains')
    .selectAll()
    .where('environment_id', '=', environmentId)
    .orderBy('seq', 'asc')
    .execute();
}
