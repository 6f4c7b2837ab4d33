import { type Insertable, sql } from 'kysely';
import type { Db } from '../database/database.ts';
import type { EnvironmentStatus, EnvironmentsTable } from '../database/schema.ts';

/** Every statement on `environments`, and the reads that assemble an environment's view. */

export function insertEnvironment(db: Db, environment: Insertable<EnvironmentsTable>) {
  return db.insertInto('environments').values(environment).returning('id').executeTakeFirstOrThrow();
}

export function findEnvironment(db: Db, id: string) {
  return db.selectFrom('environments').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Oldest first (production, created with the site, comes first), keyset-paginated on `seq`. */
export function listEnvironmentsOfSite(db: Db, siteId: string, page: { limit: number; afterSeq?: string }) {
  let query = db
    .selectFrom('environments')
    .selectAll()
    .where('site_id', '=', siteId)
    .orderBy('seq', 'asc')
    .limit(page.limit + 1);
  if (page.afterSeq) query = query.where('seq', '>', page.afterSeq);
  return query.execute();
}

export function allEnvironmentsOfSite(db: Db, siteId: string) {
  return db
    .selectFrom('environments')
    .selectAll()
    .where('site_id', '=', siteId)
    .orderBy('seq', 'asc')
    .execute();
}

export function environmentSlugExists(db: Db, siteId: string, slug: string) {
  return db
    .selectFrom('environments')
    .select('id')
    .where('site_id', '=', siteId)
    .where('slug', '=', slug)
    .executeTakeFirst();
}

export function productionEnvironmentOf(db: Db, siteId: string) {
  return db
    .selectFrom('environments')
    .select('id')
    .where('site_id', '=', siteId)
    .where('type', '=', 'production')
    .executeTakeFirst();
}

/** How a node's sites are reached: what URLs and default hostnames are made of. */
export function nodesForViews(db: Db, ids: string[]) {
  if (ids.length === 0) return Promise.resolve([]);
  return db
    .selectFrom('nodes')
    .select(['id', 'name', 'base_domain', 'public_scheme', 'public_port'])
    .where('id', 'in', ids)
    .execute();
}

export function domainsOfEnvironments(db: Db, environmentIds: string[]) {
  if (environmentIds.length === 0) return Promise.resolve([]);
  return db
    .selectFrom('domains')
    .selectAll()
    .where('environment_id', 'in', environmentIds)
    .orderBy('seq', 'asc')
    .execute();
}

/** Moves an environment from one of `from` to `to`; one in another status is left alone. */
export function setEnvironmentStatus(db: Db, id: string, from: EnvironmentStatus[], to: EnvironmentStatus) {
  return db
    .updateTable('environments')
    .set({ status: to, updated_at: sql`now()` })
    .where('id', '=', id)
    .where('status', 'in', from)
    .returning(['id', 'site_id', 'type'])
    .executeTakeFirst();
}

/**
 * Placement: the active node (heartbeats within the offline threshold, not disabled) with the
 * fewest environments that are not `failed`, ties broken by age. One placement at a time across
 * the fleet (an advisory lock held by the caller's transaction), so two environments created
 * together see each other's choice.
 */
export async function leastLoadedActiveNode(trx: Db, offlineAfterMs: number) {
  await sql`select pg_advisory_xact_lock(hashtextextended('wpcp-placement', 0))`.execute(trx);
  return trx
    .selectFrom('nodes')
    .leftJoin('environments', (join) =>
      join.onRef('environments.node_id', '=', 'nodes.id').on('environments.status', '<>', 'failed'),
    )
    .select([
      'nodes.id',
      'nodes.name',
      'nodes.base_domain',
      sql<string>`count(environments.id)`.as('environments'),
    ])
    .where('nodes.status', '=', 'active')
    .where(
      'nodes.last_heartbeat_at',
      '>=',
      sql<Date>`now() - make_interval(secs => ${offlineAfterMs / 1000})`,
    )
    .groupBy('nodes.id')
    .orderBy(sql`count(environments.id)`, 'asc')
    .orderBy('nodes.seq', 'asc')
    .limit(1)
    .executeTakeFirst();
}

export function assignNode(db: Db, environmentId: string, nodeId: string) {
  return db
    .updateTable('environments')
    .set({ node_id: nodeId, updated_at: sql`now()` })
    .where('id', '=', environmentId)
    .execute();
}

/** Records what provisioning learned and makes the environment active. */
export function markEnvironmentActive(
  db: Db,
  id: string,
  facts: { wordpressVersion: string | null; lastDeployedRef?: string | null },
) {
  return db
    .updateTable('environments')
    .set({
      status: 'active',
      wordpress_version: facts.wordpressVersion,
      ...(facts.lastDeployedRef !== undefined ? { last_deployed_ref: facts.lastDeployedRef } : {}),
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('status', 'in', ['provisioning', 'active'])
    .returning(['id', 'site_id'])
    .executeTakeFirst();
}

/** The statuses an environment can be deleted from: nothing else is running on it. */
export const DELETABLE_STATUSES = ['active', 'failed'] as const satisfies EnvironmentStatus[];

/** Environments being cloned from `id` (their job still reads it). */
export function provisioningClonesOf(db: Db, id: string) {
  return db
    .selectFrom('environments')
    .select(['id', 'node_name'])
    .where('source_environment_id', '=', id)
    .where('status', '=', 'provisioning')
    .execute();
}

/**
 * Locks the environment row against status changes until the transaction ends and returns it
 * (`for share`: a deletion's `update` waits, as the deletion waits for this transaction).
 */
export function lockEnvironmentForShare(db: Db, id: string) {
  return db
    .selectFrom('environments')
    .select(['id', 'status'])
    .where('id', '=', id)
    .forShare()
    .executeTakeFirst();
}

/**
 * The environment's row goes, and with it (foreign keys) its domains, which frees its hostnames;
 * clones of it keep `source_environment_id: null`. Only a `deleting` environment: returns whether
 * a row was deleted.
 */
export async function deleteDeletingEnvironment(db: Db, id: string): Promise<boolean> {
  const result = await db
    .deleteFrom('environments')
    .where('id', '=', id)
    .where('status', '=', 'deleting')
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}
