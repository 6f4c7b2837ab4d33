import { type Kysely, sql } from 'kysely';

// The magic-login audit trail (POST /api/environments/{id}/magic-login): one row per request, who
// asked, when, for which environment on which node, and how it ended. Never the URL or the token.
// The rows also back the per-environment rate limit. No foreign keys on purpose: the trail
// outlives a deleted environment, node or user.
// Frozen in time: migrations use Kysely<any> so later schema types never change what they did.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('magic_logins')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('seq', 'bigint', (c) => c.notNull().unique().generatedAlwaysAsIdentity())
    .addColumn('environment_id', 'uuid', (c) => c.notNull())
    .addColumn('node_id', 'uuid')
    .addColumn('user_id', 'uuid')
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'issued', 'failed')`))
    .addColumn('error_code', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('magic_logins_environment_idx')
    .on('magic_logins')
    .columns(['environment_id', 'seq'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('magic_logins').execute();
}
