import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations use Kysely<any> so later schema types never change what they did.
export async function up(db: Kysely<any>): Promise<void> {
  // The agent CA (and any later control-plane-wide key material): one row per name, created once
  // by whichever replica starts first (insert ... on conflict do nothing, then read back).
  await db.schema
    .createTable('certificate_authorities')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('certificate_pem', 'text', (c) => c.notNull())
    /** The private key, sealed with the master key (SecretBox). */
    .addColumn('private_key_sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('nodes')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('seq', 'bigint', (c) => c.notNull().unique().generatedAlwaysAsIdentity())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    // Stored: pending | active | disabled. `offline` is derived from last_heartbeat_at.
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'active', 'disabled')`))
    .addColumn('join_token_hash', 'bytea', (c) => c.unique())
    .addColumn('join_token_expires_at', 'timestamptz')
    .addColumn('join_token_used_at', 'timestamptz')
    .addColumn('enrolled_at', 'timestamptz')
    .addColumn('agent_version', 'text')
    .addColumn('hostname', 'text')
    .addColumn('last_heartbeat_at', 'timestamptz')
    .addColumn('stats', 'jsonb')
    // The liveness last logged for an active node (active | offline): the sweeper logs each change once.
    .addColumn('reported_liveness', 'text', (c) => c.check(sql`reported_liveness in ('active', 'offline')`))
    .addColumn('certificate_serial', 'text')
    // The certificate a renewal replaced, accepted until the node connects with the new one.
    .addColumn('previous_certificate_serial', 'text')
    .addColumn('certificate_fingerprint', 'text')
    .addColumn('certificate_not_after', 'timestamptz')
    // The newest stream: which replica holds it. A disconnect clears it only if it is still its own.
    .addColumn('stream_session', 'uuid')
    .addColumn('stream_replica', 'text')
    .addColumn('stream_connected_at', 'timestamptz')
    .addColumn('disabled_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('nodes_status_heartbeat_idx')
    .on('nodes')
    .columns(['status', 'last_heartbeat_at'])
    .execute();

  await db.schema
    .createTable('agent_commands')
    // <job id>:<step>[:<generation>] for job steps, sync:<uuid> for synchronous queries.
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull().unique().generatedAlwaysAsIdentity())
    .addColumn('node_id', 'uuid', (c) => c.notNull().references('nodes.id').onDelete('cascade'))
    .addColumn('job_id', 'uuid', (c) => c.references('jobs.id').onDelete('cascade'))
    .addColumn('step', 'text')
    .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('environment_key', 'text')
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .check(
          sql`status in ('pending', 'delivered', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled', 'expired')`,
        ),
    )
    .addColumn('deadline_at', 'timestamptz', (c) => c.notNull())
    .addColumn('progress', 'jsonb')
    .addColumn('output', 'jsonb')
    .addColumn('error_code', 'text')
    .addColumn('error_message', 'text')
    .addColumn('cancel_requested_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('acknowledged_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('agent_commands_open_idx')
    .on('agent_commands')
    .columns(['node_id', 'seq'])
    .where(sql<boolean>`status in ('pending', 'delivered', 'running')`)
    .execute();
  await db.schema
    .createIndex('agent_commands_pending_idx')
    .on('agent_commands')
    .column('deadline_at')
    .where(sql<boolean>`status = 'pending'`)
    .execute();
  await db.schema
    .createIndex('agent_commands_job_step_idx')
    .on('agent_commands')
    .columns(['job_id', 'step', 'generation'])
    .execute();

  await db.schema
    .createTable('job_logs')
    .addColumn('seq', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('job_id', 'uuid', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('command_id', 'text')
    .addColumn('stream', 'text', (c) =>
      c.notNull().check(sql`stream in ('stdout', 'stderr', 'agent', 'progress')`),
    )
    .addColumn('line', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('job_logs_job_seq_idx').on('job_logs').columns(['job_id', 'seq']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['job_logs', 'agent_commands', 'nodes', 'certificate_authorities']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
