import { sql } from 'kysely';
import type { Db } from '../database/database.ts';

/** The statements of the agent gateway on `nodes`: enrollment, streams, heartbeats, liveness. */

export function findNodeByJoinToken(db: Db, tokenHash: Buffer) {
  return db
    .selectFrom('nodes')
    .select([
      'id',
      'status',
      sql<boolean>`join_token_used_at is null and join_token_expires_at > now()`.as('token_usable'),
    ])
    .where('join_token_hash', '=', tokenHash)
    .executeTakeFirst();
}

/**
 * Consumes a join token and records the certificate issued for it, in one conditional UPDATE: of
 * two enrollments racing with the same token, exactly one gets a row back.
 */
export function consumeJoinToken(
  db: Db,
  enrollment: {
    nodeId: string;
    tokenHash: Buffer;
    serial: string;
    fingerprint: string;
    notAfter: Date;
    agentVersion: string | null;
    hostname: string | null;
  },
) {
  return db
    .updateTable('nodes')
    .set({
      join_token_used_at: sql`now()`,
      enrolled_at: sql`now()`,
      certificate_serial: enrollment.serial,
      previous_certificate_serial: null,
      certificate_fingerprint: enrollment.fingerprint,
      certificate_not_after: enrollment.notAfter,
      agent_version: enrollment.agentVersion,
      hostname: enrollment.hostname,
      updated_at: sql`now()`,
    })
    .where('id', '=', enrollment.nodeId)
    .where('join_token_hash', '=', enrollment.tokenHash)
    .where('join_token_used_at', 'is', null)
    .where('join_token_expires_at', '>', sql<Date>`now()`)
    .where('status', '<>', 'disabled')
    .returning('id')
    .executeTakeFirst();
}

export function findNodeIdentity(db: Db, nodeId: string) {
  return db
    .selectFrom('nodes')
    .select(['id', 'name', 'status', 'certificate_serial', 'previous_certificate_serial'])
    .where('id', '=', nodeId)
    .executeTakeFirst();
}

/**
 * Records a new stream as the node's newest: this replica and session hold it, the Hello counts
 * as a heartbeat, and a pending node becomes active. Connecting with the current certificate ends
 * the acceptance of the one it replaced.
 */
export function startStream(
  db: Db,
  stream: {
    nodeId: string;
    sessionId: string;
    replicaId: string;
    serial: string;
    agentVersion: string | null;
    hostname: string | null;
  },
) {
  return db
    .updateTable('nodes')
    .set({
      stream_session: stream.sessionId,
      stream_replica: stream.replicaId,
      stream_connected_at: sql`now()`,
      last_heartbeat_at: sql`now()`,
      agent_version: sql`coalesce(${stream.agentVersion}, agent_version)`,
      hostname: sql`coalesce(${stream.hostname}, hostname)`,
      status: sql`case when status = 'pending' then 'active' else status end`,
      previous_certificate_serial: sql`case when certificate_serial = ${stream.serial} then null else previous_certificate_serial end`,
      updated_at: sql`now()`,
    })
    .where('id', '=', stream.nodeId)
    .where('status', '<>', 'disabled')
    .returning('id')
    .executeTakeFirst();
}

/** Forgets a stream, unless a newer one has replaced it already (a stale disconnect changes nothing). */
export function endStream(db: Db, nodeId: string, sessionId: string) {
  return db
    .updateTable('nodes')
    .set({ stream_session: null, stream_replica: null, updated_at: sql`now()` })
    .where('id', '=', nodeId)
    .where('stream_session', '=', sessionId)
    .execute();
}

export interface HeartbeatRow {
  nodeId: string;
  /** How long ago the heartbeat arrived, so the database clock stamps it. */
  ageMs: number;
  stats: Record<string, unknown>;
  agentVersion: string | null;
}

/** One statement for every heartbeat held since the last flush, whatever the number of nodes. */
export async function writeHeartbeats(db: Db, rows: HeartbeatRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    update nodes as n
    set last_heartbeat_at = now() - make_interval(secs => v.age_ms / 1000.0),
        stats = v.stats,
        agent_version = coalesce(v.agent_version, n.agent_version),
        status = case when n.status = 'pending' then 'active' else n.status end,
        updated_at = now()
    from unnest(${rows.map((r) => r.nodeId)}::uuid[], ${rows.map((r) => r.ageMs)}::double precision[],
                ${rows.map((r) => JSON.stringify(r.stats))}::jsonb[], ${rows.map((r) => r.agentVersion)}::text[])
         as v(id, age_ms, stats, agent_version)
    where n.id = v.id and n.status <> 'disabled'`.execute(db);
}

/**
 * Finds active nodes whose liveness changed since it was last reported and records the new one.
 * Each change is returned to exactly one replica (the row update decides), which logs it.
 */
export async function sweepLiveness(db: Db, offlineAfterMs: number) {
  const { rows } = await sql<{
    id: string;
    name: string;
    liveness: 'active' | 'offline';
    previous: 'active' | 'offline' | null;
    last_heartbeat_at: Date | null;
  }>`
    update nodes as n
    set reported_liveness = x.liveness
    from (
      select id, reported_liveness as previous,
             case when last_heartbeat_at >= now() - make_interval(secs => ${offlineAfterMs / 1000})
                  then 'active' else 'offline' end as liveness
      from nodes where status = 'active'
    ) as x
    where n.id = x.id and n.status = 'active' and n.reported_liveness is distinct from x.liveness
    returning n.id, n.name, x.liveness, x.previous, n.last_heartbeat_at`.execute(db);
  return rows;
}

export function disabledAmong(db: Db, nodeIds: string[]) {
  if (nodeIds.length === 0) return Promise.resolve([]);
  return db
    .selectFrom('nodes')
    .select('id')
    .where(sql<boolean>`id = any(${nodeIds}::uuid[])`)
    .where('status', '=', 'disabled')
    .execute();
}

export function recordRenewedCertificate(
  db: Db,
  renewal: { nodeId: string; sessionSerial: string; serial: string; fingerprint: string; notAfter: Date },
) {
  return db
    .updateTable('nodes')
    .set({
      previous_certificate_serial: renewal.sessionSerial,
      certificate_serial: renewal.serial,
      certificate_fingerprint: renewal.fingerprint,
      certificate_not_after: renewal.notAfter,
      updated_at: sql`now()`,
    })
    .where('id', '=', renewal.nodeId)
    .where('status', '<>', 'disabled')
    .returning('id')
    .executeTakeFirst();
}
