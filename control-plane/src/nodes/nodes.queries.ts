import { type ExpressionBuilder, sql } from 'kysely';
import type { Db } from '../database/database.ts';
import type { Database } from '../database/schema.ts';

/** `interval` for an offline threshold given in milliseconds. */
function olderThan(offlineAfterMs: number) {
  return sql<Date>`now() - make_interval(secs => ${offlineAfterMs / 1000})`;
}

/** The status the API shows: the stored one, except an active node without recent heartbeats is offline. */
function derivedStatus(eb: ExpressionBuilder<Database, 'nodes'>, offlineAfterMs: number) {
  return eb
    .case()
    .when(
      eb.and([
        eb('nodes.status', '=', 'active'),
        eb.or([
          eb('nodes.last_heartbeat_at', 'is', null),
          eb('nodes.last_heartbeat_at', '<', olderThan(offlineAfterMs)),
        ]),
      ]),
    )
    .then(sql.lit('offline'))
    .else(eb.ref('nodes.status'))
    .end()
    .$castTo<'pending' | 'active' | 'offline' | 'disabled'>();
}

function selectNodes(db: Db, offlineAfterMs: number) {
  return db
    .selectFrom('nodes')
    .select((eb) => [
      'nodes.id',
      'nodes.seq',
      'nodes.name',
      'nodes.agent_version',
      'nodes.hostname',
      'nodes.last_heartbeat_at',
      'nodes.enrolled_at',
      'nodes.stats',
      'nodes.certificate_not_after',
      'nodes.disabled_at',
      'nodes.base_domain',
      'nodes.public_scheme',
      'nodes.public_port',
      'nodes.created_at',
      derivedStatus(eb, offlineAfterMs).as('status'),
      eb
        .selectFrom('agent_commands')
        .select(sql<string>`count(*)`.as('n'))
        .whereRef('agent_commands.node_id', '=', 'nodes.id')
        .where('agent_commands.status', 'in', ['delivered', 'running'])
        .as('running_commands'),
    ]);
}

export type NodeView = NonNullable<Awaited<ReturnType<typeof findNode>>>;

export function findNode(db: Db, id: string, offlineAfterMs: number) {
  return selectNodes(db, offlineAfterMs).where('nodes.id', '=', id).executeTakeFirst();
}

/** Newest first, keyset-paginated on `seq`. */
export function listNodes(
  db: Db,
  offlineAfterMs: number,
  filter: { status?: 'pending' | 'active' | 'offline' | 'disabled' },
  page: { limit: number; beforeSeq?: string },
) {
  let query = selectNodes(db, offlineAfterMs)
    .orderBy('nodes.seq', 'desc')
    .limit(page.limit + 1);
  if (page.beforeSeq) query = query.where('nodes.seq', '<', page.beforeSeq);
  switch (filter.status) {
    case 'pending':
    case 'disabled':
      query = query.where('nodes.status', '=', filter.status);
      break;
    case 'active':
      query = query
        .where('nodes.status', '=', 'active')
        .where('nodes.last_heartbeat_at', '>=', olderThan(offlineAfterMs));
      break;
    case 'offline':
      query = query
        .where('nodes.status', '=', 'active')
        .where((eb) =>
          eb.or([
            eb('nodes.last_heartbeat_at', 'is', null),
            eb('nodes.last_heartbeat_at', '<', olderThan(offlineAfterMs)),
          ]),
        );
      break;
  }
  return query.execute();
}

export function insertNode(
  db: Db,
  node: {
    name: string;
    tokenHash: Buffer;
    tokenExpiresAt: Date;
    baseDomain: string;
    publicScheme: 'http' | 'https';
    publicPort: number | null;
  },
) {
  return db
    .insertInto('nodes')
    .values({
      name: node.name,
      status: 'pending',
      join_token_hash: node.tokenHash,
      join_token_expires_at: node.tokenExpiresAt,
      base_domain: node.baseDomain,
      public_scheme: node.publicScheme,
      public_port: node.publicPort,
    })
    .returning(['id', 'name', 'join_token_expires_at'])
    .executeTakeFirstOrThrow();
}

export function disableNode(db: Db, id: string) {
  return db
    .updateTable('nodes')
    .set({
      status: 'disabled',
      disabled_at: sql`coalesce(disabled_at, now())`,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .returning('id')
    .executeTakeFirst();
}

/** Back to `active` (or `pending` if no agent ever enrolled); a no-op for a node that is not disabled. */
export function enableNode(db: Db, id: string) {
  return db
    .updateTable('nodes')
    .set({
      status: sql`case when enrolled_at is null then 'pending' else 'active' end`,
      disabled_at: null,
      reported_liveness: null,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('status', '=', 'disabled')
    .returning('id')
    .executeTakeFirst();
}

export function nodeExists(db: Db, id: string) {
  return db.selectFrom('nodes').select(['id', 'status']).where('id', '=', id).executeTakeFirst();
}

export async function countActiveNodes(db: Db, offlineAfterMs: number): Promise<number> {
  const row = await db
    .selectFrom('nodes')
    .select(sql<string>`count(*)`.as('n'))
    .where('status', '=', 'active')
    .where('last_heartbeat_at', '>=', olderThan(offlineAfterMs))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export function findNodeByName(db: Db, name: string) {
  return db.selectFrom('nodes').select('id').where('name', '=', name).executeTakeFirst();
}
