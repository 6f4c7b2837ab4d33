import { sql } from 'kysely';
import type { Db } from '../database/database.ts';
import type { SiteStatus } from '../database/schema.ts';

/** Every statement on `sites`. */

const SITE_COLUMNS = ['id', 'seq', 'name', 'slug', 'status', 'created_at', 'updated_at'] as const;

function selectSites(db: Db) {
  return db
    .selectFrom('sites')
    .select(SITE_COLUMNS)
    .select((eb) =>
      eb
        .selectFrom('environments')
        .select('environments.id')
        .whereRef('environments.site_id', '=', 'sites.id')
        .where('environments.type', '=', 'production')
        .as('production_environment_id'),
    );
}

export type SiteView = NonNullable<Awaited<ReturnType<typeof findSite>>>;

export function findSite(db: Db, id: string) {
  return selectSites(db).where('sites.id', '=', id).executeTakeFirst();
}

/** Newest first, keyset-paginated on `seq`. */
export function listSites(
  db: Db,
  filter: { status?: SiteStatus },
  page: { limit: number; beforeSeq?: string },
) {
  let query = selectSites(db)
    .orderBy('sites.seq', 'desc')
    .limit(page.limit + 1);
  if (filter.status) query = query.where('sites.status', '=', filter.status);
  if (page.beforeSeq) query = query.where('sites.seq', '<', page.beforeSeq);
  return query.execute();
}

export function siteSlugExists(db: Db, slug: string) {
  return db.selectFrom('sites').select('id').where('slug', '=', slug).executeTakeFirst();
}

export function insertSite(db: Db, site: { name: string; slug: string }) {
  return db
    .insertInto('sites')
    .values({ name: site.name, slug: site.slug, status: 'provisioning' })
    .returning(['id', 'slug'])
    .executeTakeFirstOrThrow();
}

/** Moves a site from `from` (one status or any of several) to `to`; a site in another status is left alone. */
export function setSiteStatus(db: Db, id: string, from: SiteStatus | SiteStatus[], to: SiteStatus) {
  return db
    .updateTable('sites')
    .set({ status: to, updated_at: sql`now()` })
    .where('id', '=', id)
    .where('status', 'in', Array.isArray(from) ? from : [from])
    .returning('id')
    .executeTakeFirst();
}

/**
 * Locks the site row against status changes until the transaction ends and returns its status
 * (`for share`: a deletion's `update` waits for this transaction, and this one for a deletion's).
 */
export function lockSiteForShare(db: Db, id: string) {
  return db.selectFrom('sites').select(['id', 'status']).where('id', '=', id).forShare().executeTakeFirst();
}

/**
 * The last step of deleting a site: its row goes once it has no environment left. Answers
 * `gone` (deleted now, or before), or the environments still there.
 */
export async function deleteEmptySite(
  trx: Db,
  id: string,
): Promise<{ gone: true } | { gone: false; remaining: string[] }> {
  const site = await trx.selectFrom('sites').select('id').where('id', '=', id).forUpdate().executeTakeFirst();
  if (!site) return { gone: true };
  const remaining = await trx
    .selectFrom('environments')
    .select('node_name')
    .where('site_id', '=', id)
    .orderBy('seq', 'asc')
    .execute();
  if (remaining.length > 0) return { gone: false, remaining: remaining.map((e) => e.node_name) };
  await trx.deleteFrom('sites').where('id', '=', id).execute();
  return { gone: true };
}

export async function countSites(db: Db): Promise<number> {
  const row = await db.selectFrom('sites').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}
